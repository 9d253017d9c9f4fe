"""The binary reply-audio frame (sans-I/O): encode, decode, and cut audio into frames.

Reply audio travels in binary WebSocket messages, one frame each::

    offset  size  field
    0       4     magic b"RDA1"
    4       16    turn id: the turn's 32-hex-character id as 16 raw bytes
    20      4     seq: uint32 big-endian, 1, 2, ... within the turn
    24      4     sample rate in Hz: uint32 big-endian, 1..192000
    28      n     PCM16 little-endian mono samples (n even, may be 0)

Invariants: `decode_audio_frame(encode_audio_frame(t, s, r, p))` gives back
``(t.lower(), s, r, p)``; every malformed input raises `AudioFrameError` (a
`ValueError`), on either side, so a bad frame is never sent nor half-read.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

MAGIC = b"RDA1"
HEADER_SIZE = 28
#: Highest sample rate accepted: anything above is a corrupt header, not audio.
MAX_SAMPLE_RATE = 192_000
MAX_SEQ = 2**32 - 1

_HEADER = struct.Struct(">4s16sII")
_TURN_ID = re.compile(r"[0-9a-fA-F]{32}")
assert _HEADER.size == HEADER_SIZE


class AudioFrameError(ValueError):
    """A reply-audio frame, or the values to build one, break the frame layout."""


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """One decoded frame: ``pcm`` is PCM16 little-endian mono at ``sample_rate``."""

    turn_id: str
    seq: int
    sample_rate: int
    pcm: bytes


def encode_audio_frame(turn_id: str, seq: int, sample_rate: int, pcm: bytes) -> bytes:
    """The frame's bytes: a 28-byte header, then ``pcm``."""
    if not _TURN_ID.fullmatch(turn_id):
        raise AudioFrameError(f"turn id must be 32 hex characters, got {turn_id!r}")
    _check(seq, sample_rate, len(pcm))
    return _HEADER.pack(MAGIC, bytes.fromhex(turn_id), seq, sample_rate) + pcm


def decode_audio_frame(data: bytes | bytearray | memoryview) -> AudioFrame:
    """Parse a frame; the turn id comes back as 32 lower-case hex characters."""
    if len(data) < HEADER_SIZE:
        raise AudioFrameError(
            f"frame is {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header"
        )
    magic, turn, seq, sample_rate = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise AudioFrameError(f"frame starts with {magic!r}, not {MAGIC!r}")
    pcm = bytes(data[HEADER_SIZE:])
    _check(seq, sample_rate, len(pcm))
    return AudioFrame(turn_id=turn.hex(), seq=seq, sample_rate=sample_rate, pcm=pcm)


def _check(seq: int, sample_rate: int, pcm_bytes: int) -> None:
    if not 1 <= seq <= MAX_SEQ:
        raise AudioFrameError(f"seq must be in 1..{MAX_SEQ}, got {seq}")
    if not 1 <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioFrameError(f"sample rate must be in 1..{MAX_SAMPLE_RATE} Hz, got {sample_rate}")
    if pcm_bytes % 2:
        raise AudioFrameError(f"PCM16 needs an even number of bytes, got {pcm_bytes}")


def split_pcm(pcm: bytes, sample_rate: int, max_ms: int = 200) -> list[bytes]:
    """``pcm`` cut into pieces of at most ``max_ms`` (at least one sample), in order.

    Every piece has an even, non-zero length, and joined they give ``pcm`` back;
    empty ``pcm`` gives no pieces. Short pieces let a cancelled reply stop playing
    soon: the client drops what it has not played.
    """
    if len(pcm) % 2:
        raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
    if sample_rate <= 0 or max_ms <= 0:
        raise ValueError(f"sample rate and max_ms must be positive, got {sample_rate}, {max_ms}")
    size = max(1, sample_rate * max_ms // 1000) * 2
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]
