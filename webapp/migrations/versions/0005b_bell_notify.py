"""PostgreSQL announces every change of a user's bell version (NOTIFY bell_versions)

Revision ID: 0005b
Revises: 0004p
Create Date: 2026-11-22

Web processes listen, so an unchanged bell poll is answered without the database
(webapp/bell_versions.py). A trigger rather than the code that bumps the version, so no
path can forget it; the notification goes out when the transaction commits.
SQLite has no notifications: there polls read the version, as before.
"""

from alembic import op

revision = "0005b"
down_revision = "0004p"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION bell_version_announce() RETURNS trigger LANGUAGE plpgsql AS $$
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


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER users_bell_version_announce ON users")
    op.execute("DROP FUNCTION bell_version_announce()")
