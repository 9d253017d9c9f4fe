"""Passages by id, cached: passages do not change once stored, and every
`READING_PROGRESS` and question needs one, so the store is asked once per passage."""

from __future__ import annotations

from collections import OrderedDict

from readerai.store import PassageRecord, Store


class PassageCatalog:
    """A bounded LRU cache of passages in front of the store."""

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
        self._cache[passage.id] = passage
        self._cache.move_to_end(passage.id)
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
