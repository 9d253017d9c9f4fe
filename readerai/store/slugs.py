"""Ids made from titles and names: `the-fox`, then `the-fox-2`, `the-fox-3`, … when taken.

Passage ids and class ids are made this way; both are at most 64 characters.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterator

from readerai.store.models import CLASS_ID_LENGTH, PASSAGE_ID_LENGTH

#: Numbered slugs looked up per query when the plain one is taken.
SLUG_BATCH = 20
#: The longest slug: it must fit a passage id and a class id alike.
SLUG_LENGTH = min(PASSAGE_ID_LENGTH, CLASS_ID_LENGTH)


def slugify(title: str, *, fallback: str = "passage") -> str:
    """An id from a title: lowercase a-z, 0-9 and '-', at most 64 characters.

    `fallback` is the id of a title with no letter or digit in it.
    """
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:SLUG_LENGTH].rstrip("-") or fallback


def numbered_slugs(base: str) -> Iterator[list[str]]:
    """`base`, `base-2`, `base-3`, … in batches, each cut to fit the id length."""
    numbers = itertools.count(1)
    while True:
        batch = []
        for number in itertools.islice(numbers, SLUG_BATCH):
            suffix = "" if number == 1 else f"-{number}"
            batch.append(base[: SLUG_LENGTH - len(suffix)].rstrip("-") + suffix)
        yield batch
