"""Classes: teachers, their students, sign-in codes, broadcasts and the roster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import pydantic_core
from fastapi import APIRouter, Path, Response, status
from fastapi.responses import StreamingResponse

from readerai.api.accounts import issue_code, open_account
from readerai.api.deps import PrincipalDep, ServicesDep, TeacherDep
from readerai.api.schemas import (
    BroadcastOut,
    BroadcastView,
    ClassDetail,
    ClassHelpIn,
    ClassIn,
    ClassOut,
    ErrorResponse,
    RosterEntry,
    SignInCode,
    StudentIn,
    StudentView,
    TextIn,
)
from readerai.auth.principal import Role
from readerai.errors import Forbidden, NotFound
from readerai.protocol import ClassBroadcast
from readerai.services import NodeServices
from readerai.store.base import BroadcastRecord, ClassRecord, SessionRecord

router = APIRouter(prefix="/api/classes", tags=["classes"])

ClassId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
UserId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]
REFUSALS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
}
#: Broadcasts a student sees on connecting, and the dashboard lists.
RECENT_BROADCASTS = 20
#: A comment line keeps proxies from closing a quiet feed.
KEEP_ALIVE_SECONDS = 15.0


def _class_out(c: ClassRecord) -> ClassOut:
    return ClassOut(
        id=c.id,
        name=c.name,
        teacher_id=c.teacher_id,
        student_count=c.student_count,
        stall_seconds=c.stall_seconds,
        stall_help=c.stall_help,
    )


def broadcast_view(b: BroadcastRecord) -> BroadcastView:
    return BroadcastView(
        broadcast_id=b.id, class_id=b.class_id, text=b.text, sent_at=b.sent_at.isoformat()
    )


@router.get("", responses=REFUSALS)
async def list_classes(services: ServicesDep, principal: PrincipalDep) -> list[ClassOut]:
    """A teacher's classes, a student's classes, or (admins) every class."""
    store = services.store
    if principal.role is Role.TEACHER:
        found = await store.list_classes(teacher_id=principal.user_id)
    elif principal.role is Role.STUDENT:
        found = await store.list_classes(student_id=principal.user_id)
    else:
        found = await store.list_classes()
    return [_class_out(c) for c in found]


@router.post("", status_code=status.HTTP_201_CREATED, responses=REFUSALS)
async def create_class(body: ClassIn, services: ServicesDep, principal: TeacherDep) -> ClassOut:
    """Create a class; a teacher teaches it, an admin names its teacher (`teacherId`)."""
    teacher_id = principal.user_id
    if body.teacher_id is not None and body.teacher_id != principal.user_id:
        if principal.role is not Role.ADMIN:
            raise Forbidden("only admins create classes for another teacher")
        teacher_id = body.teacher_id
        teacher = await services.store.get_user(teacher_id)
        if teacher is None or teacher.role != Role.TEACHER:
            raise NotFound(f"no teacher {teacher_id!r}")
    else:
        await services.store.upsert_user(
            user_id=principal.user_id, role=principal.role.value, name=principal.name
        )
    created = await services.store.create_class(
        name=body.name, teacher_id=teacher_id, class_id=body.id
    )
    return _class_out(created)


@router.get("/{class_id}", responses=REFUSALS)
async def get_class(
    class_id: ClassId, services: ServicesDep, principal: PrincipalDep
) -> ClassDetail:
    """The class and its students (its teacher, its students, admins)."""
    found = await services.access.in_class(principal, class_id)
    students = await services.store.class_students(class_id)
    return ClassDetail(
        **_class_out(found).model_dump(),
        students=[StudentView(user_id=s.id, name=s.name) for s in students],
    )


@router.patch("/{class_id}", responses=REFUSALS)
async def change_class(
    class_id: ClassId, body: ClassHelpIn, services: ServicesDep, principal: TeacherDep
) -> ClassOut:
    """Change how read-aloud helps a student stalled on a word (`stallSeconds`,
    `stallHelp`); fields left out stay as they are (its teacher, admins)."""
    await services.access.teaching(principal, class_id)
    changed = await services.store.set_class_help(
        class_id, stall_seconds=body.stall_seconds, stall_help=body.stall_help
    )
    return _class_out(changed)


@router.post("/{class_id}/students", status_code=status.HTTP_201_CREATED, responses=REFUSALS)
async def add_student(
    class_id: ClassId, body: StudentIn, services: ServicesDep, principal: TeacherDep
) -> SignInCode:
    """Add a student (created if new) and give them a one-time sign-in code."""
    await services.access.teaching(principal, class_id)
    user_id = await open_account(services, role=Role.STUDENT, name=body.name, user_id=body.user_id)
    await services.store.add_member(class_id, user_id)
    return await issue_code(
        services, user_id=user_id, name=body.name, role=Role.STUDENT, class_id=class_id
    )


@router.post("/{class_id}/students/{user_id}/code", responses=REFUSALS)
async def new_code(
    class_id: ClassId, user_id: UserId, services: ServicesDep, principal: TeacherDep
) -> SignInCode:
    """A fresh one-time sign-in code for a student of the class."""
    await services.access.teaching(principal, class_id)
    if not await services.store.is_member(class_id, user_id):
        raise NotFound(f"{user_id!r} is not in class {class_id!r}")
    user = await services.store.get_user(user_id)
    name = user.name if user else ""
    return await issue_code(
        services, user_id=user_id, name=name, role=Role.STUDENT, class_id=class_id
    )


@router.delete(
    "/{class_id}/students/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=REFUSALS
)
async def remove_student(
    class_id: ClassId, user_id: UserId, services: ServicesDep, principal: TeacherDep
) -> Response:
    """Take a student out of the class (their sessions and history are kept)."""
    await services.access.teaching(principal, class_id)
    if not await services.store.remove_member(class_id, user_id):
        raise NotFound(f"{user_id!r} is not in class {class_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{class_id}/broadcasts",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**REFUSALS, 503: {"model": ErrorResponse}},
)
async def broadcast(
    class_id: ClassId, body: TextIn, services: ServicesDep, principal: TeacherDep
) -> BroadcastOut:
    """Send `CLASS_BROADCAST` to every connected student of the class, on every node,
    once per connection; students who connect later see it in `SESSION_RESTORED`.
    503 `bus_unavailable` while the bus is down (it is stored, not delivered live)."""
    await services.access.teaching(principal, class_id)
    stored = await services.store.add_broadcast(
        class_id=class_id, sender_id=principal.user_id, text=body.text
    )
    event = ClassBroadcast(
        class_id=class_id,
        broadcast_id=stored.id,
        text=stored.text,
        sent_at=stored.sent_at.isoformat(),
    )
    await services.router.send_to_class(class_id, event)
    return BroadcastOut(broadcast_id=stored.id, class_id=class_id, sent_at=event.sent_at)


@router.get("/{class_id}/broadcasts", responses=REFUSALS)
async def recent_broadcasts(
    class_id: ClassId, services: ServicesDep, principal: PrincipalDep
) -> list[BroadcastView]:
    """The class's last broadcasts, oldest first."""
    await services.access.in_class(principal, class_id)
    found = await services.store.recent_broadcasts(class_id, limit=RECENT_BROADCASTS)
    return [broadcast_view(b) for b in found]


