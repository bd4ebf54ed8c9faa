"""hand-backs: how many of a task's attempts a stopping consumer handed back

Revision ID: 0007o
Revises: 0006l
Create Date: 2026-12-04

A consumer that stops gracefully (SIGTERM, SIGINT: a rolling deploy) hands its running
tasks back, and each claim after that is a new attempt, because the attempt is what
fences a worker's writes. `tasks.hand_backs` counts those hand-backs, so the attempts a
task has spent toward its kind's `max_attempts` are `attempt - hand_backs`.

Added with op.add_column only: a SQLite batch copy of `tasks` would drop the triggers
of 0004p and 0006l.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007o"
down_revision = "0006l"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("hand_backs", sa.Integer(), nullable=False,
                                     server_default="0"))


def downgrade() -> None:
    op.drop_column("tasks", "hand_backs")
