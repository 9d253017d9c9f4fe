"""SentenceChunker: cuts streamed reply text where speech can start."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from readerai.voice.sentences import MAX_RUN_CHARS, SentenceChunker


def chunk_all(deltas: list[str]) -> list[str]:
    chunker = SentenceChunker()
    pieces = [sentence for delta in deltas for sentence in chunker.feed(delta)]
    rest = chunker.flush()
    return [*pieces, rest] if rest else pieces


def by_characters(text: str) -> list[str]:
    return chunk_all(list(text))


def test_a_sentence_is_returned_once_whitespace_follows_its_end() -> None:
    chunker = SentenceChunker()
    assert chunker.feed("The lion slept.") == []
    assert chunker.feed(" A mouse") == ["The lion slept."]
    assert chunker.flush() == "A mouse"
    assert chunker.flush() is None


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Why? Because! Yes.", ["Why?", "Because!", "Yes."]),
        ('He said "Stop!" Then he ran.', ['He said "Stop!"', "Then he ran."]),
        ("She asked, “Why?” He smiled.", ["She asked, “Why?”", "He smiled."]),
        ("(It was late.) They slept.", ["(It was late.)", "They slept."]),
        ("Wait... what?! Oh.", ["Wait...", "what?!", "Oh."]),
        ("Mr. Brown met Dr. Lee at St. Paul's.", ["Mr. Brown met Dr. Lee at St. Paul's."]),
        ("Mrs. Fox, e.g. a fox, ran. Then rest.", ["Mrs. Fox, e.g. a fox, ran.", "Then rest."]),
        ("J. K. Rowling wrote it. Yes.", ["J. K. Rowling wrote it.", "Yes."]),
        ("Pi is 3.14 and e is 2.71. Neat.", ["Pi is 3.14 and e is 2.71.", "Neat."]),
        ("The answer is no. Sorry.", ["The answer is no.", "Sorry."]),
        ("First line\nSecond line", ["First line", "Second line"]),
        ("\n\nLeading blank lines. Done", ["Leading blank lines.", "Done"]),
        ("   ", []),
    ],
)
def test_sentence_boundaries(text: str, sentences: list[str]) -> None:
    assert chunk_all([text]) == sentences
    assert by_characters(text) == sentences


def test_a_period_at_the_end_of_a_delta_waits_for_the_next() -> None:
    chunker = SentenceChunker()
    assert chunker.feed("It cost 3.") == []
    assert chunker.feed("50 dollars. Ok") == ["It cost 3.50 dollars."]


def test_a_long_run_is_cut_at_a_comma_so_speech_starts_early() -> None:
    clause = "and the little mouse ran up and down the sleeping lion"
    text = ", ".join([clause] * 6) + "."
    pieces = by_characters(text)
    assert len(pieces) > 1
    assert all(len(piece) <= MAX_RUN_CHARS for piece in pieces)
    # After the first piece (cut early, see below), long runs end at commas.
    assert all(piece.endswith((",", ".")) for piece in pieces[1:])


def test_the_first_piece_is_spoken_after_a_few_words_without_waiting_for_a_comma() -> None:
    chunker = SentenceChunker()
    words = "The lion was very big and his paws were like soft pillows and he slept all day."
    pieces = [p for word in words.split(" ") for p in chunker.feed(word + " ")]
    first = pieces[0]
    assert 20 <= len(first) <= 60 and words.startswith(first), first
    assert pieces[1:] == [words[len(first) :].strip()], "only the first piece is cut early"


def test_a_long_run_without_commas_is_cut_between_words() -> None:
    text = " ".join(["mouse"] * 100)
    pieces = by_characters(text)
    assert len(pieces) > 1
    assert all(set(piece.split()) == {"mouse"} for piece in pieces)


def test_one_enormous_word_is_cut_anyway() -> None:
    pieces = chunk_all(["x" * 1000])
    assert "".join(pieces) == "x" * 1000
    assert all(len(piece) <= MAX_RUN_CHARS for piece in pieces)


tokens = st.sampled_from([*"abc XYZ.,!?\"'\n", "Mr.", "3.5", "e.g.", "  ", "mouse"])
texts = st.lists(tokens, max_size=40).map("".join)


@given(st.lists(texts, max_size=30))
def test_every_character_comes_out_once_in_order(deltas: list[str]) -> None:
    pieces = chunk_all(deltas)
    assert "".join("".join(pieces).split()) == "".join("".join(deltas).split())
    assert all(piece and piece == piece.strip() for piece in pieces)


@given(st.lists(texts, max_size=40))
def test_the_buffer_stays_bounded(deltas: list[str]) -> None:
    chunker = SentenceChunker()
    for delta in deltas:
        chunker.feed(delta)
        assert len(chunker._buffer) <= MAX_RUN_CHARS
