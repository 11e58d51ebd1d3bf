"""Initial schema: seeds, runs, the request journal, candidates, append-only hash-chained decisions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "seed",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("content_hash", sa.String(), nullable=False, index=True),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("verified_by", sa.String(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "run",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("base_url", sa.String(), nullable=True),
        sa.Column("template", sa.String(), nullable=False),
        sa.Column("template_hash", sa.String(), nullable=False),
        sa.Column("sampling_seed", sa.Integer(), nullable=False),
        sa.Column("target_count", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("stop_reason", sa.String(), nullable=True),
    )
    op.create_table(
        "llm_call",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(), sa.ForeignKey("run.id"), nullable=False, index=True),
        sa.Column("request_index", sa.Integer(), nullable=False),
        sa.Column("request_hash", sa.String(), nullable=False, index=True),
        sa.Column("status", sa.String(), nullable=False, index=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("seed_ids", sa.JSON(), nullable=False),
        sa.Column("response_text", sa.Text(), nullable=True),
        sa.Column("finish_reason", sa.String(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("from_cache", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("run_id", "request_index"),
    )
    op.create_table(
        "candidate",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source_key", sa.String(), nullable=False, unique=True),
        sa.Column("content_hash", sa.String(), nullable=False, index=True),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.String(), sa.ForeignKey("run.id"), nullable=True, index=True),
        sa.Column("call_id", sa.Integer(), sa.ForeignKey("llm_call.id"), nullable=True),
        sa.Column("seed_ids", sa.JSON(), nullable=False),
        sa.Column("template_hash", sa.String(), nullable=True),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("filter_reason", sa.String(), nullable=True),
        sa.Column("filter_match", sa.String(), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("nearest_seed_id", sa.String(), nullable=True),
        sa.Column("nearest_seed_similarity", sa.Float(), nullable=True),
        sa.Column("review_order", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('pending','accepted','rejected','filtered')", name="ck_candidate_status"),
    )
    op.create_index("ix_candidate_queue", "candidate", ["status", "review_order", "id"])
    op.create_index(
        "ix_candidate_lease",
        "candidate",
        ["lease_owner", "status", "review_order", "id"],
        sqlite_where=sa.text("lease_owner IS NOT NULL"),
        postgresql_where=sa.text("lease_owner IS NOT NULL"),
    )
    op.create_table(
        "decision",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("candidate_id", sa.Integer(), sa.ForeignKey("candidate.id"), nullable=False, index=True),
        sa.Column("reviewer", sa.String(), nullable=False, index=True),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("edited_messages", sa.JSON(), nullable=True),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("undoes_id", sa.Integer(), sa.ForeignKey("decision.id"), nullable=True, index=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prev_hash", sa.String(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False, unique=True),
        sa.CheckConstraint("action IN ('accept','reject','edit','undo')", name="ck_decision_action"),
        sa.CheckConstraint("length(trim(reviewer)) > 0", name="ck_decision_reviewer"),
    )
    op.create_table(
        "decision_chain",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(), nullable=False),
    )
    op.execute("INSERT INTO decision_chain (id, seq, head_hash) VALUES (1, 0, '')")
    _forbid_decision_changes()


def _forbid_decision_changes() -> None:
    """Decisions are append-only: the database itself refuses to change or remove one."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER decision_no_{verb.lower()} BEFORE {verb} ON decision "
                f"BEGIN SELECT RAISE(ABORT, 'decisions are append-only: {verb} refused'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION synthgate_decision_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'decisions are append-only: % refused', TG_OP; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER decision_append_only BEFORE UPDATE OR DELETE ON decision "
            "FOR EACH ROW EXECUTE FUNCTION synthgate_decision_append_only()"
        )
    else:
        raise NotImplementedError(
            f"synthgate enforces append-only decisions with triggers on SQLite and PostgreSQL; {dialect} is not supported"
        )
