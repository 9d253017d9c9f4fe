"""`readerai bench readaloud`: a tiny run (one reader, the first words of the passage)
against a real server it starts, with real Whisper and Piper.

It checks that the figures are measured and sane (a lag per word said, in order,
CPU and loop lag read, the reading scored); their values are the benchmark's to
report. The run is a subprocess, so nothing here runs on a test's event loop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures_server import ROOT

pytestmark = pytest.mark.slow

WORDS = 10


def test_a_tiny_read_aloud_bench_reports_sane_figures(tmp_path: Path) -> None:
    report_path = tmp_path / "readaloud.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("READERAI_")}
    result = subprocess.run(
        [
            *(sys.executable, "-m", "readerai", "bench", "readaloud", "--max-readers", "1"),
            *("--words", str(WORDS), "--settle", "3", "--result-wait", "8"),
            *("--json", str(report_path)),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "command: readerai bench readaloud" in result.stdout
    assert "machine:" in result.stdout
    report = json.loads(report_path.read_text())
    assert report["machine"]["cores"] >= 1
    (round_,) = report["rounds"]
    assert round_["readers"] == 1
    (reading,) = round_["readings"]
    said = [end for end in reading["word_ends"] if end is not None]
    assert len(said) == WORDS  # the clean script, cut: every word said, timed
    assert said == sorted(said) and 0.5 < said[0] < said[-1] < 10
    lag = round_["lag"]
    assert lag["n"] + round_["words_never_reached"] == round_["words_said"] == WORDS
    assert lag["p50"] <= lag["p95"] <= lag["max"] < 10
    progress = [index for _, index in reading["progress"]]
    assert progress == sorted(progress) and progress[-1] >= WORDS - 3
    assert round_["server_cpu_seconds"] > 0 and round_["cpu_percent_per_reader"] > 0
    assert round_["loop_lag_probes"] > 0 and round_["loop_lag_p99_ms"] is not None
    assert round_["errors"] == []
    # Scored by the server (READING_RESULT): a clean reading has no miscue.
    assert reading["miscues_reported"] == [] and reading["miscues_made"] == []
    assert reading["wcpm_reported"] > 0
