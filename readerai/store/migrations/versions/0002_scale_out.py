"""Scale-out: sessions get an optional class; messages record their last write.

`messages.updated_at` is the lease of a reply being streamed: every checkpoint renews
it, and a reply `in_progress` whose lease ran out belongs to a dead node. Existing
rows take their `created_at`; the column is added nullable, filled, then made NOT
NULL (on SQLite that last step rebuilds the table, hence the batch operations).

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The rebuilt SQLite table must keep AUTOINCREMENT (ids never reused), which
#: reflection alone does not carry over.
_MESSAGES_TABLE_KWARGS = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("class_id", sa.String(64), nullable=True))
        batch.create_index("ix_sessions_class_id", ["class_id"])

    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(sa.text("UPDATE messages SET updated_at = created_at"))
    last_id = _sqlite_last_message_id()
    with op.batch_alter_table("messages", table_kwargs=_MESSAGES_TABLE_KWARGS) as batch:
        batch.alter_column("updated_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    _restore_sqlite_last_message_id(last_id)


def downgrade() -> None:
    last_id = _sqlite_last_message_id()
    with op.batch_alter_table("messages", table_kwargs=_MESSAGES_TABLE_KWARGS) as batch:
        batch.drop_column("updated_at")
    _restore_sqlite_last_message_id(last_id)

    with op.batch_alter_table("sessions") as batch:
        batch.drop_index("ix_sessions_class_id")
        batch.drop_column("class_id")


def _sqlite_last_message_id() -> int | None:
    """The highest message id SQLite ever handed out (None on other databases).

    Rebuilding the table drops its `sqlite_sequence` entry, and the copy starts from
    the highest id left: ids of deleted newest rows would be handed out again.
    """
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return None
    query = sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'messages'")
    seq: int | None = bind.execute(query).scalar_one_or_none()
    return seq


def _restore_sqlite_last_message_id(last_id: int | None) -> None:
    if last_id is None:
        return
    bind = op.get_bind()
    values = {"seq": last_id}
    updated = bind.execute(
        sa.text("UPDATE sqlite_sequence SET seq = max(seq, :seq) WHERE name = 'messages'"), values
    )
    if updated.rowcount == 0:
        bind.execute(
            sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('messages', :seq)"), values
        )
