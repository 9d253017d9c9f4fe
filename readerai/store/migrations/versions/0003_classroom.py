"""The classroom: users, classes and their members, broadcasts, sign-in codes, jobs.

Also: sessions belong to a user (nullable, not a foreign key: sessions may predate
accounts); passages get a `status` (existing rows are `ready`, through the server
default), a retrieval index (`terms`) and recorded narration (`passage_audio`).

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    _create_accounts()
    _create_work()
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("user_id", sa.String(64), nullable=True))
        batch.create_index("ix_sessions_user_id", ["user_id"])
    with op.batch_alter_table("passages") as batch:
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="ready"))
        batch.add_column(sa.Column("terms", sa.JSON(), nullable=True))
    op.create_table(
        "passage_audio",
        sa.Column("passage_id", sa.String(64), nullable=False),
        sa.Column("sentence_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("pcm", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("passage_id", "sentence_index", name="pk_passage_audio"),
        sa.ForeignKeyConstraint(
            ["passage_id"],
            ["passages.id"],
            name="fk_passage_audio_passage_id_passages",
            ondelete="CASCADE",
        ),
    )


def _create_accounts() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
    )
    op.create_table(
        "classes",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("teacher_id", sa.String(64), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_classes"),
        sa.ForeignKeyConstraint(["teacher_id"], ["users.id"], name="fk_classes_teacher_id_users"),
    )
    op.create_table(
        "class_members",
        sa.Column("class_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        _timestamp("joined_at"),
        sa.PrimaryKeyConstraint("class_id", "user_id", name="pk_class_members"),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["classes.id"],
            name="fk_class_members_class_id_classes",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_class_members_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_class_members_user_id", "class_members", ["user_id"])
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("class_id", sa.String(64), nullable=False),
        sa.Column("sender_id", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        _timestamp("sent_at"),
        sa.PrimaryKeyConstraint("id", name="pk_broadcasts"),
    )
    op.create_index("ix_broadcasts_class_id", "broadcasts", ["class_id"])
    op.create_table(
        "login_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("class_id", sa.String(64), nullable=True),
        _timestamp("expires_at"),
        _timestamp("used_at", nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("code_hash", name="pk_login_codes"),
    )


def _create_work() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        _timestamp("heartbeat_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"])


def downgrade() -> None:
    op.drop_table("passage_audio")
    with op.batch_alter_table("passages") as batch:
        batch.drop_column("terms")
        batch.drop_column("status")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_index("ix_sessions_user_id")
        batch.drop_column("user_id")
    op.drop_index("ix_jobs_status", table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("login_codes")
    op.drop_index("ix_broadcasts_class_id", table_name="broadcasts")
    op.drop_table("broadcasts")
    op.drop_index("ix_class_members_user_id", table_name="class_members")
    op.drop_table("class_members")
    op.drop_table("classes")
    op.drop_table("users")
