"""CCR/CCA transactions per second: our Ro client → our OCS, versus python-diameter's threaded Node.

    .venv/bin/python -m benchmarks.ro [--seconds 15] [--concurrency 64]

Both runs send the same messages (CCR-I then CCR-T per session, built by `charging.session`) to a
server in a separate process that rates them with the same in-memory ledger (`MemoryLedger`), so
the difference is the Diameter layer: our asyncio node + codec versus python-diameter 0.9.0's
threaded `Node` with `SimpleThreadingApplication`. CPU time per transaction is measured with
getrusage in each process (client side, server side). Bounded: about 2 x (seconds + 5) s.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing as mp
import resource
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from charging.messages import ChargingRequest, RoleOfNode, build_cca, parse_ccr
from charging.ocs.ledger import MemoryLedger
from charging.ocs.rating import TariffRule, TariffTable
from charging.session import CreditControlSession
from secondnum.diameter import codec
from secondnum.diameter import constants as dc
from secondnum.net import free_port

REALM = "bench.local"
MONGO_DB = "bench_ro"
ACCOUNTS = [f"4202777{i:04d}" for i in range(1000)]
TARIFFS = TariffTable([TariffRule("420", 600, 60, 100)])


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def ledger() -> MemoryLedger:
    led = MemoryLedger()
    for a in ACCOUNTS:
        led.balances[a] = 10**12
    return led




def request(i: int) -> ChargingRequest:
    return ChargingRequest(
        ACCOUNTS[i % len(ACCOUNTS)],
        RoleOfNode.ORIGINATING,
        "tel:+42027777100",
        "tel:+420273333444",
        f"icid{i}",
    )


def control(pipe: Connection) -> None:
    """Server side of the measurement protocol: 'start' → reset CPU; 'stop' → send CPU used."""
    t0 = cpu()
    while True:
        cmd = pipe.recv()
        if cmd == "start":
            t0 = cpu()
        elif cmd == "stop":
            pipe.send(cpu() - t0)
            return


# ---------------------------------------------------------------------------- our stack


def seed_mongo(uri: str) -> None:
    from charging.ocs import models
    from secondnum.mongo import connect

    connect(uri, database=MONGO_DB)
    models.Account.drop_collection()
    models.Tariff.drop_collection()
    models.RatedRecord.drop_collection()
    models.Account.objects.insert([models.Account(e164=a, balance=10**12) for a in ACCOUNTS])
    for r in TARIFFS.rules():
        models.Tariff(
            prefix=r.prefix,
            price_per_minute=r.price_per_minute,
            increment_seconds=r.increment_seconds,
            connection_fee=r.connection_fee,
        ).save()


def our_server(pipe: Connection, mongo_uri: str | None = None) -> None:
    from charging.ocs import OcsServer
    from charging.ocs.ledger import MongoLedger
    from charging.settings import OcsSettings

    async def main() -> None:
        if mongo_uri:
            seed_mongo(mongo_uri)
        ocs = OcsServer(
            OcsSettings(origin_host="ocs.bench.local", origin_realm=REALM, listen_port=0),
            MongoLedger() if mongo_uri else ledger(),
            http=False,
        )
        await ocs.start()
        if not mongo_uri:
            ocs.tariffs = TARIFFS
        pipe.send(ocs.diameter_port)
        await asyncio.to_thread(control, pipe)
        await ocs.stop()

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())


async def our_client(
    port: int, seconds: float, concurrency: int, pipe: Connection, mongo_uri: str | None = None
) -> tuple[int, float, float]:
    from charging.client import RoClient
    from charging.settings import DiameterPeerSettings, RoClientSettings

    settings = RoClientSettings(
        origin_host="as.bench.local",
        origin_realm=REALM,
        destination_realm=REALM,
        peers=[DiameterPeerSettings(host="ocs.bench.local", realm=REALM, port=port)],
    )
    if mongo_uri:
        from secondnum.mongo import connect

        connect(mongo_uri, database=MONGO_DB)
    client = RoClient(settings, persist=mongo_uri is not None)
    await client.start()
    counter = itertools.count()
    done = 0
    stop_at = 0.0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            s = await client.start_session(request(next(counter)))
            await s.terminate(used_seconds=30)
            done += 2

    for _ in range(200):  # warm-up
        s = await client.start_session(request(next(counter)))
        await s.terminate(used_seconds=1)
    pipe.send("start")
    t0, c0 = time.perf_counter(), cpu()
    stop_at = t0 + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, client_cpu = time.perf_counter() - t0, cpu() - c0
    pipe.send("stop")
    await client.stop()
    return done, wall, client_cpu


# ---------------------------------------------------------------------------- python-diameter


def lib_server(pipe: Connection, port: int) -> None:
    from diameter.node import Node
    from diameter.node.application import SimpleThreadingApplication

    led = ledger()
    origin = [
        codec.avp(dc.AVP_ORIGIN_HOST, b"ocs.bench.local"),
        codec.avp(dc.AVP_ORIGIN_REALM, REALM.encode()),
    ]

    def handle(app: Any, msg: Any) -> Any:
        ccr = parse_ccr(msg)
        d = led.apply_sync(ccr, TARIFFS, 300)
        ans = build_cca(msg, ccr, d.result_code, granted_seconds=d.granted_seconds, validity_seconds=3600)
        ans.avps = [ans.avps[0], *origin, *ans.avps[1:]]
        return ans

    node = Node("ocs.bench.local", REALM, ip_addresses=["127.0.0.1"], tcp_port=port)
    node.idle_timeout = 3600
    peer = node.add_peer("aaa://as.bench.local", REALM)
    app = SimpleThreadingApplication(dc.APP_RO, is_auth_application=True, request_handler=handle)
    node.add_application(app, [peer])
    node.start()
    pipe.send(port)
    control(pipe)
    node.stop(wait_timeout=5, force=True)


def lib_client(port: int, seconds: float, concurrency: int, pipe: Connection) -> tuple[int, float, float]:
    from diameter.node import Node
    from diameter.node.application import SimpleThreadingApplication

    node = Node("as.bench.local", REALM)
    peer = node.add_peer(
        f"aaa://ocs.bench.local:{port}", REALM, ip_addresses=["127.0.0.1"], is_persistent=True
    )
    app = SimpleThreadingApplication(dc.APP_RO, is_auth_application=True)
    node.add_application(app, [peer])
    node.start()
    app.wait_for_ready(timeout=30)
    extra = [
        codec.avp(dc.AVP_ORIGIN_HOST, b"as.bench.local"),
        codec.avp(dc.AVP_ORIGIN_REALM, REALM.encode()),
        codec.avp(dc.AVP_DESTINATION_REALM, REALM.encode()),
    ]
    counter = itertools.count()
    lock = threading.Lock()
    done = 0
    stop_at = 0.0

    def one(i: int) -> None:
        core = CreditControlSession(f"as.bench.local;{i};lib", request(i))
        for msg in (core.initial(0.0), core.termination(0.0, used_seconds=30)):
            msg.avps = [msg.avps[0], *extra, *msg.avps[1:]]
            ans = app.send_request(msg, timeout=30)
            rc = codec.result_code(codec.decode(ans.as_bytes()))
            if rc != dc.SUCCESS:
                raise RuntimeError(f"result {rc}")

    def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            one(next(counter))
            with lock:
                done += 2

    for _ in range(100):
        one(next(counter))
    pipe.send("start")
    t0, c0 = time.perf_counter(), cpu()
    stop_at = t0 + seconds
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, client_cpu = time.perf_counter() - t0, cpu() - c0
    pipe.send("stop")
    node.stop(wait_timeout=5, force=True)
    return done, wall, client_cpu


# ---------------------------------------------------------------------------- driver


def run(name: str, seconds: float, concurrency: int, mongo_uri: str | None = None) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    if name.startswith("ours"):
        proc = ctx.Process(target=our_server, args=(child, mongo_uri), daemon=True)
    else:
        proc = ctx.Process(target=lib_server, args=(child, free_port(udp=False)), daemon=True)
    proc.start()
    if not parent.poll(60):
        raise RuntimeError(f"{name} server did not start")
    port = parent.recv()
    if name.startswith("ours"):
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        done, wall, ccpu = asyncio.run(our_client(port, seconds, concurrency, parent, mongo_uri))
    else:
        done, wall, ccpu = lib_client(port, seconds, concurrency, parent)
    scpu = parent.recv() if parent.poll(30) else float("nan")
    proc.join(10)
    if proc.is_alive():
        proc.kill()
    return {
        "tps": done / wall,
        "transactions": done,
        "client_us": ccpu / done * 1e6,
        "server_us": scpu / done * 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument(
        "--mongo",
        action="store_true",
        help="also run ours with MongoLedger + persisted sessions (SecantusDB)",
    )
    args = ap.parse_args()
    results = {name: run(name, args.seconds, args.concurrency) for name in ("ours", "python-diameter")}
    if args.mongo:
        from secondnum.mongo import EmbeddedMongo

        with EmbeddedMongo(":memory:") as db:
            results["ours+mongo"] = run("ours+mongo", args.seconds, args.concurrency, db.uri)
    print(f"CCR/CCA over loopback TCP, {args.concurrency} concurrent sessions, {args.seconds:.0f} s each")
    print(f"{'stack':<18}{'trans/s':>10}{'trans':>9}{'client CPU µs/tr':>18}{'server CPU µs/tr':>18}")
    for name, r in results.items():
        print(
            f"{name:<18}{r['tps']:>10.0f}{r['transactions']:>9.0f}{r['client_us']:>18.0f}{r['server_us']:>18.0f}"
        )
    ratio = results["ours"]["tps"] / results["python-diameter"]["tps"]
    print(f"throughput ratio ours / python-diameter Node: {ratio:.2f}x (target >= 1.5x)")


if __name__ == "__main__":
    main()
