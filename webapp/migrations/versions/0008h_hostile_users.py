"""hostile users: sessions that end, tokens that can be listed, revoked and expire

Revision ID: 0008h
Revises: 0007s
Create Date: 2026-11-27

`users.session_version` is copied into every session cookie and checked on each request:
bumping it (sign out, `users sign-out`) ends every session the user has. `api_tokens`
gains a name, an expiry and the time it was last used. `rate_counts` holds the
fixed-window counters of the login and launch limits. Columns are added with
`op.add_column` only, as in 0007s.
"""

import sqlalchemy as sa
from alembic import op

import webapp.core.models

revision = "0008h"
down_revision = "0008t"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("session_version", sa.Integer(), nullable=False,
                                     server_default="0"))
    op.add_column("api_tokens", sa.Column("name", sa.String(length=80), nullable=False,
                                          server_default=""))
    op.add_column("api_tokens", sa.Column("expires_at", webapp.core.models.UTCDateTime(),
                                          nullable=True))
    op.add_column("api_tokens", sa.Column("last_used_at", webapp.core.models.UTCDateTime(),
                                          nullable=True))
    op.create_table(
        "rate_counts",
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("expires_at", webapp.core.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_rate_counts_expires_at", "rate_counts", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_rate_counts_expires_at", "rate_counts")
    op.drop_table("rate_counts")
    op.drop_column("api_tokens", "last_used_at")
    op.drop_column("api_tokens", "expires_at")
    op.drop_column("api_tokens", "name")
    op.drop_column("users", "session_version")
