"""The life cycle every component follows, and the runner that drives it.

A component (AS, media, OCS, hss_adapter) exposes ``create(config: Config, ctx: RunContext) -> Service``
in its ``service`` module. The runner starts services in order, and on SIGTERM or SIGINT:

1. ``drain()`` on every service, in reverse order, concurrently bounded by the drain limit: stop taking new
   work (new INVITEs get 503 with Retry-After, readiness turns 503), let live calls and recordings finish.
2. ``stop()`` in reverse order: close charging sessions (CCR-T), send DPR, close sockets.

This matches Kubernetes' pod termination: the grace period must cover the drain limit plus stop time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from secondnum.config import ConfigError, load_section, read_toml
from secondnum.log import get_logger

log = get_logger(__name__)

T = TypeVar("T")


@dataclasses.dataclass
class Config:
    """The parsed configuration document; each component reads its own typed section from it."""

    document: Mapping[str, Any]
    environ: Mapping[str, str] | None = None
    path: Path | None = None

    @classmethod
    def load(cls, path: str | Path | None, environ: Mapping[str, str] | None = None) -> Config:
        return cls(read_toml(path), environ, Path(path) if path else None)

    def section(self, settings_cls: type[T], name: str) -> T:
        return load_section(settings_cls, self.document, name, self.environ)

    def check_sections(self, known: set[str]) -> None:
        for name in self.document:
            if name not in known:
                raise ConfigError(name, f"unknown section (known: {', '.join(sorted(known))})")


@dataclasses.dataclass
class Endpoint:
    """One listening address, for the start-up table."""

    component: str
    what: str
    where: str


@dataclasses.dataclass
class RunContext:
    """What the runner shares with services: the MongoDB URI and a registry of started services."""

    mongo_uri: str
    mongo_database: str
    services: dict[str, Service] = dataclasses.field(default_factory=dict)


class Service(Protocol):
    name: str

    async def start(self) -> None: ...

    async def drain(self, timeout: float) -> None: ...

    async def stop(self) -> None: ...

    def endpoints(self) -> list[Endpoint]: ...


def format_table(endpoints: list[Endpoint]) -> str:
    rows = [("component", "what", "where"), *((e.component, e.what, e.where) for e in endpoints)]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


async def run_services(services: list[Service], drain_limit: float, ready: asyncio.Event | None = None,
                       stop_event: asyncio.Event | None = None) -> None:
    """Start ``services`` in order, wait for SIGTERM/SIGINT (or ``stop_event``), drain, stop."""
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    started: list[Service] = []
    try:
        for svc in services:
            await svc.start()
            started.append(svc)
            log.info("service_started", service=svc.name)
        print(format_table([e for s in started for e in s.endpoints()]), flush=True)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("shutdown_requested", drain_limit=drain_limit)
        await asyncio.gather(*(_drain(s, drain_limit) for s in reversed(started)))
    finally:
        for svc in reversed(started):
            try:
                await asyncio.wait_for(svc.stop(), 15)
                log.info("service_stopped", service=svc.name)
            except Exception:
                log.exception("service_stop_failed", service=svc.name)
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def _drain(svc: Service, limit: float) -> None:
    try:
        await asyncio.wait_for(svc.drain(limit), limit + 1)
    except TimeoutError:
        log.warning("drain_limit_reached", service=svc.name, limit=limit)
    except Exception:
        log.exception("drain_failed", service=svc.name)
