"""hostile users: sessions that end, tokens that can be listed, revoked and expire

Revision ID: 0008h
Revises: 0007s
Create Date: 2026-11-27

`users.session_version` is copied into every session cookie and checked on each request:
bumping it (sign out, `users sign-out`) ends every session the user has. `api_tokens`
gains a name, an expiry and the time it was last used. Columns are added with
`op.add_column` only, as in 0007s.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008h"
down_revision = "0007s"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("session_version", sa.Integer(), nullable=False,
                                     server_default="0"))


def downgrade() -> None:
    op.drop_column("users", "session_version")
