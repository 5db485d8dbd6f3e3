"""What every ``addgp`` verb shares: the one Typer app, the exit codes, and the one helper
that turns an error into a message and an exit code.

Exit codes: 0 success, 2 bad input (config, paths, layouts, damaged state files, files of an
earlier version that `addgp migrate` upgrades: the message says which and how to fix it), 3 an encoder or model that is not on this machine, 4 another
run of the same kind holds the lock, 5 (`addgp score`) a model asked to score embeddings of
another encoder variant (fp32/int8) than it was trained on, 6 (`addgp run`, `addgp report`)
the run finished and published its report, which found regressions against the previous one,
7 (`addgp embed`, `run`, `nightly`) the run finished but a dataset had more rows rejected than
`embed.max_reject_fraction` allows (everything embeddable was written first); (`addgp ingest`,
`run`) a corpus lost a split or more than that share of its rows at ingest (the manifest was
written; `run` left the corpus out and published the report of the rest), 8 (`addgp adapt`,
`nightly`) an update of a model was refused because its scores left a sane range (nothing saved), 9 (`addgp drift
--fail-on-drift`) the audio tested lies beyond a drift threshold from the model's training data;
1 anything else, a bug, printed with its traceback. Each of 2-9 is one ``error:`` line on stderr
(``flows.cli.console``: its traceback only under ``addgp --debug``).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

# Prefect's local server would otherwise try to send telemetry on every run.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import typer

from flows.cli.console import debug_enabled

EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_BUSY = 4
EXIT_VARIANT_MISMATCH = 5
EXIT_REGRESSIONS = 6
EXIT_TOO_MANY_REJECTS = 7
EXIT_UNSOUND_UPDATE = 8
EXIT_DRIFT = 9
QUOTES = "'\""  # KeyError quotes its message

# Every verb's help ends with the codes (`VERB_EPILOG`); `addgp --help` says what each means.
EXIT_CODES_HELP = """\b
Exit codes (every verb):
  0  success
  1  an unexpected error (a bug: its traceback is printed)
  2  bad input: config, paths, layouts, damaged state files, files
     of an earlier version (the message names which, and the fix:
     for those, `addgp migrate WORKDIR`)
  3  an encoder or model that is not on this machine
  4  another run holds the lock (nightly; migrate while a night runs)
  5  score: the model was trained on another encoder variant (fp32/int8)
  6  run, report: the published report found regressions
     (--no-fail-on-regression: exit 0)
  7  embed, run, nightly: a dataset had more rows rejected than
     embed.max_reject_fraction allows (everything else was written)
  8  adapt, nightly: an update of a model was refused, its scores
     left a sane range (nothing was saved)
  9  drift --fail-on-drift: the audio drifted from the training data
An expected error is one `error: ...` line; `addgp --debug VERB ...` (-v)
adds its traceback and Dask's INFO lines."""
VERB_EPILOG = "Exit codes: 0 ok, 2 bad input, 3 not on this machine, 4 busy, 5 encoder variant, 6 regressions, 7 rejects, 8 unsound update, 9 drift, 1 a bug (`addgp --help` says more; `addgp --debug` shows tracebacks)."


class _Verbs(typer.Typer):
    """The app, whose every verb's help ends with the exit codes (also verbs added later, in any module)."""

    def command(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.setdefault("epilog", VERB_EPILOG)
        return super().command(*args, **kwargs)


app = _Verbs(
    name="addgp",
    epilog=EXIT_CODES_HELP,
    help="Audio deepfake detection pipeline: XLS-R embeddings, LR and DKL-GP detectors, cross-dataset reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Click's plain help: wrapped to the terminal, never cut (Rich's boxes truncated long option
    # names and values at 80 columns, e.g. in `addgp report --help` piped or in a narrow terminal).
    rich_markup_mode=None,
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
    ("storage.paths", "OldFormatError", EXIT_BAD_INPUT),
    ("storage.models", "ModelNotFoundError", EXIT_UNAVAILABLE),
    ("storage.models", "ModelRegistryError", EXIT_BAD_INPUT),
    ("flows.cli.server", "ServerStartError", EXIT_BAD_INPUT),
    ("tasks.ingest.inbox", "InboxMissingError", EXIT_BAD_INPUT),
    ("tasks.embed.summary", "TooManyRejectsError", EXIT_TOO_MANY_REJECTS),
    ("tasks.ingest.losses", "IngestLossError", EXIT_TOO_MANY_REJECTS),
    ("tasks.train.base", "UnsoundUpdateError", EXIT_UNSOUND_UPDATE),
    ("tasks.ingest.common", "LayoutError", EXIT_BAD_INPUT),
)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code`` (after the traceback being
    handled, if any, under ``--debug``)."""
    if debug_enabled() and sys.exc_info()[1] is not None:
        traceback.print_exc()
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


LIST_HELP = "repeatable, or comma-separated"


def split_values(values: list[str] | str) -> list[str]:
    """A list option's values: the CLI's one rule is that a list option is repeatable
    (``--split dev --split eval``) and each value may also be a comma list (``--split dev,eval``)."""
    items = [values] if isinstance(values, str) else values
    return [part.strip() for value in items for part in value.split(",") if part.strip()]


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
