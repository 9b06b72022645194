"""Normalisation of subscriber identities to one canonical E.164 key.

The seed's alias ``42073723123@pstn`` and the network's ``tel:+42073723123`` or
``sip:+42073723123@ims.example.net;user=phone`` all name the same subscriber (TS 23.003 §13.4 for tel URIs,
RFC 3966 for global numbers, RFC 3261 §19.1.6 for ``user=phone``). Every lookup by identity goes through
:func:`canonical`, so the profile cache, the provisioning API and the AS agree on one key.
"""

from __future__ import annotations

import re

E164_RE = re.compile(r"^[1-9][0-9]{6,14}$")
"""ITU-T E.164: up to 15 digits, no leading zero in the country code (we require at least 7)."""

_VISUAL_SEPARATORS = str.maketrans("", "", "-.() ")


class IdentityError(ValueError):
    """The identity cannot be reduced to an E.164 number or a SIP URI."""


def is_e164(digits: str) -> bool:
    return bool(E164_RE.match(digits))


def normalise_e164(number: str) -> str:
    """``+420 27-777-7100`` -> ``42027777100``; raises :class:`IdentityError` when not E.164."""
    digits = number.strip().translate(_VISUAL_SEPARATORS)
    digits = digits.removeprefix("+")
    if not is_e164(digits):
        raise IdentityError(f"not an E.164 number: {number!r}")
    return digits


def canonical(identity: str) -> str:
    """Reduce an identity to its lookup key.

    Returns the bare E.164 digits for ``tel:`` URIs, ``<digits>@pstn`` aliases, bare numbers and SIP URIs
    whose user part is a global number (``user=phone`` or a leading ``+``). Other SIP URIs are returned as
    ``sip:user@host`` lower-cased in the host, without parameters, so that two spellings of one address
    compare equal.
    """
    text = identity.strip()
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise IdentityError(f"control character in identity: {identity!r}")
    if text.startswith("<") and ">" in text:
        text = text[1 : text.index(">")]
    lower = text.lower()
    if lower.startswith("tel:"):
        number = text[4:].split(";", 1)[0]
        return normalise_e164(number)
    if lower.startswith(("sip:", "sips:")):
        rest = text.split(":", 1)[1]
        params = rest.split(";")[1:]
        userhost = rest.split(";", 1)[0].split("?", 1)[0]
        if "@" not in userhost:
            raise IdentityError(f"SIP URI without a user part: {identity!r}")
        user, host = userhost.rsplit("@", 1)
        user = user.split(";", 1)[0]
        user_is_phone = any(p.lower() == "user=phone" for p in params) or user.startswith("+")
        if user_is_phone:
            return normalise_e164(user)
        return f"sip:{user}@{host.split(':', 1)[0].lower()}"
    if "@" in text:
        user, host = text.rsplit("@", 1)
        if host.lower() == "pstn":
            return normalise_e164(user)
        return f"sip:{user}@{host.lower()}"
    return normalise_e164(text)


def tel_uri(e164: str) -> str:
    """The global ``tel:`` URI for a canonical E.164 number (RFC 3966 §5.1.4)."""
    return f"tel:+{e164}"
