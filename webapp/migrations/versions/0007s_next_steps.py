"""what a user does next: run again, and the page size a user chose

Revision ID: 0007s
Revises: 0007o
Create Date: 2026-12-02

`tasks.rerun_of` links a task run again to the one it repeats (the other way is a query
on its index); `users.per_page` remembers the tasks view's page size. Columns are added
with `op.add_column` only: a batch copy of `tasks` on SQLite would drop the triggers of
0004p and 0006l.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007s"
down_revision = "0007o"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("rerun_of", sa.String(32), nullable=True))
    op.create_index("ix_tasks_rerun_of", "tasks", ["rerun_of"])
    op.add_column("users", sa.Column("per_page", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "per_page")
    op.drop_index("ix_tasks_rerun_of", "tasks")
    op.drop_column("tasks", "rerun_of")
