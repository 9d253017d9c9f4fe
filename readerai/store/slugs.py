"""Passage ids made from titles: `the-fox`, then `the-fox-2`, `the-fox-3`, … when taken."""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterator

from readerai.store.models import PASSAGE_ID_LENGTH

#: Numbered slugs looked up per query when the plain one is taken.
SLUG_BATCH = 20


def slugify(title: str) -> str:
    """A passage id from a title: lowercase a-z, 0-9 and '-', at most 64 characters."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:PASSAGE_ID_LENGTH].rstrip("-") or "passage"


def numbered_slugs(base: str) -> Iterator[list[str]]:
    """`base`, `base-2`, `base-3`, … in batches, each cut to fit the id length."""
    numbers = itertools.count(1)
    while True:
        batch = []
        for number in itertools.islice(numbers, SLUG_BATCH):
            suffix = "" if number == 1 else f"-{number}"
            batch.append(base[: PASSAGE_ID_LENGTH - len(suffix)].rstrip("-") + suffix)
        yield batch
