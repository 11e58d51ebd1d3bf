"""`synthgate serve`: the review app in a browser for signed-in reviewers, one app process per open tab."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from generator.cli.app import app, err_console, state
from generator.errors import UserError


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on. Anything but loopback must sit behind a TLS reverse proxy.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=1, max=65535)] = 8000,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="The address reviewers open, when a reverse proxy serves it (e.g. https://review.example.org); https here makes the session cookie Secure.",
        ),
    ] = None,
) -> None:
    """Serve the review app to a browser: the same screens and keys as `synthgate review`, on the same store.

    Nobody reaches it without signing in with a one-time link from `synthgate team invite NAME`;
    the reviewer's name comes from that sign-in, never from the browser. Each open tab runs its own
    review app; closing the tab gives its candidates back to the queue. Stop with Ctrl+C.
    """
    if public_url is not None and not public_url.startswith(("http://", "https://")):
        raise UserError(f"--public-url {public_url!r} is not a web address", fix="pass it with its scheme, e.g. https://review.example.org")
    cli = state(ctx)
    project = cli.project
    engine = cli.engine  # opened (and migrated) before the first reviewer connects
    if not _is_loopback(host):
        err_console.print(
            f"warning: serving on {host}, reachable from other machines. Sign-in links and session cookies then cross the "
            "network: put the server behind a reverse proxy with TLS (https), as the README shows, and pass --public-url https://…"
        )

    # aiohttp and textual-serve are imported here: the rest of the CLI starts without them.
    from review_tui.web.server import ReviewServer

    server = ReviewServer(engine=engine, db_url=project.db_url, project_root=project.root, host=host, port=port, public_url=public_url)
    server.serve()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere
