"""Settings: defaults, validation, and the README's table."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from readerai.settings import Settings, settings_table

ROOT = Path(__file__).resolve().parent.parent


def test_embedded_defaults_need_nothing_set_up() -> None:
    settings = Settings(_env_file=None)
    assert settings.database_url.startswith("sqlite+aiosqlite://")
    assert (settings.redis_url, settings.engine, settings.port) == ("memory://", "local", 8000)


def test_environment_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READERAI_HISTORY_LIMIT", "12")
    assert Settings(_env_file=None).history_limit == 12


def test_production_refuses_a_sqlite_database() -> None:
    with pytest.raises(ValidationError, match="PostgreSQL"):
        Settings(_env_file=None, environment="production")


def test_readme_lists_every_setting_with_its_default() -> None:
    assert settings_table() in (ROOT / "README.md").read_text()
