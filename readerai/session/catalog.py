"""Passages by id, cached: every `READING_PROGRESS` and question needs one, so the
store is asked once per passage.

A passage changes only while it is `preparing` (a job fills in its sentences), so
only `ready` and `failed` passages are cached: a passage being prepared, perhaps by
another node's job, is read from the store each time. The node running the job also
calls `forget` after each change.
"""

from __future__ import annotations

from collections import OrderedDict

from readerai.store import PassageRecord, Store


class PassageCatalog:
    """A bounded LRU cache of settled passages in front of the store."""

    def __init__(self, store: Store, capacity: int = 512) -> None:
        self._store = store
        self._capacity = capacity
        self._cache: OrderedDict[str, PassageRecord] = OrderedDict()

    async def get(self, passage_id: str) -> PassageRecord | None:
        cached = self._cache.get(passage_id)
        if cached is not None:
            self._cache.move_to_end(passage_id)
            return cached
        passage = await self._store.get_passage(passage_id)
        if passage is not None:
            self.remember(passage)
        return passage

    def remember(self, passage: PassageRecord) -> None:
        """Cache `passage`, unless it is still being prepared (it will change)."""
        if passage.status == "preparing":
            self.forget(passage.id)
            return
        self._cache[passage.id] = passage
        self._cache.move_to_end(passage.id)
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)

    def forget(self, passage_id: str) -> None:
        """Drop the cached copy of a passage that changed; the next `get` reads it again."""
        self._cache.pop(passage_id, None)
