"""Variant groups: several answers to one question (generate --variants K), reviewed as a group and exported as preference pairs.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs, never a batch rebuild (a rebuild would drop the SQLite triggers on other tables' references).
    op.add_column("candidate", sa.Column("variant_group", sa.String(), nullable=True))
    op.add_column("candidate", sa.Column("variant_index", sa.Integer(), nullable=True))
    # Export pairs a group's members and review shows the marker: both look a group up by its id.
    op.create_index("ix_candidate_variant_group", "candidate", ["variant_group"])


def downgrade() -> None:
    op.drop_index("ix_candidate_variant_group", table_name="candidate")
    op.drop_column("candidate", "variant_index")
    op.drop_column("candidate", "variant_group")
