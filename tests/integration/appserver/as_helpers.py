"""Small helpers shared by the AS integration tests."""

from __future__ import annotations

import asyncio
from typing import Any

from as_sipp import Sipp, Traced
from as_stack import DID, MOBILE, PSTN_CALLER, Stack

from appserver.cdr import Cdr
from secondnum.net import free_port


def caller_keys(stack: Stack, caller: str = PSTN_CALLER, pai: str | None = None) -> dict[str, str]:
    return {
        "did": DID,
        "caller": caller,
        "pai": pai or caller,
        "odi_port": str(stack.scscf_port),
        "icid": "icid-test",
    }


async def start_caller(stack: Stack, scenario: str, transport: str = "udp", *,
                       keys: dict[str, str] | None = None, **options: Any) -> Sipp:
    """SIPp as the S-CSCF forwarding a caller's ISC INVITE to the AS (from its own free port)."""
    sipp = Sipp(stack.workdir, "caller", scenario, free_port(), transport,
                remote=f"127.0.0.1:{stack.sip_port}", keys=keys or caller_keys(stack), **options)
    return await sipp.start()


async def run_all(*procs: Sipp, timeout: float = 90) -> list[int]:
    """Exit codes of every SIPp; once one fails the others are stopped soon after (no 60 s timeouts)."""
    tasks = [asyncio.create_task(p.wait(timeout)) for p in procs]
    for fut in asyncio.as_completed(tasks):
        if await fut != 0:
            await asyncio.sleep(2)
            for p in procs:
                p.kill()
            break
    return [await t for t in tasks]


def explain(*procs: Sipp) -> str:
    return "\n".join(p.diagnostics() for p in procs)


async def cdrs(did: str = DID, count: int = 1, timeout: float = 10) -> list[Cdr]:
    """The CDRs of ``did`` once ``count`` of them are written (they are written when a call ends)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        docs = await asyncio.to_thread(lambda: list(Cdr.objects(did=did)))
        if len(docs) >= count or loop.time() > deadline:
            return docs
        await asyncio.sleep(0.05)


OTHER = "42071112222"
"""The second follow-me target of the two-target tests (the first is the customer's MOBILE)."""


async def provision_two_targets(stack: Stack, ring_order: str = "simultaneous", **settings: Any) -> None:
    """The DID's follow-me rings OTHER and MOBILE (at once, or one after the other), 20 s each; plus
    ``settings``."""
    await stack.provision(
        follow_me={
            "ring_order": ring_order,
            "targets": [
                {"uri": f"tel:+{OTHER}", "ring_timeout": 20},
                {"uri": f"tel:+{MOBILE}", "ring_timeout": 20},
            ],
        },
        **settings,
    )


def to_tag(m: Traced) -> str:
    return (m.header("To") or "").split("tag=")[1]
