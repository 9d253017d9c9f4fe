"""`readerai bench`: a small run of every scenario against a real server it starts.

These check that the harness measures what it says (every question counted once,
every broadcast delivered to every session, percentiles in order, memory read);
the figures themselves are the benchmark's to report, not these tests' to judge.
Each run is a subprocess, so nothing here runs on a test's event loop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from readerai.loadtest.prometheus import lag_between, parse_buckets, quantile
from tests.fixtures_server import ROOT

SESSIONS = 20
DURATION = 2.0


def bench(tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run `readerai bench ARGS` (20 sessions, 2 clients, 2 s); its JSON report."""
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("READERAI_")}
    result = subprocess.run(
        [
            *(sys.executable, "-m", "readerai", "bench", *args),
            *("--sessions", str(SESSIONS), "--clients", "2", "--duration", f"{DURATION:g}"),
            *("--ramp", "200", "--drain", "5"),
            *("--json", str(report), "--plots", str(tmp_path / "plots")),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "command: readerai bench" in result.stdout
    assert "machine:" in result.stdout
    scenario = args[0]
    for plot in (f"{scenario}-latency.png", f"{scenario}-rss.png"):
        assert (tmp_path / "plots" / plot).stat().st_size > 1000
    loaded: dict[str, Any] = json.loads(report.read_text())
    return loaded


def assert_sane(phase: dict[str, Any], sessions: int = SESSIONS) -> None:
    """All sessions open, no error, percentiles in order, server memory read."""
    assert phase["opened"] == sessions and phase["failed"] == 0
    assert phase["errors"] == {}
    for name, s in phase["summaries"].items():
        assert s["n"] == len(phase["samples"][name]) > 0, name
        assert 0 <= s["p50"] <= s["p90"] <= s["p99"] <= s["p999"] <= s["max"], name
    if sessions:
        assert phase["summaries"]["open"]["n"] == sessions
        assert phase["summaries"]["connect"]["n"] == sessions
    server = phase["server"]
    if server is not None:
        assert server["rss_ramped_bytes"] > 10 * 2**20
        assert server["rss_peak_bytes"] >= server["rss_ramped_bytes"]
        assert server["cpu_percent_run"] >= 0
        assert server["timeline"], "the server was sampled"


def readerai_phase(report: dict[str, Any]) -> dict[str, Any]:
    phase: dict[str, Any] = report["phases"][0]
    assert phase["target"] == "readerai"
    assert phase["loop_lag"]["probes"] > 0
    assert_sane(phase)
    return phase


def test_idle_holds_every_session_and_reads_server_memory(tmp_path: Path) -> None:
    phase = readerai_phase(bench(tmp_path, "idle"))
    assert phase["server"]["rss_per_session_bytes"] > 0
    assert phase["run_seconds"] >= DURATION


def test_progress_sends_at_the_rate_and_times_each_probe(tmp_path: Path) -> None:
    phase = readerai_phase(bench(tmp_path, "progress", "--rate", "40"))
    sent = phase["counts"]["progress_sent"]
    assert 40 * DURATION * 0.8 <= sent <= 40 * DURATION * 1.2
    # Each client process probes its every 4th message, counting from its first.
    assert sent / 4 <= phase["summaries"]["progress_rtt"]["n"] <= sent / 4 + 2


def test_questions_counts_each_ack_and_first_delta_once_with_baselines(tmp_path: Path) -> None:
    report = bench(tmp_path, "questions", "--rate", "20", "--baselines")
    phase = readerai_phase(report)
    asked = phase["counts"]["questions_sent"]
    assert asked >= 20 * DURATION * 0.8
    assert phase["counts"]["acknowledged"] == asked == phase["summaries"]["ack"]["n"]
    assert phase["summaries"]["first_delta"]["n"] == asked
    assert phase["counts"]["done:completed"] == asked
    assert phase["summaries"]["ack"]["p50"] < phase["summaries"]["first_delta"]["p50"]
    baselines = {p["target"]: p for p in report["phases"][1:]}
    assert set(baselines) == {"plain", "naive"}
    for baseline in baselines.values():
        assert_sane(baseline)
        assert baseline["summaries"]["ack"]["n"] == baseline["counts"]["questions_sent"]
    metrics = {(r["metric"], r["baseline"]) for r in report["ratios"]}
    assert ("ack p99 (s)", "plain") in metrics
    assert ("RSS per session (bytes)", "naive") in metrics


def test_stream_compares_readerai_with_reading_the_upstream(tmp_path: Path) -> None:
    report = bench(
        tmp_path, "stream", "--rate", "10", "--ttft-ms", "100", "--tokens-per-second", "200"
    )
    phase = readerai_phase(report)
    asked = phase["counts"]["questions_sent"]
    assert phase["summaries"]["first_delta"]["n"] == asked
    direct = report["phases"][1]
    assert direct["target"] == "upstream" and direct["scenario"] == "direct"
    assert_sane(direct, sessions=0)
    assert direct["counts"]["streams_completed"] == direct["summaries"]["first_token"]["n"]
    assert direct["summaries"]["first_token"]["p50"] >= 0.1
    assert direct["summaries"]["per_token"]["p50"] == pytest.approx(1 / 200, rel=0.5)
    stream = report["stream"]
    assert stream["readerai_first_token_p50"] >= 0.1
    assert stream["first_token_p50"] == pytest.approx(
        stream["readerai_first_token_p50"] - stream["direct_first_token_p50"]
    )


def test_bargein_times_every_cancel(tmp_path: Path) -> None:
    phase = readerai_phase(bench(tmp_path, "bargein", "--rate", "10"))
    asked = phase["counts"]["questions_sent"]
    cancelled = phase["counts"].get("done:cancelled", 0)
    assert cancelled == phase["summaries"]["cancel"]["n"]
    assert cancelled + phase["counts"].get("finished_before_cancel", 0) == asked
    assert cancelled >= asked * 0.8


def test_fanout_delivers_every_broadcast_to_every_student(tmp_path: Path) -> None:
    phase = readerai_phase(bench(tmp_path, "fanout", "--rate", "2"))
    broadcasts = phase["broadcasts"]
    assert len(broadcasts) == 2 * DURATION
    assert all(b["receivers"] == SESSIONS for b in broadcasts)
    assert phase["summaries"]["broadcast"]["n"] == SESSIONS * len(broadcasts)
    slowest = max(b["time_to_last"] for b in broadcasts)
    assert slowest == pytest.approx(phase["summaries"]["broadcast"]["max"])


def test_loop_lag_quantile_is_interpolated_within_its_bucket() -> None:
    text = "\n".join(
        [
            "# TYPE readerai_event_loop_lag_seconds histogram",
            'readerai_event_loop_lag_seconds_bucket{le="0.001"} 50.0',
            'readerai_event_loop_lag_seconds_bucket{le="0.01"} 90.0',
            'readerai_event_loop_lag_seconds_bucket{le="0.1"} 100.0',
            'readerai_event_loop_lag_seconds_bucket{le="+Inf"} 100.0',
            "readerai_event_loop_lag_seconds_count 100.0",
        ]
    )
    buckets = parse_buckets(text)
    assert buckets is not None
    assert quantile(buckets, 0.5) == pytest.approx(0.001)
    assert quantile(buckets, 0.99) == pytest.approx(0.01 + 0.09 * 0.9)
    before = {le: count / 2 for le, count in buckets.items()}
    lag = lag_between(before, buckets)
    assert lag is not None and lag.probes == 50 and lag.max_bucket == 0.1
