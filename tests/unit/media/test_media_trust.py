"""``[media] trusted_sources``: addresses and networks (a cluster knows the AS pods only as a range)."""

from __future__ import annotations

import pytest

from media.trust import source_trusted


@pytest.mark.parametrize(("source", "trusted", "expected"), [
    ("127.0.0.1", ["127.0.0.1"], True),
    ("127.0.0.2", ["127.0.0.1"], False),
    ("10.244.3.17", ["10.244.0.0/16"], True),
    ("10.245.0.1", ["10.244.0.0/16"], False),
    ("10.244.3.17", ["192.0.2.1", "10.244.3.0/24"], True),
    ("2001:db8::5", ["2001:db8::/64"], True),
    ("2001:db8:1::5", ["2001:db8::/64"], False),
    ("10.0.0.1", ["2001:db8::/64"], False),
    ("10.0.0.1", [], True),
    ("10.0.0.1", ["not-an-address"], False),
    ("not-an-address", ["10.0.0.0/8"], False),
    ("10.1.2.3", ["10.1.2.3/32"], True),
])
def test_source_trusted(source: str, trusted: list[str], expected: bool) -> None:
    assert source_trusted(source, trusted) is expected
