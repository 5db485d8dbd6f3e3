"""`addgp migrate`: bring a workdir written by an earlier addgp version up to the current formats."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flows.cli.common import EXIT_BAD_INPUT, app, exit_codes
from flows.cli.console import say


@app.command()
def migrate(
    workdir: Path = typer.Argument(..., help="The workdir (a pipeline config's `workdir`: manifests/, models/, …)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would change, change nothing."),
    relative_to: Path = typer.Option(
        None,
        help="Folder that manifests with relative audio paths were ingested from "
        "(default: the current folder, against which earlier versions resolved them).",
    ),
) -> None:
    """Bring WORKDIR's files of earlier addgp versions up to the current formats, one step per format.

    Readers refuse an old file, naming it and this command. Each step prints one progress line
    and a line per file; running it again changes nothing. Holds the nightly lock while it
    changes files (exit 4 while a night runs). Prints a JSON summary; exits 2 when a file was
    left (its line says why and what to do).
    """
    from contextlib import ExitStack

    from storage.champions import exclusive_run
    from storage.migrations import MIGRATIONS, Target, check_workdir

    with exit_codes(ValueError):
        target = Target(check_workdir(workdir), dry_run, (relative_to or Path.cwd()).resolve())
    verb = "would change" if dry_run else "changed"
    summary: dict = {"workdir": str(target.workdir), "dry_run": dry_run, "changed": {}, "left": {}}
    with ExitStack() as held:
        state = target.workdir / "state"
        if state.is_dir() and not dry_run:  # a night must not run on files half-migrated (exit 4 if one does)
            with exit_codes():
                held.enter_context(exclusive_run(state, "nightly"))
        for i, step in enumerate(MIGRATIONS, 1):
            with exit_codes(OSError, ValueError, prefix=f"migrate: {step.title}: "):
                result = step.run(target)
            say(
                f"migrate [{i}/{len(MIGRATIONS)}] {step.title}: {len(result.changed)} file(s) {verb}"
                + (f", {len(result.left)} left" if result.left else "")
            )
            for line in result.changed:
                say(f"  {line}")
            for line in result.left:
                say(f"  left: {line}")
            summary["changed"][step.title] = result.changed
            summary["left"][step.title] = result.left
    typer.echo(json.dumps(summary, indent=2))
    if any(summary["left"].values()):
        raise typer.Exit(EXIT_BAD_INPUT)
