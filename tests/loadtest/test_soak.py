"""`readerai bench soak`: a few seconds of the soak against a real server it starts,
and its verdict on samples made up to pass or fail.

The run checks that the soak measures what it says (every stage sampled, the load's
churn done, the figures and the verdict computed from the samples) and that the
node holds no connection and no session once the clients have left; whether RSS
returns to its baseline is the ten-minute run's to say, not a few seconds'.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from readerai.loadtest.prometheus import parse_gauges
from readerai.loadtest.soakresult import GAUGES, SoakSample, judge
from tests.fixtures_server import ROOT

SESSIONS = 20
MiB = 2**20


def soak(tmp_path: Path) -> tuple[int, str, dict[str, Any]]:
    """`readerai bench soak` for about 8 s of load and settling; status, output, report."""
    report = tmp_path / "soak.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("READERAI_")}
    result = subprocess.run(
        [
            *(sys.executable, "-m", "readerai", "bench", "soak"),
            *("--sessions", str(SESSIONS), "--clients", "2", "--ramp", "200", "--drain", "5"),
            *("--warmup", "1.5", "--duration", "3", "--settle", "1.5", "--sample-every", "0.3"),
            *("--rate", "4", "--progress-rate", "10", "--reconnect-rate", "2"),
            *("--broadcast-every", "1"),
            *("--json", str(report), "--plots", str(tmp_path / "plots")),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert report.exists(), result.stdout + result.stderr
    loaded: dict[str, Any] = json.loads(report.read_text())
    return result.returncode, result.stdout, loaded


def test_soak_samples_every_stage_and_judges_the_return_to_baseline(tmp_path: Path) -> None:
    status, output, report = soak(tmp_path)
    result = report["soak"]
    stages = [s["stage"] for s in result["samples"]]
    for stage in ("warmup", "baseline", "ramping", "running", "after"):
        assert stage in stages, stage
    times = [s["t"] for s in result["samples"]]
    assert times == sorted(times)
    for sample in result["samples"]:
        assert sample["rss_bytes"] > 10 * MiB
        assert all(sample[field] is not None for field in GAUGES.values()), sample

    baseline, peak, after = result["baseline"], result["peak"], result["after"]
    assert baseline["samples"] >= 2 and after["samples"] >= 2
    assert peak["connections"] >= SESSIONS and peak["live_sessions"] >= SESSIONS
    assert peak["event_loop_tasks"] > baseline["event_loop_tasks"] + SESSIONS
    # Once the clients have left, the node holds no connection and no session.
    assert after["connections"] == 0 and after["live_sessions"] == 0
    assert result["rss_slope_bytes_per_second"] is not None

    checks = {c["figure"]: c for c in result["checks"]}
    assert set(checks) == {"rss_bytes", "rss_slope", *GAUGES.values()}
    assert checks["rss_bytes"]["limit"] == baseline["rss_bytes"] + 8 * MiB
    assert checks["rss_bytes"]["measured"] == after["rss_bytes"]
    assert checks["event_loop_tasks"]["limit"] == baseline["event_loop_tasks"] + 2
    for check in checks.values():
        assert check["passed"] == (check["measured"] <= check["limit"])
    assert result["passed"] == all(c["passed"] for c in checks.values())
    verdict = "PASS" if result["passed"] else "FAIL"
    assert f"{verdict}: " in output

    assert result["warmup_errors"] == {}
    phase = report["phases"][0]
    assert phase["scenario"] == "soak" and phase["opened"] == SESSIONS
    assert phase["errors"] == {}
    counts = phase["counts"]
    assert counts["came_back"] > 0 and counts["came_back_new"] > 0
    assert counts["left"] == counts["came_back"] + counts["came_back_new"]
    assert counts["acknowledged"] == counts["questions_sent"] > 0
    assert counts["progress_sent"] > 0 and phase["summaries"]["broadcast"]["n"] > 0
    assert status == (0 if result["passed"] else 1)
    assert (tmp_path / "plots" / "soak-timeline.png").stat().st_size > 1000


def samples(rss_after: float, *, creep: float = 0.0, tasks_after: float = 3) -> list[SoakSample]:
    """A made-up soak: 10 s of baseline, 20 s of load (RSS up by `creep` bytes/s), 10 s after."""

    def sample(t: float, stage: str, rss: float, tasks: float, sessions: float) -> SoakSample:
        return SoakSample(
            t=t,
            stage=stage,
            rss_bytes=int(rss),
            cpu_percent=1.0,
            background_tasks=tasks,
            event_loop_tasks=tasks + 2 * sessions,
            connections=sessions,
            live_sessions=sessions,
        )

    base = 400 * MiB
    made = [sample(t, "baseline", base, 3, 0) for t in range(10)]
    made += [sample(10 + t, "running", base + 20 * MiB + creep * t, 9, 500) for t in range(20)]
    made += [sample(30 + t, "after", base + rss_after, tasks_after, 0) for t in range(10)]
    return made


def test_a_server_back_within_the_margins_passes() -> None:
    result = judge(samples(3 * MiB), rss_margin_bytes=4 * MiB, task_margin=2, loaded_seconds=20)
    assert result.passed
    assert result.peak.rss_bytes == 420 * MiB and result.peak.connections == 500
    assert result.rss_slope_bytes_per_second == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("made", "failing"),
    [
        (samples(5 * MiB), ["rss_bytes"]),
        (samples(0, creep=300 * 1024), ["rss_slope"]),
        (samples(0, tasks_after=6), ["background_tasks", "event_loop_tasks"]),
    ],
    ids=["rss-above-margin", "rss-creeping-under-load", "tasks-left-behind"],
)
def test_a_server_that_keeps_memory_or_tasks_fails(
    made: list[SoakSample], failing: list[str]
) -> None:
    result = judge(made, rss_margin_bytes=4 * MiB, task_margin=2, loaded_seconds=20)
    assert not result.passed
    assert [c.figure for c in result.checks if not c.passed] == failing


def test_gauges_are_read_from_the_metrics_page_and_summed_over_workers() -> None:
    text = "\n".join(
        [
            "# HELP readerai_connections Open WebSocket connections.",
            "# TYPE readerai_connections gauge",
            "readerai_connections 12.0",
            'readerai_live_sessions{pid="101"} 3.0',
            'readerai_live_sessions{pid="102"} 4.0',
            "readerai_background_tasks_created 1.0",
        ]
    )
    assert parse_gauges(text, tuple(GAUGES)) == {
        "readerai_connections": 12.0,
        "readerai_live_sessions": 7.0,
    }
