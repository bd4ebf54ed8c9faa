"""per-user task counts kept by triggers; indexes for the admin view

Revision ID: 0004p
Revises: 0003e
Create Date: 2026-11-22

The counts are kept by triggers rather than by the code that changes a status, so no
path can forget them (launch, claim, finish, cancel, reap, purge, a script, psql):
each trigger runs in the transaction of the change it counts.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004p"
down_revision = "0003e"
branch_labels = None
depends_on = None

# PostgreSQL: one function for the three triggers. On a status change the two counter
# rows are locked in the order of their status names, so two changes of the same user's
# tasks in opposite directions (claim and reap, say) never deadlock.
POSTGRESQL = [
    """
    CREATE FUNCTION task_counts_follow() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            UPDATE task_counts SET count = count - 1
            WHERE owner_id = OLD.owner_id AND status = OLD.status;
        ELSIF TG_OP = 'INSERT' OR OLD.status > NEW.status THEN
            INSERT INTO task_counts (owner_id, status, count)
            VALUES (NEW.owner_id, NEW.status, 1)
            ON CONFLICT (owner_id, status) DO UPDATE SET count = task_counts.count + 1;
            IF TG_OP = 'UPDATE' THEN
                UPDATE task_counts SET count = count - 1
                WHERE owner_id = OLD.owner_id AND status = OLD.status;
            END IF;
        ELSE
            UPDATE task_counts SET count = count - 1
            WHERE owner_id = OLD.owner_id AND status = OLD.status;
            INSERT INTO task_counts (owner_id, status, count)
            VALUES (NEW.owner_id, NEW.status, 1)
            ON CONFLICT (owner_id, status) DO UPDATE SET count = task_counts.count + 1;
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks
    FOR EACH ROW EXECUTE FUNCTION task_counts_follow()
    """,
    """
    CREATE TRIGGER tasks_count_update AFTER UPDATE OF status, owner_id ON tasks
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       OR OLD.owner_id IS DISTINCT FROM NEW.owner_id)
    EXECUTE FUNCTION task_counts_follow()
    """,
    """
    CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION task_counts_follow()
    """,
]

# SQLite: one writer at a time, so no lock order to keep.
SQLITE = [
    """
    CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks BEGIN
        INSERT INTO task_counts (owner_id, status, count) VALUES (NEW.owner_id, NEW.status, 1)
        ON CONFLICT (owner_id, status) DO UPDATE SET count = count + 1;
    END
    """,
    """
    CREATE TRIGGER tasks_count_update AFTER UPDATE OF status, owner_id ON tasks
    WHEN OLD.status IS NOT NEW.status OR OLD.owner_id IS NOT NEW.owner_id BEGIN
        UPDATE task_counts SET count = count - 1
        WHERE owner_id = OLD.owner_id AND status = OLD.status;
        INSERT INTO task_counts (owner_id, status, count) VALUES (NEW.owner_id, NEW.status, 1)
        ON CONFLICT (owner_id, status) DO UPDATE SET count = count + 1;
    END
    """,
    """
    CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks BEGIN
        UPDATE task_counts SET count = count - 1
        WHERE owner_id = OLD.owner_id AND status = OLD.status;
    END
    """,
]


def upgrade() -> None:
    # Indexes first: plain statements, never a batch copy of the table that would
    # drop triggers.
    op.create_index("ix_tasks_created", "tasks", ["created_at", "id"])
    op.drop_index("ix_tasks_status_created", "tasks")
    op.create_index("ix_tasks_status_created", "tasks", ["status", "created_at", "id"])
    op.create_table(
        "task_counts",
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("owner_id", "status"),
    )
    op.execute(
        "INSERT INTO task_counts (owner_id, status, count) "
        "SELECT owner_id, status, COUNT(*) FROM tasks GROUP BY owner_id, status"
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL if postgresql else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for trigger in ("tasks_count_insert", "tasks_count_update", "tasks_count_delete"):
        op.execute(f"DROP TRIGGER {trigger}" + (" ON tasks" if postgresql else ""))
    if postgresql:
        op.execute("DROP FUNCTION task_counts_follow()")
    op.drop_table("task_counts")
    op.drop_index("ix_tasks_status_created", "tasks")
    op.create_index("ix_tasks_status_created", "tasks", ["status", "created_at"])
    op.drop_index("ix_tasks_created", "tasks")
