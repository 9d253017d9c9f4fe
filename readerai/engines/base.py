"""The `Engine` interface: given the conversation and the passage, yield text deltas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: Literal["student", "tutor"]
    text: str


@dataclass(frozen=True, slots=True)
class EngineRequest:
    """Everything an engine needs to answer one question."""

    question: str
    #: Passage sentences chosen for this question, with their index in the passage.
    context: list[tuple[int, str]] = field(default_factory=list)
    passage_title: str | None = None
    #: Earlier turns of the conversation, oldest first.
    history: list[ChatTurn] = field(default_factory=list)
    max_tokens: int = 160


class Engine(Protocol):
    """Streams a reply. Cancelling the consuming task must abort the upstream work
    (the HTTP request, or generation between two tokens) promptly."""

    name: str

    async def start(self) -> None:
        """Load models or check the upstream; raise if the engine cannot work."""

    async def close(self) -> None: ...

    def stream(self, request: EngineRequest) -> AsyncIterator[str]:
        """Yield text deltas of the reply in order."""
        ...
