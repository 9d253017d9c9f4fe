"""The `readerai` command line: settings files and `db upgrade`."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from readerai.cli import load_settings
from tests.fixtures_server import ROOT


def test_settings_file_is_read_and_options_win_over_it(tmp_path: Path) -> None:
    env_file = tmp_path / "node.env"
    env_file.write_text(
        "READERAI_PORT=9100\nREADERAI_ENGINE=extractive\nREADERAI_HISTORY_LIMIT=7\n"
    )
    settings = load_settings(env_file, port=9200)
    assert (settings.port, settings.engine, settings.history_limit) == (9200, "extractive", 7)


def test_missing_settings_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(typer.BadParameter, match="no settings file"):
        load_settings(tmp_path / "absent.env")


def test_db_upgrade_creates_the_schema_and_is_idempotent(tmp_path: Path) -> None:
    database = tmp_path / "fresh" / "readerai.db"
    env = {"READERAI_DATABASE_URL": f"sqlite+aiosqlite:///{database}", "PATH": "/usr/bin:/bin"}
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "readerai", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "up to date" in result.stdout
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"sessions", "messages", "reading_progress", "passages"} <= tables


def test_several_workers_on_the_in_process_bus_are_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    env = {
        "READERAI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/readerai.db",
        "READERAI_ENGINE": "extractive",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "readerai", "serve", "--workers", "2", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "READERAI_REDIS_URL" in result.stderr and "split" in result.stderr
    assert not (tmp_path / "readerai.db").exists(), "it refused before touching anything"


@pytest.mark.slow
def test_passages_import_prepares_each_file_and_reports_the_failures(tmp_path: Path) -> None:
    folder = tmp_path / "passages"
    folder.mkdir()
    (folder / "fox.md").write_text("# The *Quick* Fox\n\nA fox ran. It was **fast**.\n")
    (folder / "empty.txt").write_text("")
    (folder / "notes.csv").write_text("not,a,passage\n")
    database = tmp_path / "readerai.db"
    env = {
        "READERAI_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "READERAI_LOG_FORMAT": "json",
        "HF_HUB_OFFLINE": "1",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "readerai", "passages", "import", str(folder), "--level", "Grade 1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "imported 1 of 2 passages" in result.stdout
    assert "failed: empty.txt: no sentences in the text" in result.stdout
    with sqlite3.connect(database) as db:
        passages = db.execute("SELECT id, title, level, status FROM passages").fetchall()
        audio = db.execute("SELECT count(*) FROM passage_audio WHERE passage_id = 'the-quick-fox'")
        narrated = audio.fetchone()[0]
    assert sorted(passages) == [
        ("empty", "empty", "Grade 1", "failed"),
        ("the-quick-fox", "The Quick Fox", "Grade 1", "ready"),
    ]
    assert narrated == 2
