"""The ``addgp`` command line: one Typer app (``flows.cli.common.app``), one verb per function.

Each verb validates its inputs, calls a flow or a stage, and prints a summary; the verbs live
in ``pipeline`` (run, nightly, serve), ``data`` (demo-data, ingest, datasets, embed),
``models`` (train, adapt, score), ``drift`` (drift), ``evaluate`` (evaluate, report, metrics), ``inspect``
(models, runs, show, compare: what a workspace holds) and ``migrate`` (migrate: a workdir of an
earlier version brought up to date). Exit codes
and the error helper are in ``common``.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import traceback

import typer

from addgp import __version__

# Each module adds its verbs to the app; imported in the order `addgp --help` lists them.
from flows.cli import data, drift, evaluate, inspect, migrate, models, pipeline  # noqa: F401
from flows.cli.common import app, exit_code_of
from flows.cli.console import configure_console, debug_enabled

__all__ = ["app", "main"]


@app.callback(invoke_without_command=True)
def _main(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
    debug: bool = typer.Option(
        False,
        "--debug",
        "-v",
        help="Also show tracebacks of expected errors, Prefect's failure records and Dask's INFO/WARNING lines "
        "(also: ADDGP_DEBUG=1).",
    ),
) -> None:
    configure_console(debug)
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    """The console script ``addgp``: the app, with the project's errors as messages and exit codes."""
    _exit_now(_run())


def _run() -> int:
    """Run the app; the exit code. A project error is one ``error:`` line (and its traceback
    under ``--debug``); any other exception is a bug, printed with its traceback, exit 1."""
    try:
        app()
    except SystemExit as exc:  # Typer's (Click's) standalone mode ends every command this way
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except Exception as exc:
        code = exit_code_of(exc)
        if code is None or debug_enabled():
            traceback.print_exc()
        if code is None:
            return 1
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        return code
    return 0


def _exit_now(code: int) -> None:
    """Exit as soon as the command's work is done.

    What an exit must do is done here, in the interpreter's own order: wait for the threads still
    working (``threading._shutdown``, which also runs Prefect's flushes), then the ``atexit``
    handlers (multiprocessing, temporary folders, Prefect). What ``os._exit`` then skips is only
    the tear-down of every imported module (torch, transformers, Prefect, Dask): seconds on an
    idle machine, 10-20 s on a loaded one, between a command's last line and its exit.
    """
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
