"""Last-resort disk spool for messages the database would not take (README "Voicemail deposit").

A caller who hung up must never lose a message: when storing still fails after the retries, the µ-law
audio and its envelope are written here and moved into the store at the next start.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path

from media.store.voicemail import VoicemailStore


class MessageSpool:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def put(self, mailbox: str, caller: str, audio: bytes, received_at: dt.datetime, call_id: str) -> Path:
        """Write one message (audio first, envelope last: an envelope always has its audio)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        base = self.directory / f"{received_at:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"
        base.with_suffix(".ul").write_bytes(audio)
        meta = {"mailbox": mailbox, "caller": caller, "received_at": received_at.isoformat(),
                "call_id": call_id}
        base.with_suffix(".json").write_text(json.dumps(meta))
        return base

    def import_into(self, store: VoicemailStore) -> int:
        """Move every spooled message into ``store`` (blocking); returns how many were imported."""
        if not self.directory.exists():
            return 0
        count = 0
        for meta_path in sorted(self.directory.glob("*.json")):
            meta = json.loads(meta_path.read_text())
            audio_path = meta_path.with_suffix(".ul")
            store.add_message(meta["mailbox"], meta["caller"], audio_path.read_bytes(),
                              dt.datetime.fromisoformat(meta["received_at"]), call_id=meta["call_id"],
                              account_limit=1_000_000)  # already accepted once: never refuse it now
            audio_path.unlink()
            meta_path.unlink()
            count += 1
        return count
