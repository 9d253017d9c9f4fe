"""REST request and response bodies (camelCase on the wire, like the WebSocket)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from readerai.protocol import MessageView, ProgressView

#: The largest integer every store takes in an integer column (PostgreSQL `INTEGER`):
#: no row id or sentence index is bigger, and a bigger one must not reach the store.
MAX_STORED_INT = 2**31 - 1


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class PassageSummary(_Body):
    id: str
    title: str
    level: str | None
    sentence_count: int
    status: str = Field(description="`preparing`, `ready` or `failed`.")
    narration: bool = Field(description="Whether every sentence has recorded audio.")


class PassageOut(_Body):
    id: str
    title: str
    level: str | None
    text: str
    sentences: list[str]
    status: str = Field(description="`preparing`, `ready` or `failed`.")
    narration: bool = Field(
        description="Whether every sentence has recorded audio (`.../audio/{index}`)."
    )


class PassageIn(_Body):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=100_000, description="Plain text or Markdown.")
    level: str | None = Field(None, max_length=40, description="Reading level, e.g. Grade 2.")
    format: Literal["text", "markdown"] = Field(
        "text", description="`markdown` is turned into plain text when the passage is added."
    )


class PassageAccepted(_Body):
    job_id: str = Field(description="Follow the preparation at `GET /api/jobs/{jobId}`.")
    passage_id: str


class JobOut(_Body):
    id: str
    kind: str
    status: str = Field(description="`queued`, `running`, `completed` or `failed`.")
    progress: float = Field(description="From 0 to 1.")
    detail: str | None = Field(description="Why it failed, or a note.")
    passage_id: str | None = Field(description="The passage it prepares, if it does.")
    created_at: str
    updated_at: str


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
    user_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Teachers and admins: the student it is for.",
    )


class SessionOut(_Body):
    id: str
    passage_id: str | None
    class_id: str | None = None
    user_id: str | None = None
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


class CodeIn(_Body):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    code: str = Field(min_length=4, max_length=32, description="A one-time sign-in code.")


class TokenOut(_Body):
    token: str
    role: str
    user_id: str
    name: str
    class_id: str | None
    expires_at: str


class MeOut(_Body):
    user_id: str
    role: str
    name: str
    class_id: str | None


class ClassIn(_Body):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    id: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    teacher_id: str | None = Field(
        None, max_length=64, description="Admins only: the teacher (default: yourself)."
    )


class StudentView(_Body):
    user_id: str
    name: str


class ClassOut(_Body):
    id: str
    name: str
    teacher_id: str
    student_count: int = 0


class ClassDetail(ClassOut):
    students: list[StudentView]


class StudentIn(_Body):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    user_id: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")


class SignInCode(_Body):
    user_id: str
    name: str
    code: str
    code_expires_at: str


class BroadcastView(_Body):
    broadcast_id: str
    class_id: str
    text: str
    sent_at: str


class RosterEntry(_Body):
    user_id: str
    name: str
    online: bool
    session_id: str | None
    passage_id: str | None
    position: int | None
    questions: int
    last_activity: str | None
