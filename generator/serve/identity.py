"""Whose decisions a served review app writes: the one seam where the store learns the signed-in reviewer."""

from __future__ import annotations

from sqlalchemy import Engine

# Set by synthgate serve in each app process's environment (never by the browser): `synthgate review`
# then runs without a terminal (the browser is its terminal) and records decisions as made in the browser.
SERVED_ENV = "SYNTHGATE_SERVED_CLIENT"


def engine_as_reviewer(engine: Engine, *, reviewer: str) -> Engine:
    """The engine a served review app uses for `reviewer`, who signed in through synthgate serve.

    On SQLite the reviewer's name travels with each decision (the server chose it from the session,
    never from the browser), so the engine is used as it is. On PostgreSQL reviewers are database
    roles (migration 0006 pins a decision's reviewer to `current_user`, which follows SET ROLE):
    the app process, connected as the store's owner, takes on the reviewer's role
    (`SET ROLE <reviewer>` on every connection of an engine of its own), so the database, not the
    app, decides whose decision it is. The reviewer must be a role (`synthgate team add-reviewer`).
    """
    if engine.dialect.name != "postgresql":
        return engine
    from generator.store.team import engine_as_role

    return engine_as_role(engine, reviewer)
