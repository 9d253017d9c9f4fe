"""The bundled sample passages and their file format."""

from __future__ import annotations

import re

import pytest

from readerai.samples import MAX_ID_LENGTH, Sample, load_samples, parse_sample

GOOD = """---
id: a-story
title: A Story
level: Grade 1
---
First line
continues here.

Second paragraph.
"""


def test_every_bundled_sample_parses() -> None:
    samples = load_samples()
    assert len(samples) >= 5
    assert all(isinstance(sample, Sample) for sample in samples)


def test_sample_ids_are_unique_slugs() -> None:
    ids = [sample.id for sample in load_samples()]
    assert len(ids) == len(set(ids))
    for sample_id in ids:
        assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", sample_id)
        assert len(sample_id) <= MAX_ID_LENGTH


def test_sample_texts_and_titles_are_filled() -> None:
    for sample in load_samples():
        assert sample.title.strip()
        assert sample.level.strip()
        assert sample.text.strip()
        assert sample.text == sample.text.strip()


def test_sample_texts_are_short_plain_passages() -> None:
    for sample in load_samples():
        words = len(sample.text.split())
        assert 150 <= words <= 350, (sample.id, words)
        assert not re.search(r"^\s*(#|[-*] |>)", sample.text, flags=re.MULTILINE), sample.id


def test_samples_are_ordered_by_file_name() -> None:
    ids = [sample.id for sample in load_samples()]
    assert ids == sorted(ids)


def test_parse_joins_wrapped_lines_and_keeps_paragraphs() -> None:
    sample = parse_sample(GOOD, name="a-story.md")
    assert sample == Sample(
        id="a-story",
        title="A Story",
        level="Grade 1",
        text="First line continues here.\n\nSecond paragraph.",
    )


def test_parse_accepts_windows_line_endings() -> None:
    assert parse_sample(GOOD.replace("\n", "\r\n"), name="a.md").id == "a-story"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("id: x\n---\ntext", "must start with"),
        ("---\nid: x\ntitle: X\nlevel: 1\ntext", "no closing"),
        ("---\nid: x\ntitle: X\n---\ntext", "lacks level"),
        ("---\nid: x\ntitle: X\nlevel: 1\nauthor: Y\n---\ntext", "expected one of"),
        ("---\nid: x\nid: y\ntitle: X\nlevel: 1\n---\ntext", "given twice"),
        ("---\nid:\ntitle: X\nlevel: 1\n---\ntext", "'id' is empty"),
        ("---\nid: Not A Slug\ntitle: X\nlevel: 1\n---\ntext", "lowercase slug"),
        (f"---\nid: {'a' * 65}\ntitle: X\nlevel: 1\n---\ntext", "lowercase slug"),
        ("---\nid: x\ntitle: X\nlevel: 1\n---\n\n  \n", "text is empty"),
    ],
)
def test_parse_rejects_malformed_files_with_the_file_name(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_sample(source, name="broken.md")
    assert "broken.md" in str(caught.value)
