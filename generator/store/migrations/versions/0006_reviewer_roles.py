"""Reviewers as PostgreSQL roles: the database pins a decision's reviewer to the connected role and signs it for them.

On PostgreSQL a reviewer connects as their own role (`synthgate team add-reviewer`). A reviewer on
another machine has no copy of the store's key file, so the database signs their decisions: a
SECURITY DEFINER trigger computes the same HMAC with the owner's key, which only the owner may
read (`decision_signing_key`). The owner's export and verify then check every proof with the key
file, as on SQLite. A role that is not the owner cannot decide under another name (the reviewer
must be `current_user`, which follows SET ROLE, so a server connected as the owner can act for one
reviewer), cannot supply its own proof, and — by its grants — cannot update or delete decisions.
On SQLite (one person, one machine) there are no roles: nothing changes.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # The owner's key, copied in by `team add-reviewer`; no grant to anyone else, ever.
    op.execute("CREATE TABLE decision_signing_key (id integer PRIMARY KEY CHECK (id = 1), secret bytea NOT NULL)")
    op.execute("REVOKE ALL ON decision_signing_key FROM PUBLIC")
    # HMAC-SHA256 (RFC 2104) from the built-in sha256(): no extension to install. Hex, like hmac.digest(...).hex().
    op.execute(
        """
        CREATE FUNCTION synthgate_hmac(key bytea, message bytea) RETURNS text AS $$
        DECLARE
            padded bytea := key || decode(repeat('00', 64 - length(key)), 'hex');
            inner_pad bytea := padded;
            outer_pad bytea := padded;
        BEGIN
            FOR i IN 0..63 LOOP
                inner_pad := set_byte(inner_pad, i, get_byte(padded, i) # 54);
                outer_pad := set_byte(outer_pad, i, get_byte(padded, i) # 92);
            END LOOP;
            RETURN encode(sha256(outer_pad || sha256(inner_pad || message)), 'hex');
        END $$ LANGUAGE plpgsql IMMUTABLE STRICT
        """
    )
    # Runs as the inserting role (SECURITY INVOKER): current_user is the reviewer, or the role a server SET.
    op.execute(
        """
        CREATE FUNCTION synthgate_decision_reviewer_is_role() RETURNS trigger AS $$
        BEGIN
            IF pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER') THEN
                RETURN NEW;  -- the owner (or a superuser): signs with the key file, names any reviewer (SQLite's model)
            END IF;
            IF NEW.reviewer IS DISTINCT FROM current_user::text THEN
                RAISE EXCEPTION 'a reviewer decides under their own name only: connected as %, the decision names %',
                    current_user, NEW.reviewer;
            END IF;
            NEW.proof := NULL;  -- a reviewer cannot bring a proof: the store signs below
            RETURN NEW;
        END $$ LANGUAGE plpgsql
        """
    )
    # Runs as the owner (SECURITY DEFINER) so it can read the key; a trigger function cannot be called directly,
    # so this is no signing oracle. Fires after the one above (triggers fire in name order).
    op.execute(
        """
        CREATE FUNCTION synthgate_decision_signed_by_store() RETURNS trigger AS $$
        DECLARE
            store_secret bytea;
        BEGIN
            IF NEW.proof IS NOT NULL THEN
                RETURN NEW;
            END IF;
            SELECT secret INTO store_secret FROM public.decision_signing_key WHERE id = 1;
            IF store_secret IS NULL THEN
                RAISE EXCEPTION 'this store cannot sign reviewers'' decisions yet: the owner runs synthgate team add-reviewer';
            END IF;
            NEW.proof := public.synthgate_hmac(store_secret, convert_to(NEW.hash, 'UTF8'));
            RETURN NEW;
        END $$ LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
        """
    )
    op.execute(
        "CREATE TRIGGER decision_reviewer_is_role BEFORE INSERT ON decision "
        "FOR EACH ROW EXECUTE FUNCTION synthgate_decision_reviewer_is_role()"
    )
    op.execute(
        "CREATE TRIGGER decision_signed_by_store BEFORE INSERT ON decision FOR EACH ROW EXECUTE FUNCTION synthgate_decision_signed_by_store()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER decision_signed_by_store ON decision")
    op.execute("DROP TRIGGER decision_reviewer_is_role ON decision")
    op.execute("DROP FUNCTION synthgate_decision_signed_by_store()")
    op.execute("DROP FUNCTION synthgate_decision_reviewer_is_role()")
    op.execute("DROP FUNCTION synthgate_hmac(bytea, bytea)")
    op.execute("DROP TABLE decision_signing_key")
