"""REST request and response bodies (camelCase on the wire, like the WebSocket)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from readerai.protocol import MessageView, ProgressView

#: How the tutor helps a student stalled on a word while reading aloud.
StallHelp = Literal["off", "say_word", "ask"]
#: Longest stall a class may set before help is offered, in seconds.
MAX_STALL_SECONDS = 120.0

#: The largest integer every store takes in an integer column (PostgreSQL `INTEGER`):
#: no row id or sentence index is bigger, and a bigger one must not reach the store.
MAX_STORED_INT = 2**31 - 1

#: A name or title as people type it: stripped of surrounding whitespace, then 1 to 200
#: characters (one of only spaces or line breaks is refused with 422, not stored empty).
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


#: What `sentenceStarts` says, in a passage and in a summary of one.
SENTENCE_STARTS = (
    "Character offset in `text` (in code points) where each sentence starts, by index: "
    "the sentence containing a reading `position` is the last one starting at or before it."
)


class PassageSummary(_Body):
    id: str
    title: str
    level: str | None
    sentence_count: int
    sentence_starts: list[int] = Field(description=SENTENCE_STARTS)
    status: str = Field(description="`preparing`, `ready` or `failed`.")
    narration: bool = Field(description="Whether every sentence has recorded audio.")


class PassageOut(_Body):
    id: str
    title: str
    level: str | None
    text: str
    sentences: list[str]
    sentence_starts: list[int] = Field(description=SENTENCE_STARTS)
    status: str = Field(description="`preparing`, `ready` or `failed`.")
    narration: bool = Field(
        description="Whether every sentence has recorded audio (`.../audio/{index}`)."
    )


class PassageIn(_Body):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    title: Name
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
    name: Name
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
    stall_seconds: float = Field(
        5.0, description="Read-aloud: seconds stalled on one word before help is offered."
    )
    stall_help: StallHelp = Field(
        "say_word",
        description="Read-aloud help for a stalled reader: `off`, `say_word` or `ask`.",
    )


class ClassHelpIn(_Body):
    """`PATCH /api/classes/{classId}`: the fields given change, the others stay."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    stall_seconds: float | None = Field(
        None,
        ge=0,
        le=MAX_STALL_SECONDS,
        allow_inf_nan=False,
        description="Seconds of silence on one word before the tutor offers help.",
    )
    stall_help: StallHelp | None = Field(
        None, description="`off`, `say_word` (the tutor says the word) or `ask` (asks a question)."
    )


class ClassDetail(ClassOut):
    students: list[StudentView]


class StudentIn(_Body):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
    name: Name
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
    position: int | None = Field(
        description="Where the student is in the passage: a character offset into its text "
        "(the passage's `sentenceStarts` give the sentence)."
    )
    questions: int
    last_activity: str | None


class ReadingMiscueOut(_Body):
    kind: str = Field(
        description="`omission`, `substitution`, `insertion`, `repetition` or `self_correction`."
    )
    word_index: int | None = Field(description="The passage word (null for an insertion).")
    expected: str = Field(description="The passage word (empty for an insertion).")
    heard: str = Field(description="What was said (empty for an omission).")
    time: float = Field(description="Seconds into the reading's audio.")


class ReadingSummary(_Body):
    reading_id: str
    session_id: str
    user_id: str | None
    class_id: str | None
    passage_id: str
    started_at: str = Field(description="When read-aloud mode started, ISO 8601 UTC.")
    ended_at: str = Field(description="When the reading ended, ISO 8601 UTC.")
    duration_seconds: float = Field(description="From the first word read to the last.")
    words_attempted: int
    words_correct: int
    errors: int = Field(description="Omissions and substitutions.")
    wcpm: float = Field(description="Words correct per minute.")
    accuracy: float = Field(description="Words correct / words attempted, from 0 to 1.")
    miscues: list[ReadingMiscueOut] = Field(description="In the order they were made.")


class PassageWordOut(_Body):
    text: str
    start: int = Field(description="Character offset in the passage text.")
    end: int


class HeardWordOut(_Body):
    heard: str
    start: float = Field(description="Seconds into the reading's audio.")
    end: float
    word_index: int | None = Field(description="The passage word it was read as (null: inserted).")
    correct: bool


class ReadingDetail(ReadingSummary):
    """One reading for replay: the passage, its words, and every heard word in time."""

    passage_title: str | None = Field(description="Null if the passage was removed since.")
    passage_text: str | None
    words: list[PassageWordOut] = Field(description="The passage's words, by `wordIndex`.")
    timeline: list[HeardWordOut]


class FluencyPoint(_Body):
    reading_id: str
    ended_at: str
    wcpm: float
    accuracy: float
    words_correct: int
    words_attempted: int


class PassageFluency(_Body):
    passage_id: str
    title: str | None
    readings: list[FluencyPoint] = Field(description="Oldest first.")


class StudentFluency(_Body):
    user_id: str
    class_id: str
    passages: list[PassageFluency] = Field(description="By the passage's first reading.")


class MissedWordOut(_Body):
    word: str = Field(description="Lower case.")
    misses: int = Field(description="Omissions and substitutions of it.")
    readings: int = Field(description="Readings it was missed in.")
