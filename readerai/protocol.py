"""The wire protocol: every event, client to server and server to client, as a typed model.

A frame is JSON text ``{"type": "EVENT_NAME", "payload": {...}}``. Field names on the
wire are camelCase (``questionText``, ``turnId``). This module is sans-I/O: it parses
and serialises, and knows nothing of sockets. ``docs/protocol.md`` is generated from
it (``python -m readerai.protocol``) and a test keeps the two equal.
"""

from __future__ import annotations

import enum
import re
from typing import Any, ClassVar, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from readerai.errors import InvalidJSON, InvalidPayload, TextTooLong, UnknownEventType

PROTOCOL_VERSION = 1


class ReplyStatus(enum.StrEnum):
    """How a tutor reply ended (``in_progress`` only while it streams)."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ClientEvent(_Model):
    """Base of events a client sends; validated strictly (no "3" for 3)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, strict=True
    )

    TYPE: ClassVar[str]


class ServerEvent(_Model):
    """Base of events the server sends."""

    TYPE: ClassVar[str]
    #: Ephemeral events may be dropped (oldest first) when a client falls behind.
    EPHEMERAL: ClassVar[bool] = False


# ---------------------------------------------------------------- client -> server


class StudentInterruption(ClientEvent):
    """The student asks a question; cancels any reply in flight (barge-in)."""

    TYPE = "STUDENT_INTERRUPTION"
    question_text: str = Field(min_length=1, description="The question, plain text.")


class ReadingProgress(ClientEvent):
    """Where the student is reading; the latest position per passage is kept.
    One unit everywhere: `position` is a character offset into the passage's `text`,
    counted in code points (Python's string index). A page moving by sentence sends
    the start of the sentence (`GET /api/passages/{id}` gives `sentenceStarts`); in
    `read_aloud` mode the server stores the start of each word it hears. The sentence
    a position is in is the last one starting at or before it; a reading aloud
    started again resumes after the word starting at or before it. (Older pages sent
    a sentence index here: one still stored reads as an offset near the start.)"""

    TYPE = "READING_PROGRESS"
    passage_id: str = Field(min_length=1, max_length=64, description="Passage being read.")
    position: int = Field(
        ge=0,
        le=10_000_000,
        description="Character offset into the passage's text (in code points), at most its "
        "length: the start of the sentence (or word) the student is at. Beyond the text: "
        "`invalid_payload`.",
    )


class ResponseCancel(ClientEvent):
    """Stop the reply in flight; it is stored as ``cancelled`` with the text sent."""

    TYPE = "RESPONSE_CANCEL"
    turn_id: str | None = Field(None, description="Only cancel if this turn is in flight.")


class AudioConfig(_Model):
    """Audio settings of a session; sending this turns voice on."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, strict=True
    )
    input_format: str = Field("pcm16", max_length=32, description="Only `pcm16` (mono, LE).")
    input_sample_rate: int = Field(16_000, description="Only 16000.")
    output: bool = Field(True, description="Speak replies as binary audio frames.")


class SessionUpdate(ClientEvent):
    """Change session settings; fields left out are unchanged."""

    TYPE = "SESSION_UPDATE"
    passage_id: str | None = Field(
        None, max_length=64, description="Passage the questions are about."
    )
    turn_detection: Literal["server_vad", "manual"] | None = Field(
        None,
        description="`server_vad`: the server hears when a question ends; `manual`: "
        "push-to-talk, the question ends with `AUDIO_COMMIT`.",
    )
    voice: str | None = Field(None, max_length=64, description="Voice of spoken replies.")
    audio: AudioConfig | None = Field(None, description="Turns audio on (see binary frames).")
    mode: Literal["conversation", "read_aloud"] | None = Field(
        None,
        description="`read_aloud`: binary audio frames are the student reading the passage "
        "(`passageId` here or the session's) aloud; the server follows them and sends "
        "`READING_PROGRESS`. `conversation` (the default): audio frames are questions.",
    )


class AudioCommit(ClientEvent):
    """Push-to-talk: the audio sent since the last commit is one question."""

    TYPE = "AUDIO_COMMIT"


class AudioStart(ClientEvent):
    """Push-to-talk pressed (`turnDetection: manual`): the audio from here to
    `AUDIO_COMMIT` is a question. In `read_aloud` mode it goes to the question, not the
    reading, which goes on after the commit; in conversation mode it is optional."""

    TYPE = "AUDIO_START"


class PlaybackPosition(ClientEvent):
    """Playback of a reply's audio stopped at `ms` (sent when it stops early)."""

    TYPE = "PLAYBACK_POSITION"
    turn_id: str = Field(min_length=1, max_length=64)
    ms: int = Field(ge=0, le=3_600_000, description="Milliseconds of the reply's audio played.")


