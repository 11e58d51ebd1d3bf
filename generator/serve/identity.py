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
    this is where the app process, connected as the store's owner, takes on the reviewer's role
    (`SET ROLE <reviewer>`, committed, on each new pooled connection, after disposing of the ones
    opened as the owner), so the database, not the app, decides whose decision it is. Not done
    yet: until then a served app on PostgreSQL decides as the owner, under the session's name.
    """
    return engine
