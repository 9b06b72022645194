"""The secondnum command: run the whole service, one component, or the demo of the seed's call flows.

``secondnum up`` starts, on loopback and embedded defaults, MongoDB (SecantusDB) when no ``MONGO_URI`` is
set, then the OCS, the hss_adapter with the provisioning API, the media server and the AS. Each component
can also run alone (``secondnum as``, ``secondnum media``, ``secondnum ocs``, ``secondnum hss``) against
external peers named in the configuration file.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import importlib
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from secondnum import memory
from secondnum.config import ConfigError
from secondnum.log import get_logger, setup_logging
from secondnum.mongo import EmbeddedMongo, EmbeddedMongoError, MongoSettings
from secondnum.service import Config, Endpoint, RunContext, Service, run_services

log = get_logger(__name__)

# Start order: what others depend on comes first (the AS needs the OCS, profiles and media).
COMPONENTS: dict[str, str] = {
    "ocs": "charging.service",
    "hss": "hss_adapter.service",
    "media": "media.service",
    "as": "appserver.service",
}

# Sections any configuration file may hold; components add theirs through their service module.
COMMON_SECTIONS = {"run", "log", "mongo"}


@dataclasses.dataclass(frozen=True)
class LogSettings:
    """``[log]``"""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["kv", "json"] = "kv"


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """``[run]``: process-wide behaviour."""

    drain_limit: float = 30.0
    """Seconds live calls may take to finish after SIGTERM before they are released."""
    seed_demo_data: bool = True
    """Provision the seed's example account on first start (``secondnum up`` only)."""
    memory_trim_interval: float = 60.0
    """Seconds between checks whether the allocator holds more than ``memory_trim_threshold_mib`` of freed
    memory, which is then returned to the OS (``malloc_trim``, secondnum/memory.py), so RSS comes down after
    an overload or a drain. A trim blocks the event loop for ~1 ms per 100 MiB walked; 0 turns it off."""
    memory_trim_threshold_mib: float = 32.0

    def __post_init__(self) -> None:
        if self.drain_limit < 0 or self.memory_trim_interval < 0 or self.memory_trim_threshold_mib < 0:
            raise ValueError("drain_limit, memory_trim_interval and memory_trim_threshold_mib must be >= 0")


def _component_sections() -> set[str]:
    names = set(COMMON_SECTIONS)
    for module_name in COMPONENTS.values():
        module = _import(module_name)
        names |= set(getattr(module, "SECTIONS", ()))
    return names


def _import(module_name: str) -> object:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise SystemExit(f"component module {module_name} is not available in this build") from exc
        raise


def _factory(module_name: str) -> Callable[[Config, RunContext], Service]:
    module = _import(module_name)
    create = getattr(module, "create", None)
    if create is None:
        raise SystemExit(f"{module_name} has no create(config, ctx)")
    return create  # type: ignore[no-any-return]


def _load(args: argparse.Namespace) -> tuple[Config, RunSettings]:
    config = Config.load(args.config)
    config.check_sections(_component_sections())
    log_settings = config.section(LogSettings, "log")
    setup_logging(log_settings.level, log_settings.format)
    return config, config.section(RunSettings, "run")


# Where a component's listening ports are configured: a bind failure names the key to change.
_PORT_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "ocs": (("ocs", "listen_port"), ("ocs", "http_port")),
    "hss": (("api", "port"),),
    "media": (("media", "sip_port"), ("media", "api_port")),
    "as": (("as", "sip_port"), ("as", "http_port")),
}
_BIND_ERRNOS = {errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL}
_ADDRESS_RE = re.compile(r"\('?([0-9a-fA-F.:]+)'?, (\d+)\)")


class StartError(RuntimeError):
    """A component could not start; the message says what to do."""


def port_in_use_message(component: str, exc: OSError, config: Config) -> str:
    """'port 8081 is in use' plus the setting (and environment variable) that moves the component."""
    found = _ADDRESS_RE.search(str(exc))
    port = int(found.group(2)) if found else None
    keys = _PORT_KEYS.get(component, ())
    matching = [(sec, key) for sec, key in keys if port is not None and _setting(config, sec, key) == port]
    candidates = matching or list(keys)
    where = f"port {port}" if port is not None else "one of its ports"
    what = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
    settings = " or ".join(f"[{sec}] {key} (SECONDNUM_{sec.upper()}__{key.upper()})"
                           for sec, key in candidates)
    return (f"{component}: {where} {what}. Stop what listens there (ss -ltnup | grep {port or ''}) or "
            f"move the {component} with {settings}.")


