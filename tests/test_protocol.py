"""The wire protocol, sans I/O: parsing, errors, serialisation, and its document."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from readerai.errors import (
    InvalidJSON,
    InvalidPayload,
    ProtocolError,
    TextTooLong,
    UnknownEventType,
)
from readerai.protocol import (
    ReadingProgress,
    ReplyStatus,
    ResponseDone,
    StudentInterruption,
    encode,
    parse_client_event,
    protocol_markdown,
)

ROOT = Path(__file__).resolve().parent.parent


def parse(frame: str | bytes) -> object:
    return parse_client_event(frame, max_question_chars=100)


def test_student_interruption_is_parsed_with_camel_case_fields() -> None:
    event = parse('{"type": "STUDENT_INTERRUPTION", "payload": {"questionText": "  Why?  "}}')
    assert event == StudentInterruption(question_text="Why?")


def test_reading_progress_is_parsed() -> None:
    frame = '{"type":"READING_PROGRESS","payload":{"passageId":"p","position":3}}'
    assert parse(frame) == ReadingProgress(passage_id="p", position=3)


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("{", InvalidJSON),
        ('"just a string"', InvalidPayload),
        ('{"payload": {}}', InvalidPayload),
        ('{"type": "NOPE"}', UnknownEventType),
        ('{"type": "STUDENT_INTERRUPTION", "payload": {"question": "x"}}', InvalidPayload),
        (
            '{"type": "STUDENT_INTERRUPTION", "payload": {"questionText": "%s"}}' % ("a" * 101),
            TextTooLong,
        ),
        (
            '{"type": "READING_PROGRESS", "payload": {"passageId": "p", "position": "3"}}',
            InvalidPayload,
        ),
    ],
)
def test_bad_frames_raise_the_matching_protocol_error(frame: str, error: type[Exception]) -> None:
    with pytest.raises(error) as raised:
        parse(frame)
    assert isinstance(raised.value, ProtocolError) and raised.value.message


def test_server_events_serialise_as_type_and_camel_case_payload() -> None:
    done = ResponseDone(turn_id="t", status=ReplyStatus.CANCELLED, text="Hi", citations=[2])
    assert json.loads(encode(done)) == {
        "type": "RESPONSE_DONE",
        "payload": {
            "turnId": "t",
            "status": "cancelled",
            "text": "Hi",
            "citations": [2],
            "error": None,
        },
    }


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_any_frame_either_parses_or_raises_a_protocol_error(frame: str | bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse(frame)


@given(
    st.dictionaries(
        st.text(max_size=20),
        st.recursive(
            st.none() | st.integers() | st.text(max_size=50),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
            max_leaves=8,
        ),
        max_size=4,
    )
)
def test_any_payload_of_a_known_type_parses_or_raises_a_protocol_error(
    payload: dict[str, object],
) -> None:
    for event_type in (
        "STUDENT_INTERRUPTION",
        "READING_PROGRESS",
        "RESPONSE_CANCEL",
        "SESSION_UPDATE",
        "PING",
    ):
        with contextlib.suppress(ProtocolError):
            parse(json.dumps({"type": event_type, "payload": payload}))


def test_protocol_document_is_generated_from_the_models() -> None:
    document = (ROOT / "docs" / "protocol.md").read_text()
    assert document == protocol_markdown(), "run `make docs` to regenerate docs/protocol.md"
