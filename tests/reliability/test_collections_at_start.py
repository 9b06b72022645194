"""Collections and indexes exist before the first call (``secondnum.mongo.ensure_collections``).

A document whose indexes were created on first use had them created inside whichever concurrent write came
first; on SecantusDB that stalled the server for good (CI hung twice). Every shipped document therefore turns
mongoengine's lazy index creation off, and each service creates what it writes at start.
"""

from __future__ import annotations

import importlib
import pkgutil
import tomllib
from pathlib import Path
from typing import Any

import mongoengine
import pymongo
import pytest
import rel_stack

SHIPPED = ("secondnum", "appserver", "hss_adapter", "charging", "media")


def _shipped_documents() -> list[type[Any]]:
    for root in SHIPPED:
        package = importlib.import_module(root)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{root}."):
            if ".demo" in info.name or info.name.endswith("__main__"):
                continue
            importlib.import_module(info.name)
    found: list[type[Any]] = []
    todo: list[type[Any]] = list(mongoengine.Document.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] in SHIPPED and not cls._meta.get("abstract"):
            found.append(cls)
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


DOCUMENTS = _shipped_documents()


def test_the_walk_finds_every_document() -> None:
    names = {c.__name__ for c in DOCUMENTS}
    # One per component at least: if the walk broke, the next test would pass on an empty list.
    assert {"Cdr", "OpenRoSession", "RatedRecord", "AccountDoc", "VoicemailMessage"} <= names


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda c: c.__name__)
def test_no_document_creates_its_indexes_lazily(document: type[Any]) -> None:
    assert document._meta.get("auto_create_index") is False, (
        f"{document.__module__}.{document.__name__}: set meta auto_create_index False and create its "
        "indexes at service start with secondnum.mongo.ensure_collections")


NOT_STARTED_HERE = {"sh_sync": "the Sh mirror runs only with an HSS configured ([hss] peer_address)"}


def _declared_index_keys(document: type[Any]) -> set[tuple[tuple[str, int], ...]]:
    return {tuple((field, int(order)) for field, order in spec["fields"])
            for spec in document._meta.get("index_specs", [])}


@pytest.mark.slow
def test_secondnum_up_creates_every_collection_and_index_before_the_first_call(tmp_path: Path) -> None:
    with rel_stack.serving(tmp_path, trusted="127.0.0.1"):
        uri = tomllib.loads((tmp_path / "cfg.toml").read_text())["mongo"]["uri"]
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri)
        try:
            db = client["secondnum"]
            present = set(db.list_collection_names())
            missing: list[str] = []
            for document in DOCUMENTS:
                name = document._get_collection_name()
                if name in NOT_STARTED_HERE:
                    continue
                if name not in present:
                    missing.append(name)
                    continue
                have = {tuple((f, int(o)) for f, o in info["key"].items())
                        for info in db[name].list_indexes()}
                missing.extend(f"{name}{sorted(k)}" for k in _declared_index_keys(document) - have)
            assert not missing, f"not created at start: {missing}"
        finally:
            client.close()
