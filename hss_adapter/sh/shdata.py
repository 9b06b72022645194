"""Sh-Data XML (TS 29.328 Annex C/D, schema ``ShDataType.xsd``): safe parsing and building.

Documents come from the HSS (UDA, SNA, PNR) and are parsed with ``defusedxml`` (no DTDs, no entity
expansion, no external references). Anything that does not fit the TS 29.328 structure raises
:class:`ShDataError`; callers log it and apply nothing.

Our transparent data lives in ``RepositoryData/ServiceData`` (TS 29.328 §7.6.1) as a ``SecondNumber``
element (see :mod:`hss_adapter.sh.servicedata`).
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET  # building only; parsing goes through defusedxml
from collections.abc import Sequence
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError
from defusedxml.ElementTree import fromstring as safe_fromstring
from pycrate_mobile.TS24008_IE import decode_bcd

from hss_adapter.sh.constants import SEQUENCE_MAX

MAX_DOCUMENT_BYTES = 256 * 1024
XSI = "http://www.w3.org/2001/XMLSchema-instance"


class ShDataError(ValueError):
    """The Sh-Data document is not well-formed or not shaped as TS 29.328 Annex D requires."""


@dataclasses.dataclass(frozen=True)
class RepositoryData:
    """TS 29.328 §7.6.1: transparent data of one Service-Indication, versioned by Sequence-Number."""

    service_indication: str
    sequence_number: int
    service_data: Element | None


@dataclasses.dataclass(frozen=True)
class ApplicationServer:
    server_name: str
    default_handling: int | None = None


@dataclasses.dataclass(frozen=True)
class InitialFilterCriteria:
    """TS 29.228 Annex B.2.2 (carried in Sh-IMS-Data/IFCs, TS 29.328 §7.6.4)."""

    priority: int
    application_server: ApplicationServer | None


@dataclasses.dataclass(frozen=True)
class ShData:
    repository_data: tuple[RepositoryData, ...] = ()
    public_identities: tuple[str, ...] = ()
    msisdns: tuple[str, ...] = ()
    """E.164 digits decoded from TBCD (TS 29.328 §7.6.8, TS 29.002 ISDN-AddressString)."""
    ifcs: tuple[InitialFilterCriteria, ...] = ()


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def children(elem: Element, name: str) -> list[Element]:
    return [c for c in elem if local_name(c.tag) == name]


def child(elem: Element, name: str) -> Element | None:
    found = children(elem, name)
    return found[0] if found else None


def _text(elem: Element, name: str, where: str) -> str:
    found = child(elem, name)
    if found is None or found.text is None or not found.text.strip():
        raise ShDataError(f"{where}/{name} is missing or empty")
    return found.text.strip()


def _int(text: str, where: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ShDataError(f"{where} is not an integer: {text[:20]!r}") from None
    if not low <= value <= high:
        raise ShDataError(f"{where} out of range {low}..{high}: {value}")
    return value


def decode_msisdn(text: str) -> str:
    """``<MSISDN>`` hexBinary -> E.164 digits (TBCD, TS 29.002 §17.7.8; optional TON/NPI octet first)."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raise ShDataError(f"MSISDN is not hexBinary: {text[:32]!r}") from None
    if not raw:
        raise ShDataError("MSISDN is empty")
    if raw[0] & 0x80:  # ISDN-AddressString: first octet is extension/nature of address/numbering plan
        raw = raw[1:]
    digits: str = decode_bcd(raw)
    if not digits.isdigit():
        raise ShDataError(f"MSISDN has non-digit TBCD content: {digits!r}")
    return digits


