"""Classes: a teacher's broadcast to every connected student of a class."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, status

from readerai.api.deps import ServicesDep
from readerai.api.schemas import BroadcastOut, ErrorResponse, TextIn
from readerai.protocol import ClassBroadcast

router = APIRouter(prefix="/api/classes", tags=["classes"])

ClassId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


@router.post(
    "/{class_id}/broadcasts",
    status_code=status.HTTP_202_ACCEPTED,
    responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def broadcast(class_id: ClassId, body: TextIn, services: ServicesDep) -> BroadcastOut:
    """Send `CLASS_BROADCAST` to every connected student of the class, on every node,
    once per connection. 503 `bus_unavailable` while the bus is down (nothing sent)."""
    event = ClassBroadcast(
        class_id=class_id,
        broadcast_id=uuid.uuid4().hex,
        text=body.text,
        sent_at=datetime.now(UTC).isoformat(),
    )
    await services.router.send_to_class(class_id, event)
    return BroadcastOut(broadcast_id=event.broadcast_id, class_id=class_id, sent_at=event.sent_at)
