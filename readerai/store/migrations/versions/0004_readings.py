"""Readings aloud, scored; and each class's help for a stalled reader.

Table `readings`: one row per reading of a passage aloud, with its fluency (WCPM,
accuracy, words attempted and correct, errors), its miscues and its timeline (every
heard word and the passage word it was aligned to) as JSON. Table `classes` gains
`stall_seconds` and `stall_help`; existing classes get the defaults (5.0, 'say_word')
through the server defaults.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("classes") as batch:
        batch.add_column(
            sa.Column("stall_seconds", sa.Float(), nullable=False, server_default="5.0")
        )
        batch.add_column(
            sa.Column("stall_help", sa.String(16), nullable=False, server_default="say_word")
        )
    op.create_table(
        "readings",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("class_id", sa.String(64), nullable=True),
        sa.Column("passage_id", sa.String(64), nullable=False),
        _timestamp("started_at"),
        _timestamp("ended_at"),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("words_attempted", sa.Integer(), nullable=False),
        sa.Column("words_correct", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("wcpm", sa.Float(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=False),
        sa.Column("miscues", sa.JSON(), nullable=False),
        sa.Column("timeline", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_readings"),
    )
    op.create_index("ix_readings_session_id", "readings", ["session_id"])
    op.create_index("ix_readings_class_id_ended_at", "readings", ["class_id", "ended_at"])
    op.create_index("ix_readings_user_id_ended_at", "readings", ["user_id", "ended_at"])


def downgrade() -> None:
    op.drop_index("ix_readings_user_id_ended_at", table_name="readings")
    op.drop_index("ix_readings_class_id_ended_at", table_name="readings")
    op.drop_index("ix_readings_session_id", table_name="readings")
    op.drop_table("readings")
    with op.batch_alter_table("classes") as batch:
        batch.drop_column("stall_help")
        batch.drop_column("stall_seconds")
