"""`sentenceStarts` of a passage: where each sentence `split_sentences` cut starts in
the text, so a reading position (a character offset) names its sentence."""

from __future__ import annotations

from bisect import bisect_right

from readerai.api.passages import sentence_starts
from readerai.grounding import split_sentences

TEXT = (
    "The kite 🪁 flew high.  It was\nred and gold.\n\n"
    '"Come back!" called Mia. Dr. Lee laughed.\n\n'
    "- a list item.\n- another one.\n\n"
    "> quoted line one\n> and two. Then more."
)


def test_each_sentence_starts_at_its_first_character_in_the_text() -> None:
    sentences = split_sentences(TEXT)
    starts = sentence_starts(TEXT, sentences)
    assert len(starts) == len(sentences) == 8
    for sentence, start in zip(sentences, starts, strict=True):
        assert TEXT[start:].startswith(sentence.split()[0]), (sentence, TEXT[start:])
    assert starts == sorted(starts)
    # Soft-wrapped ("It was\nred"), after an emoji (one code point, as Python counts).
    assert starts[1] == TEXT.index("It was")
    assert starts[2] == TEXT.index('"Come')
    # A sentence with a quote mark inside it: found by its first word.
    assert starts[6] == TEXT.index("quoted line one")


def test_a_position_names_the_sentence_containing_it() -> None:
    sentences = split_sentences(TEXT)
    starts = sentence_starts(TEXT, sentences)

    def sentence_at(position: int) -> int:
        return bisect_right(starts, position) - 1

    assert sentence_at(0) == 0
    assert sentence_at(TEXT.index("gold")) == 1
    assert sentence_at(TEXT.index("laughed")) == 3
    assert sentence_at(len(TEXT)) == len(sentences) - 1


def test_a_sentence_not_in_the_text_starts_where_the_one_before_ended() -> None:
    assert sentence_starts("One. Two.", ["One.", "Missing.", "Two."]) == [0, 4, 5]
    assert sentence_starts("", []) == []