class Ping(ClientEvent):
    """Application-level liveness check; answered by ``PONG`` with the same id."""

    TYPE = "PING"
    id: str | None = Field(None, max_length=64, description="Echoed in the PONG.")


# ---------------------------------------------------------------- server -> client


class MessageView(_Model):
    """One stored message of the conversation."""

    id: int = Field(description="Store id; increases with time within a session.")
    turn_id: str = Field(description="Turn the message belongs to.")
    role: Literal["student", "tutor"]
    text: str
    status: ReplyStatus
    citations: list[int] = Field(default_factory=list, description="Cited sentence indices.")
    created_at: str = Field(description="ISO 8601, UTC.")


class ProgressView(_Model):
    """The latest reading position in one passage."""

    passage_id: str
    position: int = Field(
        description="Character offset into the passage's text: the client's `READING_PROGRESS`, "
        "or the start of the word last heard read aloud."
    )
    updated_at: str = Field(description="ISO 8601, UTC.")


class InflightView(_Model):
    """A reply still streaming when the client connected."""

    turn_id: str
    question_text: str
    seq: int = Field(description="Last delta sequence number included in ``text``.")
    text: str = Field(description="The reply so far; later deltas continue from ``seq + 1``.")


class BroadcastView(_Model):
    """A teacher's broadcast to the class."""

    broadcast_id: str
    class_id: str
    text: str
    sent_at: str = Field(description="ISO 8601, UTC.")


class SessionRestored(ServerEvent):
    """First event on every connection: the state to show."""

    TYPE = "SESSION_RESTORED"
    protocol_version: int = PROTOCOL_VERSION
    session_id: str
    passage_id: str | None
    messages: list[MessageView] = Field(description="The last N messages, oldest first.")
    progress: list[ProgressView]
    inflight: InflightView | None = Field(description="A reply still streaming, if any.")
    broadcasts: list[BroadcastView] = Field(
        default_factory=list, description="The class's last broadcasts, oldest first."
    )
    node_id: str = Field("", description="The server node holding this connection (for operators).")


class InterruptionAcknowledged(ServerEvent):
    """The question is stored; its reply will follow under ``turnId``."""

    TYPE = "INTERRUPTION_ACKNOWLEDGED"
    turn_id: str
    timestamp: str = Field(description="When the question was stored, ISO 8601 UTC.")


class ResponseQueued(ServerEvent):
    """The engine is busy; the reply waits at ``position`` (1 = next)."""

    TYPE = "RESPONSE_QUEUED"
    EPHEMERAL = True
    turn_id: str
    position: int = Field(ge=1)


#: Why the tutor started a turn nobody asked for (`RESPONSE_STARTED.reason`).
TurnReason = Literal["reading_help"]


class ResponseStarted(ServerEvent):
    """The engine started on this turn. A turn the tutor starts unasked (no question,
    no `INTERRUPTION_ACKNOWLEDGED`) says why in ``reason``."""

    TYPE = "RESPONSE_STARTED"
    turn_id: str
    reason: TurnReason | None = Field(
        None,
        description="Null for a reply to a question. `reading_help`: in `read_aloud` mode "
        "the student stalled, and the tutor offers help (the class's `stallHelp`).",
    )


class ResponseDelta(ServerEvent):
    """A piece of the reply; ``seq`` starts at 1 and has no gaps within a turn."""

    TYPE = "RESPONSE_DELTA"
    turn_id: str
    seq: int = Field(ge=1)
    text: str


class ReadAloudProgress(ServerEvent):
    """In `read_aloud` mode: the passage word the student has read up to, as heard.

    Sent at most every 200 ms and only when the word changes; it never moves back,
    except when the student is heard re-reading an earlier part."""

    TYPE = "READING_PROGRESS"
    EPHEMERAL = True
    passage_id: str = Field(description="Passage being read.")
    position: int = Field(description="Character offset of the word in the passage text.")
    word_index: int = Field(description="Index of the word in the passage, from 0.")


class ReadingMiscueView(_Model):
    """One departure from the passage text in a reading aloud (oral reading fluency
    conventions: omissions and substitutions are errors; insertions, repetitions and
    self-corrections are not)."""

    kind: str = Field(
        description="`omission`, `substitution`, `insertion`, `repetition` or `self_correction`."
    )
    word_index: int | None = Field(description="The passage word (null for an insertion).")
    expected: str = Field(description="The passage word's text (empty for an insertion).")
    heard: str = Field(description="What was said (empty for an omission).")


