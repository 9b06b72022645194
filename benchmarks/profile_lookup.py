"""Profile lookup for the AS: the in-memory ``ProfileCache`` versus MongoDB ``find_one`` in the same run.

    .venv/bin/python -m benchmarks.profile_lookup [--accounts 2000] [--lookups 200000] [--queries 2000]

Starts an embedded SecantusDB (or uses ``MONGO_URI``), provisions ``--accounts`` accounts with one
``@pstn`` alias each, then measures per lookup:

- ``cache.lookup_did`` (dict hit) and ``cache.lookup_alias`` on a ``tel:`` URI (includes canonicalisation),
- the anchor: pymongo ``find_one({"did": ...})`` on the unique index, and ``store.profile_of`` (account +
  aliases + profile build: what a cache-less AS would pay per call),
- change propagation: a MongoDB ``update_one`` until the cache serves the new value (median / max).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from collections.abc import Callable

import pymongo

from hss_adapter import store
from hss_adapter.cache import ProfileCache
from hss_adapter.models import ensure_indexes
from secondnum.mongo import EmbeddedMongo, connect


def provision(db: pymongo.database.Database[dict[str, object]], n: int) -> list[str]:
    dids = [f"4202{i:07d}" for i in range(n)]
    ids = db["accounts"].insert_many([
        {"did": d, "display_name": "", "status": "active", "answering_mode": "forward_then_voicemail",
         "follow_me": {"targets": [{"uri": f"tel:+4207{i:07d}", "ring_timeout": 20}],
                       "ring_order": "sequential"},
         "caller_id_presentation": "did", "voicemail": {"enabled": True}}
        for i, d in enumerate(dids)
    ]).inserted_ids
    db["aliases"].insert_many([
        {"key": f"4207{i:07d}", "identity": f"4207{i:07d}@pstn", "account": oid, "allow_registration": False}
        for i, oid in enumerate(ids)
    ])
    return dids


def per_op(fn: Callable[[str], object], args: list[str]) -> float:
    start = time.perf_counter()
    for a in args:
        fn(a)
    return (time.perf_counter() - start) / len(args)


async def run(uri: str, args: argparse.Namespace) -> None:
    dbname = f"bench_{os.getpid()}"
    connect(uri, dbname)
    ensure_indexes()
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(uri)
    db = client[dbname]
    t0 = time.perf_counter()
    dids = provision(db, args.accounts)
    print(f"provisioned {args.accounts} accounts + aliases in {time.perf_counter() - t0:.1f} s")
    cache = ProfileCache.from_uri(uri, dbname)
    t0 = time.perf_counter()
    await cache.start()
    print(f"cache full load: {cache.size} accounts in {(time.perf_counter() - t0) * 1e3:.0f} ms")
    rnd = random.Random(1)
    keys = [rnd.choice(dids) for _ in range(args.lookups)]
    aliases = [f"tel:+4207{d[-7:]}" for d in keys]
    cached_did = per_op(cache.lookup_did, keys)
    cached_alias = per_op(cache.lookup_alias, aliases)
    coll = db["accounts"]
    mongo_find = per_op(lambda d: coll.find_one({"did": d}), keys[: args.queries])
    mongo_profile = per_op(store.profile_of, keys[: args.queries // 2])
    assert all(cache.lookup_did(d) is not None for d in keys[:100])
    lags = []
    applied = asyncio.Event()
    cache.add_listener(lambda _did: applied.set())
    for i in range(args.changes):
        did = rnd.choice(dids)
        name = f"n{i}"
        applied.clear()
        t0 = time.perf_counter()
        coll.update_one({"did": did}, {"$set": {"display_name": name}})
        while (p := cache.lookup_did(did)) is None or p.display_name != name:
            await asyncio.wait_for(applied.wait(), 10)
            applied.clear()
        lags.append(time.perf_counter() - t0)
    await cache.stop()
    client.drop_database(dbname)
    client.close()
    print()
    print(f"{'operation':50} {'per lookup':>12} {'vs cache DID':>14}")
    rows = [("cache.lookup_did (dict)", cached_did), ("cache.lookup_alias('tel:+...') (canonical+dict)",
            cached_alias), ("anchor: pymongo find_one({did}) unique index", mongo_find),
            ("anchor: store.profile_of (account+aliases)", mongo_profile)]
    for name, sec in rows:
        unit = f"{sec * 1e6:.2f} µs" if sec < 1e-3 else f"{sec * 1e3:.3f} ms"
        print(f"{name:50} {unit:>12} {sec / cached_did:>13.0f}x")
    print(f"\nchange propagation MongoDB -> cache ({args.changes} updates): "
          f"median {statistics.median(lags) * 1e3:.1f} ms, max {max(lags) * 1e3:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--lookups", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    uri = os.environ.get("MONGO_URI")
    if uri:
        asyncio.run(run(uri, args))
        return
    with EmbeddedMongo(":memory:") as server:
        asyncio.run(run(server.uri, args))


if __name__ == "__main__":
    main()
