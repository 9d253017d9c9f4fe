"""The coverage-guided fuzz targets in `fuzz/` run clean for a bounded time.

The suite gives each target `FUZZ_SECONDS`; the long runs are in docs/reliability.md.
A crash fails the test with libFuzzer's report (and the input that caused it).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.needs import missing

ROOT = Path(__file__).resolve().parents[2]
FUZZ_SECONDS = 10
#: Each target, with its options beyond the common ones.
TARGETS = {"frames": ["-dict=fuzz/frames.dict"], "audio_header": []}
#: Fewer runs than this in `FUZZ_SECONDS` means the target barely ran.
MIN_RUNS = 10_000


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz_target_finds_no_crash(target: str, tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        missing("atheris", "pip install atheris (a dev dependency)")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    command = [
        sys.executable,
        f"fuzz/{target}.py",
        f"-max_total_time={FUZZ_SECONDS}",
        "-timeout=5",  # an input that takes longer is a hang: reported as a crash
        f"-artifact_prefix={tmp_path}/",
        *TARGETS[target],
        str(corpus),  # new inputs go to the first directory, not to the seeds
        f"fuzz/seeds/{target}",
    ]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=FUZZ_SECONDS + 60
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert not list(tmp_path.glob("crash-*")), done.stderr[-4000:]
    runs = re.search(r"^Done (\d+) runs", done.stderr, re.M)
    assert runs is not None and int(runs[1]) >= MIN_RUNS, done.stderr[-2000:]
