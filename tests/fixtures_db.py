"""Database fixtures shared by test packages: a fresh PostgreSQL database per module.

The machine's PostgreSQL (127.0.0.1:5432, user `postgres`, trust auth) is used; each
test module gets a database of its own, named uniquely, so concurrent runs never
see each other's rows. Without a server the PostgreSQL tests are skipped with the
reason shown, except in CI (`CI=true`), where a missing server is a failure.

Import the fixtures into a package's conftest: `from tests.fixtures_db import postgres_url`.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from tests.needs import missing

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_USER = "postgres"
#: The maintenance database we connect to when creating and dropping test databases.
POSTGRES_ADMIN_DATABASE = "postgres"
CONNECT_TIMEOUT = 5.0


def postgres_store_url(database: str) -> str:
    """The SQLAlchemy URL ReaderAI uses for a database on the test server."""
    return f"postgresql+asyncpg://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"


async def _admin_connection() -> asyncpg.Connection:
    return await asyncpg.connect(
        host=POSTGRES_HOST,
        port=POSTGRES_PORT,
        user=POSTGRES_USER,
        # Both given so that asyncpg reads no ~/.pgpass and no ~/.postgresql/*
        # certificates: blocking file reads inside the event loop.
        password="",
        ssl=False,
        database=POSTGRES_ADMIN_DATABASE,
        timeout=CONNECT_TIMEOUT,
    )


@contextlib.asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """Create a uniquely named empty database; yield its URL; drop it afterwards.

    Skips the calling test (fails it when `CI=true`) if the server cannot be reached.
    """
    name = f"readerai_test_{uuid.uuid4().hex[:16]}"
    try:
        admin = await _admin_connection()
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        missing("PostgreSQL", f"{POSTGRES_HOST}:{POSTGRES_PORT}: {type(exc).__name__}: {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = postgres_store_url(name)
    try:
        yield url
    finally:
        await drop_database(url)


async def drop_database(url: str) -> None:
    """Drop the test database at `url`, ending any connection still open to it."""
    name = url.rsplit("/", 1)[1]
    admin = await _admin_connection()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def postgres_url() -> AsyncIterator[str]:
    """URL of an empty PostgreSQL database owned by the requesting test module."""
    async with fresh_postgres_database() as url:
        yield url


async def truncate_tables(url: str, tables: list[str]) -> None:
    """Empty `tables` of the PostgreSQL database at `url`, restarting their id sequences."""
    database = url.rsplit("/", 1)[1]
    connection = await asyncpg.connect(
        host=POSTGRES_HOST,
        port=POSTGRES_PORT,
        user=POSTGRES_USER,
        password="",
        ssl=False,
        database=database,
        timeout=CONNECT_TIMEOUT,
    )
    try:
        names = ", ".join(f'"{table}"' for table in tables)
        await connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()
