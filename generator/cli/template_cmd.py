"""`synthgate template check`: render the prompt template for one sample request and show the seed facts it used."""

from __future__ import annotations

from typing import Annotated

import typer

from generator.cli.app import app, console, state

template_app = typer.Typer(help="Work with the prompt template.", no_args_is_help=True)
app.add_typer(template_app, name="template")


@template_app.command("check")
def template_check_command(
    ctx: typer.Context,
    template: Annotated[
        str | None, typer.Option(help="Template file to check instead of \\[generate] template (relative to the project).")
    ] = None,
) -> None:
    """Render the system and user prompt of the first request from your seeds, with the facts derived from them; send nothing.

    Exit codes: 0 rendered; 2 bad input (a template error names the file and line).
    """
    from rich.table import Table

    from generator.generation.engine import Generation

    project = state(ctx).project
    settings = project.config.generate
    if template is not None:
        settings = settings.model_copy(update={"template": template})
    generation = Generation(project, settings, dry_run=True)  # dry run: no API key needed, nothing written
    planner = generation.planner([])
    call = planner.build(0)
    table = Table("fact (from the verified seeds)", "value", title=f"Seed facts: the `facts` variable of {settings.template}")
    for fact, value in planner.facts.rows():
        table.add_row(fact, value)
    console.print(table)
    description = planner.description or "(none: set [project] description in synthgate.toml)"
    console.print(f"description: {description}")
    console.print(f"Prompt of request 1 ({call.asked} conversation(s), focus {call.focus or 'none'}):")
    for message in call.messages:
        console.print(f"--- {message['role']} ---")
        console.print(message["content"])
    console.print("---")
