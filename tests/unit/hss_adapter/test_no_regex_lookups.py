"""Guard: no mongoengine regex lookup anywhere in shipped code.

SecantusDB (the embedded MongoDB) answers ``__startswith``/``__icontains``-style lookups on indexed fields
with no documents, silently; a real MongoDB answers correctly, so the bug would only show in development.
This scans every package's source with ``ast`` for keyword arguments using such operators.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ["secondnum", "as", "hss_adapter", "charging", "media"]
REGEX_OPERATORS = (
    "startswith",
    "istartswith",
    "endswith",
    "iendswith",
    "contains",
    "icontains",
    "iexact",
    "regex",
    "iregex",
    "match",
    "wholeword",
    "iwholeword",
)


def regex_lookups(source: str, filename: str = "<src>") -> list[str]:
    """``file:line name`` for every call keyword like ``did__startswith=`` (also inside Q(...))."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg and "__" in kw.arg and kw.arg.rsplit("__", 1)[1] in REGEX_OPERATORS:
                    found.append(f"{filename}:{node.lineno} {kw.arg}")
    return found


@pytest.mark.parametrize(
    ("snippet", "hits"),
    [
        ("AccountDoc.objects(did__startswith='420')", 1),
        ("AccountDoc.objects.filter(display_name__icontains='jo')", 1),
        ("Q(key__regex='^4') | Q(key__iexact='x')", 2),
        ("AccountDoc.objects(status__in=['active'], did='1')", 0),
        ("AccountDoc.objects(follow_me__targets__uri='tel:+1')", 0),
        ("'x'.startswith('y')", 0),
    ],
)
def test_scanner_finds_regex_lookups(snippet: str, hits: int) -> None:
    assert len(regex_lookups(snippet)) == hits


def test_no_regex_lookups_in_the_source_tree() -> None:
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    assert files, "no sources found: wrong root?"
    offenders = [hit for p in files for hit in regex_lookups(p.read_text(encoding="utf-8"), str(p))]
    assert offenders == [], "regex lookups are answered wrongly by SecantusDB: " + "; ".join(offenders)
