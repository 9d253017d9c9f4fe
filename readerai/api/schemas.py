"""REST request and response bodies (camelCase on the wire, like the WebSocket)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from readerai.protocol import MessageView, ProgressView


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class PassageSummary(_Body):
    id: str
    title: str
    level: str | None
    sentence_count: int


class PassageOut(_Body):
    id: str
    title: str
    level: str | None
    text: str
    sentences: list[str]


class PassageIn(_Body):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=100_000, description="Plain text or Markdown.")
    level: str | None = Field(None, max_length=40, description="Reading level, e.g. Grade 2.")


class SessionIn(_Body):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    passage_id: str | None = Field(None, max_length=64)
    class_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="The class the student is in; class broadcasts reach the session.",
    )


class SessionOut(_Body):
    id: str
    passage_id: str | None
    class_id: str | None = None
    created_at: str


class TextIn(_Body):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    text: str = Field(min_length=1, max_length=2000)


class BroadcastOut(_Body):
    broadcast_id: str
    class_id: str
    sent_at: str


class NoticeOut(_Body):
    notice_id: str
    sent_at: str
    nodes: int = Field(description="Nodes the session was connected on (0: not connected).")


class SessionDetail(SessionOut):
    progress: list[ProgressView]
    messages: list[MessageView]


class MessagePage(_Body):
    messages: list[MessageView] = Field(description="Oldest first.")
    next_before: int | None = Field(
        description="Pass as `before` to get the page before this one; null at the start."
    )


class ErrorBody(_Body):
    code: str
    message: str
    request_id: str


class ErrorResponse(_Body):
    error: ErrorBody
