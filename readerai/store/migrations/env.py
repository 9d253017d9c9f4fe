"""Alembic environment for ReaderAI's store, configured in code by `readerai.store.migrate`.

Runs in a thread of its own (a worker thread when called from the server, the main
thread from the CLI), so `asyncio.run` gives it a private event loop for the async
engine; the server's loop is never blocked by a migration.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from readerai.store.models import Base

#: Key of the PostgreSQL advisory lock that serialises migrations across nodes that
#: start at the same moment ("READERAI" in ASCII, as a bigint).
POSTGRES_MIGRATION_LOCK = 0x5245414445524149

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set in the Alembic configuration")
    return url


def run_migrations_offline() -> None:
    """Emit the migration SQL as a script (`alembic upgrade --sql`)."""
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_migrations(connection: Connection) -> None:
    is_sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=is_sqlite,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Held until this transaction ends (PostgreSQL DDL is transactional), so a
            # second node starting now waits, then finds the schema already at head.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_MIGRATION_LOCK}
            )
        context.run_migrations()


async def _run_migrations_async(engine: AsyncEngine) -> None:
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    """Apply the migrations to the configured database through an async engine."""
    # Load every revision script now, before an event loop runs in this thread:
    # reading files inside that loop would be blocking I/O on it.
    context.get_head_revisions()
    # Made before the loop starts too: SQLAlchemy resolves SQLite paths on disk. The
    # driver's arguments were settled by `readerai.store.migrate` for the same reason.
    engine = create_async_engine(
        _database_url(),
        poolclass=pool.NullPool,
        connect_args=config.attributes.get("connect_args", {}),
    )
    asyncio.run(_run_migrations_async(engine))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
