"""The chat messages every model-backed engine sends: instructions, passage, history, question.

Layout (chosen by trying several on SmolLM2-135M-Instruct, the weakest model we
ship): the instructions in the system message, the numbered passage sentences as
the first user message acknowledged by the assistant, then the recent history,
then the question on its own. With the passage and the question in one message the
small model tended to recite the passage back; in the system message it more often
answered about the title instead of the question.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from readerai.engines.base import ChatTurn, EngineRequest

SYSTEM_PROMPT = (
    "You are a friendly reading tutor talking with a young child. "
    "Answer the child's question in one to three short, simple sentences, "
    "using only the numbered passage sentences. "
    "If the passage does not say, say so kindly. Do not repeat the passage."
)
NO_PASSAGE = "There is no passage yet."
PASSAGE_ACKNOWLEDGED = "I have read the passage."
#: Earlier messages kept in the prompt (one exchange): each one costs prefill time
#: before the first token (measured by bench/voice.py) and distracts small models.
MAX_HISTORY_TURNS = 2
#: Longest text of one earlier turn kept in the prompt, in characters.
MAX_TURN_CHARS = 300


class ChatMessage(TypedDict):
    """One message in the OpenAI chat format, which llama-cpp-python also takes."""

    role: Literal["system", "user", "assistant"]
    content: str


def build_messages(request: EngineRequest) -> list[ChatMessage]:
    """System prompt, the passage (numbered), the last few turns, then the question.

    Roles alternate user/assistant after the system message, as strict chat
    templates require: leading tutor turns are dropped and consecutive messages of
    one role (a question whose reply failed, then the next) are merged.
    """
    messages: list[ChatMessage] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": passage_text(request)},
        {"role": "assistant", "content": PASSAGE_ACKNOWLEDGED},
    ]
    for message in [*_history(request.history), _user(request.question)]:
        if messages[-1]["role"] == message["role"]:
            merged = f"{messages[-1]['content']}\n{message['content']}"
            messages[-1] = {"role": message["role"], "content": merged}
        else:
            messages.append(message)
    return messages


def passage_text(request: EngineRequest) -> str:
    """The context sentences, numbered by passage position (index + 1), one per line."""
    if not request.context:
        return NO_PASSAGE
    title = request.passage_title
    heading = f'Here is the passage "{title}".' if title else "Here is the passage."
    lines = [f"[{index + 1}] {sentence}" for index, sentence in request.context]
    return "\n".join([heading, *lines])


def _user(text: str) -> ChatMessage:
    return {"role": "user", "content": text.strip()}


def _history(turns: list[ChatTurn]) -> list[ChatMessage]:
    messages: list[ChatMessage] = []
    for turn in turns[-MAX_HISTORY_TURNS:]:
        text = turn.text.strip()[:MAX_TURN_CHARS]
        if not text:
            continue  # a cancelled reply with no text says nothing to the model
        if turn.role == "student":
            messages.append(_user(text))
        elif messages:  # a tutor turn before any kept question answers nothing we show
            messages.append({"role": "assistant", "content": text})
    return messages
