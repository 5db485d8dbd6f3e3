"""Prefect's temporary API server for one CLI command, tied to that command's life.

Without ``PREFECT_API_URL`` Prefect starts a temporary server (uvicorn) for the process. Its
own start-up waits 20 s, too short on a loaded machine, and a ``kill -9`` of the command
leaves that server running. ``prefect_api()`` starts the same server itself: the child asks
the kernel for SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``), so no server
outlives a killed command, and it waits ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``
(default here 120 s) for the server to answer.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
DEFAULT_STARTUP_TIMEOUT_S = 120
# Logs and events still queued when a command's flow ends: sent within this, or dropped.
FLUSH_TIMEOUT_S = 10
_PR_SET_PDEATHSIG = 1


class ServerStartError(RuntimeError):
    """The temporary Prefect server did not answer in time; the message says what to set."""


def startup_timeout_s() -> int:
    """Prefect's own setting (whole seconds), with a default that fits a loaded machine."""
    value = os.environ.get(TIMEOUT_ENV)
    if value is None:
        return DEFAULT_STARTUP_TIMEOUT_S
    try:
        return int(value)
    except ValueError:
        raise ServerStartError(f"{TIMEOUT_ENV}={value!r} is not a whole number of seconds") from None


def _die_with_parent(parent: int) -> None:
    """Run in the server child before exec: SIGTERM when the parent dies (kept across exec)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def flush_to_api(timeout_s: float = FLUSH_TIMEOUT_S) -> None:
    """Send the run logs and events Prefect still holds to the API, while it still answers.

    Prefect's log and event workers send in the background and flush at interpreter exit; with
    the temporary server already stopped by then, each retried against a closed port for about a
    minute and printed ``--- Error logging to API --- All connection attempts failed``. Drained
    here, before the server stops, the command exits as soon as its work is done.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout_s)


@contextmanager
def prefect_api() -> Iterator[str | None]:
    """The Prefect API for the block: the configured one, or a temporary server stopped on exit."""
    import httpx
    import prefect
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    from flows.cli.console import filter_prefect_terminal, say

    filter_prefect_terminal()
    if PREFECT_API_URL.value():
        yield PREFECT_API_URL.value()
        return
    timeout = startup_timeout_s()
    say("starting Prefect's temporary API server (set PREFECT_API_URL to use a running one; docs/operations.md)")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **get_current_settings().to_environment_variables(exclude_unset=True),
    }
    parent = os.getpid()
    # The server's own output (its shutdown's cancelled consumers, uvicorn) is not the command's:
    # kept in a file, shown only when the server fails to start.
    server_log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (handed to the server process, read after it)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(prefect.__module_path__.parent),
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ],
        env=env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
        preexec_fn=(lambda: _die_with_parent(parent)) if sys.platform == "linux" else None,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                server_log.seek(0)
                tail = server_log.read()[-2000:]
                raise ServerStartError(
                    f"the temporary Prefect server exited with code {process.returncode} while starting:\n{tail}"
                )
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"the temporary Prefect server did not answer within {timeout} s (a loaded machine starts it slowly). "
                    f"Set {TIMEOUT_ENV} higher (e.g. {TIMEOUT_ENV}=300), or run a Prefect server "
                    "(`prefect server start`) and set PREFECT_API_URL; see docs/operations.md"
                )
            time.sleep(0.2)
        with temporary_settings(updates={PREFECT_API_URL: url}):
            try:
                yield url
            finally:
                flush_to_api()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        server_log.close()
