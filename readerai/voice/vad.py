"""Utterance segmentation: one hysteresis state machine over two speech detectors.

`WebRtcSegmenter` asks WebRTC's VAD (a small GMM; 20 or 30 ms frames) and
`SileroSegmenter` asks the Silero VAD network bundled with faster-whisper (32 ms
frames, an LSTM state carried from frame to frame). Both feed the same
`HysteresisSegmenter` logic:

- idle: the last ``pre_roll_ms + min_speech_ms`` of audio sit in a ring buffer;
  ``min_speech_ms`` of consecutive voiced frames start an utterance and emit
  `SpeechStarted` (``at_ms`` = where that voiced run began), once;
- speaking: frames are appended; ``silence_ms`` of consecutive unvoiced frames end
  the utterance with `SpeechEnded` (``at_ms`` = end of the last voiced frame); its
  ``pcm`` holds the pre-roll, the speech, and at most ``pre_roll_ms`` of the
  trailing silence;
- an utterance that reaches ``max_utterance_ms`` is cut there (``truncated=True``)
  and the segmenter goes idle: speech that goes on starts a new utterance.

Memory is bounded: at most one frame of unprocessed input, the ring buffer, and
one utterance of at most ``max_utterance_ms``. Input is 16 kHz PCM16; a byte or a
partial frame left over by `feed` waits for the next call. Not thread-safe: one
segmenter per stream, one call at a time, in a worker thread (the detectors are
CPU work).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import webrtcvad

from readerai.voice.audio import pcm16_to_float32
from readerai.voice.base import INPUT_SAMPLE_RATE, SpeechEnded, SpeechStarted, VadEvent

_BYTES_PER_MS = INPUT_SAMPLE_RATE * 2 // 1000


@dataclass(frozen=True, slots=True)
class VadParams:
    """Timing of the segmentation, in milliseconds (rounded up to whole frames)."""

    silence_ms: int = 600
    min_speech_ms: int = 120
    pre_roll_ms: int = 300
    max_utterance_ms: int = 15_000

    def __post_init__(self) -> None:
        if min(self.silence_ms, self.min_speech_ms, self.max_utterance_ms) <= 0:
            raise ValueError(f"silence, min speech and max utterance must be positive: {self}")
        if self.pre_roll_ms < 0:
            raise ValueError(f"pre-roll cannot be negative: {self}")
        # The margin covers rounding each duration up to whole frames.
        if self.max_utterance_ms < self.pre_roll_ms + self.min_speech_ms + 100:
            raise ValueError(f"max utterance must exceed pre-roll plus min speech: {self}")


class HysteresisSegmenter:
    """The hysteresis state machine; subclasses supply `_classify` and `_reset_detector`."""

    def __init__(self, params: VadParams, frame_samples: int) -> None:
        self.params = params
        self._frame_bytes = frame_samples * 2
        frame_ms = frame_samples * 1000 / INPUT_SAMPLE_RATE
        self._min_speech_frames = math.ceil(params.min_speech_ms / frame_ms)
        self._silence_frames = math.ceil(params.silence_ms / frame_ms)
        self._pre_roll_frames = math.ceil(params.pre_roll_ms / frame_ms)
        self._max_bytes = params.max_utterance_ms * _BYTES_PER_MS
        self._pending = bytearray()
        self._recent: deque[bytes] = deque(maxlen=self._pre_roll_frames + self._min_speech_frames)
        self._utterance: bytearray | None = None
        self._run = 0  # consecutive voiced frames when idle, unvoiced when speaking
        self._samples = 0  # stream clock: samples consumed since the start
        self._speech_end = 0  # clock at the end of the utterance's last voiced frame

    @property
    def speaking(self) -> bool:
        """Whether an utterance is in progress."""
        return self._utterance is not None

    @property
    def buffered_bytes(self) -> int:
        """Audio held right now: pending input, pre-roll ring and utterance."""
        utterance = len(self._utterance) if self._utterance is not None else 0
        return len(self._pending) + sum(map(len, self._recent)) + utterance

    def feed(self, pcm: bytes) -> list[VadEvent]:
        """Process more audio; events for every whole frame now available."""
        self._pending += pcm
        count = len(self._pending) // self._frame_bytes
        if count == 0:
            return []
        block = bytes(self._pending[: count * self._frame_bytes])
        del self._pending[: count * self._frame_bytes]
        events: list[VadEvent] = []
        for index, voiced in enumerate(self._classify(block, count)):
            start = index * self._frame_bytes
            self._step(block[start : start + self._frame_bytes], voiced, events)
        return events

    def flush(self) -> list[VadEvent]:
        """End any utterance in progress (with a partial last frame); then start afresh."""
        events: list[VadEvent] = []
        if self._utterance is not None:
            if self._run == 0:  # still voiced: the partial frame is speech, keep it
                tail = self._pending[: len(self._pending) // 2 * 2]
                self._utterance += tail[: self._max_bytes - len(self._utterance)]
                self._speech_end = self._samples + len(tail) // 2
            events.append(self._end(self._speech_end, truncated=False))
        self._samples += len(self._pending) // 2
        self._forget()
        return events

    def reset(self) -> None:
        """Forget buffered audio, detector state and the clock."""
        self._forget()
        self._samples = 0

    def _forget(self) -> None:
        self._pending.clear()
        self._recent.clear()
        self._utterance = None
        self._run = 0
        self._reset_detector()

    def _step(self, frame: bytes, voiced: bool, events: list[VadEvent]) -> None:
        self._samples += len(frame) // 2
        if self._utterance is None:
            self._recent.append(frame)
            self._run = self._run + 1 if voiced else 0
            if self._run >= self._min_speech_frames:
                started = self._samples - self._run * len(frame) // 2
                events.append(SpeechStarted(at_ms=self._ms(started)))
                self._utterance = bytearray(b"".join(self._recent))
                self._recent.clear()
                self._run = 0
                self._speech_end = self._samples
            return
        self._utterance += frame
        if voiced:
            self._run = 0
            self._speech_end = self._samples
        else:
            self._run += 1
        if self._run >= self._silence_frames:
            events.append(self._end(self._speech_end, truncated=False))
        elif len(self._utterance) + len(frame) > self._max_bytes:
            events.append(self._end(self._samples, truncated=True))

    def _end(self, at_samples: int, *, truncated: bool) -> SpeechEnded:
        utterance = self._utterance or bytearray()
        drop = max(0, self._run - self._pre_roll_frames) * self._frame_bytes
        pcm = bytes(utterance[: len(utterance) - drop])
        self._utterance = None
        self._run = 0
        return SpeechEnded(at_ms=self._ms(at_samples), pcm=pcm, truncated=truncated)

    @staticmethod
    def _ms(samples: int) -> float:
        return samples * 1000 / INPUT_SAMPLE_RATE

    def _classify(self, block: bytes, count: int) -> Sequence[bool]:
        raise NotImplementedError

    def _reset_detector(self) -> None:
        raise NotImplementedError


class WebRtcSegmenter(HysteresisSegmenter):
    """Segments with WebRTC's VAD: cheap, but fooled by steady noise.

    ``aggressiveness`` 0 (lenient: most audio is speech) to 3 (strict).
    """

    def __init__(
        self,
        params: VadParams | None = None,
        *,
        aggressiveness: int = 2,
        frame_ms: Literal[20, 30] = 30,
    ) -> None:
        if aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0..3, got {aggressiveness}")
        if frame_ms not in (20, 30):
            raise ValueError(f"frame_ms must be 20 or 30, got {frame_ms}")
        super().__init__(params or VadParams(), frame_ms * INPUT_SAMPLE_RATE // 1000)
        self._aggressiveness = aggressiveness
        self._reset_detector()

    def _classify(self, block: bytes, count: int) -> list[bool]:
        size = self._frame_bytes
        return [
            bool(self._vad.is_speech(block[i * size : (i + 1) * size], INPUT_SAMPLE_RATE))
            for i in range(count)
        ]

    def _reset_detector(self) -> None:
        # A new instance: WebRTC's VAD adapts its noise model as it goes, and a reset
        # stream must be judged exactly like a new one.
        self._vad = webrtcvad.Vad(self._aggressiveness)


#: Silero's frame at 16 kHz, and the samples of the previous frame it sees as context.
SILERO_FRAME_SAMPLES = 512
SILERO_CONTEXT_SAMPLES = 64


class SileroModel:
    """The Silero ONNX session, loaded once on first use and shared by the segmenters
    of one app (running it is thread-safe; the per-stream state lives in them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: Any = None  # onnxruntime.InferenceSession, which has no type hints

    def session(self) -> Any:
        """Blocking on first use (reads the model file): call it in a worker thread,
        e.g. at start-up to spare the first utterance the load."""
        with self._lock:
            if self._session is None:
                # Imported here: faster-whisper pulls in CTranslate2 and reads files.
                from faster_whisper.vad import get_vad_model

                self._session = get_vad_model().session
            return self._session


class SileroSegmenter(HysteresisSegmenter):
    """Segments with the Silero VAD network: robust to noise, ~0.15 ms per 32 ms frame.

    A frame is voiced when its speech probability reaches ``threshold``, or, right
    after a voiced frame, ``threshold - 0.15`` (Silero's own hysteresis).
    """

    def __init__(
        self,
        params: VadParams | None = None,
        *,
        threshold: float = 0.5,
        model: SileroModel | None = None,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        super().__init__(params or VadParams(), SILERO_FRAME_SAMPLES)
        self._threshold = threshold
        self._low_threshold = max(threshold - 0.15, 0.01)
        self._model = model or SileroModel()
        self._reset_detector()

    def _reset_detector(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(SILERO_CONTEXT_SAMPLES, dtype=np.float32)
        self._voiced = False

    def _classify(self, block: bytes, count: int) -> list[bool]:
        frames = pcm16_to_float32(block).reshape(count, SILERO_FRAME_SAMPLES)
        # Each row is a frame preceded by the end of the frame before it; the batch
        # runs through the LSTM in order, exactly as frame-by-frame calls would.
        context = np.vstack([self._context, frames[:-1, -SILERO_CONTEXT_SAMPLES:]])
        probabilities, self._h, self._c = self._model.session().run(
            None, {"input": np.hstack([context, frames]), "h": self._h, "c": self._c}
        )
        self._context = frames[-1, -SILERO_CONTEXT_SAMPLES:].copy()
        votes: list[bool] = []
        for probability in _as_floats(probabilities):
            self._voiced = probability >= (self._low_threshold if self._voiced else self._threshold)
            votes.append(self._voiced)
        return votes


def _as_floats(values: npt.ArrayLike) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def build_segmenter(kind: Literal["webrtc", "silero"], **params: int) -> HysteresisSegmenter:
    """A fresh segmenter of ``kind``; ``params`` are `VadParams` fields."""
    vad_params = VadParams(**params)
    if kind == "webrtc":
        return WebRtcSegmenter(vad_params)
    if kind == "silero":
        return SileroSegmenter(vad_params)
    raise ValueError(f"unknown voice activity detector {kind!r}")