def _setting(config: Config, section: str, key: str) -> object:
    raw = config.document.get(section, {})
    environ = os.environ if config.environ is None else config.environ
    env = environ.get(f"SECONDNUM_{section.upper()}__{key.upper()}")
    value = env if env is not None else raw.get(key) if isinstance(raw, dict) else None
    if value is None:
        return _default_ports().get((section, key))
    try:
        return int(str(value))
    except ValueError:
        return value


def _default_ports() -> dict[tuple[str, str], int]:
    from appserver.settings import AsSettings
    from charging.settings import OcsSettings
    from hss_adapter.settings import ApiSettings
    from media.settings import MediaSettings

    found: dict[tuple[str, str], int] = {}
    for section, cls in (("as", AsSettings), ("ocs", OcsSettings), ("api", ApiSettings),
                         ("media", MediaSettings)):
        for field in dataclasses.fields(cls):
            if isinstance(field.default, int):
                found[(section, field.name)] = field.default
    return found


class _Announced:
    """Wraps a component: prints its start on the terminal and turns bind failures into a clear message."""

    def __init__(self, svc: Service, config: Config) -> None:
        self.svc = svc
        self.config = config
        self.name = svc.name

    async def start(self) -> None:
        started = time.monotonic()
        hint = " (renders the voicemail prompts on first start)" if self.name == "media" else ""
        print(f"starting {self.name}{hint} ...", flush=True)
        try:
            await self.svc.start()
        except OSError as exc:
            if exc.errno in _BIND_ERRNOS:
                raise StartError(port_in_use_message(self.name, exc, self.config)) from exc
            raise
        except Exception as exc:
            if self.name == "media" and shutil.which("espeak-ng") is None:
                raise StartError("media: espeak-ng is not installed (it renders the voicemail prompts): "
                                 "sudo apt-get install espeak-ng") from exc
            raise
        print(f"  {self.name} started in {time.monotonic() - started:.1f} s", flush=True)

    async def drain(self, timeout: float) -> None:
        await self.svc.drain(timeout)

    async def stop(self) -> None:
        await self.svc.stop()

    def endpoints(self) -> list[Endpoint]:
        return self.svc.endpoints()


class _MongoRow:
    """The database in the start-up table (started before the components, stopped after them)."""

    name = "mongo"

    def __init__(self, uri: str, embedded: EmbeddedMongo | None) -> None:
        self.uri = uri
        self.embedded = embedded

    async def start(self) -> None:
        return None

    async def drain(self, timeout: float) -> None:
        return None

    async def stop(self) -> None:
        return None

    def endpoints(self) -> list[Endpoint]:
        if self.embedded is None:
            return [Endpoint("mongo", "MongoDB (MONGO_URI)", _redact(self.uri))]
        return [Endpoint("mongo", "MongoDB (embedded SecantusDB)",
                         f"{self.uri}  data: {self.embedded.storage}")]


def _redact(uri: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", uri)


async def _announce_ready(ready: asyncio.Event, started: float, drain_limit: float) -> None:
    await ready.wait()
    print(f"\nsecondnum is up ({time.monotonic() - started:.1f} s). Ctrl-C stops it "
          f"(live calls get up to {drain_limit:.0f} s to finish).", flush=True)


async def _run(names: Sequence[str], config: Config, run: RunSettings, embedded_ok: bool,
               seed: bool) -> None:
    started = time.monotonic()
    mongo = config.section(MongoSettings, "mongo")
    embedded: EmbeddedMongo | None = None
    uri = mongo.uri
    if not uri:
        if not embedded_ok:
            raise SystemExit("no MongoDB configured: set MONGO_URI or [mongo] uri "
                             "(or pass --embedded-mongo to start an embedded SecantusDB)")
        print(f"starting embedded MongoDB (SecantusDB) in {mongo.embedded_data_dir} ...", flush=True)
        embedded = EmbeddedMongo(mongo.embedded_data_dir)
        try:
            # In this (the main) thread, not a worker: PR_SET_PDEATHSIG fires when the *thread* that forked
            # the server exits, so it must be one that lives as long as the process. ~0.5 s, once, at start.
            uri = embedded.start()
        except EmbeddedMongoError as exc:
            if "busy" not in str(exc).lower():
                raise
            raise EmbeddedMongoError(
                f"the data folder {mongo.embedded_data_dir} is in use by another SecantusDB (is another "
                "`secondnum up` running?): stop it, or choose another folder with [mongo] embedded_data_dir "
                "(SECONDNUM_MONGO__EMBEDDED_DATA_DIR)") from exc
        print(f"  MongoDB started in {time.monotonic() - started:.1f} s", flush=True)
    ctx = RunContext(mongo_uri=uri, mongo_database=mongo.database)
    ready = asyncio.Event()
    announcer = asyncio.create_task(_announce_ready(ready, started, run.drain_limit))
    memory.register()
    trimmer = (asyncio.create_task(memory.trim_loop(run.memory_trim_interval,
                                                    int(run.memory_trim_threshold_mib * 2**20)))
               if run.memory_trim_interval > 0 else None)
    try:
        services = [_factory(COMPONENTS[n])(config, ctx) for n in names]
        for svc in services:
            ctx.services[svc.name] = svc
        if seed:
            from secondnum.seed import DEMO_DID, DEMO_MOBILE, seed_demo_data

            await seed_demo_data(ctx)
            print(f"seed's example ready: DID {DEMO_DID}, alias {DEMO_MOBILE}@pstn, forward then voicemail, "
                  "prepaid balance and tariffs (--no-seed skips this)", flush=True)
        runnable: list[Service] = [_MongoRow(uri, embedded), *(_Announced(s, config) for s in services)]
        await run_services(runnable, run.drain_limit, ready=ready)
        print("stopped cleanly.", flush=True)
    finally:
        announcer.cancel()
        if trimmer is not None:
            trimmer.cancel()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def _run_loop(coro_factory: Callable[[], object]) -> None:
    try:
        import uvloop

        uvloop.run(coro_factory())  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(coro_factory())  # type: ignore[arg-type]


def cmd_up(args: argparse.Namespace) -> int:
    config, run = _load(args)
    seed = run.seed_demo_data and not args.no_seed
    _run_loop(lambda: _run(list(COMPONENTS), config, run, embedded_ok=True, seed=seed))
    return 0


def cmd_component(args: argparse.Namespace) -> int:
    config, run = _load(args)
    _run_loop(lambda: _run([args.command], config, run, embedded_ok=args.embedded_mongo, seed=False))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config, _ = _load(args)
    for name, module_name in COMPONENTS.items():
        module = _import(module_name)
        check = getattr(module, "check_config", None)
        if check is not None:
            check(config)
        print(f"{name}: ok")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="secondnum", description=__doc__.split("\n", 1)[0])
    parser.add_argument("-c", "--config", type=Path, default=None, help="TOML configuration file")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole service on embedded defaults")
    up.add_argument("--no-seed", action="store_true", help="do not provision the seed's example account")
    up.set_defaults(func=cmd_up)
    for name in COMPONENTS:
        p = sub.add_parser(name, help=f"run the {name} component alone")
        p.add_argument("--embedded-mongo", action="store_true",
                       help="start an embedded SecantusDB when no MONGO_URI is set")
        p.set_defaults(func=cmd_component)
    chk = sub.add_parser("check-config", help="validate the configuration file and exit")
    chk.set_defaults(func=cmd_check_config)
    for extra in ("secondnum.demo", "secondnum.ifc"):
        try:
            module = importlib.import_module(extra)
        except ModuleNotFoundError:
            continue
        module.register(sub)
    # `-c FILE` also after the command (`./dev run -c FILE` runs `secondnum up -c FILE`); SUPPRESS keeps the
    # value given before the command when none is given after it.
    for p in sub.choices.values():
        p.add_argument("-c", "--config", type=Path, default=argparse.SUPPRESS, help="TOML configuration file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"secondnum: {exc}", file=sys.stderr)
        return 2
    except EmbeddedMongoError as exc:
        print(f"secondnum: {exc}", file=sys.stderr)
        return 3
    except StartError as exc:
        print(f"secondnum: {exc}", file=sys.stderr)
        return 4
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
