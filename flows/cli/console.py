"""What an ``addgp`` command shows on its terminal, and what only ``--debug`` shows.

By default a command shows its own lines and the stages' progress; an expected failure (one
of the project's errors, ``common.exit_code_of``) is one ``error: …`` line and its exit code.
``addgp --debug`` (``-v``, or ``ADDGP_DEBUG=1``) adds what a developer reading a fault needs:
the Python traceback of that error, Prefect's own failure records (``Finished in state
Failed(…)``, ``Encountered exception during execution`` with its traceback), and Dask's INFO
and WARNING lines (scheduler and worker start/stop, ``Worker process still alive after 4.0
seconds, killing``, the ``jupyter-server-proxy`` hint), which otherwise stay below the
terminal. The Prefect API (the UI) receives every record either way: the filtering here is
only of the terminal's handler.
"""

from __future__ import annotations

import logging
import os
import sys

DEBUG_ENV = "ADDGP_DEBUG"
# Dask reads its logging levels from the environment at import, in this process and in the
# worker processes it spawns: set before `distributed` is imported, it quiets them all.
DASK_LEVEL_ENV = "DASK_LOGGING__DISTRIBUTED"
_USERS_DASK_LEVEL = os.environ.get(DASK_LEVEL_ENV)
# Prefect's message for a run's final state; the CLI says the failure itself (one line, or the traceback).
FAILED_STATE_PREFIX = "Finished in state Failed"


def debug_enabled() -> bool:
    """``--debug`` / ``-v`` given, or ``ADDGP_DEBUG`` set to anything but ``0`` or empty."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def configure_console(debug: bool) -> None:
    """Apply the terminal policy for this command (and the processes it starts, through the environment)."""
    if debug:
        os.environ[DEBUG_ENV] = "1"
    debug = debug_enabled()
    if _USERS_DASK_LEVEL is None:  # a level the user set is theirs to keep
        level = "info" if debug else "error"
        os.environ[DASK_LEVEL_ENV] = level
        if "distributed" in sys.modules:  # already configured from the environment: set it here too
            logging.getLogger("distributed").setLevel(level.upper())


class TerminalFilter(logging.Filter):
    """Keeps a known error's traceback and Prefect's failed-state lines off the terminal unless debugging.

    A record is dropped when it carries the exception of a project error that the CLI turns into
    one ``error:`` line, or is Prefect's ``Finished in state Failed(…)`` of a task or flow run
    (the CLI says the failure: that one line, or for an unexpected error its traceback).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if debug_enabled():
            return True
        from flows.cli.common import exit_code_of

        if record.exc_info and record.exc_info[1] is not None and exit_code_of(record.exc_info[1]) is not None:
            return False
        if record.name.startswith(("prefect.flow_runs", "prefect.task_runs")) and str(record.msg).startswith(
            FAILED_STATE_PREFIX
        ):
            return False
        return not _is_dask_shutdown_noise(record)


def _is_dask_shutdown_noise(record: logging.LogRecord) -> bool:
    """Dask's ``CommClosedError`` tracebacks: a connection closed while the cluster stops."""
    exc = record.exc_info[1] if record.exc_info else None
    return record.name.startswith("distributed") and type(exc).__name__ == "CommClosedError"


def filter_prefect_terminal() -> None:
    """Add :class:`TerminalFilter` to Prefect's terminal handlers (idempotent). Call once Prefect is imported."""
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler) and not any(
                isinstance(f, TerminalFilter) for f in handler.filters
            ):
                handler.addFilter(TerminalFilter())


def say(message: str) -> None:
    """A status line of the command itself, on stderr (stdout stays the verb's result)."""
    print(message, file=sys.stderr, flush=True)
