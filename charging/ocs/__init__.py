"""Built-in Online Charging System (Diameter Ro server, prepaid balances, tariffs, REST API)."""

from charging.ocs.server import OcsServer, run_ocs

__all__ = ["OcsServer", "run_ocs"]
