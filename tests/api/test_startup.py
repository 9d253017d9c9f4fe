"""Fail-fast start-up: a service that cannot start stops the node with one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures_server import ROOT, ServerProcess, free_port


def test_unreachable_database_makes_serve_exit_nonzero_naming_the_store(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there
    server = ServerProcess(
        tmp_path,
        env={
            "READERAI_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{dead}/readerai",
            "READERAI_DATABASE_CONNECT_TIMEOUT": "2",
        },
    )
    result = subprocess.run(
        [sys.executable, "-m", "readerai", "serve", "--port", str(free_port())],
        cwd=ROOT,
        env=server.full_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    failed = [line for line in result.stderr.splitlines() if "startup.failed" in line]
    assert len(failed) == 1, result.stderr
    assert '"service": "store"' in failed[0] and str(dead) in failed[0]


def test_invalid_setting_is_refused_with_a_message(tmp_path: Path) -> None:
    env = ServerProcess(tmp_path).full_env() | {"READERAI_ENGINE_CONCURRENCY": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "readerai", "serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "engine_concurrency" in result.stderr
