"""The signed-in user a request or connection acts for."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    STUDENT = "student"
    TEACHER = "teacher"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified token's claims."""

    user_id: str
    role: Role
    name: str = ""
    #: A student's class (the `cls` claim), if the token names one.
    class_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN
