"""The ``secondnum`` command: run the whole service or one component.

``secondnum up`` starts, on loopback and embedded defaults, MongoDB (SecantusDB) when no ``MONGO_URI`` is
set, then the OCS, the hss_adapter with the provisioning API, the media server and the AS. Each component
can also run alone (``secondnum as``, ``secondnum media``, ``secondnum ocs``, ``secondnum hss``) against
external peers named in the configuration file.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from secondnum.config import ConfigError
from secondnum.log import get_logger, setup_logging
from secondnum.mongo import EmbeddedMongo, EmbeddedMongoError, MongoSettings
from secondnum.service import Config, RunContext, Service, run_services

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


async def _run(names: Sequence[str], config: Config, run: RunSettings, embedded_ok: bool,
               seed: bool) -> None:
    mongo = config.section(MongoSettings, "mongo")
    embedded: EmbeddedMongo | None = None
    uri = mongo.uri
    if not uri:
        if not embedded_ok:
            raise SystemExit("no MongoDB configured: set MONGO_URI or [mongo] uri")
        print(f"starting embedded MongoDB (SecantusDB) in {mongo.embedded_data_dir} ...", flush=True)
        embedded = EmbeddedMongo(mongo.embedded_data_dir)
        uri = await asyncio.to_thread(embedded.start)
    ctx = RunContext(mongo_uri=uri, mongo_database=mongo.database)
    try:
        services = [_factory(COMPONENTS[n])(config, ctx) for n in names]
        for svc in services:
            ctx.services[svc.name] = svc
        if seed:
            from secondnum.seed import seed_demo_data

            await seed_demo_data(ctx)
        await run_services(services, run.drain_limit)
    finally:
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
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
