"""Stall help while reading aloud, without a model: when a stall is noticed (on the
reading's audio clock, driven by hand here), what the tutor says, and where a
reading resumes."""

from __future__ import annotations

from readerai.readaloud.stall import StallWatch, help_line
from readerai.readaloud.words import tokenize
from readerai.session.read_aloud import resume_at

TEXT = "Sam found a small brown puppy. The puppy was cold and hungry, so Sam took it home."
WORDS = tokenize(TEXT)


def test_a_reader_who_stops_is_offered_help_once_after_the_stall_time() -> None:
    watch = StallWatch(5.0)
    watch.moved(1.2)  # a word read, ending 1.2 s into the reading
    assert watch.check(4.0) is None
    assert watch.check(6.1) is None  # 4.9 s unmoved: not yet
    stall = watch.check(6.3)
    assert stall is not None and stall.kind == "stopped"
    assert abs(stall.seconds - 5.1) < 1e-9
    assert watch.check(9.0) is None  # once per stall
    assert watch.check(60.0) is None


def test_help_is_offered_again_only_after_the_reader_moves_on() -> None:
    watch = StallWatch(2.0)
    assert watch.check(2.5) is not None  # never started: stalled on the first word
    watch.moved(3.0)
    assert watch.check(4.5) is None
    assert watch.check(5.0) is not None  # a new stall


def test_speech_that_does_not_move_the_reader_is_a_reader_stuck_on_a_word() -> None:
    watch = StallWatch(3.0)
    watch.moved(2.0)
    watch.heard(3.5)  # "b-b-bak": heard, but the position stays
    stall = watch.check(5.0)
    assert stall is not None and stall.kind == "stuck"


def test_words_heard_before_the_last_move_do_not_make_it_stuck() -> None:
    watch = StallWatch(3.0)
    watch.moved(4.0)
    watch.heard(3.9)  # a revision of words already counted
    stall = watch.check(7.0)
    assert stall is not None and stall.kind == "stopped"


def test_a_reply_in_flight_stops_the_stall_clock() -> None:
    watch = StallWatch(3.0)
    watch.moved(1.0)
    watch.hold(2.0)  # a question turn runs from 2 s...
    watch.hold(5.5)  # ...to 5.5 s: the reader was listening, not stalled
    assert watch.check(6.0) is None
    assert watch.check(8.0) is None
    assert watch.check(8.5) is not None  # 3 s after the reply


def test_say_word_says_the_next_word_as_written() -> None:
    assert help_line("say_word", TEXT, WORDS, 5) == "The word is “puppy”."
    assert help_line("say_word", TEXT, WORDS, 0) == "The word is “Sam”."


def test_ask_quotes_the_sentence_read_so_far_and_asks_what_comes_next() -> None:
    line = help_line("ask", TEXT, WORDS, 11)  # stalled before "hungry"
    assert line == "You read “The puppy was cold and…”. What do you think comes next?"
    first = help_line("ask", TEXT, WORDS, 0)
    assert first is not None and first.endswith("?")


def test_ask_quotes_at_most_a_dozen_words() -> None:
    text = " ".join(f"w{i}" for i in range(40)) + "."
    line = help_line("ask", text, tokenize(text), 30)
    assert (
        line
        == f"You read “{' '.join(f'w{i}' for i in range(18, 30))}…”. What do you think comes next?"
    )


def test_no_help_when_off_or_past_the_last_word() -> None:
    assert help_line("off", TEXT, WORDS, 3) is None
    assert help_line("say_word", TEXT, WORDS, len(WORDS)) is None


def test_a_reading_resumes_after_the_word_last_heard() -> None:
    cold = next(i for i, w in enumerate(WORDS) if w.text == "cold")
    assert resume_at(TEXT, WORDS[cold].start) == cold + 1


def test_a_reading_starts_from_the_top_without_a_word_position() -> None:
    assert resume_at(TEXT, None) == 0
    assert resume_at(TEXT, WORDS[-1].start) == 0  # read to the end: a new reading
