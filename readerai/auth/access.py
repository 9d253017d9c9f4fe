"""Who may reach what: one place for every access rule.

- a student reaches their own sessions and their classes (read-only);
- a teacher reaches the classes they teach, and the sessions of those classes;
- an admin reaches everything.

A missing thing is `NotFound` (404) before it is `Forbidden` (403), so ids are not
probed through the difference only for things the caller could reach anyway.
"""

from __future__ import annotations

from readerai.auth.principal import Principal, Role
from readerai.errors import Forbidden, NotFound
from readerai.store import Store
from readerai.store.base import ClassRecord, SessionRecord
from readerai.store.models import ReadingRecord


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        wanted = " or ".join(r.value for r in roles)
        raise Forbidden(f"this needs a {wanted} account; you are signed in as a {principal.role}")


class Access:
    """Access checks that need the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def session(self, principal: Principal, session_id: str) -> SessionRecord:
        """The session if `principal` may use it; NotFound or Forbidden otherwise."""
        record = await self._store.get_session(session_id)
        if record is None:
            raise NotFound(f"no session {session_id[:64]!r}")
        if await self._owns(principal, record.user_id, record.class_id):
            return record
        raise Forbidden("this session is not yours")

    async def reading(self, principal: Principal, reading_id: str) -> ReadingRecord:
        """The stored reading if `principal` may see it; NotFound or Forbidden otherwise."""
        reading = await self._store.get_reading(reading_id)
        if reading is None:
            raise NotFound(f"no reading {reading_id[:64]!r}")
        if await self._owns(principal, reading.user_id, reading.class_id):
            return reading
        raise Forbidden("this reading is not yours")

    async def _owns(self, principal: Principal, user_id: str | None, class_id: str | None) -> bool:
        """An admin, the student it belongs to, or the teacher of its class."""
        if principal.role is Role.ADMIN:
            return True
        if principal.role is Role.STUDENT:
            return user_id is not None and user_id == principal.user_id
        if class_id is None:
            return False
        taught = await self._store.get_class(class_id)
        return taught is not None and taught.teacher_id == principal.user_id

    async def teaching(self, principal: Principal, class_id: str) -> ClassRecord:
        """The class if `principal` teaches it (or is an admin)."""
        found = await self._class(class_id)
        if principal.role is Role.ADMIN or (
            principal.role is Role.TEACHER and found.teacher_id == principal.user_id
        ):
            return found
        raise Forbidden("only the class's teacher may do this")

    async def in_class(self, principal: Principal, class_id: str) -> ClassRecord:
        """The class if `principal` teaches it, is in it, or is an admin."""
        found = await self._class(class_id)
        if principal.role is Role.ADMIN:
            return found
        if principal.role is Role.TEACHER and found.teacher_id == principal.user_id:
            return found
        if principal.role is Role.STUDENT and await self._store.is_member(
            class_id, principal.user_id
        ):
            return found
        raise Forbidden("you are not in this class")

    async def student_of(self, principal: Principal, user_id: str) -> None:
        """`principal` may act for student `user_id` (themselves, their teacher, an admin)."""
        if principal.role is Role.ADMIN or principal.user_id == user_id:
            return
        if principal.role is Role.TEACHER:
            for taught in await self._store.list_classes(teacher_id=principal.user_id):
                if await self._store.is_member(taught.id, user_id):
                    return
        raise Forbidden("that student is not in your classes")

    async def _class(self, class_id: str) -> ClassRecord:
        found = await self._store.get_class(class_id)
        if found is None:
            raise NotFound(f"no class {class_id[:64]!r}")
        return found
