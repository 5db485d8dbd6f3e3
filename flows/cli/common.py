"""What every ``addgp`` verb shares: the one Typer app, the exit codes, and the one helper
that turns an error into a message and an exit code.

Exit codes: 0 success, 2 bad input (config, paths, layouts, damaged state files: the message
says which and how to fix it), 3 an encoder or model that is not on this machine, 4 another
run of the same kind holds the lock, 5 (`addgp score`) a model asked to score embeddings of
another encoder variant (fp32/int8) than it was trained on, 6 (`addgp run`, `addgp report`)
the run finished and published its report, which found regressions against the previous one,
7 (`addgp embed`, `run`, `nightly`) the run finished but a dataset had more rows rejected than
`embed.max_reject_fraction` allows (everything embeddable was written first); (`addgp ingest`,
`run`) a corpus lost a split or more than that share of its rows at ingest (the manifest was
written; `run` left the corpus out and published the report of the rest), 9 (`addgp drift
--fail-on-drift`) the audio tested lies beyond a drift threshold from the model's training data.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

# Prefect's local server would otherwise try to send telemetry on every run.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import typer  # noqa: E402

EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_BUSY = 4
EXIT_VARIANT_MISMATCH = 5
EXIT_REGRESSIONS = 6
EXIT_TOO_MANY_REJECTS = 7
EXIT_DRIFT = 9
QUOTES = "'\""  # KeyError quotes its message

app = typer.Typer(
    name="addgp",
    help="Audio deepfake detection pipeline: XLS-R embeddings, LR and DKL-GP detectors, cross-dataset reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (module, exception class, exit code), most specific first. Looked up in sys.modules only:
# an exception of a class can only be raised once its module is imported, and the CLI must
# not import torch (tasks.embed.encoder) just to answer `addgp run bad.yaml` with exit 2.
_EXIT_CODES = (
    ("storage.champions", "RunInProgressError", EXIT_BUSY),
    ("storage.champions", "ChampionMissingError", EXIT_UNAVAILABLE),
    ("addgp.config", "UnavailableError", EXIT_UNAVAILABLE),
    ("tasks.embed.encoder", "EncoderVariantMismatchError", EXIT_VARIANT_MISMATCH),
    ("tasks.embed.encoder", "EncoderUnavailableError", EXIT_UNAVAILABLE),
    ("addgp.config", "ConfigError", EXIT_BAD_INPUT),
    ("storage.state", "StateFileError", EXIT_BAD_INPUT),
    ("storage.models", "ModelNotFoundError", EXIT_UNAVAILABLE),
    ("storage.models", "ModelRegistryError", EXIT_BAD_INPUT),
    ("flows.cli.server", "ServerStartError", EXIT_BAD_INPUT),
    ("tasks.ingest.inbox", "InboxMissingError", EXIT_BAD_INPUT),
    ("tasks.embed.run", "TooManyRejectsError", EXIT_TOO_MANY_REJECTS),
    ("tasks.ingest.losses", "IngestLossError", EXIT_TOO_MANY_REJECTS),
)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code``."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


FAIL_ON_REGRESSION_HELP = (
    "Exit with code 6 when the finished run's report found regressions against the previous report "
    "(the report is published either way)."
)


def exit_on_regressions(regressions: list[dict], fail_on_regression: bool) -> None:
    """After a run that published its report: say what regressed, and exit 6 unless told not to."""
    if not regressions:
        return
    typer.secho(f"{len(regressions)} regression(s) against the previous report", fg=typer.colors.YELLOW, err=True)
    if fail_on_regression:
        raise typer.Exit(EXIT_REGRESSIONS)


def exit_code_of(exc: BaseException) -> int | None:
    """The exit code the project's own exception ``exc`` stands for, or None for any other error."""
    for module, name, code in _EXIT_CODES:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return code
    return None


@contextmanager
def exit_codes(*bad_input: type[BaseException], prefix: str = "") -> Iterator[None]:
    """Turn the project's errors (and ``bad_input`` types, e.g. FileNotFoundError) raised in the
    block into ``error: <prefix><message>`` and their exit code; anything else propagates."""
    try:
        yield
    except typer.Exit:
        raise
    except Exception as exc:
        code = exit_code_of(exc)
        if code is None and isinstance(exc, bad_input):
            code = EXIT_BAD_INPUT
        if code is None:
            raise
        fail(f"{prefix}{str(exc).strip(QUOTES)}", code)
