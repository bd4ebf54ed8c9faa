"""a task's own log: its lines, and the number of the last one on the task

Revision ID: 0008t
Revises: 0007s
Create Date: 2026-12-03

`task_log_lines` keeps the latest 1,000 lines of each task's log, numbered per task
(webapp.core.tasklog); they go with their task (ON DELETE CASCADE). `tasks.log_seq` is the
number of the last line, raised by the statement that writes the lines. It counts as a
visible change for the live versions of 0006l, so a task's page polling with `since=`
learns that its log grew: the update trigger is made again with it in its column list
(dropping and creating a trigger; a batch copy of `tasks` on SQLite would lose them all).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008t"
down_revision = "0007s"
branch_labels = None
depends_on = None

# 0006l's list of what the tasks view and the detail page show.
VISIBLE = ("status", "description", "progress", "progress_message", "outcome", "details",
           "cancel_requested_at", "started_at", "finished_at", "attempt")


def _update_trigger(columns: tuple[str, ...], postgresql: bool) -> list[str]:
    if postgresql:
        changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
        return [
            "DROP TRIGGER tasks_version_update ON tasks",
            f"""
            CREATE CONSTRAINT TRIGGER tasks_version_update
            AFTER UPDATE OF {", ".join(columns)} ON tasks
            DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW WHEN ({changed})
            EXECUTE FUNCTION tasks_version_follow()
            """,
        ]
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)
    return [
        "DROP TRIGGER tasks_version_update",
        f"""
        CREATE TRIGGER tasks_version_update AFTER UPDATE OF {", ".join(columns)} ON tasks
        WHEN {changed} BEGIN
            UPDATE users SET tasks_version = tasks_version + 1 WHERE id = NEW.owner_id;
            UPDATE tasks SET version = (SELECT tasks_version FROM users WHERE id = NEW.owner_id)
            WHERE id = NEW.id;
        END
        """,
    ]


def upgrade() -> None:
    op.add_column("tasks", sa.Column("log_seq", sa.Integer(), nullable=False,
                                     server_default="0"))
    op.create_table(
        "task_log_lines",
        sa.Column("task_id", sa.String(32), sa.ForeignKey("tasks.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("text", sa.String(500), nullable=False),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in _update_trigger((*VISIBLE, "log_seq"), postgresql):
        op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in _update_trigger(VISIBLE, postgresql):
        op.execute(statement)
    op.drop_table("task_log_lines")
    op.drop_column("tasks", "log_seq")
