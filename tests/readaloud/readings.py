"""Spoken readings of a short passage with known edits, synthesised by the bundled Piper voice.

A `Script` is what a reader says: the passage up to a last word, with edits of the
kinds oral reading fluency scores (a dropped word, a swapped one, an extra one, and
a repeated one, after the pause a reader makes before repeating). `speak` turns it
into 16 kHz PCM16 audio and finds where speech starts and ends from the audio itself
(Piper gives no word timings), which is all the truth WCPM needs: words correct over
the time from the first word to the last.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from readerai.readaloud import MiscueKind, normalize, tokenize
from readerai.voice.audio import PCM16
from readerai.voice.base import INPUT_SAMPLE_RATE
from tests.speech_samples import spoken

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

    def text(self) -> str:
        """What the reader says, punctuated as the passage is, so Piper phrases it alike."""
        said: list[str] = []
        edits = {edit.word: edit for edit in self.edits}
        for index, written in enumerate(PASSAGE.split()[: self.last_word + 1]):
            edit = edits.get(index)
            if edit is None:
                said.append(written)
            elif edit.kind is MiscueKind.SUBSTITUTION:
                said.append(written.replace(WORDS[index], edit.said))
            elif edit.kind is MiscueKind.REPETITION:
                said += [WORDS[index] + ",", written]
            elif edit.kind is MiscueKind.INSERTION:
                said += [edit.said, written]
        text = " ".join(said)
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
    """A script spoken: PCM16 16 kHz mono, and when its speech starts and ends (seconds)."""

    script: Script
    pcm: bytes
    speech_start: float
    speech_end: float

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / INPUT_SAMPLE_RATE

    def wcpm(self) -> float:
        """Words attempted less errors, per minute from the first word to the last."""
        correct = self.script.last_word + 1 - self.script.errors
        return 60 * correct / (self.speech_end - self.speech_start)


def speak(script: Script) -> Reading:
    """`script` said by the bundled voice, deterministically (blocking: call off-loop)."""
    pcm = spoken(script.text())
    samples = np.frombuffer(pcm, dtype=PCM16).astype(np.float64) / 32768
    frames = samples[: samples.size // _FRAME * _FRAME].reshape(-1, _FRAME)
    loud = np.flatnonzero(10 * np.log10(np.mean(frames**2, axis=1) + 1e-12) > _SPEECH_DBFS)
    start, end = loud[0] * _FRAME, (loud[-1] + 1) * _FRAME
    return Reading(script, pcm, start / INPUT_SAMPLE_RATE, end / INPUT_SAMPLE_RATE)
