"""Browser fixtures: one Playwright and one Chromium per test module (cheap tests).

Blockbuster is off in this folder's test process, and on where it matters: the
suite-wide fixture fails a test that blocks an event loop of ours, but here the only
loop in the test process is Playwright's own (its sync API keeps it marked as running
in this thread between calls), so every plain sync call of a test (an HTTP request, a
server restart, a file write) would count as blocking it. Our async code runs in the
server processes, which run under blockbuster (`tests.serve_blockbuster`) and are
checked with `assert_never_blocked` when they stop.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from tests.needs import missing
from tests.web.browsers import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[None]:
    """Overrides the suite's blockbuster for sync browser tests (see the module docstring)."""
    yield


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium; skipped without it, except on CI, where it must be there."""
    if not CHROMIUM.exists():
        missing("Chromium", f"{CHROMIUM} is missing: apt-get install -y chromium")
    return CHROMIUM


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API: it runs no event loop in the test thread between calls."""
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright, chromium: Path) -> Iterator[Browser]:
    """A headless Chromium shared by a module's tests; each test opens its own context."""
    launched = playwright.chromium.launch(
        executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
    )
    yield launched
    launched.close()
