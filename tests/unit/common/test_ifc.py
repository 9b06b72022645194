"""iFC XML (TS 29.228 Annex B/C): what `secondnum ifc` prints triggers our AS on terminating INVITEs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from secondnum.identity import IdentityError
from secondnum.ifc import IfcSpec, ifc_targets, render, wildcard_for_range

AS_URI = "sip:as.ims.example.net:5060"


def test_rendered_profile_round_trips() -> None:
    xml = render(IfcSpec(AS_URI), ["tel:+42027777100"])
    assert "<Identity>tel:+42027777100</Identity>" in xml
    assert "<ConditionTypeCNF>1</ConditionTypeCNF>" in xml
    assert "<Method>INVITE</Method>" in xml
    assert "<SessionCase>1</SessionCase>" in xml and "<SessionCase>2</SessionCase>" in xml
    assert "<DefaultHandling>1</DefaultHandling>" in xml
    assert ifc_targets(xml) == [AS_URI]


@pytest.mark.parametrize(
    ("xml", "targets"),
    [
        ("<IFCs><InitialFilterCriteria><TriggerPoint><SPT><Method>MESSAGE</Method></SPT></TriggerPoint>"
         "<ApplicationServer><ServerName>sip:sms</ServerName></ApplicationServer></InitialFilterCriteria></IFCs>",
         []),
        ("<IFCs><InitialFilterCriteria><TriggerPoint><SPT><Method>INVITE</Method></SPT>"
         "<SPT><SessionCase>0</SessionCase></SPT></TriggerPoint>"
         "<ApplicationServer><ServerName>sip:orig</ServerName></ApplicationServer></InitialFilterCriteria></IFCs>",
         []),
        ("<IFCs><InitialFilterCriteria><TriggerPoint><SPT><Method>INVITE</Method></SPT></TriggerPoint>"
         "<ApplicationServer><ServerName>sip:any</ServerName></ApplicationServer></InitialFilterCriteria></IFCs>",
         ["sip:any"]),
    ],
)
def test_targets_only_terminating_invite(xml: str, targets: list[str]) -> None:
    assert ifc_targets(xml) == targets


@pytest.mark.parametrize("bad", ["<IFCs>", '<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', ""])
def test_malformed_or_hostile_xml_is_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        ifc_targets(bad)


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [("42027777100", "42027777199", "tel:+420277771!.{2}!"),
     ("42027777100", "42027777100", "tel:+42027777100"),
     ("42027770000", "42027779999", "tel:+4202777!.{4}!")],
)
def test_wildcard_ranges(first: str, last: str, expected: str) -> None:
    assert wildcard_for_range(first, last) == expected


@pytest.mark.parametrize(("first", "last"), [("42027777105", "42027777199"), ("42027777199", "42027777100")])
def test_unaligned_ranges_refused(first: str, last: str) -> None:
    with pytest.raises(IdentityError):
        wildcard_for_range(first, last)


def test_command_prints_ifc() -> None:
    code = (
        "from secondnum.ifc import register; import argparse;"
        "p=argparse.ArgumentParser(); s=p.add_subparsers(); register(s);"
        "a=p.parse_args(['ifc','--did','+420 27777 7100','--as-uri','sip:as.example']);"
        "raise SystemExit(a.func(a))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert ifc_targets(r.stdout) == ["sip:as.example"]
