"""the tasks view's version: a per-user number bumped by every change a user would see

Revision ID: 0006l
Revises: 0005b
Create Date: 2026-11-27

`users.tasks_version` grows with every insert, delete or visible change (status,
progress, outcome, ...) of the user's tasks, and `tasks.version` is the user's number
after the row's own last such change. An open tasks view polls with the number it was
rendered at: equal means nothing it shows has changed (204); otherwise only the rows
whose version is newer are sent again. `tasks.seen_at` marks a finished task whose
detail page the user opened, so the bell no longer calls it new; `users.seen_bell_version`
is the bell version at which the user last saw everything, so a view can tell there is
nothing new to mark seen without a query.

Kept by triggers, like the counters of 0004p, so no path can forget them. On PostgreSQL
the triggers are deferred to commit: the user's row is then locked after every task row
the transaction touched, so two transactions never take the two in opposite orders,
and numbers are handed out in commit order (a poll never skips a change that commits
late). SQLite has one writer at a time, so there the triggers run at once. PostgreSQL
announces both of a user's numbers (NOTIFY bell_versions: "user bell tasks").
"""

import sqlalchemy as sa
from alembic import op

revision = "0006l"
down_revision = "0005b"
branch_labels = None
depends_on = None

# What the tasks view and the detail page show; heartbeats and dispatch stamps are not.
VISIBLE = ("status", "description", "progress", "progress_message", "outcome", "details",
           "cancel_requested_at", "started_at", "finished_at", "attempt")


def _changed(distinct: str) -> str:
    return " OR ".join(f"OLD.{column} {distinct} NEW.{column}" for column in VISIBLE)


POSTGRESQL = [
    """
    CREATE FUNCTION tasks_version_follow() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        next_version integer;
    BEGIN
        IF TG_OP = 'DELETE' THEN
            UPDATE users SET tasks_version = tasks_version + 1 WHERE id = OLD.owner_id;
        ELSE
            UPDATE users SET tasks_version = tasks_version + 1 WHERE id = NEW.owner_id
            RETURNING tasks_version INTO next_version;
            UPDATE tasks SET version = next_version WHERE id = NEW.id;
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE CONSTRAINT TRIGGER tasks_version_insert AFTER INSERT ON tasks
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION tasks_version_follow()
    """,
    f"""
    CREATE CONSTRAINT TRIGGER tasks_version_update AFTER UPDATE OF {", ".join(VISIBLE)} ON tasks
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN ({_changed("IS DISTINCT FROM")})
    EXECUTE FUNCTION tasks_version_follow()
    """,
    """
    CREATE CONSTRAINT TRIGGER tasks_version_delete AFTER DELETE ON tasks
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION tasks_version_follow()
    """,
    "DROP TRIGGER users_bell_version_announce ON users",
    """
    CREATE OR REPLACE FUNCTION bell_version_announce() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('bell_versions',
                          NEW.id || ' ' || NEW.bell_version || ' ' || NEW.tasks_version);
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER users_versions_announce
    AFTER UPDATE OF bell_version, tasks_version ON users
    FOR EACH ROW WHEN (NEW.bell_version IS DISTINCT FROM OLD.bell_version
                       OR NEW.tasks_version IS DISTINCT FROM OLD.tasks_version)
    EXECUTE FUNCTION bell_version_announce()
    """,
]

SQLITE = [
    """
    CREATE TRIGGER tasks_version_insert AFTER INSERT ON tasks BEGIN
        UPDATE users SET tasks_version = tasks_version + 1 WHERE id = NEW.owner_id;
        UPDATE tasks SET version = (SELECT tasks_version FROM users WHERE id = NEW.owner_id)
        WHERE id = NEW.id;
    END
    """,
    f"""
    CREATE TRIGGER tasks_version_update AFTER UPDATE OF {", ".join(VISIBLE)} ON tasks
    WHEN {_changed("IS NOT")} BEGIN
        UPDATE users SET tasks_version = tasks_version + 1 WHERE id = NEW.owner_id;
        UPDATE tasks SET version = (SELECT tasks_version FROM users WHERE id = NEW.owner_id)
        WHERE id = NEW.id;
    END
    """,
    """
    CREATE TRIGGER tasks_version_delete AFTER DELETE ON tasks BEGIN
        UPDATE users SET tasks_version = tasks_version + 1 WHERE id = OLD.owner_id;
    END
    """,
]


def upgrade() -> None:
    op.add_column("users", sa.Column("tasks_version", sa.Integer(), nullable=False,
                                     server_default="0"))
    op.add_column("users", sa.Column("seen_bell_version", sa.Integer(), nullable=True))
    op.add_column("tasks", sa.Column("version", sa.Integer(), nullable=False,
                                     server_default="0"))
    op.add_column("tasks", sa.Column("seen_at", sa.DateTime(), nullable=True))
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL if postgresql else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for trigger in ("tasks_version_insert", "tasks_version_update", "tasks_version_delete"):
        op.execute(f"DROP TRIGGER {trigger}" + (" ON tasks" if postgresql else ""))
    if postgresql:
        op.execute("DROP FUNCTION tasks_version_follow()")
        op.execute("DROP TRIGGER users_versions_announce ON users")
        op.execute(
            """
            CREATE OR REPLACE FUNCTION bell_version_announce() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('bell_versions', NEW.id || ' ' || NEW.bell_version);
                RETURN NULL;
            END $$
            """
        )
        op.execute(
            """
            CREATE TRIGGER users_bell_version_announce
            AFTER UPDATE OF bell_version ON users
            FOR EACH ROW WHEN (NEW.bell_version IS DISTINCT FROM OLD.bell_version)
            EXECUTE FUNCTION bell_version_announce()
            """
        )
    op.drop_column("tasks", "seen_at")
    op.drop_column("tasks", "version")
    op.drop_column("users", "seen_bell_version")
    op.drop_column("users", "tasks_version")
