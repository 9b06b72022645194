"""Shared Diameter layer: python-diameter codec with our fixes, sans-IO peer core, asyncio node.

See README.md in this folder for the API.
"""

from secondnum.diameter import codec, constants
from secondnum.diameter.node import DiameterNode, NoRouteError, PeerInfo, RequestTimeout
from secondnum.diameter.routing import PeerConfig

__all__ = ["DiameterNode", "NoRouteError", "PeerConfig", "PeerInfo", "RequestTimeout", "codec", "constants"]
