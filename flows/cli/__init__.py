"""The ``addgp`` command line: one Typer app (``flows.cli.common.app``), one verb per function.

Each verb validates its inputs, calls a flow or a stage, and prints a summary; the verbs live
in ``pipeline`` (run, nightly, serve), ``data`` (demo-data, ingest, datasets, embed),
``models`` (train, adapt, score), ``drift`` (drift), ``evaluate`` (evaluate, report, metrics) and ``inspect``
(models, runs, show, compare: what a workspace holds). Exit codes
and the error helper are in ``common``.
"""

from __future__ import annotations

import sys

import typer

from addgp import __version__

# Each module adds its verbs to the app; imported in the order `addgp --help` lists them.
from flows.cli import data, drift, evaluate, inspect, models, pipeline  # noqa: F401, I001
from flows.cli.common import app, exit_code_of

__all__ = ["app", "main"]


@app.callback(invoke_without_command=True)
def _main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    """The console script ``addgp``: the app, with the project's errors as messages and exit codes."""
    try:
        app()
    except Exception as exc:
        code = exit_code_of(exc)
        if code is None:
            raise
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(code)
