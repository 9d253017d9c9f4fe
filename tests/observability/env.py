"""Server settings the observability tests share."""

from __future__ import annotations

#: Speech through a speech server that is never called: a node loads no voice model.
NO_SPEECH_MODELS = {
    "READERAI_STT": "openai",
    "READERAI_TTS": "openai",
    "READERAI_VAD": "webrtc",
    "READERAI_OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
}
#: No speech-to-text model (the tracing test speaks replies, but hears no audio).
NO_LISTENING_MODELS = {
    "READERAI_STT": "openai",
    "READERAI_VAD": "webrtc",
    "READERAI_OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
}
