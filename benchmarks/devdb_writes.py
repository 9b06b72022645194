"""Cost of a write to the embedded SecantusDB as writes accumulate, with and without retryable writes.

Run: ``.venv/bin/python -m benchmarks.devdb_writes [--writes 12000] [--block 1000]``

The per-call writes of ``secondnum up`` in miniature: one client updates a record by ``_id`` ``--writes``
times (as the OCS ledger does per CCR) against a fresh in-memory SecantusDB, once with the URI
``secondnum up`` uses (``retryWrites=false``) and once with pymongo's default (retryable writes), and prints
the mean time per write in each block of ``--block`` writes. The anchor is each run's first block. With
retryable writes SecantusDB 0.7 keeps every reply 30 minutes and scans them all on each write (sorting
them past 10,000): the time per write grows with the writes done. Not a test: no assertion.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from pymongo import MongoClient

from benchmarks._service import machine
from secondnum.mongo import EmbeddedMongo


def run(uri: str, writes: int, block: int) -> list[float]:
    """Mean ms per write for each block."""
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    coll = client["bench_devdb"]["records"]
    coll.drop()
    coll.insert_many([{"_id": f"s{i}", "n": 0} for i in range(100)])
    out: list[float] = []
    try:
        for b in range(writes // block):
            t0 = time.perf_counter()
            for i in range(block):
                coll.update_one({"_id": f"s{i % 100}"}, {"$inc": {"n": 1}})
            out.append((time.perf_counter() - t0) / block * 1000)
            print(f"  writes {(b + 1) * block:>6}: {out[-1]:6.2f} ms/write", flush=True)
    finally:
        client.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--writes", type=int, default=12_000)
    parser.add_argument("--block", type=int, default=1_000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    results: dict[str, list[float]] = {}
    for name, retryable in (("retryWrites=false (secondnum up)", False),
                            ("driver default (retryable writes)", True)):
        with EmbeddedMongo(":memory:") as server:
            uri = server.uri.replace("&retryWrites=false", "") if retryable else server.uri
            print(f"{name}: {uri}")
            results[name] = run(uri, args.writes, args.block)
    for name, blocks in results.items():
        print(f"{name}: first block {blocks[0]:.2f} ms/write (anchor), last block {blocks[-1]:.2f} ms/write "
              f"= {blocks[-1] / blocks[0]:.1f}x the anchor")


if __name__ == "__main__":
    main()
