"""Checking that the subscriber's iFC triggers this AS (issue 7).

UDR with Data-Reference InitialFilterCriteria (13) and our Server-Name returns the Initial Filter Criteria the
HSS holds for that AS (TS 29.328 §7.6.4, TS 29.329 §6.1.1); each names its ApplicationServer/ServerName
(TS 29.228 Annex B.2.2). Only iFCs that trigger on a terminating INVITE count (decided by
``secondnum.ifc.ifc_targets``, the same reader ``secondnum ifc`` uses). When none points at our SIP address,
the S-CSCF will never route the DID's calls here, which is worth a warning rather than a silent service.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from hss_adapter.sh.client import ShClient
from hss_adapter.sh.constants import DataReference
from hss_adapter.sh.shdata import InitialFilterCriteria
from secondnum.ifc import ifc_targets
from secondnum.log import get_logger

log = get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class IfcCheck:
    public_identity: str
    result_code: int | None
    ifcs: tuple[InitialFilterCriteria, ...]
    warnings: tuple[str, ...]

    @property
    def points_here(self) -> bool:
        return not self.warnings


def _sip_address(uri: str) -> tuple[str, str, int | None]:
    """(user, host, port) of a SIP URI; host lower-cased, parameters/headers dropped (RFC 3261 §19.1.4)."""
    text = uri.strip().strip("<>")
    scheme, _, rest = text.partition(":")
    if scheme.lower() not in {"sip", "sips"}:
        return ("", text.lower(), None)
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    user, _, hostport = rest.rpartition("@")
    host, _, port = hostport.partition(":")
    default = 5061 if scheme.lower() == "sips" else 5060
    return (user, host.lower(), int(port) if port.isdigit() else default)


def same_server(a: str, b: str) -> bool:
    """Whether two ServerName SIP URIs address the same AS (host and port, default 5060)."""
    return _sip_address(a)[1:] == _sip_address(b)[1:]


def ifc_warnings(targets: Sequence[str], as_server_name: str) -> tuple[str, ...]:
    """Warnings unless one of ``targets`` (ServerNames of terminating-INVITE iFCs) is ``as_server_name``."""
    if any(same_server(n, as_server_name) for n in targets):
        return ()
    if not targets:
        return (f"no iFC triggering a terminating INVITE points at {as_server_name}",)
    return (
        f"no iFC triggering a terminating INVITE points at {as_server_name} (found: {', '.join(targets)})",
    )


async def check_ifc(client: ShClient, public_identity: str, as_server_name: str) -> IfcCheck:
    """Read the iFC over Sh and warn (log + result) unless one of them points at ``as_server_name``."""
    answer = await client.udr(
        public_identity, DataReference.INITIAL_FILTER_CRITERIA, server_name=as_server_name
    )
    ifcs: tuple[InitialFilterCriteria, ...] = ()
    if not answer.ok or answer.user_data is None or answer.raw_user_data is None:
        warnings: tuple[str, ...] = (f"iFC not readable over Sh (result {answer.result_code})",)
    else:
        ifcs = answer.user_data.ifcs
        warnings = ifc_warnings(ifc_targets(answer.raw_user_data), as_server_name)
    for text in warnings:
        log.warning("ifc_check", public_identity=public_identity, warning=text)
    return IfcCheck(public_identity, answer.result_code, ifcs, warnings)
