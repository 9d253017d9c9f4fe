"""Passages: list, read, add (prepared by a job), and their recorded narration.

A passage is shown with where each sentence starts in its text (`sentenceStarts`):
reading positions are character offsets, and a page or dashboard turns one into "the
sentence containing it" with them.
"""

from __future__ import annotations

import io
import re
import wave
from collections.abc import Sequence
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Path, Response, status

from readerai.api.deps import PrincipalDep, ServicesDep, TeacherDep
from readerai.api.schemas import (
    MAX_STORED_INT,
    ErrorResponse,
    PassageAccepted,
    PassageIn,
    PassageOut,
    PassageSummary,
)
from readerai.errors import InvalidPayload, NotFound
from readerai.jobs import PREPARE_PASSAGE, markdown_to_text
from readerai.services import NodeServices
from readerai.store import PassageRecord

router = APIRouter(prefix="/api/passages", tags=["passages"])

#: How far past the previous sentence's end a sentence is looked for, beyond its own
#: length (Markdown marks, blank lines and headings dropped between two sentences).
_SEARCH_SLACK = 1000


def sentence_starts(text: str, sentences: Sequence[str]) -> list[int]:
    """Where each of `sentences` (as `grounding.split_sentences` cut `text`) starts in
    `text`, as a character offset (Python's index: code points).

    `split_sentences` joins a sentence's words with single spaces and drops list and
    quote marks, so each sentence is looked for in order, from where the one before
    ended, with any whitespace between its words; failing that (a mark inside it), its
    first word; failing that, it starts where the one before ended. So the offsets
    never decrease, and each search reads at most twice the sentence's length plus
    `_SEARCH_SLACK` characters.
    """
    starts: list[int] = []
    cursor = 0
    for sentence in sentences:
        words = sentence.split()
        end = min(len(text), cursor + 2 * len(sentence) + _SEARCH_SLACK)
        found = None
        if words:
            whole = re.compile(r"\s+".join(map(re.escape, words)))
            found = whole.search(text, cursor, end) or re.compile(re.escape(words[0])).search(
                text, cursor, end
            )
        if found is None:
            starts.append(cursor)
            continue
        starts.append(found.start())
        cursor = found.end()
    return starts


async def _has_narration(services: NodeServices, p: PassageRecord) -> bool:
    return bool(p.sentences) and await services.store.narration_count(p.id) == len(p.sentences)


async def _starts(passages: list[PassageRecord]) -> list[list[int]]:
    """`sentence_starts` of each passage, in a worker thread (a long passage of many
    sentences costs tens of milliseconds)."""

    def each() -> list[list[int]]:
        return [sentence_starts(p.text, p.sentences) for p in passages]

    return await anyio.to_thread.run_sync(each)


async def _out(services: NodeServices, p: PassageRecord) -> PassageOut:
    [starts] = await _starts([p])
    return PassageOut(
        id=p.id,
        title=p.title,
        level=p.level,
        text=p.text,
        sentences=p.sentences,
        sentence_starts=starts,
        status=p.status,
        narration=await _has_narration(services, p),
    )


@router.get("")
async def list_passages(services: ServicesDep, _: PrincipalDep) -> list[PassageSummary]:
    """Every passage, without its text."""
    passages = await services.store.list_passages()
    return [
        PassageSummary(
            id=p.id,
            title=p.title,
            level=p.level,
            sentence_count=len(p.sentences),
            sentence_starts=starts,
            status=p.status,
            narration=await _has_narration(services, p),
        )
        for p, starts in zip(passages, await _starts(passages), strict=True)
    ]


@router.get("/{passage_id}", responses={404: {"model": ErrorResponse}})
async def get_passage(passage_id: str, services: ServicesDep, _: PrincipalDep) -> PassageOut:
    """One passage with its text split into sentences (the indices citations use)."""
    passage = await services.catalog.get(passage_id)
    if passage is None:
        raise NotFound(f"no passage {passage_id!r}")
    return await _out(services, passage)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
async def add_passage(body: PassageIn, services: ServicesDep, _: TeacherDep) -> PassageAccepted:
    """Add a passage, `preparing` until its job has split, indexed and narrated it.

    Markdown is turned into plain text here, and that is the text stored and shown.
    A text without sentences is not refused here: its job fails and says why.
    """
    if not body.text.strip():
        raise InvalidPayload("the passage has no text")
    text = markdown_to_text(body.text) if body.format == "markdown" else body.text
    passage = await services.store.add_passage(
        title=body.title, text=text, level=body.level, sentences=[], status="preparing"
    )
    job = await services.store.create_job(kind=PREPARE_PASSAGE, target=passage.id)
    services.jobs.kick()
    return PassageAccepted(job_id=job.id, passage_id=passage.id)


@router.get(
    "/{passage_id}/audio/{index}",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}}, 404: {"model": ErrorResponse}},
)
async def get_narration(
    passage_id: str,
    index: Annotated[
        int,
        Path(ge=0, le=MAX_STORED_INT, description="The sentence's index in `sentences`."),
    ],
    services: ServicesDep,
    _: PrincipalDep,
) -> Response:
    """The recorded narration of one sentence, as a WAV file (PCM16 mono)."""
    narration = await services.store.get_narration(passage_id, index)
    if narration is None:
        raise NotFound(f"no narration of sentence {index} of passage {passage_id!r}")
    sample_rate, pcm = narration
    return Response(content=_wav(pcm, sample_rate), media_type="audio/wav")


def _wav(pcm: bytes, sample_rate: int) -> bytes:
    """PCM16 mono wrapped in a WAV header (in memory: no I/O)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm)
    return buffer.getvalue()
