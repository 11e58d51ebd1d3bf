"""Adjudicators per store: who may settle disagreements is listed in the store, not in a server-wide role.

0007 let members of the role `synthgate_adjudicator` write adjudications. Roles belong to the whole
PostgreSQL server, so an adjudicator granted on one project's store was an adjudicator on every
other store on that server where they review. The list now lives in this store's own `adjudicator`
table, which only the owner writes; the guard and the review app read it. Members of the old role
who review on this store are carried over, so nobody loses a right they had here.
On SQLite (one person, one machine) there are no roles: nothing changes.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The owner test of 0006's triggers: a member of the table's owning role (superusers are members of every role).
_IS_OWNER = "pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER')"
_REFUSED = "RAISE EXCEPTION 'only an adjudicator writes an adjudication: % is not one (synthgate team grant-adjudicator)', current_user;"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE TABLE adjudicator (name text PRIMARY KEY, granted_at timestamptz NOT NULL DEFAULT now())")
    # Direct members of the old role who may decide on this store (a superuser is a member of every role: not counted).
    op.execute(
        """
        INSERT INTO adjudicator (name)
        SELECT r.rolname FROM pg_auth_members m
        JOIN pg_roles g ON g.oid = m.roleid AND g.rolname = 'synthgate_adjudicator'
        JOIN pg_roles r ON r.oid = m.member
        WHERE has_table_privilege(r.oid, 'decision', 'INSERT')
        """
    )
    # Everyone with access to the store reads the list (role names are public in pg_roles anyway): the
    # guard below runs as the reviewer, and the app asks before offering --adjudicate. Only the owner writes it.
    op.execute("GRANT SELECT ON adjudicator TO PUBLIC")
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION synthgate_adjudication_by_adjudicator() RETURNS trigger AS $$
        BEGIN
            IF NEW.kind IS DISTINCT FROM 'adjudication' OR {_IS_OWNER}
               OR EXISTS (SELECT 1 FROM adjudicator WHERE name = current_user) THEN
                RETURN NEW;
            END IF;
            {_REFUSED}
        END $$ LANGUAGE plpgsql
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION synthgate_adjudication_by_adjudicator() RETURNS trigger AS $$
        BEGIN
            IF NEW.kind IS DISTINCT FROM 'adjudication' OR {_IS_OWNER} THEN
                RETURN NEW;
            END IF;
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'synthgate_adjudicator') THEN
                IF pg_has_role(current_user, 'synthgate_adjudicator', 'MEMBER') THEN
                    RETURN NEW;
                END IF;
            END IF;
            {_REFUSED}
        END $$ LANGUAGE plpgsql
        """
    )
    op.execute("DROP TABLE adjudicator")
