"""Scored readings aloud and each class's help for a stalled reader (every backend)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from readerai.errors import Conflict, NotFound
from readerai.store.models import (
    HeardWordRecord,
    ReadingHelp,
    ReadingMiscue,
    ReadingRecord,
    UtcDateTime,
)
from readerai.store.sql import SqlStore
from tests.store.test_migrations import _engine, _migrate, empty_url

__all__ = ["empty_url"]  # the fixture, shared with the migration tests

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# The tables as revision 0003 made them (the columns written here).
USERS_0003 = sa.table(
    "users",
    sa.column("id", sa.String()),
    sa.column("role", sa.String()),
    sa.column("name", sa.String()),
    sa.column("created_at", UtcDateTime()),
)
CLASSES_0003 = sa.table(
    "classes",
    sa.column("id", sa.String()),
    sa.column("name", sa.String()),
    sa.column("teacher_id", sa.String()),
    sa.column("created_at", UtcDateTime()),
)


def reading(
    *,
    user_id: str = "s-ada",
    class_id: str | None = "4b",
    passage_id: str = "puppy",
    minute: int = 0,
    missed: tuple[tuple[str, str], ...] = (),
) -> ReadingRecord:
    """A reading ending `minute` minutes after T0, missing `missed` ((kind, word), ...)."""
    miscues = tuple(
        ReadingMiscue(kind, index, word, "" if kind == "omission" else "x", 1.0 + index)
        for index, (kind, word) in enumerate(missed)
    )
    errors = sum(m.kind in ("omission", "substitution") for m in miscues)
    return ReadingRecord(
        id=uuid.uuid4().hex,
        session_id="sess-1",
        user_id=user_id,
        class_id=class_id,
        passage_id=passage_id,
        started_at=T0 + timedelta(minutes=minute),
        ended_at=T0 + timedelta(minutes=minute, seconds=30),
        duration_seconds=24.5,
        words_attempted=40,
        words_correct=40 - errors,
        errors=errors,
        wcpm=60 * (40 - errors) / 24.5,
        accuracy=(40 - errors) / 40,
        miscues=miscues,
        timeline=(
            HeardWordRecord("Sam", 0.5, 0.8, 0, True),
            HeardWordRecord("um", 0.9, 1.1, None, False),
            HeardWordRecord("fund", 1.2, 1.5, 1, False),
        ),
    )


async def test_a_saved_reading_comes_back_whole(store: SqlStore) -> None:
    saved = reading(missed=(("substitution", "found"), ("insertion", ""), ("omission", "a")))
    await store.save_reading(saved)
    found = await store.get_reading(saved.id)
    assert found == saved
    assert found is not None
    assert found.timeline == saved.timeline
    assert found.started_at.utcoffset() == timedelta(0)
    assert await store.get_reading("nope") is None


async def test_a_reading_id_is_stored_once(store: SqlStore) -> None:
    saved = reading()
    await store.save_reading(saved)
    with pytest.raises(Conflict):
        await store.save_reading(dataclasses.replace(saved, wcpm=1.0))


async def test_readings_of_a_class_or_student_are_newest_first_without_timeline(
    store: SqlStore,
) -> None:
    ada = [reading(minute=m) for m in (0, 10, 5)]
    bea = reading(user_id="s-bea", minute=7, passage_id="kite")
    other_class = reading(class_id="5c", minute=8)
    for r in (*ada, bea, other_class):
        await store.save_reading(r)
    listed = await store.list_readings(class_id="4b")
    assert [r.id for r in listed] == [ada[1].id, bea.id, ada[2].id, ada[0].id]
    assert all(r.timeline == () for r in listed)
    assert listed[0] == ada[1]  # everything else is there (the timeline is not compared)
    mine = await store.list_readings(class_id="4b", user_id="s-ada")
    assert [r.id for r in mine] == [ada[1].id, ada[2].id, ada[0].id]
    assert [r.id for r in await store.list_readings(passage_id="kite")] == [bea.id]
    assert len(await store.list_readings(user_id="s-ada")) == 4  # every class
    assert len(await store.list_readings(class_id="4b", limit=2)) == 2
    assert await store.list_readings(class_id="4b", limit=0) == []


async def test_most_missed_words_count_omissions_and_substitutions_of_the_last_readings(
    store: SqlStore,
) -> None:
    await store.save_reading(reading(minute=0, missed=(("omission", "puppy"),) * 3))  # too old
    await store.save_reading(
        reading(minute=1, missed=(("substitution", "Bakery"), ("repetition", "rain")))
    )
    await store.save_reading(
        reading(minute=2, missed=(("omission", "bakery"), ("self_correction", "sam")))
    )
    await store.save_reading(
        reading(
            user_id="s-bea",
            minute=3,
            missed=(("substitution", "jacket"), ("omission", "jacket"), ("insertion", "")),
        )
    )
    words = await store.missed_words(class_id="4b", last=3)
    assert [(w.word, w.misses, w.readings) for w in words] == [
        ("bakery", 2, 2),
        ("jacket", 2, 1),
    ]
    ada = await store.missed_words(class_id="4b", user_id="s-ada", last=3)
    assert [(w.word, w.misses) for w in ada] == [("puppy", 3), ("bakery", 2)]
    assert [w.word for w in await store.missed_words(class_id="4b", last=3, limit=1)] == ["bakery"]
    assert await store.missed_words(class_id="nobody") == []


async def test_reading_help_is_the_default_until_the_teacher_sets_it(store: SqlStore) -> None:
    await store.upsert_user(user_id="t-ada", role="teacher", name="Ada")
    room = await store.create_class(name="Room 4B", teacher_id="t-ada", class_id="4b")
    assert (room.stall_seconds, room.stall_help) == (5.0, "say_word")
    assert await store.reading_help("4b") == ReadingHelp(5.0, "say_word")
    assert await store.reading_help(None) == ReadingHelp(5.0, "say_word")
    assert await store.reading_help("no-such-class") == ReadingHelp(5.0, "say_word")

    changed = await store.set_class_help("4b", stall_seconds=3.5, stall_help="ask")
    assert (changed.stall_seconds, changed.stall_help) == (3.5, "ask")
    assert await store.reading_help("4b") == ReadingHelp(3.5, "ask")
    only_offer = await store.set_class_help("4b", stall_help="off")
    assert (only_offer.stall_seconds, only_offer.stall_help) == (3.5, "off")
    assert await store.get_class("4b") == only_offer


async def test_class_help_refuses_bad_values_and_unknown_classes(store: SqlStore) -> None:
    await store.upsert_user(user_id="t-ada", role="teacher", name="Ada")
    await store.create_class(name="Room 4B", teacher_id="t-ada", class_id="4b")
    with pytest.raises(ValueError, match="stall help"):
        await store.set_class_help("4b", stall_help="shout")
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="stall_seconds"):
            await store.set_class_help("4b", stall_seconds=bad)
    with pytest.raises(NotFound):
        await store.set_class_help("nope", stall_help="ask")
    with pytest.raises(NotFound):
        await store.set_class_help("nope")
    assert await store.reading_help("4b") == ReadingHelp(5.0, "say_word")


async def test_classes_made_before_0004_get_the_default_help(empty_url: str) -> None:
    await _migrate(empty_url, "0003")
    engine = await _engine(empty_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                sa.insert(USERS_0003),
                [{"id": "t-ada", "role": "teacher", "name": "Ada", "created_at": T0}],
            )
            room = {"id": "4b", "name": "Room 4B", "teacher_id": "t-ada", "created_at": T0}
            await connection.execute(sa.insert(CLASSES_0003), [room])
    finally:
        await engine.dispose()
    store = SqlStore(empty_url)
    await store.start()  # migrates to head
    try:
        assert await store.reading_help("4b") == ReadingHelp(5.0, "say_word")
        await store.save_reading(reading())
        await _migrate(empty_url, "0003", down=True)
        await _migrate(empty_url, "head")
        assert await store.list_readings() == []  # the table was dropped and made again
        assert await store.reading_help("4b") == ReadingHelp(5.0, "say_word")
    finally:
        await store.close()
