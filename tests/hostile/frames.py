"""Hypothesis strategies for hostile client input, and what the documents promise back.

Frames come in three kinds of badness: well-formed events (which the server must
serve), events of a known type with payloads of the wrong shape, and anything at all
(random JSON, random text, random bytes). `sessions` strings them into sequences a
hostile client sends over one connection, with floods, giants and pauses mixed in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hypothesis import strategies as st

from readerai.protocol import CLIENT_EVENTS

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL_DOC = ROOT / "docs" / "protocol.md"

#: What `parse_client_event` may raise, by code (a subset of the documented codes).
PARSE_ERROR_CODES = frozenset({"invalid_json", "unknown_type", "invalid_payload", "text_too_long"})
#: The longest `ERROR` message the server sends, whatever the client sent: errors are
#: queued per client, so one echoing its input would multiply a hostile client's frames.
MAX_ERROR_MESSAGE = 500


def _documented(section: str) -> str:
    text = PROTOCOL_DOC.read_text()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def documented_error_codes() -> frozenset[str]:
    """The `ERROR` codes listed under "Error codes" in docs/protocol.md."""
    return frozenset(re.findall(r"`([a-z_]+)`", _documented("Error codes")))


def documented_close_codes() -> frozenset[int]:
    """The close codes in the table under "Close codes" in docs/protocol.md."""
    return frozenset(
        int(c) for c in re.findall(r"^\| (\d{4}) \|", _documented("Close codes"), re.M)
    )


# ------------------------------------------------------------------ building blocks

#: Any Unicode, lone surrogates included (a Python `str` may hold them; a text frame
#: on the wire may not).
any_text = st.text(
    st.characters(codec=None, exclude_categories=()), max_size=200
) | st.sampled_from(["\ud800", '{"type": "PING", "payload": {"id": "\udfff"}}', "\udc80\ud800"])
#: Field names: the protocol's own, near misses, and noise.
FIELD_NAMES = (
    "questionText",
    "question_text",
    "passageId",
    "position",
    "turnId",
    "turnDetection",
    "voice",
    "audio",
    "inputFormat",
    "inputSampleRate",
    "output",
    "ms",
    "id",
    "type",
    "payload",
    "token",
)
field_names = st.sampled_from(FIELD_NAMES) | st.text(max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=80)
    | st.sampled_from(["", " ", "\u00a0\u2003", "server_vad", "manual", "pcm16", "0" * 80])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(field_names, inner, max_size=4),
    max_leaves=12,
)
event_types = st.sampled_from([*CLIENT_EVENTS, "AUTH", "PONG", "ERROR", "ping", "", " PING"])
passage_ids = st.sampled_from(["the-lion-and-the-mouse", "nope"]) | st.text(min_size=1, max_size=64)
turn_ids = st.text(min_size=1, max_size=64) | st.sampled_from(["0" * 32, "f" * 32])
#: Questions: ordinary, blank, and longer than any limit (up to 60 000 ASCII
#: characters, so the frame stays under the default 64 KiB frame limit).
questions = (
    st.text(min_size=1, max_size=300)
    | st.sampled_from([" ", "\t\n", "\u2003"])
    | st.integers(min_value=2001, max_value=60_000).map(lambda n: "why " * (n // 4))
)


def _audio_config() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "inputFormat": st.sampled_from(["pcm16", "opus", ""]),
            "inputSampleRate": st.sampled_from([16_000, 8_000, 0, -1, 2**40]),
            # Mostly no spoken replies: synthesis is slow, and not what is under test.
            "output": st.sampled_from([False, False, False, True]),
        },
    )


def well_formed_payloads() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """`(type, payload)` of every client event, each field of the right JSON type."""
    return st.one_of(
        st.tuples(
            st.just("STUDENT_INTERRUPTION"), st.fixed_dictionaries({"questionText": questions})
        ),
        st.tuples(
            st.just("READING_PROGRESS"),
            st.fixed_dictionaries(
                {
                    "passageId": passage_ids,
                    "position": st.integers(min_value=0, max_value=10_000_000),
                }
            ),
        ),
        st.tuples(
            st.just("RESPONSE_CANCEL"),
            st.fixed_dictionaries({}, optional={"turnId": st.none() | turn_ids}),
        ),
        st.tuples(
            st.just("SESSION_UPDATE"),
            st.fixed_dictionaries(
                {},
                optional={
                    "passageId": st.none() | passage_ids,
                    "turnDetection": st.none() | st.sampled_from(["server_vad", "manual"]),
                    "voice": st.none() | st.sampled_from(["en_US-joe-medium", "nope"]),
                    "audio": st.none() | _audio_config(),
                },
            ),
        ),
        st.tuples(st.just("AUDIO_COMMIT"), st.just({})),
        st.tuples(
            st.just("PLAYBACK_POSITION"),
            st.fixed_dictionaries(
                {"turnId": turn_ids, "ms": st.integers(min_value=0, max_value=3_600_000)}
            ),
        ),
        st.tuples(
            st.just("PING"),
            st.fixed_dictionaries({}, optional={"id": st.none() | st.text(max_size=64)}),
        ),
    )


def frame_of(event_type: str, payload: object) -> str:
    return json.dumps({"type": event_type, "payload": payload})


#: A known (or nearly known) type with a payload of any shape at all.
wrong_shapes = st.builds(
    frame_of, event_types, json_values | st.dictionaries(field_names, json_values, max_size=5)
)
#: A well-formed event with one field replaced by any JSON value.
mutated = st.builds(
    lambda event, key, value: frame_of(event[0], {**event[1], key: value}),
    well_formed_payloads(),
    field_names,
    json_values,
)
well_formed = well_formed_payloads().map(lambda event: frame_of(*event))
#: Any text frame a client could send.
text_frames = st.one_of(
    well_formed,
    mutated,
    wrong_shapes,
    json_values.map(json.dumps),
    st.text(max_size=300),
    st.sampled_from(["", "{", "null", "[]", '{"type": null}', '{"type": "PING", "payload": null}']),
)


# ------------------------------------------------------------------ hostile sessions


@dataclass(frozen=True)
class Action:
    """One thing a hostile client does on its connection: send a `text` or `binary`
    frame of `data`, a `giant` frame (`data` repeated to `GIANT_BYTES`), a `flood` of
    PINGs, or `pause` for `seconds`."""

    kind: Literal["text", "binary", "giant", "flood", "pause"]
    data: str | bytes = b""
    seconds: float = 0.0


#: Frames in a flood: more than the default burst (60) and strikes (20) together,
#: sent faster than the 30/s refill can make up for.
FLOOD_FRAMES = 150
#: Bigger than the default `READERAI_MAX_FRAME_BYTES` (65 536).
GIANT_BYTES = 70_000

actions = st.one_of(
    text_frames.map(lambda f: Action("text", f)),
    st.binary(max_size=4096).map(lambda b: Action("binary", b)),
    st.sampled_from([Action("giant", "x"), Action("giant", b"\0")]),
    st.just(Action("flood")),
    st.floats(min_value=0, max_value=0.3).map(lambda s: Action("pause", seconds=s)),
)
#: Interleaved questions and cancels, the barge-in race.
barge_ins = st.lists(
    st.sampled_from(
        [
            Action("text", frame_of("STUDENT_INTERRUPTION", {"questionText": "Who helped?"})),
            Action("text", frame_of("RESPONSE_CANCEL", {})),
            Action("text", frame_of("RESPONSE_CANCEL", {"turnId": "0" * 32})),
            Action("pause", seconds=0.05),
        ]
    ),
    min_size=2,
    max_size=12,
)
#: Voice on, then audio garbage (odd lengths too), commits, mode switches, questions.
voice_sessions = st.tuples(
    st.sampled_from(["server_vad", "manual"]).map(
        lambda mode: Action(
            "text",
            frame_of(
                "SESSION_UPDATE",
                {"turnDetection": mode, "audio": {"inputFormat": "pcm16", "output": False}},
            ),
        )
    ),
    st.lists(
        st.one_of(
            st.binary(min_size=1, max_size=4096).map(lambda b: Action("binary", b)),
            st.sampled_from(
                [
                    Action("text", frame_of("AUDIO_COMMIT", {})),
                    Action("text", frame_of("SESSION_UPDATE", {"turnDetection": "manual"})),
                    Action("text", frame_of("SESSION_UPDATE", {"turnDetection": "server_vad"})),
                    Action("text", frame_of("PLAYBACK_POSITION", {"turnId": "0" * 32, "ms": 1})),
                ]
            ),
            barge_ins.map(lambda b: b[0]),
        ),
        max_size=23,
    ),
).map(lambda p: [p[0], *p[1]])
#: What one hostile connection sends: at most 24 actions, so only a `flood` reaches
#: the rate limit (a burst of 60 frames).
sessions = st.one_of(
    st.lists(actions, min_size=1, max_size=24),
    st.tuples(barge_ins, st.lists(actions, max_size=12)).map(lambda p: p[0] + p[1]),
    voice_sessions,
)
