"""PostgreSQL announces every change of a user's row, not only of its versions

Revision ID: 0010u
Revises: 0009f
Create Date: 2026-11-28

A web process keeps the rows of the users it serves (webapp.web.known_users), so a
signed-in request needs no read of its user; it may do so only while it hears of
every change. The announcement of 0006l ("user bell tasks" on NOTIFY bell_versions)
now also goes out when any other column changes, with " row" after the versions, and
as "user gone" when the user is deleted. What the versions alone moved (every task's
change does) is announced as before, and keeps a process's copy of the row.
"""

from alembic import op

revision = "0010u"
down_revision = "0009f"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER users_versions_announce ON users")
    op.execute("DROP FUNCTION bell_version_announce()")
    op.execute(
        """
        CREATE FUNCTION users_announce() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            row_changed boolean;
        BEGIN
            IF TG_OP = 'DELETE' THEN
                PERFORM pg_notify('bell_versions', OLD.id || ' gone');
                RETURN NULL;
            END IF;
            -- Every column but the versions, so a column added later is covered too.
            row_changed := (to_jsonb(NEW) - 'bell_version' - 'tasks_version')
                           IS DISTINCT FROM (to_jsonb(OLD) - 'bell_version' - 'tasks_version');
            PERFORM pg_notify('bell_versions',
                              NEW.id || ' ' || NEW.bell_version || ' ' || NEW.tasks_version
                              || CASE WHEN row_changed THEN ' row' ELSE '' END);
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER users_announce_update AFTER UPDATE ON users
        FOR EACH ROW WHEN (OLD IS DISTINCT FROM NEW)
        EXECUTE FUNCTION users_announce()
        """
    )
    op.execute(
        """
        CREATE TRIGGER users_announce_delete AFTER DELETE ON users
        FOR EACH ROW EXECUTE FUNCTION users_announce()
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER users_announce_update ON users")
    op.execute("DROP TRIGGER users_announce_delete ON users")
    op.execute("DROP FUNCTION users_announce()")
    op.execute(
        """
        CREATE FUNCTION bell_version_announce() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('bell_versions',
                              NEW.id || ' ' || NEW.bell_version || ' ' || NEW.tasks_version);
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER users_versions_announce
        AFTER UPDATE OF bell_version, tasks_version ON users
        FOR EACH ROW WHEN (NEW.bell_version IS DISTINCT FROM OLD.bell_version
                           OR NEW.tasks_version IS DISTINCT FROM OLD.tasks_version)
        EXECUTE FUNCTION bell_version_announce()
        """
    )
