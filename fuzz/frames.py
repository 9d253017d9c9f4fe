"""Coverage-guided fuzzing of the WebSocket frame parser, `parse_client_event`.

Property: any frame, text or bytes, parses to the client event its `type` names,
or raises a `ProtocolError` with a code `parse_client_event` documents and a message
of at most 500 characters. Anything else escapes as an exception, which libFuzzer
reports as a crash and saves as a reproducer (see docs/reliability.md):

    mkdir -p /tmp/readerai-fuzz/frames
    .venv/bin/python fuzz/frames.py -max_total_time=3600 -timeout=5 \\
        -dict=fuzz/frames.dict -artifact_prefix=/tmp/readerai-fuzz/ \\
        /tmp/readerai-fuzz/frames fuzz/seeds/frames

The first byte of an input picks how the rest is handed to the parser: as bytes,
as text (invalid UTF-8 replaced), or as text keeping invalid bytes as lone
surrogates (a Python `str` may hold them; a WebSocket text frame may not).
"""

from __future__ import annotations

import json
import sys

import atheris  # type: ignore[import-untyped]  # ships no type hints

with atheris.instrument_imports(include=["readerai"]):
    from readerai.errors import ProtocolError
    from readerai.protocol import CLIENT_EVENTS, parse_client_event

#: The codes `parse_client_event` raises (all listed in docs/protocol.md).
PARSE_ERROR_CODES = frozenset({"invalid_json", "unknown_type", "invalid_payload", "text_too_long"})
MAX_ERROR_MESSAGE = 500
MAX_QUESTION_CHARS = 2000


def frame_of(data: bytes) -> str | bytes:
    if not data:
        return b""
    how, rest = data[0] % 3, data[1:]
    if how == 0:
        return rest
    return rest.decode("utf-8", "replace" if how == 1 else "surrogateescape")


def test_one_input(data: bytes) -> None:
    frame = frame_of(data)
    try:
        event = parse_client_event(frame, max_question_chars=MAX_QUESTION_CHARS)
    except ProtocolError as exc:
        if exc.code not in PARSE_ERROR_CODES:
            raise AssertionError(f"undocumented code {exc.code!r}") from exc
        if not 0 < len(exc.message) <= MAX_ERROR_MESSAGE:
            raise AssertionError(f"a message of {len(exc.message)} characters") from exc
        return
    if type(event) is not CLIENT_EVENTS[json.loads(frame)["type"]]:
        raise AssertionError(f"{frame!r} parsed to a {type(event).__name__}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