def parse_sh_data(data: bytes | str) -> ShData:
    """Parse a User-Data AVP payload; raises :class:`ShDataError` for anything malformed or unsafe."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ShDataError(f"Sh-Data larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        root = safe_fromstring(raw, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as exc:
        raise ShDataError(f"not acceptable XML: {exc}") from None
    if local_name(root.tag) != "Sh-Data":
        raise ShDataError(f"root element is {local_name(root.tag)!r}, expected 'Sh-Data'")
    repos = []
    for i, rd in enumerate(children(root, "RepositoryData")):
        where = f"RepositoryData[{i}]"
        repos.append(RepositoryData(
            service_indication=_text(rd, "ServiceIndication", where),
            sequence_number=_int(_text(rd, "SequenceNumber", where), f"{where}/SequenceNumber", 0,
                                 SEQUENCE_MAX),
            service_data=child(rd, "ServiceData"),
        ))
    identities: list[str] = []
    msisdns: list[str] = []
    for pi in children(root, "PublicIdentifiers"):
        identities += [(e.text or "").strip() for e in children(pi, "IMSPublicIdentity") if e.text]
        msisdns += [decode_msisdn(e.text or "") for e in children(pi, "MSISDN")]
    ifcs: list[InitialFilterCriteria] = []
    for ims in children(root, "Sh-IMS-Data"):
        for block in children(ims, "IFCs"):
            for j, ifc in enumerate(children(block, "InitialFilterCriteria")):
                where = f"IFCs/InitialFilterCriteria[{j}]"
                prio = _int(_text(ifc, "Priority", where), f"{where}/Priority", 0, 2**31 - 1)
                asv = child(ifc, "ApplicationServer")
                server = None
                if asv is not None:
                    dh = child(asv, "DefaultHandling")
                    handling = None
                    if dh is not None and dh.text:
                        handling = _int(dh.text, f"{where}/DefaultHandling", 0, 1)
                    name = _text(asv, "ServerName", f"{where}/ApplicationServer")
                    server = ApplicationServer(name, handling)
                ifcs.append(InitialFilterCriteria(prio, server))
    return ShData(tuple(repos), tuple(identities), tuple(msisdns), tuple(ifcs))


def _serialise(root: Element) -> bytes:
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


def build_repository_data(
    service_indication: str, sequence_number: int, service_data: Element | None
) -> bytes:
    """A Sh-Data document with one RepositoryData (the payload of PUR User-Data, TS 29.329 §6.1.3).

    Without ``service_data`` it asks the HSS to delete the repository data (TS 29.328 §7.6.1).
    """
    root = Element("Sh-Data", {"xmlns:xsi": XSI})
    rd = ET.SubElement(root, "RepositoryData")
    ET.SubElement(rd, "ServiceIndication").text = service_indication
    ET.SubElement(rd, "SequenceNumber").text = str(sequence_number)
    if service_data is not None:
        ET.SubElement(rd, "ServiceData").append(service_data)
    return _serialise(root)


def build_sh_data(*, repository: Sequence[tuple[str, int, Element]] = (),
                  public_identities: Sequence[str] = (), msisdn_hex: Sequence[str] = (),
                  ifcs: Sequence[tuple[int, str, int]] = (), ifc_elements: Sequence[Element] = ()) -> bytes:
    """A Sh-Data document (used by the test HSS); ``ifcs`` are (priority, server name, default handling)
    without trigger points, ``ifc_elements`` complete ``InitialFilterCriteria`` elements (TS 29.228 B.2.2)."""
    root = Element("Sh-Data", {"xmlns:xsi": XSI})
    for si, seq, data in repository:
        rd = ET.SubElement(root, "RepositoryData")
        ET.SubElement(rd, "ServiceIndication").text = si
        ET.SubElement(rd, "SequenceNumber").text = str(seq)
        ET.SubElement(rd, "ServiceData").append(data)
    if public_identities or msisdn_hex:
        pi = ET.SubElement(root, "PublicIdentifiers")
        for ident in public_identities:
            ET.SubElement(pi, "IMSPublicIdentity").text = ident
        for m in msisdn_hex:
            ET.SubElement(pi, "MSISDN").text = m
    if ifcs or ifc_elements:
        block = ET.SubElement(ET.SubElement(root, "Sh-IMS-Data"), "IFCs")
        block.extend(ifc_elements)
        for prio, server, handling in ifcs:
            ifc = ET.SubElement(block, "InitialFilterCriteria")
            ET.SubElement(ifc, "Priority").text = str(prio)
            asv = ET.SubElement(ifc, "ApplicationServer")
            ET.SubElement(asv, "ServerName").text = server
            ET.SubElement(asv, "DefaultHandling").text = str(handling)
    return _serialise(root)
