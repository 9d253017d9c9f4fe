"""Grounding: split a passage into sentences, pick the ones a question needs, cite them.

Pure functions, no I/O. The same sentence list is used by the engines (which see
only the chosen sentences) and by the citations sent to the client, so a sentence's
index here is its index everywhere.

Relevance is lexical (BM25 over lowercased, lightly stemmed content words). That is
enough for short children's passages, costs microseconds, and needs no model.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

#: Titles and Latin abbreviations that end with a period but never end a sentence.
_ABBREVIATION_WORDS = (
    "mr mrs ms mx dr prof sr st mt rev fr gen col capt lt sgt gov sen rep hon "
    "vs cf eg ie approx dept est fig"
)
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())

#: Words too common to say what a sentence is about.
_STOPWORD_TEXT = (
    "a about above after again against all am an and any are as at be because been "
    "before being below between both but by can could did do does doing don down during "
    "each few for from further had has have having he her here hers herself him himself "
    "his how i if in into is it its itself just let me more most my myself no nor not now "
    "of off on once only or other our ours ourselves out over own same she should so some "
    "such than that the their theirs them themselves then there these they this those "
    "through to too under until up very was we were what when where which while who whom "
    "why will with would you your yours yourself yourselves tell says said story passage"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

# A sentence ends at . ! ? or … (possibly repeated), then any closing quotes or
# brackets, then whitespace. Whether it really ends is decided in `_is_boundary`.
_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s)")
_WORD = re.compile(r"[a-z0-9]+")
_LIST_MARKER = re.compile(r"^(?:[-*+]\s+|\d{1,3}[.)]\s+|>\s?)")
_HEADING = re.compile(r"^#{1,6}(?:\s|$)")
_RULE = re.compile(r"^(?:-{3,}|\*{3,}|_{3,})$")
_DOTTED = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")
_BM25_K1 = 1.2
_BM25_B = 0.75
#: Share of a sentence's (IDF-weighted) content words that an answer must newly
#: cover for the sentence to be cited.
CITE_MIN_SHARE = 0.2
#: Passage sentences whose terms are remembered (a few hundred passages' worth).
SENTENCE_TERMS_CACHE = 16384
#: Sentence lists (passages, questions' contexts) whose BM25 and citation views are
#: remembered.
GROUNDING_INDEX_CACHE = 512


def split_sentences(text: str) -> list[str]:
    """Split passage text into sentences, in order.

    Blank lines end paragraphs; single newlines inside a paragraph are soft wraps.
    Markdown headings and horizontal rules are dropped (a title is not a sentence a
    reader is asked about); list and block-quote markers are removed, and each list
    item is its own block. A period after a title ("Mr.", "Dr."), a Latin
    abbreviation ("e.g.") or a single initial ("J. K.") does not end a sentence, nor
    does an end mark followed by a lowercase word (`"Run!" said Tom.`).
    """
    sentences: list[str] = []
    for block in _blocks(text):
        sentences.extend(_split_block(block))
    return sentences


def _blocks(text: str) -> Iterable[str]:
    """Paragraphs and list items of Markdown-ish text, each joined onto one line."""
    current: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.strip()
        is_item = bool(_LIST_MARKER.match(line)) and not line.startswith(">")
        if not line or _HEADING.match(line) or _RULE.match(line) or is_item:
            if current:
                yield " ".join(current)
            current = []
            if not is_item:
                continue
        current.append(_LIST_MARKER.sub("", line, count=1).strip())
    if current:
        yield " ".join(current)


def _split_block(block: str) -> list[str]:
    text = " ".join(block.split())
    parts: list[str] = []
    start = 0
    for match in _END.finditer(text):
        if _is_boundary(text, match.start(), match.end()):
            parts.append(text[start : match.end()].strip())
            start = match.end()
    parts.append(text[start:].strip())
    return [part for part in parts if part]


def _is_boundary(text: str, mark: int, end: int) -> bool:
    following = text[end:].lstrip()
    if following and following[0].islower():
        return False
    if text[mark] != ".":
        return True
    word = text[:mark].rsplit(maxsplit=1)[-1] if text[:mark].strip() else ""
    word = word.lstrip("\"'(\u201c\u2018[")
    if len(word) == 1 and word.isupper() and word != "I":
        return False  # an initial: "J. K. Rowling"
    if _DOTTED.fullmatch(word):
        return False  # "U.S.", "e.g."
    return word.lower() not in _ABBREVIATIONS


def tokens(text: str) -> list[str]:
    """Stemmed content words of ``text``, in order (stopwords removed)."""
    lowered = text.lower().replace("\u2019", "'")
    # "Mia's kite" is about Mia and a kite; "don't" falls to stopwords below.
    lowered = re.sub(r"'s\b", "", lowered)
    words = _WORD.findall(lowered)
    return [stem(w) for w in words if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]


@functools.lru_cache(maxsize=SENTENCE_TERMS_CACHE)
def sentence_terms(sentence: str) -> tuple[str, ...]:
    """`tokens` of a passage sentence, remembered: the same sentences are scored and
    cited on every question (a pure function, so the cache changes no result)."""
    return tuple(tokens(sentence))


def stem(word: str) -> str:
    """A small suffix stripper: "jumps", "jumped", "jumping" all become "jump".

    Not Porter: it only has to map a word and its common inflections to one key.
    """
    if len(word) <= 3 or word.isdigit():
        return word
    # Plural first, so that "strings" and "string" then lose the same "ing".
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "shes", "ches", "xes", "zes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix, replacement, shortest in (("ied", "y", 2), ("ing", "", 3), ("ed", "", 3)):
        if word.endswith(suffix) and len(word) - len(suffix) >= shortest:
            word = word[: -len(suffix)] + replacement
            break
    return _tidy(word)


def _tidy(word: str) -> str:
    # "stopp" -> "stop" and "make"/"mak" -> "mak", so both sides of a suffix agree.
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


@dataclass(frozen=True, slots=True)
class _Bm25Index:
    """What BM25 needs of a list of sentences, whatever the question: built once."""

    #: Each term's sentences, with how often it occurs in each.
    postings: dict[str, tuple[tuple[int, int], ...]]
    #: Each sentence's length normalisation, ``k1 * (1 - b + b * length / average)``.
    norms: tuple[float, ...]


@functools.lru_cache(maxsize=GROUNDING_INDEX_CACHE)
def _bm25_index(sentences: tuple[str, ...]) -> _Bm25Index:
    docs = [Counter(sentence_terms(sentence)) for sentence in sentences]
    lengths = [sum(doc.values()) for doc in docs]
    average_length = sum(lengths) / len(docs) or 1.0
    postings: dict[str, list[tuple[int, int]]] = {}
    for index, doc in enumerate(docs):
        for term, frequency in doc.items():
            postings.setdefault(term, []).append((index, frequency))
    return _Bm25Index(
        postings={term: tuple(found) for term, found in postings.items()},
        norms=tuple(
            _BM25_K1 * (1 - _BM25_B + _BM25_B * length / average_length) for length in lengths
        ),
    )


def score_sentences(sentences: list[str], question: str) -> list[float]:
    """BM25 score of each sentence for ``question`` (0.0 when no content word matches).

    A passage's sentences are scored for question after question: their index is
    remembered (`_bm25_index`), so a question costs only its own terms' postings.
    """
    scores = [0.0] * len(sentences)
    query = set(tokens(question))
    if not sentences or not query:
        return scores
    index = _bm25_index(tuple(sentences))
    total = len(sentences)
    for term in sorted(query):  # one order, so equal sentences get equal sums
        found = index.postings.get(term)
        if found is None:
            continue
        idf = math.log(1 + (total - len(found) + 0.5) / (len(found) + 0.5))
        for doc, frequency in found:
            scores[doc] += idf * frequency * (_BM25_K1 + 1) / (frequency + index.norms[doc])
    return scores


def select_context(sentences: list[str], question: str, limit: int) -> list[tuple[int, str]]:
    """The sentences to put in front of the engine, with their indices, in passage order.

    All of them when there are at most ``limit``; otherwise the ``limit`` best by BM25
    (ties go to the earlier sentence, so a question with no matching word gets the
    start of the passage).
    """
    if limit < 0:
        raise ValueError("limit must not be negative")
    if len(sentences) <= limit:
        return list(enumerate(sentences))
    scores = score_sentences(sentences, question)
    # Best first; a stable sort keeps ties in passage order.
    best = sorted(range(len(sentences)), key=scores.__getitem__, reverse=True)[:limit]
    return [(i, sentences[i]) for i in sorted(best)]


def cite(answer: str, context: list[tuple[int, str]]) -> list[int]:
    """Indices of the context sentences ``answer`` draws on, sorted; empty if none.

    Greedy coverage of the answer's content words: repeatedly take the sentence
    that covers the most answer words not yet covered (weighted by IDF over the
    context, so "kite" in a story about a kite counts little), and cite it if it
    newly covers at least two of its words (one, if that is all it has) making up
    at least `CITE_MIN_SHARE` of its weight. A sentence that only repeats words an
    earlier citation already explained is not cited.
    """
    said = set(tokens(answer))
    if not said or not context:
        return []
    view = _cite_view(tuple(context))
    weight = view.weight
    # What each sentence shares with the answer; one sharing nothing never gains.
    hits = {i: words & said for i, words in view.sentences.items() if not words.isdisjoint(said)}
    cited: list[int] = []
    covered: set[str] = set()
    while hits:
        gains = {index: gain for index, shared in hits.items() if (gain := shared - covered)}
        if not gains:
            break  # no sentence covers anything more (`covered` only grows)
        best = max(gains, key=lambda i: (sum(weight[w] for w in gains[i]), -i))
        new, words = gains[best], view.sentences[best]
        del hits[best]
        share = sum(weight[w] for w in new) / view.totals[best]
        if len(new) < min(2, len(words)) or share < CITE_MIN_SHARE:
            continue
        cited.append(best)
        covered |= new
    return sorted(cited)


@dataclass(frozen=True, slots=True)
class _CiteView:
    """What `cite` needs of a context, whatever the answer: built once."""

    #: Each sentence's content words (sentences with none left out).
    sentences: dict[int, frozenset[str]]
    #: Each word's IDF over those sentences.
    weight: dict[str, float]
    #: Each sentence's words' IDF, summed.
    totals: dict[int, float]


@functools.lru_cache(maxsize=GROUNDING_INDEX_CACHE)
def _cite_view(context: tuple[tuple[int, str], ...]) -> _CiteView:
    sentences = {index: frozenset(sentence_terms(sentence)) for index, sentence in context}
    sentences = {index: words for index, words in sentences.items() if words}
    containing = Counter(word for words in sentences.values() for word in words)
    total = len(sentences)
    weight = {
        word: math.log(1 + (total - count + 0.5) / (count + 0.5))
        for word, count in containing.items()
    }
    totals = {index: sum(weight[w] for w in words) for index, words in sentences.items()}
    return _CiteView(sentences=sentences, weight=weight, totals=totals)
