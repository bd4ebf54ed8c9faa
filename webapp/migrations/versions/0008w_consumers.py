"""consumers register and beat; finished tasks by time, for the administrator's overview

Revision ID: 0008w
Revises: 0007s
Create Date: 2026-12-05

`consumers` holds one row per running consumer process (webapp/workers/registry.py): it
inserts its row at start, renews `heartbeat_at` and `tasks_in_hand` while it runs and
deletes the row when it stops; a row whose beat stopped is shown as gone, then dropped.
`ix_tasks_finished` serves the overview's last 24 hours of finished tasks of all users.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008w"
down_revision = "0008h"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consumers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("workers", sa.Integer(), nullable=False),
        sa.Column("tasks_in_hand", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_tasks_finished", "tasks", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_finished", "tasks")
    op.drop_table("consumers")
