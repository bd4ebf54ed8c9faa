"""find a task: a full-text index of descriptions, per dialect

Revision ID: 0009f
Revises: 0008w
Create Date: 2026-12-03

The tasks view searches a user's tasks by words of their descriptions (`q=`). Words are
runs of letters and digits: punctuation separates them on both dialects, so
"site-3.tar.gz" holds the words site, 3, tar and gz wherever it is stored.

PostgreSQL: `tasks.task_words`, the description's words as a stored generated column
(`to_tsvector('simple', ...)` of the description with punctuation made spaces; 'simple'
neither stems nor drops stop words, so a word matches as typed), and a GIN index over
it. Stored, because a search also reads the newest tasks in order and checks their
words one by one (webapp.core.listing), and computing them for each row costs more
than reading them. Adding it rewrites `tasks` once, under a lock: about a minute per
million tasks on the development machine. The models leave it out (nothing reads it
but a search's WHERE clause), as they leave out SQLite's table below.

SQLite: an FTS5 table with the tasks table as its content (nothing stored twice), kept
by triggers in the same transaction as every insert, delete and change of a
description. It also indexes `owner_id`, so a user's search reads that user's entries
of the index only. Its rows are the tasks' rowids: a VACUUM may renumber those (tasks
has no integer primary key), after which `INSERT INTO task_words(task_words)
VALUES('rebuild')` makes it whole again. No trigger of 0004p or 0006l is touched.
"""

from alembic import op

revision = "0009f"
down_revision = "0008w"
branch_labels = None
depends_on = None

POSTGRESQL = [
    """
    ALTER TABLE tasks ADD COLUMN task_words tsvector GENERATED ALWAYS AS
        (to_tsvector('simple', regexp_replace(description, '[[:punct:]]+', ' ', 'g'))) STORED
    """,
    "CREATE INDEX ix_tasks_words ON tasks USING gin (task_words)",
]

SQLITE = [
    # unicode61 keeps diacritics, as PostgreSQL's 'simple' does: "café" is not "cafe".
    """
    CREATE VIRTUAL TABLE task_words USING fts5(
        description, owner_id, content='tasks', content_rowid='rowid',
        tokenize='unicode61 remove_diacritics 0')
    """,
    """
    CREATE TRIGGER task_words_insert AFTER INSERT ON tasks BEGIN
        INSERT INTO task_words (rowid, description, owner_id)
        VALUES (NEW.rowid, NEW.description, NEW.owner_id);
    END
    """,
    """
    CREATE TRIGGER task_words_delete AFTER DELETE ON tasks BEGIN
        INSERT INTO task_words (task_words, rowid, description, owner_id)
        VALUES ('delete', OLD.rowid, OLD.description, OLD.owner_id);
    END
    """,
    """
    CREATE TRIGGER task_words_update AFTER UPDATE OF description, owner_id ON tasks BEGIN
        INSERT INTO task_words (task_words, rowid, description, owner_id)
        VALUES ('delete', OLD.rowid, OLD.description, OLD.owner_id);
        INSERT INTO task_words (rowid, description, owner_id)
        VALUES (NEW.rowid, NEW.description, NEW.owner_id);
    END
    """,
    "INSERT INTO task_words (task_words) VALUES ('rebuild')",
]


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL if postgresql else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_tasks_words")
        op.execute("ALTER TABLE tasks DROP COLUMN task_words")
        return
    for trigger in ("task_words_insert", "task_words_delete", "task_words_update"):
        op.execute(f"DROP TRIGGER {trigger}")
    op.execute("DROP TABLE task_words")