@router.get("/{class_id}/roster", responses=REFUSALS)
async def roster(
    class_id: ClassId, services: ServicesDep, principal: TeacherDep
) -> list[RosterEntry]:
    """Each student's latest session, position, questions and last activity."""
    await services.access.teaching(principal, class_id)
    return await class_roster(services, class_id)


@router.get(
    "/{class_id}/feed",
    responses={**REFUSALS, 200: {"content": {"text/event-stream": {}}}},
    response_class=StreamingResponse,
)
async def feed(
    class_id: ClassId, services: ServicesDep, principal: TeacherDep
) -> StreamingResponse:
    """The dashboard's live feed (server-sent events): `roster` first, then `student`,
    `message` and `reading` (a reading aloud scored) events as they happen on any
    node, and a keep-alive comment every 15 s. Read it with `fetch` so the token goes
    in the `Authorization` header."""
    await services.access.teaching(principal, class_id)
    dashboards = services.hub.feed

    async def events() -> AsyncIterator[str]:
        # Subscribed before the snapshot is read: nothing falls between the two.
        with dashboards.subscribe(class_id) as queue:
            roster = await class_roster(services, class_id)
            data = pydantic_core.to_json([e.model_dump(by_alias=True) for e in roster])
            yield _sse("roster", data.decode())
            while True:
                waiting = True
                with anyio.move_on_after(KEEP_ALIVE_SECONDS):
                    item = await queue.get()
                    waiting = False
                if waiting:
                    yield ": keep-alive\n\n"
                elif item is None:
                    return  # the node is shutting down
                else:
                    yield _sse(*item)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse(kind: str, data: str) -> str:
    return f"event: {kind}\ndata: {data}\n\n"


async def class_roster(services: NodeServices, class_id: str) -> list[RosterEntry]:
    """The dashboard's snapshot of a class (also the first event of its feed)."""
    store = services.store
    students = await store.class_students(class_id)
    sessions = await store.list_sessions(user_ids=[s.id for s in students], limit=500)
    latest: dict[str, SessionRecord] = {}
    for found in sessions:  # newest first: keep each student's first
        if found.user_id is not None:
            latest.setdefault(found.user_id, found)
    stats = await store.session_stats([r.id for r in latest.values()])
    entries = []
    for student in students:
        record = latest.get(student.id)
        position = None
        online = False
        questions, last_activity = 0, None
        if record is not None:
            questions, last_activity = stats.get(record.id, (0, None))
            progress = await store.get_progress(record.id)
            mine = [p for p in progress if p.passage_id == record.passage_id]
            position = mine[0].position if mine else None
            online = await services.presence_of(record.id)
        entries.append(
            RosterEntry(
                user_id=student.id,
                name=student.name,
                online=online,
                session_id=record.id if record else None,
                passage_id=record.passage_id if record else None,
                position=position,
                questions=questions,
                last_activity=last_activity.isoformat() if last_activity else None,
            )
        )
    return entries
