"""`SqlStoreCore`: what every part of `SqlStore` shares, and the checks they all make.

`SqlStore` is assembled from one class per concept (`PassageStore`, `ClassroomStore`,
`LoginCodeStore`, `JobStore`, and its own sessions and messages), each a subclass of
this one: they share one `Database` and one write-retry policy, so every method
keeps the invariants stated in `readerai.store.sql`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Insert, Select, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute

from readerai.errors import Conflict
from readerai.store.database import Database
from readerai.store.migrate import async_url
from readerai.store.models import Base
from readerai.store.retry import WriteRetry
from readerai.store.slugs import numbered_slugs
from readerai.store.sqlite_statements import SqliteStatement, fetch_all

#: Times a slug id is retried when another writer takes it between look-up and insert.
SLUG_ATTEMPTS = 5
#: The policy of a store that never connected: retrying could not help.
_NO_RETRY = WriteRetry(budget=0.0)

T = TypeVar("T")


class SqlStoreCore:
    """The database and the write-retry policy of a `SqlStore` (see there)."""

    def __init__(
        self, url: str, *, connect_timeout: float = 5.0, write_retry_seconds: float = 10.0
    ) -> None:
        if write_retry_seconds < 0:
            raise ValueError("write_retry_seconds must not be negative")
        self._db = Database(async_url(url), connect_timeout=connect_timeout)
        #: The URL as logs and errors show it: the password is never printed.
        self.display_url = self._db.display_url
        self._write_retry = WriteRetry(budget=write_retry_seconds)
        self._started = False
        #: `SqliteStatement`s by statement (statements hash by identity), compiled on
        #: first use.
        self._sqlite_statements: dict[Select[Any] | Insert, SqliteStatement] = {}

    @property
    def write_retry(self) -> WriteRetry:
        """How long writes keep trying through an outage (not at all before `start`)."""
        return self._write_retry if self._started else _NO_RETRY

    async def _select_on_sqlite(
        self, *reads: tuple[Select[Any], Mapping[str, Any]]
    ) -> list[list[dict[str, Any]]]:
        """Each `(statement, parameters)` read on SQLite in one trip to the connection's
        thread and one snapshot (`readerai.store.sqlite_statements`); per read, its rows
        as dicts by column name, converted as the ORM would. Statements built once only."""
        compiled = [self._on_sqlite(statement, values) for statement, values in reads]
        fetched = await self._db.in_sqlite_thread(fetch_all(*compiled), write=False)
        return [one.rows(rows) for (one, _), rows in zip(compiled, fetched, strict=True)]

    async def _insert_on_sqlite(self, statement: Insert, values: Mapping[str, Any]) -> None:
        """`statement` with `values`, written on SQLite in one trip to the connection's
        thread; a constraint it breaks is SQLAlchemy's `IntegrityError`."""
        await self._db.in_sqlite_thread(fetch_all(self._on_sqlite(statement, values)))

    def _on_sqlite(
        self, statement: Select[Any] | Insert, values: Mapping[str, Any]
    ) -> tuple[SqliteStatement, tuple[Any, ...]]:
        compiled = self._sqlite_statements.get(statement)
        if compiled is None:
            compiled = SqliteStatement.of(statement, self._db.dialect)
            self._sqlite_statements[statement] = compiled
        return compiled, compiled.params(values)

    async def _insert_with_slug(
        self,
        base: str,
        taken_in: InstrumentedAttribute[str],
        insert: Callable[[str], Awaitable[T]],
    ) -> T:
        """`insert(id)` with the first of `base`, `base-2`, … free in column `taken_in`.

        `insert` raises `Conflict` when the id was taken meanwhile by another writer;
        the look-up then starts again, a few times.
        """
        for _ in range(SLUG_ATTEMPTS):
            candidate = await self._first_free_slug(base, taken_in)
            try:
                return await insert(candidate)
            except Conflict:
                continue
        raise Conflict(f"could not find a free id for {base!r}")

    async def _first_free_slug(self, base: str, taken_in: InstrumentedAttribute[str]) -> str:
        async with self._db.transaction() as session:
            for batch in numbered_slugs(base):
                taken = set(await session.scalars(select(taken_in).where(taken_in.in_(batch))))
                free = [candidate for candidate in batch if candidate not in taken]
                if free:
                    return free[0]
        raise AssertionError("numbered_slugs is endless")  # pragma: no cover


def upsert(
    db: Database,
    model: type[Base],
    values: dict[str, Any] | None,
    *,
    keys: list[str],
    update: list[str],
) -> Insert:
    """INSERT `values`; on a row with the same `keys`, SET the `update` columns instead.

    With no `update` columns, a row that exists is left alone (DO NOTHING). One
    statement, so concurrent writers of the same key cannot both insert. With
    `values` None the statement takes its rows as parameters (executemany).
    """
    insert = postgresql.insert(model) if db.is_postgresql else sqlite.insert(model)
    if values is not None:
        insert = insert.values(values)
    if not update:
        return insert.on_conflict_do_nothing(index_elements=keys)
    return insert.on_conflict_do_update(
        index_elements=keys, set_={column: insert.excluded[column] for column in update}
    )


def check_length(what: str, value: str, limit: int) -> None:
    """Refuse an empty `value` or one longer than its column (`ValueError`)."""
    # Checked here so that SQLite (which ignores VARCHAR lengths) and PostgreSQL agree.
    if not value or len(value) > limit:
        raise ValueError(f"{what} must be 1 to {limit} characters, got {len(value)}")


def check_choice(what: str, value: str, choices: frozenset[str]) -> None:
    """Refuse a `value` that is not one of `choices` (`ValueError`)."""
    if value not in choices:
        raise ValueError(f"{what} must be one of {sorted(choices)}, got {value!r}")