class ReadingResult(ServerEvent):
    """In `read_aloud` mode: a reading ended (`SESSION_UPDATE {mode: conversation}`,
    another passage) and was scored and stored. A reading of fewer than 3 passage
    words is neither scored nor sent."""

    TYPE = "READING_RESULT"
    passage_id: str
    reading_id: str = Field(description="The stored reading (`GET /api/readings/{readingId}`).")
    wcpm: float = Field(description="Words correct per minute, first word read to last.")
    accuracy: float = Field(description="Words correct / words attempted, from 0 to 1.")
    words_correct: int
    words_attempted: int = Field(description="Passage words from the first read to the last.")
    miscues: list[ReadingMiscueView] = Field(description="In the order they were made.")


class Transcript(ServerEvent):
    """What the server heard. `final: false` (text may be empty) means the student is
    speaking: stop playing the tutor's audio. The final text becomes a question."""

    TYPE = "TRANSCRIPT"
    text: str
    final: bool


class ReplyAudio(ServerEvent):
    """Spoken reply; sent as a binary frame (layout under "Binary frames"), not JSON."""

    TYPE = "REPLY_AUDIO"
    turn_id: str
    seq: int = Field(ge=1)
    sample_rate: int
    pcm: bytes


class ErrorInfo(_Model):
    """What went wrong, by stable code."""

    code: str
    message: str


class ResponseDone(ServerEvent):
    """The reply ended; ``text`` is exactly what was stored."""

    TYPE = "RESPONSE_DONE"
    turn_id: str
    status: ReplyStatus
    text: str
    citations: list[int] = Field(description="Passage sentence indices the answer used.")
    error: ErrorInfo | None = None


class Error(ServerEvent):
    """A client event was refused; the connection lives on unless it is closed next."""

    TYPE = "ERROR"
    code: str = Field(description="Stable error code, see errors.py.")
    message: str
    turn_id: str | None = None


class ClassBroadcast(ServerEvent):
    """A teacher's message to the whole class; reaches every connected student once."""

    TYPE = "CLASS_BROADCAST"
    class_id: str
    broadcast_id: str
    text: str
    sent_at: str = Field(description="When it was sent, ISO 8601 UTC.")


class Notice(ServerEvent):
    """A message to this session alone, sent through any node (`POST .../notices`)."""

    TYPE = "NOTICE"
    notice_id: str
    text: str
    sent_at: str = Field(description="When it was sent, ISO 8601 UTC.")


class Pong(ServerEvent):
    """Answer to ``PING``."""

    TYPE = "PONG"
    EPHEMERAL = True
    id: str | None = None


CLIENT_EVENTS: dict[str, type[ClientEvent]] = {
    cls.TYPE: cls
    for cls in (
        StudentInterruption,
        ReadingProgress,
        ResponseCancel,
        SessionUpdate,
        AudioCommit,
        AudioStart,
        PlaybackPosition,
        Ping,
    )
}
SERVER_EVENTS: tuple[type[ServerEvent], ...] = (
    SessionRestored,
    InterruptionAcknowledged,
    ResponseQueued,
    ResponseStarted,
    ResponseDelta,
    ResponseDone,
    Transcript,
    ReadAloudProgress,
    ReadingResult,
    ClassBroadcast,
    Notice,
    Error,
    Pong,
)
_SERVER_EVENTS_BY_TYPE: dict[str, type[ServerEvent]] = {cls.TYPE: cls for cls in SERVER_EVENTS}


#: Most characters of a client-chosen name (a type, a field) an error message repeats.
#: Errors wait in the client's bounded outbound queue: were they to echo what the
#: client sent, a client sending 64 KiB field names and not reading would make the
#: server hold hundreds of such copies before the queue limit closes it.
_ECHOED_CHARS = 40


