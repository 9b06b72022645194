"""Fixtures: the fd_test_ocs extension built at test time, and freeDiameterd processes running it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fd_ocs import FreeDiameterOcs, OcsFactory, OcsOptions, build_extension, missing_prerequisites


@pytest.fixture(scope="session")
def fd_extension() -> Path:
    """fd_test_ocs.fdx compiled with gcc against libfreediameter-dev (cached by source + header hash)."""
    missing = missing_prerequisites()
    if missing:
        pytest.skip(
            "freeDiameter interop needs: "
            + ", ".join(missing)
            + " (apt-get install freediameterd freediameter-extensions libfreediameter-dev gcc openssl)"
        )
    return build_extension()


@pytest.fixture
def fd_ocs_factory(tmp_path: Path, fd_extension: Path) -> Iterator[OcsFactory]:
    """Starts freeDiameterd OCS instances with given `OcsOptions` fields; all stopped at teardown."""
    started: list[FreeDiameterOcs] = []

    def start(**options: object) -> FreeDiameterOcs:
        workdir = tmp_path / f"fd{len(started)}"
        workdir.mkdir()
        ocs = FreeDiameterOcs(workdir, fd_extension, OcsOptions(**options))  # type: ignore[arg-type]
        started.append(ocs)
        ocs.start()
        return ocs

    yield start
    for ocs in started:
        ocs.stop()
    # Whatever a test asserted, freeDiameter must not have complained about our messages.
    complaints = [line for ocs in started if not ocs.errors_expected for line in ocs.error_lines()]
    assert not complaints, "freeDiameterd logged errors:\n" + "\n".join(complaints[:40])


@pytest.fixture
def fd_ocs(fd_ocs_factory: OcsFactory) -> FreeDiameterOcs:
    """One freeDiameterd OCS with the default options (grant 60 s, refuses 42000000402 with 4012)."""
    return fd_ocs_factory()
