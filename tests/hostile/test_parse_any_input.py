"""The sans-I/O parsers against any input: a typed result or a stable, documented error.

`parse_client_event` turns any frame into a client event or raises a `ProtocolError`
with a documented code and a short message; `decode_audio_frame` turns any bytes into
a frame that encodes back to exactly those bytes, or raises `AudioFrameError`.
Nothing else may escape either of them.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from readerai.errors import ProtocolError, ReaderAIError
from readerai.protocol import CLIENT_EVENTS, ClientEvent, parse_client_event
from readerai.voice.frames import (
    HEADER_SIZE,
    MAGIC,
    AudioFrameError,
    decode_audio_frame,
    encode_audio_frame,
)
from tests.hostile.frames import (
    MAX_ERROR_MESSAGE,
    PARSE_ERROR_CODES,
    any_text,
    documented_error_codes,
    frame_of,
    json_values,
    text_frames,
    well_formed_payloads,
)

#: The server's default `READERAI_MAX_QUESTION_CHARS`.
MAX_QUESTION_CHARS = 2000
MANY = settings(max_examples=1500, deadline=None, database=None)


def parse_or_refuse(frame: str | bytes) -> ClientEvent | ProtocolError:
    """The event `frame` parses to, or the error it raised; anything else fails the test."""
    try:
        return parse_client_event(frame, max_question_chars=MAX_QUESTION_CHARS)
    except ReaderAIError as exc:
        assert isinstance(exc, ProtocolError), f"{type(exc).__name__} is not a ProtocolError"
        assert exc.code in PARSE_ERROR_CODES, exc.code
        assert exc.code in documented_error_codes(), f"{exc.code} is not in docs/protocol.md"
        assert 0 < len(exc.message) <= MAX_ERROR_MESSAGE, f"message of {len(exc.message)} chars"
        return exc


@MANY
@given(any_text | st.binary(max_size=300) | text_frames | text_frames.map(str.encode))
def test_any_frame_parses_to_its_event_or_raises_a_documented_protocol_error(
    frame: str | bytes,
) -> None:
    result = parse_or_refuse(frame)
    if isinstance(result, ClientEvent):
        assert type(result) is CLIENT_EVENTS[json.loads(frame)["type"]]


@MANY
@given(well_formed_payloads())
def test_a_well_formed_event_parses_to_exactly_what_was_sent(
    event: tuple[str, dict[str, Any]],
) -> None:
    event_type, payload = event
    result = parse_or_refuse(frame_of(event_type, payload))
    if event_type == "STUDENT_INTERRUPTION":
        question = payload["questionText"].strip()
        if not question:
            assert isinstance(result, ProtocolError) and result.code == "invalid_payload"
            return
        if len(question) > MAX_QUESTION_CHARS:
            assert isinstance(result, ProtocolError) and result.code == "text_too_long"
            return
        payload = {"questionText": question}
    assert isinstance(result, ClientEvent), result
    assert event_type == result.TYPE
    assert result.model_dump(by_alias=True, exclude_unset=True) == payload


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.sampled_from([*CLIENT_EVENTS, "NO_SUCH_EVENT"]),
    st.text(min_size=200, max_size=20_000),
    json_values,
)
def test_an_error_message_stays_short_however_long_the_names_sent(
    event_type: str, long_name: str, value: object
) -> None:
    for frame in (
        frame_of(event_type, {long_name: value}),
        frame_of(event_type, {long_name: value, long_name[::-1] + "x": value, "y" + long_name: 1}),
        frame_of("SESSION_UPDATE", {"audio": {long_name: value}}),
        frame_of(long_name, {}),
    ):
        result = parse_or_refuse(frame)
        assert isinstance(result, ProtocolError)


# ------------------------------------------------------------------ audio frames

turn_ids = st.binary(min_size=16, max_size=16).map(bytes.hex)
sample_rates = st.integers(min_value=1, max_value=192_000)
seqs = st.integers(min_value=1, max_value=2**32 - 1)
pcm = st.binary(max_size=64).map(lambda b: b[: len(b) // 2 * 2])
#: Bytes near the layout: the magic (or nearly), then a random rest.
near_frames = st.builds(
    lambda magic, rest: magic + rest,
    st.sampled_from([MAGIC, b"RDA0", b"rda1", b""]),
    st.binary(max_size=HEADER_SIZE + 16),
)


@MANY
@given(st.binary(max_size=200) | near_frames)
def test_any_bytes_decode_to_a_frame_that_encodes_back_or_raise_audio_frame_error(
    data: bytes,
) -> None:
    try:
        frame = decode_audio_frame(data)
    except AudioFrameError as exc:
        assert str(exc)
        return
    assert encode_audio_frame(frame.turn_id, frame.seq, frame.sample_rate, frame.pcm) == data


@MANY
@given(turn_ids, seqs, sample_rates, pcm, st.booleans())
def test_an_encoded_frame_decodes_to_what_was_encoded(
    turn_id: str, seq: int, sample_rate: int, samples: bytes, upper: bool
) -> None:
    sent_id = turn_id.upper() if upper else turn_id
    frame = decode_audio_frame(encode_audio_frame(sent_id, seq, sample_rate, samples))
    assert (frame.turn_id, frame.seq, frame.sample_rate, frame.pcm) == (
        turn_id,
        seq,
        sample_rate,
        samples,
    )


@MANY
@given(
    st.text(max_size=40),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.binary(max_size=9),
)
def test_values_outside_the_layout_are_refused_when_encoding(
    turn_id: str, seq: int, sample_rate: int, samples: bytes
) -> None:
    try:
        data = encode_audio_frame(turn_id, seq, sample_rate, samples)
    except AudioFrameError:
        return
    assert decode_audio_frame(data).turn_id == turn_id.lower()
