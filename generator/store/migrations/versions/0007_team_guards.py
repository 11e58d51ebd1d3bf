"""Team guards on PostgreSQL: only an adjudicator writes an adjudication, and no reviewer lowers a candidate's overlap.

Both are ways a reviewer role could make their own single decision final with plain SQL: the gate
takes an adjudicator's decision as final, and passes a candidate whose `reviews_needed` agreeing
reviews exist. A reviewer may still raise `reviews_needed` (the review command marks the overlap
share when it starts); lowering it, like writing `kind = 'adjudication'` without the adjudicator
role, is refused. The owner (or a superuser) is not limited, as for every other guard.
On SQLite (one person, one machine) there are no roles: nothing changes.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The owner test of 0006's triggers: a member of the table's owning role (superusers are members of every role).
_IS_OWNER = "pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER')"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION synthgate_adjudication_by_adjudicator() RETURNS trigger AS $$
        BEGIN
            IF NEW.kind IS DISTINCT FROM 'adjudication' OR {_IS_OWNER} THEN
                RETURN NEW;
            END IF;
            -- Nested, not AND: pg_has_role raises for a role that does not exist, and SQL does not promise to short-circuit.
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'synthgate_adjudicator') THEN
                IF pg_has_role(current_user, 'synthgate_adjudicator', 'MEMBER') THEN
                    RETURN NEW;
                END IF;
            END IF;
            RAISE EXCEPTION 'only an adjudicator writes an adjudication: % is not one (synthgate team grant-adjudicator)', current_user;
        END $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER decision_adjudication_by_adjudicator BEFORE INSERT ON decision "
        "FOR EACH ROW EXECUTE FUNCTION synthgate_adjudication_by_adjudicator()"
    )
    op.execute(
        f"""
        CREATE FUNCTION synthgate_overlap_never_lowered() RETURNS trigger AS $$
        BEGIN
            IF NEW.reviews_needed < OLD.reviews_needed AND NOT {_IS_OWNER} THEN
                RAISE EXCEPTION 'a reviewer cannot lower the reviews a candidate needs (candidate %)', OLD.id;
            END IF;
            RETURN NEW;
        END $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER candidate_overlap_never_lowered BEFORE UPDATE OF reviews_needed ON candidate "
        "FOR EACH ROW EXECUTE FUNCTION synthgate_overlap_never_lowered()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER candidate_overlap_never_lowered ON candidate")
    op.execute("DROP FUNCTION synthgate_overlap_never_lowered()")
    op.execute("DROP TRIGGER decision_adjudication_by_adjudicator ON decision")
    op.execute("DROP FUNCTION synthgate_adjudication_by_adjudicator()")
