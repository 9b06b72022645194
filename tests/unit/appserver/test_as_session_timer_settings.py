"""``[as] session_expires`` / ``min_se`` (RFC 4028 §4, §5): defaults, environment, refusals."""

from __future__ import annotations

import pytest

from appserver.settings import AsSettings
from secondnum.config import ConfigError, load_section
from secondnum.sip.session_timer import TimerConfig


def test_defaults_and_env() -> None:
    assert AsSettings().timer_config == TimerConfig(session_expires=1800, min_se=90)
    s = load_section(AsSettings, {"as": {"min_se": 2}}, "as", {"SECONDNUM_AS__SESSION_EXPIRES": "0"})
    assert s.timer_config == TimerConfig(session_expires=0, min_se=2)


@pytest.mark.parametrize("values", [
    {"min_se": 0},
    {"session_expires": -1},
    {"session_expires": 60, "min_se": 90},  # an interval below our own minimum (§5)
    {"min_se": "soon"},
])
def test_bad_timer_settings_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        load_section(AsSettings, {"as": values}, "as", {})
