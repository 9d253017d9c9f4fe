"""Durable state: sessions, messages, reading progress, passages, the classroom, jobs,
scored readings aloud.

`Store` is the interface the rest of ReaderAI uses; `SqlStore` implements it on
SQLAlchemy 2 async for SQLite (aiosqlite, the default) and PostgreSQL (asyncpg).
"""

from __future__ import annotations

from readerai.store.base import (
    JOB_STATUSES,
    PASSAGE_STATUSES,
    STALL_HELP_CHOICES,
    BroadcastRecord,
    ClassRecord,
    JobOutcome,
    JobRecord,
    LoginCode,
    MessageRecord,
    NewMessage,
    PassageRecord,
    ProgressRecord,
    SessionRecord,
    Store,
    UserRecord,
)

__all__ = [
    "JOB_STATUSES",
    "PASSAGE_STATUSES",
    "STALL_HELP_CHOICES",
    "BroadcastRecord",
    "ClassRecord",
    "JobOutcome",
    "JobRecord",
    "LoginCode",
    "MessageRecord",
    "NewMessage",
    "PassageRecord",
    "ProgressRecord",
    "SessionRecord",
    "Store",
    "UserRecord",
]
