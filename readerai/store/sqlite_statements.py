"""A session's opening on SQLite: each unit of work in one trip to the connection's thread.

Through SQLAlchemy's ORM on aiosqlite a unit of work costs a pool checkout and about
six trips between the event loop and the connection's thread (cursor, execute,
fetch, close, commit); every session opened made four such units (the REST create,
the access check's read, the restore's two reads). `SqliteStatement` is a Core
statement compiled once for SQLite: the same SQL the ORM would send, run on the
sqlite3 connection in `Database.in_sqlite_thread` (a plain `BEGIN` for reads), with
parameters and results converted by the columns' own SQLAlchemy types, so a row
written or read is what the ORM would write or give (the store's tests compare them).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Insert, Select
from sqlalchemy.engine import Dialect

Processor = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class SqliteStatement:
    """A statement compiled for SQLite, its parameters by name, its columns' converters."""

    sql: str
    #: Names of the bound parameters, in the order of the SQL's `?`.
    names: tuple[str, ...]
    binds: tuple[Processor, ...]
    #: Values the statement carries itself (SQLite's `OFFSET 0` after a `LIMIT`).
    defaults: Mapping[str, Any]
    #: Names of the selected columns, in order, and how each is read back (none for
    #: an `INSERT`).
    columns: tuple[str, ...]
    results: tuple[Processor, ...]

    @classmethod
    def of(cls, statement: Select[Any] | Insert, dialect: Dialect) -> SqliteStatement:
        """Compile `statement` (bound parameters only; no expanding `IN`)."""
        compiled = statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        binds = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) or _same
            for name in names
        )
        selected = list(statement.selected_columns) if isinstance(statement, Select) else []
        return cls(
            sql=compiled.string,
            names=names,
            binds=binds,
            defaults={
                name: compiled.binds[name].effective_value
                for name in names
                if not compiled.binds[name].required
            },
            columns=tuple(str(column.key) for column in selected),
            results=tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None) or _same
                for column in selected
            ),
        )

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional parameters for `values` by name (converted on the loop)."""
        return tuple(
            bind(values[name] if name in values else self.defaults[name])
            for name, bind in zip(self.names, self.binds, strict=True)
        )

    def rows(self, fetched: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """What the thread fetched, converted, as one dict per row by column name."""
        columns, results = self.columns, self.results
        return [
            {
                name: convert(value)
                for name, convert, value in zip(columns, results, row, strict=True)
            }
            for row in fetched
        ]


def fetch_all(
    *statements: tuple[SqliteStatement, tuple[Any, ...]],
) -> Callable[[sqlite3.Connection], list[list[tuple[Any, ...]]]]:
    """The work of running each statement with its parameters, for the connection's
    thread; per statement, the rows it returned."""

    def run(connection: sqlite3.Connection) -> list[list[tuple[Any, ...]]]:
        return [connection.execute(one.sql, params).fetchall() for one, params in statements]

    return run
