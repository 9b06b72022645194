"""A finished call leaves no reference cycles behind (what secondnum/gctune.py's collector settings rely on).

The AS raises the collector's generation-0 threshold because the call path frees its objects by reference
counting. A cycle (say a charging session holding a bound method of the call that holds the session) would
turn every call into garbage only the collector can free: memory would climb between the rarer collections
and each collection would cost more. This runs a real forwarded call (SIPp caller and far end, real OCS over
Diameter, CDR in SecantusDB) and asks the collector what it would have had to free.
"""

from __future__ import annotations

import asyncio
import collections
import gc

import pytest
from as_helpers import cdrs, explain, run_all, start_caller
from as_sipp import Sipp
from as_stack import Stack
from mongoengine.base import BaseDocument

pytestmark = [pytest.mark.sipp, pytest.mark.slow]

# What a call allocates: the AS's call objects, SIP messages/dialogs/transactions, the Ro client's sessions.
# (Not the OCS, the tariffs or the test's CCR log: a previous test's stack can become garbage while this
# test runs, when its last asyncio callbacks finish.)
OUR_MODULES = ("appserver", "secondnum.sip", "charging.client", "charging.session")
# mongoengine documents are cyclic by design (each field value points back at its document); the call path
# writes CDRs and Ro records as plain dicts, the documents seen here are the profile cache reloading after
# provisioning and this test's own reads.


def _our_garbage() -> collections.Counter[str]:
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = collections.Counter(
            f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage
            if type(o).__module__.startswith(OUR_MODULES) and not isinstance(o, BaseDocument))
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
        gc.collect()  # what DEBUG_SAVEALL kept is freed now, not reported again by the next call
    return found


async def test_a_finished_call_is_freed_by_reference_counting(stack: Stack) -> None:
    await stack.provision()
    _our_garbage()  # whatever start-up left: not what this test is about
    target = await Sipp(stack.workdir, "target", "target_answer.xml", stack.scscf_port, "udp").start()
    caller = await start_caller(stack, "caller_answered.xml", "udp", pause_ms=500)
    assert await run_all(caller, target) == [0, 0], explain(caller, target)
    for _ in range(100):  # the CDR is the last thing a call does
        if await cdrs():
            break
        await asyncio.sleep(0.1)
    (cdr,) = await cdrs()
    assert cdr.disposition == "answered"
    assert _our_garbage() == collections.Counter()
