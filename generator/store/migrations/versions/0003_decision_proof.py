"""Signed decisions: the store's identity (store_meta), a proof on every decision, REPLACE refused like UPDATE and DELETE.

Decisions already in the store are legacy: made before decisions were signed, they carry no proof,
and `store_meta.signed_from_decision` (the first id that must carry one) says where they end.

Revision ID: 0003
Revises: 0002
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("decision", sa.Column("proof", sa.String(), nullable=True))
    op.create_table(
        "store_meta",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("store_id", sa.String(), nullable=False),
        sa.Column("signed_from_decision", sa.Integer(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_store_meta_one_row"),
    )
    bind = op.get_bind()
    # Past the highest decision and the chain head alike, so no existing id can ever be read as signed.
    last_decision = bind.execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM decision")).scalar_one()
    chain_seq = bind.execute(sa.text("SELECT COALESCE(MAX(seq), 0) FROM decision_chain")).scalar_one()
    bind.execute(
        sa.text("INSERT INTO store_meta (id, store_id, signed_from_decision) VALUES (1, :store_id, :first)"),
        {"store_id": str(uuid.uuid4()), "first": max(last_decision, chain_seq) + 1},
    )
    # After the row above: from here on nothing may add, change or remove it.
    dialect = bind.dialect.name
    if dialect == "sqlite":
        _sqlite_guards()
    elif dialect == "postgresql":
        _postgresql_guards()
    else:
        raise NotImplementedError(f"synthgate guards its decision log with triggers on SQLite and PostgreSQL; {dialect} is not supported")


def _sqlite_guards() -> None:
    def refuse(name: str, event: str, table: str, message: str, when: str = "") -> None:
        condition = f" WHEN {when}" if when else ""
        op.execute(f"CREATE TRIGGER {name} BEFORE {event} ON {table}{condition} BEGIN SELECT RAISE(ABORT, '{message}'); END")

    # INSERT OR REPLACE (and REPLACE INTO) deletes the row it collides with without firing DELETE
    # triggers, so the insert itself must refuse to collide: on the id and on the unique hash.
    refuse(
        "decision_no_replace",
        "INSERT",
        "decision",
        "decisions are append-only: REPLACE refused",
        when="EXISTS (SELECT 1 FROM decision WHERE id = NEW.id) OR EXISTS (SELECT 1 FROM decision WHERE hash = NEW.hash)",
    )
    # The chain head is one row, created with the store; it only moves forward.
    refuse("decision_chain_no_insert", "INSERT", "decision_chain", "the decision chain head is one row: INSERT refused")
    refuse("decision_chain_no_delete", "DELETE", "decision_chain", "the decision chain head is one row: DELETE refused")
    refuse(
        "decision_chain_no_rewind",
        "UPDATE",
        "decision_chain",
        "the decision chain head only moves forward: UPDATE refused",
        when="NEW.id != OLD.id OR NEW.seq < OLD.seq",
    )
    for verb in ("INSERT", "UPDATE", "DELETE"):
        refuse(f"store_meta_no_{verb.lower()}", verb, "store_meta", f"the store identity is fixed: {verb} refused")


def _postgresql_guards() -> None:
    op.execute(
        "CREATE FUNCTION synthgate_refuse() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION '%: % refused', TG_ARGV[0], TG_OP; END $$ LANGUAGE plpgsql"
    )
    # TRUNCATE skips row-level DELETE triggers: refuse it with a statement-level trigger.
    op.execute(
        "CREATE TRIGGER decision_no_truncate BEFORE TRUNCATE ON decision "
        "FOR EACH STATEMENT EXECUTE FUNCTION synthgate_refuse('decisions are append-only')"
    )
    # PostgreSQL has no REPLACE, but INSERT ... ON CONFLICT DO UPDATE is its upsert: refuse any
    # insert that collides with a stored decision, as on SQLite.
    op.execute(
        "CREATE FUNCTION synthgate_decision_no_replace() RETURNS trigger AS $$ "
        "BEGIN "
        "IF EXISTS (SELECT 1 FROM decision WHERE id = NEW.id OR hash = NEW.hash) THEN "
        "RAISE EXCEPTION 'decisions are append-only: REPLACE refused'; "
        "END IF; "
        "RETURN NEW; "
        "END $$ LANGUAGE plpgsql"
    )
    op.execute("CREATE TRIGGER decision_no_replace BEFORE INSERT ON decision FOR EACH ROW EXECUTE FUNCTION synthgate_decision_no_replace()")
    op.execute(
        "CREATE TRIGGER decision_chain_fixed BEFORE INSERT OR DELETE OR TRUNCATE ON decision_chain "
        "FOR EACH STATEMENT EXECUTE FUNCTION synthgate_refuse('the decision chain head is one row')"
    )
    op.execute(
        "CREATE FUNCTION synthgate_chain_forward() RETURNS trigger AS $$ "
        "BEGIN "
        "IF NEW.id <> OLD.id OR NEW.seq < OLD.seq THEN "
        "RAISE EXCEPTION 'the decision chain head only moves forward: UPDATE refused'; "
        "END IF; "
        "RETURN NEW; "
        "END $$ LANGUAGE plpgsql"
    )
    op.execute(
        "CREATE TRIGGER decision_chain_forward BEFORE UPDATE ON decision_chain FOR EACH ROW EXECUTE FUNCTION synthgate_chain_forward()"
    )
    # Statement-level: even an INSERT ... ON CONFLICT DO NOTHING or an UPDATE matching no row is refused.
    op.execute(
        "CREATE TRIGGER store_meta_fixed BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON store_meta "
        "FOR EACH STATEMENT EXECUTE FUNCTION synthgate_refuse('the store identity is fixed')"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER decision_no_truncate ON decision")
        op.execute("DROP TRIGGER decision_no_replace ON decision")
        op.execute("DROP TRIGGER decision_chain_fixed ON decision_chain")
        op.execute("DROP TRIGGER decision_chain_forward ON decision_chain")
        op.execute("DROP TABLE store_meta")  # its trigger goes with it
        op.execute("DROP FUNCTION synthgate_decision_no_replace()")
        op.execute("DROP FUNCTION synthgate_chain_forward()")
        op.execute("DROP FUNCTION synthgate_refuse()")
    else:
        for trigger in (
            "decision_no_replace",
            "decision_chain_no_insert",
            "decision_chain_no_delete",
            "decision_chain_no_rewind",
            "store_meta_no_insert",
            "store_meta_no_update",
            "store_meta_no_delete",
        ):
            op.execute(f"DROP TRIGGER {trigger}")
        op.drop_table("store_meta")
    op.drop_column("decision", "proof")
