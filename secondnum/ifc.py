"""Initial filter criteria that make the S-CSCF trigger this AS (TS 29.228 Annex B and C).

An operator loads these into the HSS service profile of every DID (or of a wildcarded range, TS 23.003
§13.5): INVITE in a terminating session case (registered or unregistered) goes to our AS. The trigger point
is in conjunctive normal form (Annex C): group 0 ``Method == INVITE`` AND group 1 ``SessionCase in
{TERMINATING_REGISTERED, TERMINATING_UNREGISTERED}``.

``secondnum ifc`` prints the XML; :func:`ifc_targets` reads an ``InitialFilterCriteria`` set back (as the
hss_adapter receives it over Sh) so a misconfigured profile can be reported.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import sys
from xml.etree.ElementTree import Element, SubElement, indent, tostring

import defusedxml.ElementTree as SafeET

from secondnum.identity import IdentityError, normalise_e164


class SessionCase(enum.IntEnum):
    """TS 29.228 Annex B.2.2 ``tSessionCase``."""

    ORIGINATING_REGISTERED = 0
    TERMINATING_REGISTERED = 1
    TERMINATING_UNREGISTERED = 2
    ORIGINATING_UNREGISTERED = 3
    ORIGINATING_CDIV = 4


class DefaultHandling(enum.IntEnum):
    """TS 29.228 Annex B.2.2 ``tDefaultHandling``: what the S-CSCF does when the AS does not answer."""

    SESSION_CONTINUED = 0
    SESSION_TERMINATED = 1


@dataclasses.dataclass(frozen=True)
class IfcSpec:
    as_uri: str
    priority: int = 0
    default_handling: DefaultHandling = DefaultHandling.SESSION_TERMINATED
    """Terminated by default: a DID without its AS has no useful behaviour (it would ring nowhere)."""


def build_ifc(spec: IfcSpec) -> Element:
    ifc = Element("InitialFilterCriteria")
    SubElement(ifc, "Priority").text = str(spec.priority)
    tp = SubElement(ifc, "TriggerPoint")
    SubElement(tp, "ConditionTypeCNF").text = "1"
    _spt(tp, 0, "Method", "INVITE")
    _spt(tp, 1, "SessionCase", str(int(SessionCase.TERMINATING_REGISTERED)))
    _spt(tp, 1, "SessionCase", str(int(SessionCase.TERMINATING_UNREGISTERED)))
    app = SubElement(ifc, "ApplicationServer")
    SubElement(app, "ServerName").text = spec.as_uri
    SubElement(app, "DefaultHandling").text = str(int(spec.default_handling))
    return ifc


def _spt(parent: Element, group: int, kind: str, value: str) -> None:
    spt = SubElement(parent, "SPT")
    SubElement(spt, "ConditionNegated").text = "0"
    SubElement(spt, "Group").text = str(group)
    SubElement(spt, kind).text = value


def wildcard_for_range(first: str, last: str) -> str:
    """A wildcarded public identity (TS 23.003 §13.5, regex between ``!``) covering ``first..last``.

    The range must share a prefix; the remaining digits become a character class per position.
    """
    a, b = normalise_e164(first), normalise_e164(last)
    if len(a) != len(b) or a > b:
        raise IdentityError(f"not a range: {first}..{last}")
    prefix_len = next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), len(a))
    prefix, rest_a, rest_b = a[:prefix_len], a[prefix_len:], b[prefix_len:]
    if not rest_a:
        return f"tel:+{a}"
    if rest_a.strip("0") or rest_b.strip("9"):
        raise IdentityError(f"range {first}..{last} is not aligned to whole digits (use ...0 to ...9)")
    return f"tel:+{prefix}!.{{{len(rest_a)}}}!"


def render(spec: IfcSpec, identities: list[str]) -> str:
    """The service-profile fragment for ``identities``: one PublicIdentity each, the iFC once."""
    profile = Element("ServiceProfile")
    for identity in identities:
        pub = SubElement(profile, "PublicIdentity")
        SubElement(pub, "Identity").text = identity
    profile.append(build_ifc(spec))
    indent(profile)
    return tostring(profile, encoding="unicode") + "\n"


def ifc_targets(xml: str | bytes) -> list[str]:
    """The AS ``ServerName`` of every InitialFilterCriteria that triggers on a terminating INVITE.

    Parsed with defusedxml (no entities, no external references); raises ``ValueError`` on malformed XML.
    """
    try:
        root = SafeET.fromstring(xml)
    except SafeET.ParseError as exc:
        raise ValueError(f"malformed iFC XML: {exc}") from exc
    targets = []
    for ifc in root.iter("InitialFilterCriteria"):
        methods = {e.text for e in ifc.iter("Method")}
        cases = {int(e.text) for e in ifc.iter("SessionCase") if e.text and e.text.strip().isdigit()}
        terminating = {SessionCase.TERMINATING_REGISTERED, SessionCase.TERMINATING_UNREGISTERED}
        if "INVITE" in methods and (not cases or cases & terminating):
            name = ifc.findtext("ApplicationServer/ServerName")
            if name:
                targets.append(name.strip())
    return targets


def _cmd(args: argparse.Namespace) -> int:
    try:
        if args.range:
            identities = [wildcard_for_range(args.range[0], args.range[1])]
        else:
            identities = [f"tel:+{normalise_e164(d)}" for d in args.did]
    except IdentityError as exc:
        print(f"secondnum ifc: {exc}", file=sys.stderr)
        return 2
    if not identities:
        print("secondnum ifc: give --did NUMBER (repeatable) or --range FIRST LAST", file=sys.stderr)
        return 2
    spec = IfcSpec(args.as_uri, args.priority, DefaultHandling[args.default_handling.upper()])
    sys.stdout.write(render(spec, identities))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ifc", help="print the initial filter criteria (TS 29.228) to load into the HSS")
    p.add_argument("--as-uri", default="sip:127.0.0.1:5060;transport=udp", help="this AS's SIP URI")
    p.add_argument("--did", action="append", default=[], help="a DID (repeatable)")
    p.add_argument("--range", nargs=2, metavar=("FIRST", "LAST"),
                   help="a DID range, e.g. 42027777100 42027777199")
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--default-handling", choices=["session_terminated", "session_continued"],
                   default="session_terminated")
    p.set_defaults(func=_cmd)
