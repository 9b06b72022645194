"""Child process: the built-in OCS (MongoDB ledger) on its own, so that a test can SIGSTOP or SIGKILL it.

argv: MONGO_URI DATABASE ORIGIN_HOST. Prints ``READY <diameter port>`` once listening.
"""

from __future__ import annotations

import asyncio
import sys

from charging.ocs import OcsServer
from charging.settings import OcsSettings
from secondnum.mongo import connect


async def main(uri: str, db: str, host: str) -> None:
    connect(uri, database=db)
    ocs = OcsServer(OcsSettings(origin_host=host, listen_port=0, http_port=0), http=False)
    await ocs.start()
    print("READY", ocs.diameter_port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
