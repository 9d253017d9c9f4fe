"""Replies written while they stream, and interrupted when their node dies (every backend).

A reply `in_progress` is leased by the node streaming it: each checkpoint renews
`updated_at`; a reply whose lease ran out is marked `interrupted`, and from then on
its old node's checkpoints change nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import anyio
import pytest

from readerai.protocol import ReplyStatus
from readerai.store.base import MessageRecord
from readerai.store.models import utc_now
from readerai.store.sql import SqlStore


async def _reply(
    store: SqlStore, session_id: str, text: str, status: ReplyStatus = ReplyStatus.IN_PROGRESS
) -> MessageRecord:
    return await store.add_message(
        session_id=session_id, turn_id=f"turn-{text}", role="tutor", text=text, status=status
    )


async def _stored(store: SqlStore, message_id: int) -> MessageRecord:
    message = await store.get_message(message_id)
    assert message is not None
    return message


async def _cutoff_after(moment: datetime) -> datetime:
    """A lease cutoff just after `moment`, returned once the clock has passed it."""
    cutoff = moment + timedelta(microseconds=1)
    await anyio.sleep(0.002)
    assert utc_now() > cutoff
    return cutoff


# ---------------------------------------------------------------- reading and timestamps


async def test_get_message_returns_the_stored_record(store: SqlStore) -> None:
    session = await store.create_session()
    reply = await _reply(store, session.id, "The fox")
    assert await store.get_message(reply.id) == reply
    assert await store.get_message(reply.id + 1000) is None


async def test_new_message_was_last_updated_when_created(store: SqlStore) -> None:
    session = await store.create_session()
    reply = await _reply(store, session.id, "The fox")
    assert reply.updated_at == reply.created_at
    assert reply.updated_at.utcoffset() == timedelta(0)


async def test_update_message_sets_updated_at(store: SqlStore) -> None:
    session = await store.create_session()
    reply = await _reply(store, session.id, "The fox")
    await _cutoff_after(reply.updated_at)
    await store.update_message(reply.id, text="The fox ran.", status=ReplyStatus.COMPLETED)
    stored = await _stored(store, reply.id)
    assert stored.updated_at > reply.updated_at
    assert stored.created_at == reply.created_at


# ---------------------------------------------------------------- checkpoints


async def test_checkpoint_saves_the_text_of_a_reply_in_progress(store: SqlStore) -> None:
    session = await store.create_session()
    reply = await _reply(store, session.id, "The")
    await _cutoff_after(reply.updated_at)
    assert await store.checkpoint_message(reply.id, text="The fox ran") is True
    stored = await _stored(store, reply.id)
    assert (stored.text, stored.status) == ("The fox ran", ReplyStatus.IN_PROGRESS)
    assert stored.updated_at > reply.updated_at


@pytest.mark.parametrize(
    "ended", [ReplyStatus.COMPLETED, ReplyStatus.CANCELLED, ReplyStatus.FAILED]
)
async def test_checkpoint_of_an_ended_reply_changes_nothing(
    store: SqlStore, ended: ReplyStatus
) -> None:
    session = await store.create_session()
    reply = await _reply(store, session.id, "The")
    await store.update_message(reply.id, text="The fox ran.", status=ended)
    before = await _stored(store, reply.id)
    assert await store.checkpoint_message(reply.id, text="The fox r") is False
    assert await _stored(store, reply.id) == before


async def test_checkpoint_of_an_unknown_message_is_false(store: SqlStore) -> None:
    assert await store.checkpoint_message(987654, text="x") is False


# ---------------------------------------------------------------- interrupting stale replies


async def test_interrupt_stale_replies_takes_only_lapsed_replies_in_progress(
    store: SqlStore,
) -> None:
    session, other = await store.create_session(), await store.create_session()
    stale = await _reply(store, session.id, "stale")
    done = await _reply(store, session.id, "done", ReplyStatus.COMPLETED)
    elsewhere = await _reply(store, other.id, "elsewhere")
    cutoff = await _cutoff_after(elsewhere.updated_at)
    fresh = await _reply(store, session.id, "fresh")

    assert await store.interrupt_stale_replies(session.id, older_than=cutoff) == 1

    interrupted = await _stored(store, stale.id)
    assert (interrupted.status, interrupted.text) == (ReplyStatus.INTERRUPTED, "stale")
    assert interrupted.updated_at > stale.updated_at
    assert await _stored(store, done.id) == done
    assert await _stored(store, fresh.id) == fresh
    assert await _stored(store, elsewhere.id) == elsewhere
    assert await store.interrupt_stale_replies(session.id, older_than=cutoff) == 0


async def test_a_checkpoint_renews_the_lease(store: SqlStore) -> None:
    session = await store.create_session()
    reply = await _reply(store, session.id, "The")
    cutoff = await _cutoff_after(reply.updated_at)
    assert await store.checkpoint_message(reply.id, text="The fox") is True
    assert await store.interrupt_stale_replies(session.id, older_than=cutoff) == 0
    assert (await _stored(store, reply.id)).status is ReplyStatus.IN_PROGRESS


async def test_an_interrupted_reply_takes_no_more_checkpoints(store: SqlStore) -> None:
    session = await store.create_session()
    reply = await _reply(store, session.id, "The")
    cutoff = await _cutoff_after(reply.updated_at)
    assert await store.interrupt_stale_replies(session.id, older_than=cutoff) == 1
    assert await store.checkpoint_message(reply.id, text="The fox") is False
    stored = await _stored(store, reply.id)
    assert (stored.status, stored.text) == (ReplyStatus.INTERRUPTED, "The")


async def test_checkpoints_racing_an_interruption_never_outlive_it(store: SqlStore) -> None:
    session = await store.create_session()
    reply = await _reply(store, session.id, "0")
    cutoff = await _cutoff_after(reply.updated_at)
    saved: list[str] = []

    async def checkpoint(n: int) -> None:
        if await store.checkpoint_message(reply.id, text=str(n)):
            saved.append(str(n))

    async with anyio.create_task_group() as group:
        for n in range(1, 6):
            group.start_soon(checkpoint, n)
        group.start_soon(lambda: store.interrupt_stale_replies(session.id, older_than=cutoff))
    stored = await _stored(store, reply.id)
    # Each checkpoint either landed (and renewed the lease) or changed nothing; the
    # stored text is always one that was accepted.
    assert stored.text in {"0", *saved}
    if stored.status is ReplyStatus.INTERRUPTED:
        assert await store.checkpoint_message(reply.id, text="late") is False


async def test_interrupt_stale_replies_refuses_a_naive_cutoff(store: SqlStore) -> None:
    session = await store.create_session()
    with pytest.raises(ValueError, match="timezone"):
        await store.interrupt_stale_replies(session.id, older_than=datetime.now())


async def test_interrupt_all_in_progress_takes_every_session(store: SqlStore) -> None:
    first, second = await store.create_session(), await store.create_session()
    streaming = [await _reply(store, first.id, "a"), await _reply(store, second.id, "b")]
    done = await _reply(store, second.id, "c", ReplyStatus.COMPLETED)

    assert await store.interrupt_all_in_progress() == 2

    for reply in streaming:
        assert (await _stored(store, reply.id)).status is ReplyStatus.INTERRUPTED
    assert await _stored(store, done.id) == done
    assert await store.interrupt_all_in_progress() == 0