def parse_client_event(frame: str | bytes, *, max_question_chars: int) -> ClientEvent:
    """Parse one text frame into a client event, or raise a ``ProtocolError``."""
    try:
        raw: Any = pydantic_core.from_json(frame)
    except (ValueError, TypeError) as exc:
        # TypeError: a `str` holding lone surrogates, which is not valid Unicode text.
        raise InvalidJSON("frame is not valid JSON") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise InvalidPayload('frame must be an object {"type": "...", "payload": {...}}')
    event_type: str = raw["type"]
    cls = CLIENT_EVENTS.get(event_type)
    if cls is None:
        raise UnknownEventType(f"unknown event type {event_type[:_ECHOED_CHARS]!r}")
    payload = raw.get("payload", {})
    try:
        event = cls.model_validate(payload)
    except ValidationError as exc:
        raise InvalidPayload(f"{event_type}: {_describe(exc)}") from exc
    if isinstance(event, StudentInterruption):
        text = event.question_text.strip()
        if not text:
            raise InvalidPayload("STUDENT_INTERRUPTION: questionText is empty")
        if len(text) > max_question_chars:
            raise TextTooLong(f"questionText is longer than {max_question_chars} characters")
        event = StudentInterruption(question_text=text)
    return event


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:3]:
        where = ".".join(str(p)[:_ECHOED_CHARS] for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def encode(event: ServerEvent) -> str:
    """Serialise a server event to its JSON text frame."""
    body = {"type": event.TYPE, "payload": event.model_dump(mode="json", by_alias=True)}
    return pydantic_core.to_json(body).decode()


def decode_server_event(frame: str | bytes) -> ServerEvent:
    """Parse what `encode` made (events that crossed nodes); ValueError if it is not one."""
    raw: Any = pydantic_core.from_json(frame)
    kind = raw.get("type") if isinstance(raw, dict) else None
    cls = _SERVER_EVENTS_BY_TYPE.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError("not a server event frame")
    return cls.model_validate(raw.get("payload", {}))


BINARY_FRAMES_DOC = [
    "## Binary frames",
    "",
    "Audio travels in binary WebSocket frames.",
    "",
    "- Client to server: after `SESSION_UPDATE {audio: {...}}`, raw PCM16 little-endian",
    "  mono at 16 kHz, any even length (20-100 ms per frame is typical). With",
    "  `turnDetection: server_vad` (the default) the server ends a question when the",
    "  student stops speaking; with `manual` it ends at `AUDIO_COMMIT`.",
    "- Client to server, after `SESSION_UPDATE {mode: read_aloud}` (no `audio` needed):",
    "  the same PCM16 frames are the student reading the passage aloud; the server",
    "  answers with `READING_PROGRESS {passageId, position, wordIndex}` until",
    "  `SESSION_UPDATE {mode: conversation}` (or another passage), then scores the reading",
    "  and sends `READING_RESULT` (also when the reading ends with the connection, it is",
    "  scored and stored). Questions sent as `STUDENT_INTERRUPTION`",
    "  meanwhile are answered as usual, and the reading is followed on from where it was.",
    "  To ask by voice, switch to `SESSION_UPDATE {mode: conversation}` (voice input on:",
    "  `audio` sent before), ask, then send `SESSION_UPDATE {mode: read_aloud, passageId}`",
    "  again: the reading resumes after the last word heard (the session's stored",
    "  position), not from the top. Or, staying in read-aloud mode, push to talk (with",
    "  `turnDetection: manual`): the audio between `AUDIO_START` and `AUDIO_COMMIT` is a",
    "  question, and the audio after it is the reading again.",
    "  When the student's position has not moved for the class's `stallSeconds` of their",
    "  audio (silence, or speech stuck on a word), the tutor offers help once per stall,",
    "  never over another reply, as a tutor turn with no question:",
    "  `RESPONSE_STARTED {turnId, reason: reading_help}`, then deltas (and audio with",
    "  voice output on) and `RESPONSE_DONE`, like any reply (no `INTERRUPTION_ACKNOWLEDGED`).",
    '  `stallHelp: say_word` says the next word ("The word is “lion”."), `ask` asks',
    "  about the sentence read so far, `off` says nothing.",
    "- Server to client: spoken replies, each frame a 28-byte header then PCM16",
    "  little-endian mono samples:",
    "",
    "| offset | size | field |",
    "| --- | --- | --- |",
    "| 0 | 4 | magic `RDA1` |",
    "| 4 | 16 | turn id (the 32-hex-digit `turnId` as 16 bytes) |",
    "| 20 | 4 | sequence number, uint32 big-endian, from 1 per turn |",
    "| 24 | 4 | sample rate in Hz, uint32 big-endian |",
    "| 28 | rest | PCM16 little-endian mono samples |",
    "",
    "Audio of a sentence follows its text deltas. Speaking while a reply plays cancels",
    "it (`RESPONSE_DONE {status: cancelled}`); a `TRANSCRIPT {final: false}` tells the",
    "client to stop playback, and the client then sends `PLAYBACK_POSITION {turnId, ms}`",
    "so the stored reply is cut to what the student heard.",
    "",
]


def protocol_markdown() -> str:
    """docs/protocol.md, generated from the models above."""
    lines = [
        "# ReaderAI wire protocol",
        "",
        f"Protocol version: **{PROTOCOL_VERSION}**. Generated from `readerai/protocol.py`"
        " by `python -m readerai.protocol`; do not edit by hand.",
        "",
        'Every frame is JSON text `{"type": "EVENT", "payload": {...}}`.',
        "Connect to `/ws/{sessionId}` (create the session with `POST /api/sessions`),",
        "signed in: offer the subprotocols `readerai.v1` and `bearer.<token>`, or send",
        '`{"type": "AUTH", "payload": {"token": "..."}}` as the first frame (see',
        "docs/classroom.md). A refused connection is closed before any event is sent.",
        "To resume a reply after a reconnect, add `?lastSeq=N` (the last `seq` seen of the",
        "reply in flight): missing deltas are replayed after `SESSION_RESTORED`, with no",
        "duplicate and no gap. Without it, `SESSION_RESTORED.inflight` carries the text so",
        "far and live deltas continue from `inflight.seq + 1`.",
        "",
        "## Client to server",
        "",
    ]
    for cls in CLIENT_EVENTS.values():
        lines += _event_section(cls)
    lines += ["## Server to client", ""]
    for server_cls in SERVER_EVENTS:
        lines += _event_section(server_cls)
    lines += BINARY_FRAMES_DOC
    lines += ["## Shared shapes", ""]
    for shape in (
        AudioConfig,
        MessageView,
        ProgressView,
        InflightView,
        BroadcastView,
        ReadingMiscueView,
        ErrorInfo,
    ):
        lines += _event_section(shape, heading=shape.__name__)
    lines += [
        "## Reply status values",
        "",
        *[f"- `{s.value}`" for s in ReplyStatus],
        "",
        "## Close codes",
        "",
        "| code | meaning |",
        "| --- | --- |",
        "| 1000 | normal close |",
        "| 1007 | a text frame was not valid UTF-8 |",
        "| 1008 | the client kept sending over the rate limit (text or binary frames) |",
        "| 1009 | a frame was larger than `READERAI_MAX_FRAME_BYTES` |",
        "| 1011 | internal error, or no pong within `READERAI_WS_PING_TIMEOUT` of a ping |",
        "| 1012 | the server is restarting; reconnect |",
        "| 1013 | the session could not be read now (the store is unavailable); reconnect later |",
        "| 4000 | idle for longer than `READERAI_IDLE_TIMEOUT_SECONDS` |",
        "| 4008 | the client stopped reading (outbound queue full or send timed out) |",
        "| 4401 | not signed in: no token, or a malformed, tampered or expired one |",
        "| 4403 | signed in, but this session is not yours |",
        "| 4404 | no such session |",
        "",
        "A client that does not read gets its close frame (4008, or 1011) only if it has",
        "room for it: the server resets the TCP connection. Before the upgrade there is no",
        "close code: a request head not complete within",
        "`READERAI_HANDSHAKE_TIMEOUT_SECONDS` gets HTTP `408`, one over 64 KiB `431`.",
        "",
        "## Error codes",
        "",
        "`invalid_json`, `unknown_type`, `invalid_payload`, `text_too_long`, `unsupported`,",
        "`utterance_truncated`, `voice_error`, `rate_limited`, `not_found`, `engine_error`,",
        "`engine_timeout`, `engine_busy`,",
        "`store_unavailable`, `bus_unavailable`, `unauthenticated`, `invalid_code`,",
        "`forbidden`, `internal`.",
        "",
    ]
    return "\n".join(lines)


def _event_section(cls: type[BaseModel], heading: str | None = None) -> list[str]:
    title = heading or getattr(cls, "TYPE", cls.__name__)
    doc = (cls.__doc__ or "").strip()
    out = [f"### `{title}`", "", doc, ""]
    if not cls.model_fields:
        return [*out, "No payload fields.", ""]
    out += ["| field | type | required | description |", "| --- | --- | --- | --- |"]
    for name, field in cls.model_fields.items():
        alias = field.alias or name
        kind = _type_name(field.annotation)
        required = "yes" if field.is_required() else "no"
        out.append(f"| `{alias}` | {kind} | {required} | {field.description or ''} |")
    return [*out, ""]


_QUALIFIER = re.compile(r"(?:[A-Za-z_]\w*\.)+")


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    return f"`{_QUALIFIER.sub('', text).replace(' | ', ' or ')}`"


if __name__ == "__main__":
    print(protocol_markdown(), end="")  # noqa: T201
