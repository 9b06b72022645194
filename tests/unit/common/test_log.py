"""Structured log lines: one line per event, parseable in both formats."""

from __future__ import annotations

import json
import logging

import pytest

from secondnum.log import JsonFormatter, KeyValueFormatter, get_logger


def _record(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    log = get_logger("t.log")
    with caplog.at_level(logging.INFO, logger="t.log"):
        log.info("invite_received", call_id="abc@h", src="127.0.0.1:5060", reason="no answer", n=3)
    return caplog.records[-1]


def test_key_value_line(caplog: pytest.LogCaptureFixture) -> None:
    line = KeyValueFormatter().format(_record(caplog))
    assert "\n" not in line
    assert "level=info logger=t.log event=invite_received call_id=abc@h src=127.0.0.1:5060" in line
    assert 'reason="no answer" n=3' in line


def test_json_line(caplog: pytest.LogCaptureFixture) -> None:
    doc = json.loads(JsonFormatter().format(_record(caplog)))
    assert doc["event"] == "invite_received" and doc["call_id"] == "abc@h" and doc["n"] == 3


def test_reserved_field_names_do_not_break_logging(caplog: pytest.LogCaptureFixture) -> None:
    log = get_logger("t.log")
    with caplog.at_level(logging.INFO, logger="t.log"):
        log.info("odd", name="x", msg="y", args="z")
    line = KeyValueFormatter().format(caplog.records[-1])
    assert "name_=x" in line and "msg_=y" in line


def test_exception_is_folded_into_one_line(caplog: pytest.LogCaptureFixture) -> None:
    log = get_logger("t.log")
    with caplog.at_level(logging.INFO, logger="t.log"):
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed", call_id="c1")
    line = KeyValueFormatter().format(caplog.records[-1])
    assert "\n" not in line and "ValueError: boom" in line
