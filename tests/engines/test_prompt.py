"""The chat messages model-backed engines send."""

from __future__ import annotations

from readerai.engines.base import ChatTurn, EngineRequest
from readerai.engines.prompt import (
    MAX_HISTORY_TURNS,
    MAX_TURN_CHARS,
    NO_PASSAGE,
    PASSAGE_ACKNOWLEDGED,
    SYSTEM_PROMPT,
    build_messages,
)

CONTEXT = [(0, "Mia had a small red kite."), (4, "The new kite was blue.")]


def test_system_then_numbered_passage_then_question() -> None:
    request = EngineRequest(" What color? ", CONTEXT, passage_title="Mia's Kite")
    assert build_messages(request) == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "user",
            "content": 'Here is the passage "Mia\'s Kite".\n'
            "[1] Mia had a small red kite.\n[5] The new kite was blue.",
        },
        {"role": "assistant", "content": PASSAGE_ACKNOWLEDGED},
        {"role": "user", "content": "What color?"},
    ]


def test_system_prompt_asks_for_short_grounded_answers_for_a_young_reader() -> None:
    assert "young child" in SYSTEM_PROMPT
    assert "one to three short" in SYSTEM_PROMPT
    assert "only the numbered passage sentences" in SYSTEM_PROMPT


def test_without_context_the_model_is_told_there_is_no_passage() -> None:
    messages = build_messages(EngineRequest("Hi?"))
    assert messages[1] == {"role": "user", "content": NO_PASSAGE}


def test_history_maps_student_to_user_and_tutor_to_assistant() -> None:
    history = [ChatTurn("student", "Who is Mia?"), ChatTurn("tutor", "A girl with a kite.")]
    messages = build_messages(EngineRequest("What color?", CONTEXT, history=history))
    assert [(m["role"], m["content"]) for m in messages[3:]] == [
        ("user", "Who is Mia?"),
        ("assistant", "A girl with a kite."),
        ("user", "What color?"),
    ]


def test_only_the_last_turns_are_kept_and_long_ones_are_cut() -> None:
    history = [
        ChatTurn("student" if i % 2 == 0 else "tutor", f"turn {i} " + "x" * 1000) for i in range(20)
    ]
    messages = build_messages(EngineRequest("Now?", CONTEXT, history=history))
    earlier = messages[3:-1]
    assert len(earlier) == MAX_HISTORY_TURNS
    assert earlier[0]["content"].startswith(f"turn {20 - MAX_HISTORY_TURNS} ")
    assert all(len(m["content"]) == MAX_TURN_CHARS for m in earlier)


def test_roles_alternate_even_after_a_failed_or_leading_reply() -> None:
    history = [
        ChatTurn("tutor", "An answer to a question no longer shown."),
        ChatTurn("student", "First question?"),
        ChatTurn("tutor", ""),  # cancelled before any text
    ]
    messages = build_messages(EngineRequest("Second question?", CONTEXT, history=history))
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert messages[-1]["content"] == "First question?\nSecond question?"
