"""Markdown to the plain text a passage stores and displays.

Pure functions, no I/O. The result is paragraphs separated by blank lines, each on
one line, which is what `readerai.grounding.split_sentences` and the page expect:

- headings (ATX `#` and setext underlines) and horizontal rules are dropped, as
  `split_sentences` drops them: the title is shown apart, it is not a sentence to
  read; a leading front-matter block (`key: value` lines between `---`) too;
- emphasis, strike-through and inline code keep their text; links keep their text;
  images, reference definitions, HTML tags and comments are dropped; entities and
  backslash escapes are decoded;
- list items become paragraphs of their own (their markers removed), block quotes
  lose their `>`; fenced code keeps its lines, fences removed. Indented text is
  text: writers of reading passages indent paragraphs, not code.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

_FRONT_MATTER = re.compile(r"\A---\n((?:[A-Za-z_][\w-]*:[^\n]*\n)+)---(?:\n|\Z)")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_FENCE = re.compile(r"^(`{3,}|~{3,})")
_QUOTE = re.compile(r"^(?:>\s?)+")
_ATX_HEADING = re.compile(r"^#{1,6}(?:\s+(.*?))?(?:\s+#+)?\s*$")
_SETEXT = re.compile(r"^(?:=+|-+)\s*$")
_RULE = re.compile(r"^(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$")
_ITEM = re.compile(r"^(?:[-*+]|\d{1,9}[.)])\s+(?:\[[ xX]\]\s+)?")
_REFERENCE = re.compile(r"^\[[^\]]+\]:\s*\S+")

_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_IMAGE = re.compile(r"!\[[^\]]*\](?:\([^)]*\)|\[[^\]]*\])")
_LINK = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\[[^\]]*\])")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>")
_LINE_BREAK_TAG = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_STAR = re.compile(r"\*(?=\S)(.+?)(?<=\S)\*")
# Intra-word underscores (snake_case) are not emphasis.
_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_(?=\S)(.+?)(?<=\S)_(?![A-Za-z0-9])")
#: Escaped characters hide in the private-use area until emphasis is resolved.
_HIDDEN = 0xE000


def markdown_to_text(markdown: str) -> str:
    """The plain text of a Markdown document (see the module docstring); "" if none."""
    text = markdown.replace("\r\n", "\n").replace("\r", "\n")
    text = _COMMENT.sub("", _FRONT_MATTER.sub("", text, count=1))
    return "\n\n".join(_paragraphs(text.split("\n")))


def markdown_title(markdown: str) -> str | None:
    """The document's title: its front matter's `title`, else its first `#` heading."""
    text = markdown.replace("\r\n", "\n").replace("\r", "\n")
    front = _FRONT_MATTER.match(text)
    if front is not None:
        for line in front.group(1).splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "title" and value.strip():
                return value.strip().strip("\"'")
    for line in text.split("\n"):
        heading = _ATX_HEADING.match(line.strip())
        if heading is not None and heading.group(1):
            title = _inline(heading.group(1))
            if title:
                return title
    return None


def _paragraphs(lines: list[str]) -> Iterator[str]:
    """Blocks of plain text, in order, each joined onto one line."""
    current: list[str] = []  # the lines of the paragraph so far, as plain text
    fence: str | None = None
    for raw in lines:
        line = raw.strip()
        if fence is not None:
            if line.startswith(fence):
                fence = None
                yield from _flush(current)
            elif line:
                current.append(line)  # code is literal: no inline conversion
            continue
        line = _QUOTE.sub("", line).strip()
        if opening := _FENCE.match(line):
            yield from _flush(current)
            fence = opening.group(1)
        elif _SETEXT.match(line) and current:
            current.pop()  # the line above was a heading
            yield from _flush(current)
        elif not line or _ATX_HEADING.match(line) or _RULE.match(line) or _REFERENCE.match(line):
            yield from _flush(current)
        elif item := _ITEM.match(line):
            yield from _flush(current)
            current.append(_inline(line[item.end() :]))
        else:
            current.append(_inline(line))
    yield from _flush(current)


def _flush(current: list[str]) -> Iterator[str]:
    """Yield the paragraph gathered in `current` (if it has any text) and empty it."""
    paragraph = " ".join(" ".join(current).split())
    current.clear()
    if paragraph:
        yield paragraph


def _inline(line: str) -> str:
    """One line's text without inline Markup; code spans are kept verbatim."""
    pieces: list[str] = []
    start = 0
    for span in _CODE_SPAN.finditer(line):
        pieces.append(_markup_free(line[start : span.start()]))
        pieces.append(span.group(2).strip())
        start = span.end()
    pieces.append(_markup_free(line[start:]))
    return "".join(pieces)


def _markup_free(text: str) -> str:
    text = _ESCAPE.sub(lambda m: chr(_HIDDEN + ord(m.group(1))), text)
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _TAG.sub("", _LINE_BREAK_TAG.sub(" ", text))
    for pattern in (_STRONG, _STRIKE, _STAR, _UNDERSCORE):
        text = pattern.sub(lambda m: m.group(m.lastindex or 0), text)
    text = re.sub("[\ue000-\ue07f]", lambda m: chr(ord(m.group()) - _HIDDEN), text)
    return html.unescape(text)
