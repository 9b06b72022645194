"""``secondnum demo``: walk through the seed's call flows against the running service.

Start the service first (``secondnum up``, same ``-c FILE`` and ``SECONDNUM_*`` variables), then run
``secondnum demo``. SIPp plays the S-CSCF and the network behind it on the address the AS sends to
(``[as] scscf_uri``, default ``sip:127.0.0.1:5080``); a pjsua2 phone places the calls with real audio.
The exit code is 0 only when every check held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import signal
import sys
from pathlib import Path
from typing import Any

from secondnum.demo.errors import DemoError

__all__ = ["DemoError", "register"]


def addresses(config: Any) -> tuple[Any, Any]:
    """Where ``secondnum up`` listens under the same configuration: (Addresses, MediaSettings)."""
    from appserver.settings import AsSettings
    from charging.settings import OcsSettings
    from hss_adapter.settings import ApiSettings
    from media.settings import MediaSettings
    from secondnum.demo.stories import Addresses
    from secondnum.sip.uri import SipURI

    as_ = config.section(AsSettings, "as")
    api = config.section(ApiSettings, "api")
    media = config.section(MediaSettings, "media")
    ocs = config.section(OcsSettings, "ocs")
    scscf = SipURI.parse(as_.scscf_uri)
    return Addresses(
        as_host=as_.sip_host, as_port=as_.sip_port, as_http=f"http://{as_.http_host}:{as_.http_port}",
        scscf_host=scscf.host, scscf_port=scscf.port or 5060,
        provisioning=f"http://{api.host}:{api.port}", provisioning_token=api.tokens[0],
        media_api=f"http://{media.api_host}:{media.api_port}",
        media_token=media.api_tokens[0] if media.api_tokens else "",
        ocs_api=f"http://{ocs.http_address}:{ocs.http_port}",
        ocs_token=ocs.api_tokens[0] if ocs.api_tokens else "",
        prompt_dir=media.prompt_dir, trusted_scscf=tuple(as_.trusted_scscf),
    ), media


def _cmd(args: argparse.Namespace) -> int:
    from secondnum.demo.stories import Demo
    from secondnum.service import Config

    try:
        if importlib.util.find_spec("pjsua2") is None:
            raise DemoError("pjsua2 is not installed: .venv/bin/pip install 'pjsua2-python>=2.12,<3' "
                            "(part of the project's [test] extra)")
        addr, media = addresses(Config.load(args.config))
        demo = Demo(addr, media, ring_timeout=args.ring_timeout, keep=args.keep, workdir=args.workdir)
        ok = asyncio.run(_main(demo))
    except DemoError as exc:
        print(f"\nsecondnum demo: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\nsecondnum demo: interrupted (the account's ring timeout was restored)", file=sys.stderr)
        return 130
    return 0 if ok else 1


async def _main(demo: Any) -> bool:
    """Run the demo; SIGTERM cancels it like Ctrl-C, so its clean-up (ring timeout, processes) still runs."""
    task = asyncio.current_task()
    assert task is not None
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return bool(await demo.run())


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="walk through the seed's call flows against the running service "
                                    "(start `secondnum up` first)")
    p.add_argument("--ring-timeout", type=int, default=4,
                   help="follow-me ring timeout used during story 1, restored after (default 4 s)")
    p.add_argument("--keep", action="store_true", help="keep the voicemail message the demo leaves")
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep SIPp logs and the phone's recordings in this folder")
    p.set_defaults(func=_cmd)
