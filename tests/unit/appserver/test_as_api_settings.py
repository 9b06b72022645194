"""CDR query validation and [as] settings validation."""

from __future__ import annotations

import datetime as dt

import pytest

from appserver.api import query_filters
from appserver.settings import AsSettings
from secondnum.config import ConfigError, load_section
from secondnum.http import ProblemError


@pytest.mark.parametrize(
    ("query", "filters", "limit", "offset"),
    [
        ({}, {}, 50, 0),
        ({"did": "42027777100", "limit": "10", "offset": "20"}, {"did": "42027777100"}, 10, 20),
        (
            {"disposition": "voicemail", "flow": "forward"},
            {"disposition": "voicemail", "flow": "forward"},
            50,
            0,
        ),
        (
            {"since": "2026-11-25T00:00:00Z"},
            {"setup_at__gte": dt.datetime(2026, 11, 25, tzinfo=dt.UTC)},
            50,
            0,
        ),
        ({"until": "2026-11-25T00:00:00"}, {"setup_at__lt": dt.datetime(2026, 11, 25, tzinfo=dt.UTC)}, 50, 0),
    ],
)
def test_query_filters(query: dict[str, str], filters: dict[str, object], limit: int, offset: int) -> None:
    assert query_filters(query) == (filters, limit, offset)


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "-1"},
        {"offset": "x"},
        {"since": "yesterday"},
        {"disposition": "bogus"},
        {"flow": "$where"},
    ],
)
def test_bad_queries_are_400(query: dict[str, str]) -> None:
    with pytest.raises(ProblemError) as info:
        query_filters(query)
    assert info.value.status == 400


def test_settings_defaults_and_env() -> None:
    s = load_section(
        AsSettings,
        {},
        "as",
        {"SECONDNUM_AS__TRUSTED_SCSCF": "10.0.0.0/8, 127.0.0.1", "SECONDNUM_AS__MAX_CALLS": "10"},
    )
    assert s.trusted_scscf == ["10.0.0.0/8", "127.0.0.1"] and s.max_calls == 10
    assert AsSettings().media_uri == "sip:127.0.0.1:5070" and AsSettings().voicemail_charging == "free"


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"trusted_scscf": ["scscf.example"]}, "as"),
        ({"scscf_uri": "tel:+1"}, "as"),
        ({"media_uri": "not a uri"}, "as"),
        ({"follow_me_timeout": 0}, "as"),
        ({"voicemail_charging": "sometimes"}, "as.voicemail_charging"),
        ({"bogus": 1}, "as.bogus"),
    ],
)
def test_bad_settings_name_the_key(values: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_section(AsSettings, {"as": values}, "as", {})
    assert info.value.key == key
