"""What a test needs from the machine: skipped with the reason when it is missing,
except in CI (`CI=true`), where a missing service or program fails the run."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(what: str, reason: str) -> NoReturn:
    """`what` (a service or program) cannot be used here, for `reason`."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required in CI: {reason}", pytrace=False)
    pytest.skip(f"{what} not available: {reason}")
