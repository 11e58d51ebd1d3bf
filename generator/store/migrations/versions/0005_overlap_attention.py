"""Team review: how many reviewers a candidate needs (overlap), what kind each decision is (review, adjudication, canary), its session.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs, never a batch rebuild: rebuilding `decision` on SQLite would drop its append-only triggers.
    op.add_column("candidate", sa.Column("reviews_needed", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("decision", sa.Column("kind", sa.String(), nullable=False, server_default="review"))
    op.add_column("decision", sa.Column("session_id", sa.String(), nullable=True))
    # The adjudication queue and the overlap marking look only at overlapped candidates: a few percent of rows.
    op.create_index(
        "ix_candidate_overlap",
        "candidate",
        ["status", "id"],
        sqlite_where=sa.text("reviews_needed > 1"),
        postgresql_where=sa.text("reviews_needed > 1"),
    )


def downgrade() -> None:
    op.drop_index("ix_candidate_overlap", table_name="candidate")
    op.drop_column("decision", "session_id")
    op.drop_column("decision", "kind")
    op.drop_column("candidate", "reviews_needed")
