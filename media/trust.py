"""Which sources may send INVITEs to the media server (``[media] trusted_sources``).

The AS marks a voicemail-access INVITE ``auth=network`` and the media server believes it only because of
where the INVITE comes from, so the check must hold in a cluster too: there the AS pods have addresses
from the pod network, known only as a range. Entries are addresses or CIDR networks, like the AS's
``trusted_scscf``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def source_trusted(source: str, trusted: Iterable[str]) -> bool:
    """Whether ``source`` (an IP address) is one of, or inside one of, ``trusted``; empty trusts any."""
    entries = list(trusted)
    if not entries:
        return True
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return source in entries
    for entry in entries:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            if entry == source:
                return True
    return False
