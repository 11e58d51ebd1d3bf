"""Reviewers as PostgreSQL roles: create them with a reviewer's rights only, list them, revoke them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Engine, event, text
from sqlmodel import Session

from generator.errors import UserError, WorkFailed
from generator.store.db import create_store_engine, write_session
from generator.store.signing import key_for_signing

# A role name that needs no quoting anywhere (connection URLs included) and cannot collide with PostgreSQL's own.
ROLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")

# Tables migrations make on PostgreSQL only, with no model: the owner's key, read by the signing trigger alone.
POSTGRES_ONLY_TABLES = ("decision_signing_key", "adjudicator")

# A reviewer's rights, and nothing more: read what the review app shows, claim and release
# candidates (status and lease columns, never their content), and append decisions (never update
# or delete them; the triggers refuse that even to the owner).
_READS = ("alembic_version", "store_meta", "seed", "run", "candidate", "decision", "decision_chain")
# Not reviews_needed: the overlap share is marked by the owner's generate and check, and a reviewer who
# could raise it could send every candidate to two reviewers (0007 already refuses lowering it).
_CANDIDATE_COLUMNS = ("status", "lease_owner", "lease_expires_at", "review_order")


@dataclass(frozen=True)
class Reviewer:
    name: str
    can_login: bool  # False once removed (or never given the rights on this store)
    decisions: int
    adjudicator: bool = False  # on this store's adjudicator list (review --adjudicate)


def check_role_name(name: str) -> str:
    if not ROLE_NAME.fullmatch(name) or name.startswith("pg_"):
        raise UserError(
            f"{name!r} cannot be a reviewer's database role",
            fix="use lower-case letters, digits and _ (starting with a letter, not pg_), e.g. ada_l",
        )
    return name


def signed_by_database(session: Session) -> bool:
    """Whether this session is a reviewer's role on PostgreSQL, whose decisions the database names and signs."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    is_owner = session.execute(
        text("SELECT pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'decision'::regclass), 'MEMBER')")
    ).scalar_one()
    return not is_owner


def role_reviewer(session: Session) -> str | None:
    """The reviewer this connection is, when it is a reviewer's role on PostgreSQL (the database records its decisions so); else None."""
    return connected_role(session) if signed_by_database(session) else None


def connected_role(session: Session) -> str:
    role: str = session.execute(text("SELECT current_user")).scalar_one()
    return role


def _quote(connection: Session, name: str) -> str:
    return connection.get_bind().dialect.identifier_preparer.quote(check_role_name(name))


def add_reviewer(engine: Engine, name: str, password: str | None = None) -> None:
    """Create (or re-enable) `name` as a login role with a reviewer's rights on this store. Run as the store's owner."""
    with write_session(engine) as session:
        role = _quote(session, name)
        _require_owner(session)
        _share_signing_key(session)
        exists = session.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": name}).first()
        session.execute(text(f"{'ALTER' if exists else 'CREATE'} ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"))
        if password is not None:
            # DDL takes no bound parameters; standard_conforming_strings (on since PostgreSQL 9.1) makes '' the only escape.
            session.execute(text(f"ALTER ROLE {role} PASSWORD '{password.replace(chr(39), chr(39) * 2)}'"))
        database = session.execute(text("SELECT current_database()")).scalar_one()
        session.execute(text(f"GRANT CONNECT ON DATABASE {session.get_bind().dialect.identifier_preparer.quote(database)} TO {role}"))
        session.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
        session.execute(text(f"GRANT SELECT ON {', '.join(_READS)} TO {role}"))
        session.execute(text(f"GRANT UPDATE ({', '.join(_CANDIDATE_COLUMNS)}) ON candidate TO {role}"))
        session.execute(text(f"REVOKE UPDATE (reviews_needed) ON candidate FROM {role}"))  # granted by earlier versions
        session.execute(text(f"GRANT UPDATE (seq, head_hash) ON decision_chain TO {role}"))
        session.execute(text(f"GRANT INSERT ON decision TO {role}"))
        # So a server connected as the owner may act for this reviewer with SET ROLE (synthgate serve).
        session.execute(text(f"GRANT {role} TO CURRENT_USER"))


