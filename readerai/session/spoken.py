"""What of a reply was spoken, and how much of it the student heard (pure logic).

Each spoken sentence is a span of the reply text with a span of the reply audio.
Given how many milliseconds of audio the client played, `heard_text` returns the
text up to that point: whole sentences played to the end, then the words of the
sentence being played in proportion to its audio played.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SpokenSpan:
    char_start: int
    char_end: int
    audio_start_ms: float
    audio_end_ms: float


@dataclass
class SpokenTimeline:
    """Sentences of one reply in the order they were spoken."""

    spans: list[SpokenSpan] = field(default_factory=list)

    @property
    def total_ms(self) -> float:
        return self.spans[-1].audio_end_ms if self.spans else 0.0

    def add(self, text: str, sentence: str, duration_ms: float) -> SpokenSpan:
        """Record `sentence` (found in `text` after the previous one) as spoken next."""
        after = self.spans[-1].char_end if self.spans else 0
        stripped = sentence.strip()
        start = text.find(stripped, after) if stripped else -1
        if start < 0:
            start = after  # the chunker normalised it: fall back to "what comes next"
        end = min(len(text), max(start + len(stripped), after))
        audio_start = self.total_ms
        span = SpokenSpan(start, end, audio_start, audio_start + duration_ms)
        self.spans.append(span)
        return span

    def heard_text(self, text: str, played_ms: float) -> str:
        """The part of `text` the student heard after `played_ms` of audio."""
        heard_to = 0
        for span in self.spans:
            if played_ms >= span.audio_end_ms:
                heard_to = span.char_end
                continue
            if played_ms > span.audio_start_ms:
                fraction = (played_ms - span.audio_start_ms) / (
                    span.audio_end_ms - span.audio_start_ms
                )
                heard_to = _cut_at_word(text, span.char_start, span.char_end, fraction)
            break
        return text[:heard_to].rstrip()


def _cut_at_word(text: str, start: int, end: int, fraction: float) -> int:
    """Offset after the last whole word within `fraction` of text[start:end]."""
    words = text[start:end].split(" ")
    keep = int(len(words) * fraction)
    return start + len(" ".join(words[:keep]))
