"""Grounding: sentence splitting, context selection and citations."""

from __future__ import annotations

import pytest

from readerai.grounding import cite, score_sentences, select_context, split_sentences, stem, tokens

KITE = [
    "Mia had a small red kite.",
    "Every Saturday she flew it at the park with her grandfather.",
    "One windy day the string snapped and the kite floated away over the trees.",
    "Mia was sad, but her grandfather helped her build a new kite from paper and sticks.",
    "The new kite was blue and flew even higher.",
]


# --------------------------------------------------------------- split_sentences


def test_split_sentences_on_end_marks() -> None:
    assert split_sentences("The cat sat. Did it purr? Yes! It did.") == [
        "The cat sat.",
        "Did it purr?",
        "Yes!",
        "It did.",
    ]


def test_titles_and_abbreviations_do_not_end_a_sentence() -> None:
    text = "Mr. Lee met Dr. Ada Jones on Main St. at noon. They ate soup, e.g. tomato soup."
    assert split_sentences(text) == [
        "Mr. Lee met Dr. Ada Jones on Main St. at noon.",
        "They ate soup, e.g. tomato soup.",
    ]


def test_initials_and_dotted_abbreviations_stay_in_their_sentence() -> None:
    text = "J. K. Rowling lives in the U.K. today. So do I. The end."
    assert split_sentences(text) == [
        "J. K. Rowling lives in the U.K. today.",
        "So do I.",
        "The end.",
    ]


def test_quotes_close_the_sentence_they_end() -> None:
    text = '"Run!" said Tom. He said, "Stop." Then he left. "Come back," she called.'
    assert split_sentences(text) == [
        '"Run!" said Tom.',
        'He said, "Stop."',
        "Then he left.",
        '"Come back," she called.',
    ]


def test_curly_quotes_and_ellipses() -> None:
    text = "\u201cWait\u2026 what?\u201d asked Sam. \u201cNothing.\u201d Sam smiled."
    assert split_sentences(text) == [
        "\u201cWait\u2026 what?\u201d asked Sam.",
        "\u201cNothing.\u201d",
        "Sam smiled.",
    ]


def test_soft_wrapped_lines_join_and_paragraphs_separate() -> None:
    text = "The fox ran\ninto the woods.\n\nA new paragraph without an end mark\n\nLast one."
    assert split_sentences(text) == [
        "The fox ran into the woods.",
        "A new paragraph without an end mark",
        "Last one.",
    ]


def test_markdown_headings_and_rules_are_dropped_and_markers_removed() -> None:
    text = (
        "# The Fox\n\nThe fox ran.\n\n---\n\n"
        "## Part two\n- First thing\n- Second thing.\n> Quoted line."
    )
    assert split_sentences(text) == [
        "The fox ran.",
        "First thing",
        "Second thing.",
        "Quoted line.",
    ]


def test_empty_and_blank_text_has_no_sentences() -> None:
    assert split_sentences("") == []
    assert split_sentences(" \n\n \r\n") == []


def test_windows_newlines_and_extra_spaces_are_normalised() -> None:
    assert split_sentences("One  two.\r\nThree   four.\r\n") == ["One two.", "Three four."]


# --------------------------------------------------------------- tokens and stems


@pytest.mark.parametrize(
    ("words", "key"),
    [
        (["jump", "jumps", "jumped", "jumping"], "jump"),
        (["run", "running"], "run"),
        (["story", "stories"], "story"),
        (["make", "makes", "making"], "mak"),
        (["box", "boxes"], "box"),
        (["string", "strings"], "str"),
    ],
)
def test_inflections_share_one_stem(words: list[str], key: str) -> None:
    assert {stem(word) for word in words} == {key}


def test_tokens_drop_stopwords_possessives_and_case() -> None:
    assert tokens("Why was Mia's KITE in the trees?") == ["mia", "kit", "tre"]


# --------------------------------------------------------------- select_context


def test_all_sentences_in_order_when_under_the_limit() -> None:
    assert select_context(KITE, "anything", 5) == list(enumerate(KITE))


def test_best_sentences_returned_in_passage_order_with_indices() -> None:
    chosen = select_context(KITE, "What color was the new kite?", 2)
    assert chosen == [(3, KITE[3]), (4, KITE[4])]


def test_stemming_matches_inflected_question_words() -> None:
    chosen = select_context(KITE, "Who helps Mia?", 1)
    assert chosen == [(3, KITE[3])]


def test_rare_words_outweigh_common_ones() -> None:
    # "kite" is in four sentences, "snapped" in one.
    assert select_context(KITE, "Which kite snapped?", 1) == [(2, KITE[2])]


def test_question_with_no_matching_word_gets_the_start_of_the_passage() -> None:
    assert select_context(KITE, "Hello there!", 2) == [(0, KITE[0]), (1, KITE[1])]
    assert score_sentences(KITE, "Hello there!") == [0.0] * len(KITE)


def test_limit_zero_selects_nothing_and_negative_is_refused() -> None:
    assert select_context(KITE, "kite", 0) == []
    with pytest.raises(ValueError, match="negative"):
        select_context(KITE, "kite", -1)


# --------------------------------------------------------------- cite


def test_cite_finds_the_sentence_an_answer_paraphrases() -> None:
    assert cite("The new kite was blue.", list(enumerate(KITE))) == [4]


def test_cite_lists_every_sentence_used_sorted() -> None:
    answer = "The string snapped and the kite floated away. The new one was blue."
    assert cite(answer, list(enumerate(KITE))) == [2, 4]


def test_cite_credits_a_second_sentence_for_what_the_first_did_not_cover() -> None:
    answer = "Mia was sad because the string snapped and her kite floated away."
    assert cite(answer, list(enumerate(KITE))) == [2, 3]


def test_cite_ignores_sentences_whose_words_were_already_explained() -> None:
    # Quoting sentences 1 and 3 also repeats "Mia", "kite", "new" and "flew",
    # which sentences 0 and 4 contain; those are not cited.
    assert cite(f"{KITE[1]} {KITE[3]}", list(enumerate(KITE))) == [1, 3]


def test_cite_uses_the_context_indices_not_positions() -> None:
    context = [(7, KITE[2]), (12, KITE[4])]
    assert cite("It was blue and flew higher.", context) == [12]


def test_cite_is_empty_when_nothing_matches() -> None:
    assert cite("I do not know.", list(enumerate(KITE))) == []
    assert cite("", list(enumerate(KITE))) == []
    assert cite("The kite was blue.", []) == []


def test_one_shared_word_is_not_a_citation() -> None:
    assert cite("Grandfather!", list(enumerate(KITE))) == []
