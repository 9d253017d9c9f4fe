"""Suite-wide fixtures: blockbuster on every test, and real servers on free ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

pytest_plugins = ["tests.fixtures_server"]


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """A blocking call made in the event loop by our code or a test fails that test."""
    with blockbuster_ctx(["readerai", "tests"]) as bb:
        yield bb
