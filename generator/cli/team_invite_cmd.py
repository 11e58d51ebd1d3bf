"""`synthgate team invite` and `team revoke`: one-time sign-in links for browser review, and ending a reviewer's sessions."""

from __future__ import annotations

from typing import Annotated

import typer

from generator.cli.app import console, state
from generator.cli.team_cmd import team_app
from generator.errors import UserError


def _reviewer_name(name: str) -> str:
    if not name.strip():
        raise UserError("the reviewer's name must not be blank", fix="pass their name, e.g. synthgate team invite 'Ada Lovelace'")
    return name.strip()


@team_app.command("invite")
def invite_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The reviewer's name, recorded with each decision they make in the browser.")],
    url: Annotated[
        str, typer.Option("--url", help="The address reviewers open: synthgate serve's (--host/--port), or the reverse proxy's.")
    ] = "http://127.0.0.1:8000",
) -> None:
    """Print a one-time sign-in link for NAME to review in the browser (synthgate serve).

    The link works once, within 3 days; opening it signs NAME in on that browser for 12 hours. Only a
    hash of it is stored. Send it to NAME alone: whoever opens it first reviews as NAME.
    """
    from generator.serve.sessions import create_invite
    from generator.store.db import write_session

    reviewer = _reviewer_name(name)
    if not url.startswith(("http://", "https://")):
        raise UserError(f"--url {url!r} is not a web address", fix="pass it with its scheme, e.g. https://review.example.org")
    engine = state(ctx).engine
    if engine.dialect.name == "postgresql":
        from generator.store.team import check_role_name

        check_role_name(reviewer)  # the served app acts as this database role (synthgate team add-reviewer)
    with write_session(engine) as session:
        token = create_invite(session, reviewer=reviewer)
    # The token rides in the #fragment: browsers never send it to a server, so it stays out of logs.
    console.print(f"{url.rstrip('/')}/signin#{token}")


@team_app.command("revoke")
def revoke_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The reviewer whose sign-in links and browser sessions end now.")],
) -> None:
    """End NAME's sign-in links and browser sessions at once: open review tabs close within a second."""
    from generator.serve.sessions import revoke_reviewer
    from generator.store.db import write_session

    reviewer = _reviewer_name(name)
    with write_session(state(ctx).engine) as session:
        ended = revoke_reviewer(session, reviewer=reviewer)
    console.print(f"{reviewer}: {ended} sign-in link(s) and session(s) ended")
