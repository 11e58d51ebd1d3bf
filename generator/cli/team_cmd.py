"""`synthgate team`: reviewers as PostgreSQL roles, so the database itself says who decided what."""

from __future__ import annotations

from typing import Annotated

import typer

from generator.cli.app import app, console, state
from generator.errors import UserError

# Other modules (e.g. browser sign-in's `team invite`) add their commands to this object; importing
# this module only defines commands, it touches no store.
team_app = typer.Typer(name="team", help="Manage the review team on a PostgreSQL store", no_args_is_help=True)
app.add_typer(team_app)

TEAMS_NEED_POSTGRES = "teams need a PostgreSQL store (--db postgresql+psycopg://…)"


def _require_postgres(url: str) -> None:
    if not url.startswith("postgresql"):
        raise UserError(TEAMS_NEED_POSTGRES, fix="create a PostgreSQL database and pass it with --db or $SYNTHGATE_DB")


@team_app.command("add-reviewer")
def add_reviewer_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The reviewer's name: becomes their database role (lower-case letters, digits, _).")],
    ask_password: Annotated[
        bool,
        typer.Option(
            "--ask-password",
            help="Prompt for the reviewer's database password (not needed where the server authenticates them otherwise, "
            "e.g. by certificate); it goes to the server only, never to a file.",
        ),
    ] = False,
    adjudicator: Annotated[
        bool,
        typer.Option(
            "--adjudicator", help="Also let them settle disagreements (synthgate review --adjudicate), as team grant-adjudicator does."
        ),
    ] = False,
) -> None:
    """Create a database role for a reviewer with only a reviewer's rights: read candidates, claim them, add
    decisions under their own name. Run it as the store's owner, on the machine holding the store's key."""
    from sqlalchemy.engine import make_url

    from generator.store.team import add_reviewer, check_role_name

    url = state(ctx).project.db_url
    _require_postgres(url)
    check_role_name(name)
    password = typer.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True) if ask_password else None
    add_reviewer(state(ctx).engine, name, password=password)
    theirs = make_url(url).set(username=name, password=None).render_as_string(hide_password=True)
    console.print(f"Reviewer {name} added. On their machine they run: SYNTHGATE_DB={theirs} synthgate review")
    if adjudicator:
        from generator.store.adjudication import grant_adjudicator

        grant_adjudicator(state(ctx).engine, name)
        console.print(f"{name} may also adjudicate: synthgate review --adjudicate")


@team_app.command("list")
def list_command(ctx: typer.Context) -> None:
    """List the reviewers of this store, whether each can sign in, and their decision counts."""
    from generator.store.team import list_reviewers

    url = state(ctx).project.db_url
    _require_postgres(url)
    for reviewer in list_reviewers(state(ctx).engine):
        login = "can sign in" if reviewer.can_login else "removed"
        role = "\tadjudicator" if reviewer.adjudicator else ""
        console.print(f"{reviewer.name}\t{login}\t{reviewer.decisions} decision(s){role}")


@team_app.command("remove")
def remove_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The reviewer to remove: their login is revoked, their decisions are kept.")],
) -> None:
    """Revoke a reviewer's login and rights; their past decisions stay in the store and in exports."""
    from generator.store.team import remove_reviewer

    url = state(ctx).project.db_url
    _require_postgres(url)
    remove_reviewer(state(ctx).engine, name)
    console.print(f"Reviewer {name} removed: login revoked, decisions kept.")


@team_app.command("grant-adjudicator")
def grant_adjudicator_command(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(help="A reviewer (added with team add-reviewer) who may settle disagreements on overlapped candidates.")
    ],
) -> None:
    """Let a reviewer run `synthgate review --adjudicate`: their decision on a disagreement is final."""
    from generator.store.adjudication import grant_adjudicator

    url = state(ctx).project.db_url
    _require_postgres(url)
    grant_adjudicator(state(ctx).engine, name)
    console.print(f"{name} may now adjudicate: synthgate review --adjudicate")
