"""`SentenceChunker`: cuts streamed reply text into sentences to speak one by one.

A sentence ends at ``.``, ``!`` or ``?`` (optionally followed by closing quotes or
brackets) once whitespace follows, or at a line break. A period after a known
abbreviation ("Mr.", "e.g.") or a capital initial ("J.") does not end one, and a
decimal point never does, since no whitespace follows it. A run longer than
`MAX_RUN_CHARS` with no sentence end is cut at its last comma, else its last
space, so that speech starts early even for one long sentence; and before the first piece
was spoken, a run past `FIRST_PIECE_CHARS` is cut at a comma, else at a space.

Invariants: the pieces `feed` and `flush` return hold every non-whitespace
character fed, in order; each piece is stripped and non-empty; between calls the
buffer holds at most `MAX_RUN_CHARS` characters.
"""

from __future__ import annotations

import re

#: Longest text held back waiting for a sentence end.
MAX_RUN_CHARS = 200
#: Before anything was spoken, a run this long is cut at a comma, so speech starts
#: sooner; never a piece shorter than FIRST_PIECE_MIN_CHARS.
FIRST_PIECE_CHARS = 40
FIRST_PIECE_MIN_CHARS = 20
#: A comma this early in a long run makes too short a piece; cut at a space instead.
_MIN_COMMA_CUT = MAX_RUN_CHARS // 3

#: What may close a sentence after its punctuation: quotes (straight and curly), brackets.
_CLOSERS = "\"')]\u201d\u2019"
_END = re.compile(rf"[.!?]+[{re.escape(_CLOSERS)}]*(?=\s)|\n")
_WORD_BEFORE = re.compile(r"([\w.]+)\.$")
ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "e.g", "i.e", "fig"}
)


class SentenceChunker:
    """Accumulates text deltas; hands back each sentence once it is complete."""

    def __init__(self) -> None:
        self._buffer = ""
        self._spoken_any = False

    def feed(self, delta: str) -> list[str]:
        """Sentences completed by ``delta``, in order (often none)."""
        self._buffer += delta
        sentences: list[str] = []
        while (cut := self._next_cut()) is not None:
            piece, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            if piece:
                sentences.append(piece)
                self._spoken_any = True
        return sentences

    def flush(self) -> str | None:
        """The text after the last sentence end, stripped; None if there is none."""
        rest, self._buffer = self._buffer.strip(), ""
        return rest or None

    def _next_cut(self) -> int | None:
        for match in _END.finditer(self._buffer):
            if match.group() == "\n" and not self._buffer[: match.start()].strip():
                continue  # a blank line before any text ends nothing
            if not _is_abbreviation(self._buffer[: match.start() + 1], match.group()):
                return match.end()
        if len(self._buffer) > MAX_RUN_CHARS:
            return _long_run_cut(self._buffer)
        if not self._spoken_any and len(self._buffer) > FIRST_PIECE_CHARS:
            # The student waits in silence for the first piece: speak at a comma, or
            # else between two words (the last one may still be arriving).
            comma = self._buffer.rfind(", ")
            if comma >= FIRST_PIECE_MIN_CHARS:
                return comma + 1
            space = self._buffer.rfind(" ")
            if space >= FIRST_PIECE_MIN_CHARS:
                return space
        return None


def _is_abbreviation(head: str, ending: str) -> bool:
    """Whether ``head``, which ends with the period ``ending`` starts with, closes an
    abbreviation or initial rather than a sentence."""
    if ending[0] != "." or len(ending.rstrip(_CLOSERS)) > 1:
        return False  # "!", "?" and "..." always end a sentence
    word = _WORD_BEFORE.search(head)
    if word is None:
        return False
    token = word.group(1)
    if len(token) == 1 and token.isupper():
        return True  # an initial: "J. K. Rowling"
    return token.lower() in ABBREVIATIONS


def _long_run_cut(text: str) -> int | None:
    """Where to cut a run with no sentence end: after its last comma, else before its
    last space. The text after the last space may be a word still arriving, so the
    cut is never inside it."""
    comma = text.rfind(", ")
    if comma >= _MIN_COMMA_CUT:
        return comma + 1
    space = max(text.rfind(" "), text.rfind("\t"))
    if space > 0:
        return space
    # One 200-character "word" (a URL, say): cut it anyway, memory must stay bounded.
    return MAX_RUN_CHARS
