"""Demo accounts for the embedded defaults: a teacher, a class and a student.

`readerai serve` on a fresh laptop should be usable at once: it creates (or finds)
the demo accounts and logs one sign-in link for each, carrying a fresh one-time code,
so no long-lived token ever appears in a URL or a terminal's scrollback.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from readerai.auth.principal import Role
from readerai.errors import Conflict
from readerai.store import Store

TEACHER_ID = "demo-teacher"
STUDENT_ID = "demo-student"
CLASS_ID = "demo-class"


@dataclass(frozen=True, slots=True)
class DemoLinks:
    teacher: str
    student: str


async def seed_demo(store: Store, base_url: str, code_ttl_seconds: float) -> DemoLinks:
    """Make sure the demo accounts exist; return fresh sign-in links for them."""
    await store.upsert_user(user_id=TEACHER_ID, role=Role.TEACHER.value, name="Demo Teacher")
    await store.upsert_user(user_id=STUDENT_ID, role=Role.STUDENT.value, name="Demo Student")
    if await store.get_class(CLASS_ID) is None:
        with contextlib.suppress(Conflict):  # another node made it at the same moment
            await store.create_class(name="Demo class", teacher_id=TEACHER_ID, class_id=CLASS_ID)
    await store.add_member(CLASS_ID, STUDENT_ID)
    teacher_code, _ = await store.create_login_code(
        user_id=TEACHER_ID, role=Role.TEACHER.value, class_id=None, ttl_seconds=code_ttl_seconds
    )
    student_code, _ = await store.create_login_code(
        user_id=STUDENT_ID,
        role=Role.STUDENT.value,
        class_id=CLASS_ID,
        ttl_seconds=code_ttl_seconds,
    )
    base = base_url.rstrip("/")
    return DemoLinks(
        teacher=f"{base}/teacher?code={teacher_code}", student=f"{base}/?code={student_code}"
    )
