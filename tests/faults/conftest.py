"""Fault tests: the seconds each took to serve again are listed after the run."""

from __future__ import annotations

import pytest

from tests.faults.recovery import RETURNED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = [
        f"{report.nodeid}: {value} s"
        for report in terminalreporter.getreports("passed")
        if report.when == "call"
        for name, value in report.user_properties
        if name == RETURNED
    ]
    if lines:
        terminalreporter.write_sep("-", "service returned after a fault")
        for line in lines:
            terminalreporter.write_line(line)