def remove_reviewer(engine: Engine, name: str) -> None:
    """Revoke `name`'s login and rights on this store; their decisions stay, under their name."""
    with write_session(engine) as session:
        role = _quote(session, name)
        _require_owner(session)
        if session.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": name}).first() is None:
            raise UserError(f"no reviewer {name!r} on this server", fix="see the team with `synthgate team list`")
        session.execute(text("DELETE FROM adjudicator WHERE name = :name"), {"name": name})
        session.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}"))
        session.execute(text(f"REVOKE ALL ON SCHEMA public FROM {role}"))
        session.execute(text(f"ALTER ROLE {role} NOLOGIN"))


def list_reviewers(engine: Engine) -> list[Reviewer]:
    """Roles that may decide on this store, and every role that has decided on it, with their decision counts."""
    with Session(engine) as session:
        rows = session.execute(
            text(
                """
                WITH granted AS (
                    SELECT grantee AS name FROM information_schema.role_table_grants
                    WHERE table_schema = 'public' AND table_name = 'decision' AND privilege_type = 'INSERT'
                ), decided AS (
                    SELECT reviewer AS name, count(*) AS decisions FROM decision GROUP BY reviewer
                )
                SELECT r.rolname, r.rolcanlogin AND r.rolname IN (SELECT name FROM granted), COALESCE(d.decisions, 0),
                       r.rolname IN (SELECT name FROM adjudicator)
                FROM pg_roles r LEFT JOIN decided d ON d.name = r.rolname
                WHERE (r.rolname IN (SELECT name FROM granted) OR d.name IS NOT NULL)
                  AND NOT pg_has_role(r.oid, (SELECT relowner FROM pg_class WHERE oid = 'decision'::regclass), 'MEMBER')
                ORDER BY r.rolname
                """
            )
        ).all()
    return [Reviewer(name=name, can_login=bool(login), decisions=int(count), adjudicator=bool(judge)) for name, login, count, judge in rows]


def engine_as_role(engine: Engine, role: str) -> Engine:
    """An engine whose connections act as reviewer `role` (SET ROLE): how a server connected as the owner acts for one reviewer.

    The database then names and signs that reviewer's decisions exactly as if they had connected themselves.
    """
    # An engine (and pool) of its own: a connection that took the role must never serve anyone else.
    acting = create_store_engine(engine.url.render_as_string(hide_password=False))
    quoted = engine.dialect.identifier_preparer.quote(check_role_name(role))

    @event.listens_for(acting, "connect")
    def _set_role(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {quoted}")
        dbapi_connection.commit()

    return acting


def _require_owner(session: Session) -> None:
    if signed_by_database(session):
        raise UserError(
            f"only the store's owner manages the team; you are connected as reviewer {connected_role(session)!r}",
            fix="run this with the owner's database URL (--db or SYNTHGATE_DB)",
        )


def _share_signing_key(session: Session) -> None:
    """Put the owner's key where the database's signing trigger (and nobody else) can read it."""
    session.execute(text("SELECT seq FROM decision_chain WHERE id = 1 FOR UPDATE"))  # the lock key creation needs
    secret = key_for_signing(session).secret
    stored = session.execute(text("SELECT secret FROM decision_signing_key WHERE id = 1")).scalar()
    if stored is None:
        session.execute(text("INSERT INTO decision_signing_key (id, secret) VALUES (1, :secret)"), {"secret": secret})
    elif bytes(stored) != secret:
        raise WorkFailed(
            "this machine's signing key is not the one the store signs reviewers' decisions with",
            fix="run team commands on the machine where the store was created (or copy its key file here)",
        )
