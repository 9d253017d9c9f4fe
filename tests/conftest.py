"""Suite-wide fixtures: blockbuster on every test, real servers on free ports, and a
last-resort stop for a test that hangs where pytest-timeout cannot reach."""

from __future__ import annotations

import faulthandler
import os
from collections.abc import Generator, Iterator

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

pytest_plugins = ["tests.fixtures_server"]

#: Longest one test may take, set-up and teardown included, before the whole run is
#: stopped with every thread's stack printed. pytest-timeout (120 s) fails a test
#: that is merely slow; past this, the test is stuck where its signal cannot end it
#: (a task that no cancellation ends keeps the event loop's shutdown waiting), and
#: waiting longer would only spend the run's time and say nothing.
HUNG_TEST_SECONDS = 600

#: Where a hang is reported: a copy of the real stderr, taken before capture starts.
_HANG_REPORT_FD = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_HANG_REPORT_FD] = os.dup(2)


def pytest_unconfigure(config: pytest.Config) -> None:
    faulthandler.cancel_dump_traceback_later()
    os.close(config.stash[_HANG_REPORT_FD])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    report_fd = item.config.stash[_HANG_REPORT_FD]
    faulthandler.dump_traceback_later(HUNG_TEST_SECONDS, exit=True, file=report_fd)
    try:
        return (yield)
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """A blocking call made in the event loop by our code or a test fails that test."""
    with blockbuster_ctx(["readerai", "tests"]) as bb:
        yield bb
