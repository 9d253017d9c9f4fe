"""Durable state: sessions, messages, reading progress, passages.

`Store` is the interface the rest of ReaderAI uses; `SqlStore` implements it on
SQLAlchemy 2 async for SQLite (aiosqlite, the default) and PostgreSQL (asyncpg).
"""

from __future__ import annotations

from readerai.store.base import (
    MessageRecord,
    PassageRecord,
    ProgressRecord,
    SessionRecord,
    Store,
)

__all__ = ["MessageRecord", "PassageRecord", "ProgressRecord", "SessionRecord", "Store"]
