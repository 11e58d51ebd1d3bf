"""Sign-in links and browser sessions in the store: random tokens, only their hashes kept, spent once, revocable."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, update
from sqlmodel import Session, col, select

from generator.store.models import WebSession, utcnow

# An invite is mailed or messaged, so it may wait a few days; a session lasts a working day, then
# the reviewer asks for a new link (a stolen cookie is worth at most that long).
INVITE_LIFETIME = timedelta(days=3)
SESSION_LIFETIME = timedelta(hours=12)


def hash_token(token: str) -> str:
    """sha256 is enough: the tokens are 256 random bits, nothing to guess a dictionary for."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token(session: Session, *, reviewer: str, kind: str, lifetime: timedelta) -> str:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(WebSession(token_hash=hash_token(token), reviewer=reviewer, kind=kind, created_at=now, expires_at=now + lifetime))
    session.commit()
    return token


def create_invite(session: Session, *, reviewer: str) -> str:
    """A new one-time sign-in token for `reviewer` (the caller makes it a link; the store keeps only its hash)."""
    return _new_token(session, reviewer=reviewer, kind="invite", lifetime=INVITE_LIFETIME)


def _usable(kind: str, now: datetime) -> list[ColumnElement[bool]]:
    """Conditions of a token that still works: the right kind, not spent, not revoked, not expired."""
    return [
        col(WebSession.kind) == kind,
        col(WebSession.spent_at).is_(None),
        col(WebSession.revoked_at).is_(None),
        col(WebSession.expires_at) > now,
    ]


def spend_invite(session: Session, *, token: str) -> tuple[str, str] | None:
    """Spend an invite: (reviewer, a new session token), or None for an unknown, spent, expired or revoked one.

    One conditional UPDATE spends it, so two tabs opening the same link cannot both sign in.
    """
    now = utcnow()
    token_hash = hash_token(token)
    spent = session.exec(update(WebSession).where(col(WebSession.token_hash) == token_hash, *_usable("invite", now)).values(spent_at=now))
    if spent.rowcount != 1:
        session.rollback()
        return None
    reviewer = session.exec(select(WebSession.reviewer).where(col(WebSession.token_hash) == token_hash)).one()
    return reviewer, _new_token(session, reviewer=reviewer, kind="session", lifetime=SESSION_LIFETIME)


def reviewer_for_session(session: Session, *, token: str) -> str | None:
    """The reviewer a live session token belongs to (None: unknown, expired or revoked)."""
    return session.exec(
        select(WebSession.reviewer).where(col(WebSession.token_hash) == hash_token(token), *_usable("session", utcnow()))
    ).first()


def revoke_reviewer(session: Session, *, reviewer: str) -> int:
    """End every invite and session of `reviewer`; returns how many were still live."""
    now = utcnow()
    revoked = session.exec(
        update(WebSession)
        .where(col(WebSession.reviewer) == reviewer, col(WebSession.revoked_at).is_(None), col(WebSession.expires_at) > now)
        .values(revoked_at=now)
    )
    session.commit()
    return revoked.rowcount


def live_session_hashes(session: Session, *, token_hashes: list[str]) -> set[str]:
    """Which of these session hashes are still live (the server drops the connections of the others)."""
    if not token_hashes:
        return set()
    rows = session.exec(select(WebSession.token_hash).where(col(WebSession.token_hash).in_(token_hashes), *_usable("session", utcnow())))
    return set(rows.all())
