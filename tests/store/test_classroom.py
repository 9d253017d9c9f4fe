"""Users, classes, memberships, broadcasts and the sessions of students (every backend)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from readerai.errors import Conflict, NotFound
from readerai.protocol import ReplyStatus
from readerai.store.base import ClassRecord, UserRecord
from readerai.store.sql import SqlStore


async def _teacher(store: SqlStore, user_id: str = "t-ada", name: str = "Ada") -> UserRecord:
    return await store.upsert_user(user_id=user_id, role="teacher", name=name)


async def _class_with_students(store: SqlStore, *names: str) -> ClassRecord:
    await _teacher(store)
    room = await store.create_class(name="Room 4B", teacher_id="t-ada")
    for name in names:
        await store.upsert_user(user_id=f"s-{name.lower()}", role="student", name=name)
        await store.add_member(room.id, f"s-{name.lower()}")
    return room


# ---------------------------------------------------------------- users


async def test_upsert_user_creates_then_updates_role_and_name(store: SqlStore) -> None:
    created = await store.upsert_user(user_id="u1", role="student", name="Bea")
    assert (created.id, created.role, created.name) == ("u1", "student", "Bea")
    assert created.created_at.utcoffset() == timedelta(0)
    assert await store.get_user("u1") == created
    changed = await store.upsert_user(user_id="u1", role="teacher", name="Beatrice")
    assert (changed.role, changed.name) == ("teacher", "Beatrice")
    assert changed.created_at == created.created_at
    assert await store.get_user("u1") == changed


async def test_unknown_user_is_none(store: SqlStore) -> None:
    assert await store.get_user("nobody") is None


@pytest.mark.parametrize(
    ("user_id", "role", "name"),
    [("", "student", "A"), ("x" * 65, "student", "A"), ("u", "r" * 17, "A"), ("u", "s", "")],
)
async def test_user_fields_must_fit_their_columns(
    store: SqlStore, user_id: str, role: str, name: str
) -> None:
    with pytest.raises(ValueError, match="must be 1 to"):
        await store.upsert_user(user_id=user_id, role=role, name=name)


# ---------------------------------------------------------------- classes


async def test_class_id_defaults_to_slug_of_name_numbered_when_taken(store: SqlStore) -> None:
    await _teacher(store)
    ids = [(await store.create_class(name="Room 4B!", teacher_id="t-ada")).id for _ in range(3)]
    assert ids == ["room-4b", "room-4b-2", "room-4b-3"]
    nameless = await store.create_class(name="???", teacher_id="t-ada")
    assert nameless.id == "class"


async def test_create_class_keeps_given_id_and_returns_the_record(store: SqlStore) -> None:
    await _teacher(store)
    room = await store.create_class(name="Room 4B", teacher_id="t-ada", class_id="4b")
    assert (room.id, room.name, room.teacher_id, room.student_count) == (
        "4b",
        "Room 4B",
        "t-ada",
        0,
    )
    assert room.created_at.utcoffset() == timedelta(0)
    assert await store.get_class("4b") == room


async def test_given_class_id_that_is_taken_conflicts(store: SqlStore) -> None:
    await _teacher(store)
    await store.create_class(name="A", teacher_id="t-ada", class_id="4b")
    with pytest.raises(Conflict):
        await store.create_class(name="B", teacher_id="t-ada", class_id="4b")


async def test_class_of_unknown_teacher_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound, match="nobody"):
        await store.create_class(name="Room", teacher_id="nobody")
    assert await store.list_classes() == []


async def test_unknown_class_is_none(store: SqlStore) -> None:
    assert await store.get_class("nothing") is None


async def test_get_class_counts_its_students(store: SqlStore) -> None:
    room = await _class_with_students(store, "Cy", "Di")
    found = await store.get_class(room.id)
    assert found is not None
    assert found.student_count == 2


async def test_list_classes_filters_by_teacher_and_student_sorted_by_name(store: SqlStore) -> None:
    await _teacher(store, "t-ada", "Ada")
    await _teacher(store, "t-bob", "Bob")
    await store.upsert_user(user_id="s-cy", role="student", name="Cy")
    zoo = await store.create_class(name="Zoo", teacher_id="t-ada")
    art = await store.create_class(name="Art", teacher_id="t-ada")
    gym = await store.create_class(name="Gym", teacher_id="t-bob")
    await store.add_member(zoo.id, "s-cy")
    await store.add_member(gym.id, "s-cy")

    everything = await store.list_classes()
    assert [c.id for c in everything] == [art.id, gym.id, zoo.id]
    assert [c.student_count for c in everything] == [0, 1, 1]
    assert [c.id for c in await store.list_classes(teacher_id="t-ada")] == [art.id, zoo.id]
    assert [c.id for c in await store.list_classes(student_id="s-cy")] == [gym.id, zoo.id]
    both = await store.list_classes(teacher_id="t-ada", student_id="s-cy")
    assert [c.id for c in both] == [zoo.id]
    assert await store.list_classes(teacher_id="nobody") == []


# ---------------------------------------------------------------- members


async def test_add_member_is_idempotent(store: SqlStore) -> None:
    room = await _class_with_students(store, "Cy")
    await store.add_member(room.id, "s-cy")
    await store.add_member(room.id, "s-cy")
    assert [s.id for s in await store.class_students(room.id)] == ["s-cy"]
    assert await store.is_member(room.id, "s-cy") is True


async def test_add_member_to_unknown_class_or_user_is_not_found(store: SqlStore) -> None:
    room = await _class_with_students(store, "Cy")
    with pytest.raises(NotFound):
        await store.add_member("nothing", "s-cy")
    with pytest.raises(NotFound):
        await store.add_member(room.id, "nobody")


async def test_remove_member_says_whether_they_were_in_the_class(store: SqlStore) -> None:
    room = await _class_with_students(store, "Cy", "Di")
    assert await store.remove_member(room.id, "s-cy") is True
    assert await store.remove_member(room.id, "s-cy") is False
    assert await store.is_member(room.id, "s-cy") is False
    assert [s.id for s in await store.class_students(room.id)] == ["s-di"]
    assert await store.get_user("s-cy") is not None  # the account stays


async def test_class_students_are_the_members_by_name(store: SqlStore) -> None:
    room = await _class_with_students(store, "Zed", "Amy", "Max")
    students = await store.class_students(room.id)
    assert [s.name for s in students] == ["Amy", "Max", "Zed"]
    assert {s.role for s in students} == {"student"}
    assert await store.class_students("nothing") == []


async def test_membership_is_per_class(store: SqlStore) -> None:
    room = await _class_with_students(store, "Cy")
    other = await store.create_class(name="Other", teacher_id="t-ada")
    assert await store.is_member(room.id, "s-cy") is True
    assert await store.is_member(other.id, "s-cy") is False
    assert await store.is_member(room.id, "t-ada") is False  # teaching is not membership


# ---------------------------------------------------------------- broadcasts


async def test_broadcasts_come_back_oldest_first_newest_limit(store: SqlStore) -> None:
    sent = [
        await store.add_broadcast(class_id="4b", sender_id="t-ada", text=f"note {n}")
        for n in range(4)
    ]
    await store.add_broadcast(class_id="5a", sender_id="t-bob", text="elsewhere")
    assert await store.recent_broadcasts("4b") == sent
    assert [b.text for b in await store.recent_broadcasts("4b", limit=2)] == ["note 2", "note 3"]
    assert await store.recent_broadcasts("4b", limit=0) == []
    assert await store.recent_broadcasts("nothing") == []


async def test_broadcast_record_has_a_uuid_hex_id_and_utc_time(store: SqlStore) -> None:
    broadcast = await store.add_broadcast(class_id="4b", sender_id="t-ada", text="Read p. 3")
    assert len(broadcast.id) == 32
    int(broadcast.id, 16)
    assert (broadcast.class_id, broadcast.sender_id, broadcast.text) == ("4b", "t-ada", "Read p. 3")
    assert broadcast.sent_at.utcoffset() == timedelta(0)


# ---------------------------------------------------------------- sessions of students


async def test_session_user_round_trips(store: SqlStore) -> None:
    session = await store.create_session(user_id="s-cy", class_id="4b")
    assert session.user_id == "s-cy"
    assert await store.get_session(session.id) == session
    assert (await store.create_session()).user_id is None


async def test_user_id_must_fit_its_column(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="user id"):
        await store.create_session(user_id="x" * 65)


async def test_list_sessions_newest_updated_first_filtered_by_user(store: SqlStore) -> None:
    first = await store.create_session(user_id="s-cy")
    second = await store.create_session(user_id="s-di")
    third = await store.create_session(user_id="s-cy")
    await store.create_session()  # predates accounts
    await store.set_session_passage(first.id, "the-fox")  # now the last updated

    mine = await store.list_sessions(user_ids=["s-cy"])
    assert [s.id for s in mine] == [first.id, third.id]
    ours = await store.list_sessions(user_ids=["s-cy", "s-di"])
    assert [s.id for s in ours] == [first.id, third.id, second.id]
    assert len(await store.list_sessions(user_ids=None)) == 4
    assert [s.id for s in await store.list_sessions(user_ids=None, limit=1)] == [first.id]
    assert await store.list_sessions(user_ids=[]) == []
    assert await store.list_sessions(user_ids=["nobody"]) == []


async def test_session_stats_count_questions_and_find_newest_message(store: SqlStore) -> None:
    busy, quiet = await store.create_session(), await store.create_session()
    written = []
    for role, text in [("student", "q1"), ("tutor", "a1"), ("student", "q2"), ("tutor", "a2")]:
        written.append(
            await store.add_message(
                session_id=busy.id,
                turn_id=text,
                role=role,
                text=text,
                status=ReplyStatus.COMPLETED,
            )
        )
    stats = await store.session_stats([busy.id, quiet.id, "nobody"])
    assert stats == {
        busy.id: (2, max(m.created_at for m in written)),
        quiet.id: (0, None),
        "nobody": (0, None),
    }
    newest = stats[busy.id][1]
    assert newest is not None
    assert newest.utcoffset() == timedelta(0)
    assert await store.session_stats([]) == {}
