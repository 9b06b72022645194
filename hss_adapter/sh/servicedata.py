"""Our transparent data in Sh Repository-Data (TS 29.328 §7.6.1): the account as a ``SecondNumber`` element.

The "sync form" is a plain dict: the editable settings of the provisioning API (``AccountSettings``, with
``voicemail.pin_hash`` instead of a plain PIN) plus ``aliases`` (identity, allow_registration). The XML is
checked against the same JSON Schema the REST API enforces, so an HSS cannot feed in what the API would
refuse.

    <SecondNumber version="1" did="42027777100">
      <DisplayName>John</DisplayName><Status>active</Status>
      <AnsweringMode>forward_then_voicemail</AnsweringMode><CallerIdPresentation>did</CallerIdPresentation>
      <FollowMe ringOrder="sequential">
        <Target ringTimeout="20">tel:+42073723123</Target>
        <TimeWindow days="mon,tue" start="08:00" end="18:00" timezone="Europe/Prague"/>
      </FollowMe>
      <Voicemail enabled="true" pinRequired="false" maxMessageSeconds="120" maxMessages="50"
                 pinHash="scrypt$..." greeting="..."/>
      <Alias allowRegistration="false">42073723123@pstn</Alias>
    </SecondNumber>
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # building only
from collections.abc import Mapping
from typing import Any
from xml.etree.ElementTree import Element

from hss_adapter.api.schemas import validate
from hss_adapter.sh.shdata import ShDataError, child, children, local_name
from secondnum.http import ProblemError
from secondnum.identity import IdentityError, canonical

ROOT = "SecondNumber"
SyncDoc = dict[str, Any]

_SIMPLE = (("display_name", "DisplayName"), ("status", "Status"), ("answering_mode", "AnsweringMode"),
           ("caller_id_presentation", "CallerIdPresentation"))
_VM_ATTRS = (("enabled", "enabled", "bool"), ("pin_required", "pinRequired", "bool"),
             ("max_message_seconds", "maxMessageSeconds", "int"), ("max_messages", "maxMessages", "int"),
             ("greeting", "greeting", "str"), ("pin_hash", "pinHash", "str"))


def _bool(text: str) -> bool:
    return text.strip().lower() in {"true", "1"}


def to_element(did: str, doc: Mapping[str, Any]) -> Element:
    """The ``SecondNumber`` element for ``doc`` (sync form)."""
    root = Element(ROOT, {"version": "1", "did": did})
    for key, tag in _SIMPLE:
        if doc.get(key) is not None:
            ET.SubElement(root, tag).text = str(doc[key])
    fm = doc.get("follow_me") or {}
    fm_el = ET.SubElement(root, "FollowMe", {"ringOrder": fm.get("ring_order", "sequential")})
    for target in fm.get("targets", []):
        el = ET.SubElement(fm_el, "Target", {"ringTimeout": str(target.get("ring_timeout", 20))})
        el.text = target["uri"]
    window = fm.get("time_window")
    if window:
        ET.SubElement(fm_el, "TimeWindow", {
            "days": ",".join(window.get("days", [])), "start": window["start"], "end": window["end"],
            "timezone": window.get("timezone", "UTC")})
    vm = doc.get("voicemail") or {}
    attrs = {}
    for key, attr, kind in _VM_ATTRS:
        if vm.get(key) is not None:
            attrs[attr] = ("true" if vm[key] else "false") if kind == "bool" else str(vm[key])
    ET.SubElement(root, "Voicemail", attrs)
    for alias in doc.get("aliases", []):
        allow = "true" if alias.get("allow_registration") else "false"
        ET.SubElement(root, "Alias", {"allowRegistration": allow}).text = alias["identity"]
    return root


def from_element(service_data: Element | None, did: str) -> SyncDoc:
    """Parse ``ServiceData`` content back into the sync form; :class:`ShDataError` when it does not fit."""
    if service_data is None:
        raise ShDataError("RepositoryData has no ServiceData")
    root = service_data if local_name(service_data.tag) == ROOT else child(service_data, ROOT)
    if root is None:
        raise ShDataError(f"ServiceData holds no {ROOT} element")
    if root.get("did") not in (None, did):
        raise ShDataError(f"ServiceData is for DID {root.get('did')!r}, not {did}")
    doc: SyncDoc = {}
    for key, tag in _SIMPLE:
        el = child(root, tag)
        if el is not None:
            doc[key] = (el.text or "").strip()
    fm_el = child(root, "FollowMe")
    if fm_el is not None:
        fm: dict[str, Any] = {"ring_order": fm_el.get("ringOrder", "sequential"), "targets": []}
        for t in children(fm_el, "Target"):
            try:
                timeout = int(t.get("ringTimeout", "20"))
            except ValueError:
                raise ShDataError("FollowMe/Target ringTimeout is not an integer") from None
            fm["targets"].append({"uri": (t.text or "").strip(), "ring_timeout": timeout})
        tw = child(fm_el, "TimeWindow")
        if tw is not None:
            fm["time_window"] = {"days": [d for d in tw.get("days", "").split(",") if d],
                                 "start": tw.get("start", ""), "end": tw.get("end", ""),
                                 "timezone": tw.get("timezone", "UTC")}
        doc["follow_me"] = fm
    vm_el = child(root, "Voicemail")
    pin_hash = None
    if vm_el is not None:
        vm: dict[str, Any] = {}
        for key, attr, kind in _VM_ATTRS:
            raw = vm_el.get(attr)
            if raw is None:
                continue
            if kind == "bool":
                vm[key] = _bool(raw)
            elif kind == "int":
                try:
                    vm[key] = int(raw)
                except ValueError:
                    raise ShDataError(f"Voicemail {attr} is not an integer") from None
            else:
                vm[key] = raw
        pin_hash = vm.pop("pin_hash", None)
        doc["voicemail"] = vm
    try:
        validate("AccountSettings", doc)
    except ProblemError as exc:
        raise ShDataError(f"ServiceData rejected: {exc.detail}") from None
    if pin_hash is not None:
        if not pin_hash.startswith("scrypt$"):
            raise ShDataError("Voicemail pinHash is not a scrypt hash")
        doc.setdefault("voicemail", {})["pin_hash"] = pin_hash
    aliases = []
    for a in children(root, "Alias"):
        identity = (a.text or "").strip()
        try:
            canonical(identity)
        except IdentityError as exc:
            raise ShDataError(f"Alias {identity!r}: {exc}") from None
        allow = _bool(a.get("allowRegistration", "false"))
        aliases.append({"identity": identity, "allow_registration": allow})
    doc["aliases"] = aliases
    return doc
