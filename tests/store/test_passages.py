"""Passages being prepared: status, retrieval index and narration (every backend)."""

from __future__ import annotations

import pytest

from readerai.errors import NotFound
from readerai.store.base import PassageRecord
from readerai.store.sql import SqlStore

PCM = bytes(range(256)) * 4  # every byte value: binary, not text


async def _preparing(store: SqlStore) -> PassageRecord:
    return await store.add_passage(
        title="The Fox", text="The fox ran. It hid.", level=None, sentences=[], status="preparing"
    )


async def test_passage_is_ready_without_index_by_default(store: SqlStore) -> None:
    passage = await store.add_passage(title="The Fox", text="t", level=None, sentences=["t"])
    assert (passage.status, passage.terms) == ("ready", None)
    assert await store.get_passage(passage.id) == passage


async def test_status_and_terms_round_trip(store: SqlStore) -> None:
    passage = await store.add_passage(
        title="The Fox",
        text="The fox ran.",
        level=None,
        sentences=["The fox ran."],
        status="preparing",
        terms=[["fox", "ran"]],
    )
    assert (passage.status, passage.terms) == ("preparing", [["fox", "ran"]])
    assert await store.get_passage(passage.id) == passage
    assert await store.list_passages() == [passage]


async def test_unknown_status_is_refused(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="status"):
        await store.add_passage(title="A", text="t", level=None, sentences=[], status="done")
    passage = await _preparing(store)
    with pytest.raises(ValueError, match="status"):
        await store.update_passage(passage.id, status="done")


async def test_update_passage_replaces_only_what_is_given(store: SqlStore) -> None:
    passage = await _preparing(store)
    await store.update_passage(passage.id, sentences=["The fox ran.", "It hid."])
    await store.update_passage(passage.id, terms=[["fox", "ran"], ["hid"]])
    await store.update_passage(passage.id, status="ready")
    updated = await store.get_passage(passage.id)
    assert updated is not None
    assert (updated.sentences, updated.terms, updated.status) == (
        ["The fox ran.", "It hid."],
        [["fox", "ran"], ["hid"]],
        "ready",
    )
    assert (updated.title, updated.text, updated.created_at) == (
        passage.title,
        passage.text,
        passage.created_at,
    )


async def test_update_of_unknown_passage_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await store.update_passage("nothing", status="failed")


async def test_narration_is_saved_replaced_and_counted(store: SqlStore) -> None:
    passage = await _preparing(store)
    await store.update_passage(passage.id, sentences=["The fox ran.", "It hid."])
    assert await store.narration_count(passage.id) == 0
    await store.save_narration(passage.id, 0, sample_rate=22050, pcm=PCM)
    await store.save_narration(passage.id, 1, sample_rate=22050, pcm=b"\x00\x01")
    assert await store.get_narration(passage.id, 0) == (22050, PCM)
    await store.save_narration(passage.id, 0, sample_rate=16000, pcm=b"\xff")
    assert await store.get_narration(passage.id, 0) == (16000, b"\xff")
    assert await store.narration_count(passage.id) == 2


async def test_missing_narration_is_none(store: SqlStore) -> None:
    passage = await _preparing(store)
    assert await store.get_narration(passage.id, 0) is None
    assert await store.get_narration("nothing", 0) is None
    assert await store.narration_count("nothing") == 0


async def test_narration_of_unknown_passage_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await store.save_narration("nothing", 0, sample_rate=22050, pcm=PCM)


@pytest.mark.parametrize(("index", "rate"), [(-1, 22050), (0, 0)])
async def test_narration_needs_an_index_and_a_rate(store: SqlStore, index: int, rate: int) -> None:
    passage = await _preparing(store)
    with pytest.raises(ValueError, match="narration"):
        await store.save_narration(passage.id, index, sample_rate=rate, pcm=PCM)


async def test_changing_sentences_drops_the_narration_of_those_changed(store: SqlStore) -> None:
    passage = await _preparing(store)
    await store.update_passage(passage.id, sentences=["A.", "B.", "C.", "D."])
    for index in range(4):
        await store.save_narration(passage.id, index, sample_rate=22050, pcm=bytes([index]))
    await store.update_passage(passage.id, sentences=["A.", "B!", "C."])
    assert await store.get_narration(passage.id, 0) == (22050, b"\x00")
    assert await store.get_narration(passage.id, 1) is None  # changed
    assert await store.get_narration(passage.id, 2) == (22050, b"\x02")
    assert await store.get_narration(passage.id, 3) is None  # gone
    await store.update_passage(passage.id, status="ready")  # not the sentences: kept
    assert await store.narration_count(passage.id) == 2
