"""Markdown to a passage's plain text: what stays, what goes, and where paragraphs end."""

from __future__ import annotations

import pytest

from readerai.grounding import split_sentences
from readerai.jobs.markdown import markdown_title, markdown_to_text


def test_headings_and_rules_are_dropped_and_paragraphs_kept() -> None:
    text = markdown_to_text("# The Fox\n\nA fox ran.\nIt was fast.\n\n---\n\nSub\n===\nThe end.\n")
    assert text == "A fox ran. It was fast.\n\nThe end."


def test_emphasis_and_inline_code_keep_their_text() -> None:
    markdown = "A **big** and *small* __dog__ _ran_ ~~away~~ ***now*** with `a_b*c`."
    assert markdown_to_text(markdown) == "A big and small dog ran away now with a_b*c."


def test_snake_case_and_lone_stars_are_not_emphasis() -> None:
    assert markdown_to_text("Use my_file_name and 2 * 3 * 4.") == "Use my_file_name and 2 * 3 * 4."


def test_links_keep_their_text_and_images_vanish() -> None:
    markdown = (
        'See [the map](https://example.org/map "Map") ![a fox](fox.png) and [it][ref].\n'
        "Visit <https://example.org>.\n\n[ref]: https://example.org/ref\n"
    )
    assert markdown_to_text(markdown) == "See the map and it. Visit https://example.org."


def test_list_items_become_paragraphs_without_markers() -> None:
    markdown = "Things:\n\n- Apples are red.\n* Pears are green.\n1. One is first.\n2) [x] Done.\n"
    assert markdown_to_text(markdown).split("\n\n") == [
        "Things:",
        "Apples are red.",
        "Pears are green.",
        "One is first.",
        "Done.",
    ]


def test_block_quotes_lose_their_markers() -> None:
    assert markdown_to_text("> The owl said hoot.\n> > Then it slept.\n") == (
        "The owl said hoot. Then it slept."
    )


def test_code_fences_are_removed_and_their_lines_kept_verbatim() -> None:
    markdown = "Before.\n\n```python\nx = *y*\n```\n\nAfter.\n"
    assert markdown_to_text(markdown) == "Before.\n\nx = *y*\n\nAfter."


def test_html_tags_comments_and_entities() -> None:
    markdown = "<p>Tom &amp; Ann<br/>ran <em>home</em>.</p>\n<!-- a note\nover lines -->\n"
    assert markdown_to_text(markdown) == "Tom & Ann ran home."


def test_backslash_escapes_are_literal() -> None:
    assert markdown_to_text(r"A \*star\* and a \_line\_.") == "A *star* and a _line_."


def test_front_matter_is_dropped_and_gives_the_title() -> None:
    markdown = "---\nid: fox\ntitle: The Quick Fox\nlevel: Grade 2\n---\n# Other\n\nA fox ran.\n"
    assert markdown_to_text(markdown) == "A fox ran."
    assert markdown_title(markdown) == "The Quick Fox"


@pytest.mark.parametrize(
    ("markdown", "title"),
    [("Intro.\n\n## The *Big* Day ##\n\nText.", "The Big Day"), ("No heading.", None)],
)
def test_title_is_the_first_heading(markdown: str, title: str | None) -> None:
    assert markdown_title(markdown) == title


@pytest.mark.parametrize("markdown", ["", "***\n---\n", "# Only a title\n", "![x](y.png)\n"])
def test_markup_alone_leaves_no_sentences(markdown: str) -> None:
    assert split_sentences(markdown_to_text(markdown)) == []


def test_sentences_of_the_text_are_found_verbatim_in_it() -> None:
    text = markdown_to_text("# T\n\nThe *cat*\nsat down. It [purred](x).\n\n- A list item.\n")
    sentences = split_sentences(text)
    assert sentences == ["The cat sat down.", "It purred.", "A list item."]
    assert all(sentence in text for sentence in sentences)
