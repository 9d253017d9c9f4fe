"""The sample passages bundled with ReaderAI (``readerai/samples/*.md``).

Each file is a front-matter block followed by plain text::

    ---
    id: the-lion-and-the-mouse
    title: The Lion and the Mouse
    level: Grade 2
    ---
    A big lion was sleeping in the warm grass. ...

Paragraphs are separated by blank lines; lines inside a paragraph are joined with a
space, so the files may be wrapped freely. A malformed file raises ``ValueError``
naming the file, so a broken sample stops start-up instead of showing a bad page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

#: Ids travel as ``passageId`` on the wire, which allows at most 64 characters.
MAX_ID_LENGTH = 64
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_FIELDS = ("id", "title", "level")
_FENCE = "---"


@dataclass(frozen=True, slots=True)
class Sample:
    """One bundled passage."""

    id: str
    title: str
    level: str
    text: str


def load_samples() -> list[Sample]:
    """Every bundled sample, ordered by file name; ``ValueError`` if one is malformed.

    Reads files synchronously: call it once at start-up, off the event loop.
    """
    folder = resources.files("readerai").joinpath("samples")
    entries = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".md")),
        key=lambda entry: entry.name,
    )
    samples = [
        parse_sample(entry.read_text(encoding="utf-8"), name=entry.name) for entry in entries
    ]
    seen: set[str] = set()
    for sample in samples:
        if sample.id in seen:
            raise ValueError(f"duplicate sample id {sample.id!r}")
        seen.add(sample.id)
    return samples


def parse_sample(source: str, *, name: str) -> Sample:
    """Parse one sample file; ``name`` (the file name) is used in error messages."""
    lines = source.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].strip() != _FENCE:
        raise ValueError(f"{name}: must start with a '---' front-matter line")
    try:
        end = next(i for i, line in enumerate(lines[1:], start=1) if line.strip() == _FENCE)
    except StopIteration:
        raise ValueError(f"{name}: front matter has no closing '---' line") from None
    fields = _parse_front_matter(lines[1:end], name=name)
    text = _normalise_text(lines[end + 1 :])
    if not text:
        raise ValueError(f"{name}: the passage text is empty")
    sample_id = fields["id"]
    if len(sample_id) > MAX_ID_LENGTH or not _SLUG.fullmatch(sample_id):
        raise ValueError(
            f"{name}: id {sample_id!r} must be a lowercase slug (a-z, 0-9, '-') "
            f"of at most {MAX_ID_LENGTH} characters"
        )
    return Sample(id=sample_id, title=fields["title"], level=fields["level"], text=text)


def _parse_front_matter(lines: list[str], *, name: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for number, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or key not in _FIELDS:
            raise ValueError(
                f"{name}:{number}: expected one of {', '.join(_FIELDS)} as 'key: value'"
            )
        if key in fields:
            raise ValueError(f"{name}:{number}: {key!r} is given twice")
        if not value:
            raise ValueError(f"{name}:{number}: {key!r} is empty")
        fields[key] = value
    missing = [key for key in _FIELDS if key not in fields]
    if missing:
        raise ValueError(f"{name}: front matter lacks {', '.join(missing)}")
    return fields


def _normalise_text(lines: list[str]) -> str:
    """Paragraphs joined by one blank line, each paragraph on one line."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    return "\n\n".join(paragraphs)
