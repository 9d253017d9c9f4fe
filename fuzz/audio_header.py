"""Coverage-guided fuzzing of the reply-audio frame codec (`readerai.voice.frames`).

Properties: any bytes decode to a frame that encodes back to exactly those bytes,
or raise `AudioFrameError`; any values either encode to a frame that decodes back to
them, or raise `AudioFrameError`. Anything else is a crash libFuzzer saves as a
reproducer (see docs/reliability.md):

    mkdir -p /tmp/readerai-fuzz/audio_header
    .venv/bin/python fuzz/audio_header.py -max_total_time=3600 -timeout=5 \\
        -artifact_prefix=/tmp/readerai-fuzz/ \\
        /tmp/readerai-fuzz/audio_header fuzz/seeds/audio_header

Odd first bytes fuzz the decoder with the rest of the input; even ones build the
values to encode from it.
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-untyped]  # ships no type hints

with atheris.instrument_imports(include=["readerai"]):
    from readerai.voice.frames import AudioFrameError, decode_audio_frame, encode_audio_frame


def decode_then_encode(data: bytes) -> None:
    try:
        frame = decode_audio_frame(data)
    except AudioFrameError:
        return
    again = encode_audio_frame(frame.turn_id, frame.seq, frame.sample_rate, frame.pcm)
    if again != data:
        raise AssertionError(f"{data[:40]!r} decoded, then encoded to {again[:40]!r}")


def encode_then_decode(data: bytes) -> None:
    values = atheris.FuzzedDataProvider(data)
    turn_id = values.ConsumeUnicode(values.ConsumeIntInRange(0, 40))
    seq = values.ConsumeIntInRange(-(2**33), 2**33)
    sample_rate = values.ConsumeIntInRange(-(2**33), 2**33)
    pcm = values.ConsumeBytes(values.ConsumeIntInRange(0, 64))
    try:
        encoded = encode_audio_frame(turn_id, seq, sample_rate, pcm)
    except AudioFrameError:
        return
    frame = decode_audio_frame(encoded)
    if (frame.turn_id, frame.seq, frame.sample_rate, frame.pcm) != (
        turn_id.lower(),
        seq,
        sample_rate,
        pcm,
    ):
        raise AssertionError(f"{(turn_id, seq, sample_rate)} came back as {frame}")


def test_one_input(data: bytes) -> None:
    if data and data[0] % 2:
        decode_then_encode(data[1:])
    else:
        encode_then_decode(data[1:])


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
