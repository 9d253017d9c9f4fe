"""The binary reply-audio frame: exact layout, round trips, every malformed input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from readerai.voice.frames import (
    HEADER_SIZE,
    MAX_SAMPLE_RATE,
    AudioFrame,
    AudioFrameError,
    decode_audio_frame,
    encode_audio_frame,
    split_pcm,
)

TURN = "0123456789abcdef0123456789abcdef"
turn_ids = st.binary(min_size=16, max_size=16).map(bytes.hex)
seqs = st.integers(1, 2**32 - 1)
rates = st.integers(1, MAX_SAMPLE_RATE)
pcms = st.binary(max_size=4000).map(lambda b: b[: len(b) // 2 * 2])


def test_layout_is_exactly_as_documented() -> None:
    frame = encode_audio_frame(TURN, 7, 22_050, b"\x01\x00\xff\xff")
    assert HEADER_SIZE == 28
    assert frame[:4] == b"RDA1"
    assert frame[4:20] == bytes.fromhex(TURN)
    assert struct.unpack(">II", frame[20:28]) == (7, 22_050)
    assert frame[28:] == b"\x01\x00\xff\xff"


@given(turn_ids, seqs, rates, pcms)
def test_decode_inverts_encode(turn_id: str, seq: int, rate: int, pcm: bytes) -> None:
    frame = encode_audio_frame(turn_id, seq, rate, pcm)
    assert len(frame) == HEADER_SIZE + len(pcm)
    assert decode_audio_frame(frame) == AudioFrame(turn_id, seq, rate, pcm)


@given(turn_ids, seqs, rates, pcms)
def test_encode_inverts_decode(turn_id: str, seq: int, rate: int, pcm: bytes) -> None:
    frame = encode_audio_frame(turn_id, seq, rate, pcm)
    decoded = decode_audio_frame(frame)
    assert encode_audio_frame(decoded.turn_id, decoded.seq, decoded.sample_rate, decoded.pcm) == (
        frame
    )


def test_upper_case_turn_id_decodes_to_lower_case() -> None:
    assert decode_audio_frame(encode_audio_frame(TURN.upper(), 1, 16_000, b"")).turn_id == TURN


def test_empty_pcm_is_a_valid_frame() -> None:
    assert decode_audio_frame(encode_audio_frame(TURN, 1, 16_000, b"")).pcm == b""


def test_decode_accepts_memoryview_and_bytearray() -> None:
    frame = encode_audio_frame(TURN, 3, 24_000, b"ab")
    assert decode_audio_frame(bytearray(frame)).pcm == b"ab"
    assert decode_audio_frame(memoryview(frame)).pcm == b"ab"


def _frame(magic: bytes = b"RDA1", seq: int = 1, rate: int = 16_000, pcm: bytes = b"") -> bytes:
    return magic + bytes.fromhex(TURN) + struct.pack(">II", seq, rate) + pcm


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter"),
        (_frame()[:27], "shorter"),
        (_frame(magic=b"RDA2"), "not"),
        (_frame(magic=b"\x00" * 4), "not"),
        (_frame(pcm=b"\x01"), "even"),
        (_frame(pcm=b"\x01\x02\x03"), "even"),
        (_frame(seq=0), "seq"),
        (_frame(rate=0), "sample rate"),
        (_frame(rate=MAX_SAMPLE_RATE + 1), "sample rate"),
        (_frame(rate=2**32 - 1), "sample rate"),
    ],
)
def test_decode_rejects_malformed_frames(data: bytes, reason: str) -> None:
    with pytest.raises(AudioFrameError, match=reason):
        decode_audio_frame(data)


@pytest.mark.parametrize(
    ("turn_id", "seq", "rate", "pcm"),
    [
        ("", 1, 16_000, b""),
        (TURN[:-1], 1, 16_000, b""),
        (TURN + "0", 1, 16_000, b""),
        ("g" * 32, 1, 16_000, b""),
        ("0123456789abcdef-0123456789abcde", 1, 16_000, b""),
        (TURN, 0, 16_000, b""),
        (TURN, -1, 16_000, b""),
        (TURN, 2**32, 16_000, b""),
        (TURN, 1, 0, b""),
        (TURN, 1, MAX_SAMPLE_RATE + 1, b""),
        (TURN, 1, 16_000, b"\x00"),
    ],
)
def test_encode_rejects_what_cannot_be_framed(
    turn_id: str, seq: int, rate: int, pcm: bytes
) -> None:
    with pytest.raises(AudioFrameError):
        encode_audio_frame(turn_id, seq, rate, pcm)


def test_frame_errors_are_value_errors() -> None:
    assert issubclass(AudioFrameError, ValueError)


@given(pcms, st.sampled_from([8_000, 16_000, 22_050, 24_000, 48_000]), st.integers(1, 500))
def test_split_pcm_pieces_are_short_even_and_rejoin(pcm: bytes, rate: int, max_ms: int) -> None:
    pieces = split_pcm(pcm, rate, max_ms)
    assert b"".join(pieces) == pcm
    limit = max(2, rate * max_ms // 1000 * 2)
    assert all(0 < len(piece) <= limit and len(piece) % 2 == 0 for piece in pieces)


def test_split_pcm_cuts_a_second_into_200_ms_frames() -> None:
    pieces = split_pcm(b"\x00\x00" * 22_050, 22_050)
    assert [len(p) for p in pieces] == [8820] * 5
    assert split_pcm(b"", 22_050) == []


@pytest.mark.parametrize(
    ("pcm", "rate", "max_ms"), [(b"\x00", 16_000, 200), (b"", 0, 200), (b"", 16_000, 0)]
)
def test_split_pcm_rejects_bad_input(pcm: bytes, rate: int, max_ms: int) -> None:
    with pytest.raises(ValueError):
        split_pcm(pcm, rate, max_ms)
