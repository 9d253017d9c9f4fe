"""Apply the Alembic migrations that live in this package, without an alembic.ini.

Also home to what the store and the migrations must agree on about a database URL:
its async driver, its SQLite directory, and the driver's connection arguments.

`upgrade_database` is for async code (the store's start-up): Alembic is synchronous
and reads its scripts from disk, so it runs in a worker thread, where
`migrations/env.py` drives an async engine on that thread's own event loop.
`upgrade_database_sync` is the same work for the CLI (`readerai db upgrade`); it must
not be called from a thread that is running an event loop.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

import anyio.to_thread
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL, make_url

from readerai.store import sqlite_driver

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

#: Async drivers the store supports, by backend; a URL without a driver gets this one.
ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}

#: Seconds the migration engine waits for a connection (PostgreSQL).
MIGRATION_CONNECT_TIMEOUT = 10.0

#: Alembic's `context` is a module-global proxy, so two migrations running at once in
#: one process would trample each other; across processes the database serialises
#: them (see `migrations/env.py`).
_MIGRATION_LOCK = threading.Lock()

#: Hosts for which TLS is off unless asked for: the connection never leaves the machine.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def async_url(url: str | URL) -> URL:
    """`url` with its async driver: `sqlite://` and `postgres[ql]://` get theirs.

    Raises `ValueError` for another backend or a driver the store does not use, so a
    misconfigured `READERAI_DATABASE_URL` fails at start-up with a clear message.
    """
    parsed = make_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    expected = ASYNC_DRIVERS.get(backend)
    if expected is None or driver not in ("", expected):
        supported = ", ".join(f"{name}+{drv}://" for name, drv in ASYNC_DRIVERS.items())
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}; use {supported}")
    return parsed.set(drivername=f"{backend}+{expected}")


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None (not SQLite, or in memory)."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def ensure_sqlite_directory(url: str | URL) -> None:
    """Create the directory of a SQLite database file (blocking: call it off the loop)."""
    path = sqlite_file(make_url(url))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def connect_args(url: URL, timeout: float) -> dict[str, Any]:
    """Driver arguments for an engine on `url` (blocking: call it off the event loop)."""
    if url.get_backend_name() == "postgresql":
        return _asyncpg_connect_args(url, timeout)
    if url.get_backend_name() == "sqlite":
        # Connections in WAL mode that can be invalidated during a cancellation without
        # leaving a task behind (see `readerai.store.sqlite_driver`). `timeout` is
        # SQLite's busy timeout, in force from the first statement: a connection
        # opened while another writes (a sibling node migrating, say) waits for it.
        return {"async_creator_fn": sqlite_driver.connect, "timeout": timeout}
    return {}


def _asyncpg_connect_args(url: URL, timeout: float) -> dict[str, Any]:
    """asyncpg arguments settled once, in a worker thread (blocking: reads files).

    Left to itself asyncpg looks for ~/.pgpass when the URL has no password, and for
    client certificates under ~/.postgresql when TLS is negotiable, on every new
    connection and inside the event loop. A password is looked up here instead, and
    TLS is off by default for a server on this machine, where it protects nothing.
    Anything the URL or the PG* environment says explicitly is left alone.
    """
    args: dict[str, Any] = {"timeout": timeout}
    if url.password is None and "PGPASSWORD" not in os.environ:
        args["password"] = _pgpass_password(url) or ""
    explicit_tls = bool({"ssl", "sslmode"} & set(url.query)) or "PGSSLMODE" in os.environ
    if not explicit_tls and (url.host or "localhost") in LOOPBACK_HOSTS:
        args["ssl"] = False
    return args


def _pgpass_password(url: URL) -> str | None:
    """The password the libpq password file ($PGPASSFILE or ~/.pgpass) holds for `url`."""
    try:
        path = Path(os.environ.get("PGPASSFILE") or Path.home() / ".pgpass")
        if path.stat().st_mode & 0o077:
            return None  # libpq ignores a file others can read; so do we
        lines = path.read_text().splitlines()
    except (OSError, RuntimeError):  # no file, unreadable, or no home directory
        return None
    user = url.username or ""
    wanted = (url.host or "localhost", str(url.port or 5432), url.database or user, user)
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        fields = [
            field.replace("\\:", ":").replace("\\\\", "\\")
            for field in re.split(r"(?<!\\):", line, maxsplit=4)
        ]
        if len(fields) == 5 and all(f in ("*", w) for f, w in zip(fields[:4], wanted, strict=True)):
            return fields[4]
    return None


def alembic_config(url: str | URL) -> Config:
    """An Alembic configuration for this package's migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    rendered = async_url(url).render_as_string(hide_password=False)
    # The option parser interpolates '%', which percent-encoded passwords contain.
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    # Settled here, in the caller's thread, not in env.py's event loop.
    config.attributes["connect_args"] = connect_args(async_url(url), MIGRATION_CONNECT_TIMEOUT)
    return config


def upgrade_database_sync(url: str) -> None:
    """Bring the database at `url` to the newest schema (blocking; for the CLI)."""
    ensure_sqlite_directory(url)
    config = alembic_config(url)
    with _MIGRATION_LOCK:
        command.upgrade(config, "head")


async def upgrade_database(url: str) -> None:
    """Bring the database at `url` to the newest schema without blocking the loop.

    The worker thread is not abandoned on cancellation: a migration stopped halfway
    is worse than a start-up that takes a moment longer to cancel.
    """
    await anyio.to_thread.run_sync(upgrade_database_sync, url)
