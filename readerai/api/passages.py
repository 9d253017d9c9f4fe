"""Passages: list, read, add."""

from __future__ import annotations

from fastapi import APIRouter, status

from readerai.api.deps import ServicesDep
from readerai.api.schemas import ErrorResponse, PassageIn, PassageOut, PassageSummary
from readerai.errors import InvalidPayload, NotFound
from readerai.grounding import split_sentences
from readerai.store import PassageRecord

router = APIRouter(prefix="/api/passages", tags=["passages"])


def _out(p: PassageRecord) -> PassageOut:
    return PassageOut(id=p.id, title=p.title, level=p.level, text=p.text, sentences=p.sentences)


@router.get("")
async def list_passages(services: ServicesDep) -> list[PassageSummary]:
    """Every passage, without its text."""
    return [
        PassageSummary(id=p.id, title=p.title, level=p.level, sentence_count=len(p.sentences))
        for p in await services.store.list_passages()
    ]


@router.get("/{passage_id}", responses={404: {"model": ErrorResponse}})
async def get_passage(passage_id: str, services: ServicesDep) -> PassageOut:
    """One passage with its text split into sentences (the indices citations use)."""
    passage = await services.catalog.get(passage_id)
    if passage is None:
        raise NotFound(f"no passage {passage_id!r}")
    return _out(passage)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
async def add_passage(body: PassageIn, services: ServicesDep) -> PassageOut:
    """Add a passage; its sentences are split on the server."""
    sentences = split_sentences(body.text)
    if not sentences:
        raise InvalidPayload("the passage has no sentences")
    passage = await services.store.add_passage(
        title=body.title.strip(), text=body.text, level=body.level, sentences=sentences
    )
    services.catalog.remember(passage)
    return _out(passage)
