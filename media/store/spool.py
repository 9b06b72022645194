"""Disk spool for messages the database would not take (README "Voicemail deposit").

A caller who left a message must never lose it: when MongoDB is unreachable (at call start, or still after
the store retries), the µ-law audio and its envelope are written here and moved into the store as soon as
the database answers again (:meth:`media.sipserver.MediaServer.drain_spool`, and at every start).

Each file is written to a temporary name, fsynced and renamed, audio first and envelope last, so an envelope
always has its complete audio; a crash leaves at worst an audio file without envelope (ignored). The import
is idempotent (the store de-duplicates on the call's Call-ID), so a crash between the insert and the unlink
does not duplicate a message. Unreadable envelopes are renamed ``*.bad`` and logged, never retried forever.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from media.store.voicemail import VoicemailStore
from secondnum.log import get_logger

log = get_logger(__name__)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class MessageSpool:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def put(self, mailbox: str, caller: str, audio: bytes, received_at: dt.datetime, call_id: str, *,
            rtp: Mapping[str, Any] | None = None) -> Path:
        """Write one message durably (see module doc); returns the path without suffix."""
        self.directory.mkdir(parents=True, exist_ok=True)
        base = self.directory / f"{received_at:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"
        _write_atomic(base.with_suffix(".ul"), audio)
        meta = {"mailbox": mailbox, "caller": caller, "received_at": received_at.isoformat(),
                "call_id": call_id, "duration_ms": len(audio) // 8, "rtp": dict(rtp or {})}
        _write_atomic(base.with_suffix(".json"), json.dumps(meta).encode())
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the renames themselves
        finally:
            os.close(dir_fd)
        return base

    def pending(self) -> int:
        """Messages waiting in the spool."""
        if not self.directory.exists():
            return 0
        return sum(1 for _ in self.directory.glob("*.json"))

    def import_into(self, store: VoicemailStore) -> int:
        """Move every spooled message into ``store`` (blocking); returns how many were imported.

        A database error stops the import and propagates (the rest stays spooled for the next attempt).
        """
        if not self.directory.exists():
            return 0
        count = 0
        for meta_path in sorted(self.directory.glob("*.json")):
            audio_path = meta_path.with_suffix(".ul")
            try:
                meta = json.loads(meta_path.read_text())
                mailbox, caller, call_id = str(meta["mailbox"]), str(meta["caller"]), str(meta["call_id"])
                received_at = dt.datetime.fromisoformat(meta["received_at"])
                rtp = meta.get("rtp") or {}
                audio = audio_path.read_bytes()
                if not isinstance(rtp, dict):
                    raise TypeError("rtp must be an object")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                meta_path.rename(meta_path.with_suffix(".bad"))
                log.error("spooled_message_unreadable", path=str(meta_path), error=str(exc))
                continue
            # Already accepted from the caller once: never refused now, whatever the mailbox holds.
            info = store.add_message(mailbox, caller, audio, received_at, call_id=call_id, rtp=rtp,
                                     force=True)
            meta_path.unlink()  # envelope first: an orphan audio file is harmless, an orphan envelope is not
            audio_path.unlink()
            count += 1
            log.info("spooled_message_imported", mailbox=mailbox, id=info.id, caller=caller,
                     duration_ms=info.duration_ms, call_id=call_id, received_at=meta["received_at"])
        return count
