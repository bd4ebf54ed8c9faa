"""used embed tokens

Revision ID: 0003e
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

import webapp.core.models

revision = "0003e"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "used_embed_tokens",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", webapp.core.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("used_embed_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_used_embed_tokens_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("used_embed_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_used_embed_tokens_expires_at"))

    op.drop_table("used_embed_tokens")
