"""Browser review: sign-in links and sessions (web_session), and where each decision was made (decision.client).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every decision before this one was made in the terminal: the only review app there was.
    op.add_column("decision", sa.Column("client", sa.String(), nullable=True, server_default="terminal"))
    op.create_table(
        "web_session",
        sa.Column("token_hash", sa.String(), primary_key=True),
        sa.Column("reviewer", sa.String(), nullable=False, index=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('invite','session')", name="ck_web_session_kind"),
    )


def downgrade() -> None:
    op.drop_table("web_session")
    op.drop_column("decision", "client")
