"""Progress of long work, one seam for every stage: a tqdm bar on a terminal, log lines inside a flow.

Stages create their bars with :func:`progress_bar` (tqdm's own keywords). Outside a flow that
is a tqdm bar, as before. Inside :func:`progress_to_log` - which the Prefect task wrappers
open around a stage with their run logger (:func:`progress_to_run_log`) - the same call returns a :class:`LogProgress`: the
Prefect UI shows a run's logs, not a terminal, so the progress becomes lines such as
``embed demo_eval: 1,200/4,000 files (30 %), ETA 2 min``, one every ``every_percent`` % or
``every_s`` seconds (whichever comes first, never one per row, and percent steps no closer
than ``MIN_INTERVAL_S``: work done in a blink logs only its last line), and a last line when the
work is done.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

DEFAULT_EVERY_PERCENT = 10.0
DEFAULT_EVERY_S = 60.0
# Percent steps closer together than this are not logged: ten lines in 30 ms tell nobody anything.
MIN_INTERVAL_S = 2.0

Logger = logging.Logger | logging.LoggerAdapter


@dataclass(frozen=True)
class _Sink:
    logger: Logger
    every_percent: float
    every_s: float


# A context variable, not a global: each Prefect task run (a thread of the flow's task
# runner) reports to its own run logger.
_SINK: ContextVar[_Sink | None] = ContextVar("addgp_progress_sink", default=None)


@contextmanager
def progress_to_log(
    logger: Logger, every_percent: float = DEFAULT_EVERY_PERCENT, every_s: float = DEFAULT_EVERY_S
) -> Iterator[None]:
    """Within the block, :func:`progress_bar` reports to ``logger`` instead of drawing a bar."""
    if not 0 < every_percent <= 100 or every_s <= 0:
        raise ValueError(f"progress every {every_percent} % / {every_s} s: need 0 < percent <= 100 and seconds > 0")
    token = _SINK.set(_Sink(logger, every_percent, every_s))
    try:
        yield
    finally:
        _SINK.reset(token)


def run_logger() -> Logger | None:
    """The current Prefect flow or task run's logger (its lines reach the Prefect UI); None outside a run."""
    from prefect import get_run_logger
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return None
    return get_run_logger()


@contextmanager
def progress_to_run_log() -> Iterator[None]:
    """:func:`progress_to_log` to the current Prefect run's logger; outside a run (a task's
    ``.fn`` called directly) the stage keeps its terminal bar."""
    logger = run_logger()
    with progress_to_log(logger) if logger is not None else nullcontext():
        yield


def format_duration(seconds: float) -> str:
    """``40 s``, ``2 min``, ``1 h 05 min``: a person's reading of an ETA or an elapsed time."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class LogProgress:
    """The part of tqdm's interface the stages use (``update``, ``close``, ``n``, ``total``,
    ``disable``, ``start_t``, use as a context manager), reporting to a logger.

    ``done``: a caller-written account of the work done (the embed stage writes files and
    audio time there); when set it replaces ``n/total unit`` in the line.
    """

    def __init__(
        self,
        total: float | None,
        desc: str,
        unit: str,
        logger: Logger,
        every_percent: float = DEFAULT_EVERY_PERCENT,
        every_s: float = DEFAULT_EVERY_S,
        clock: Callable[[], float] = time.time,
    ):
        self.total = total or 0
        self.desc = desc
        self.unit = unit
        self.logger = logger
        self.every_percent = every_percent
        self.every_s = every_s
        self.clock = clock
        self.n: float = 0
        self.done = ""
        self.disable = False
        self.start_t = clock()
        self._last_logged_t = self.start_t
        self._last_logged_n: float = 0
        self._next_percent = every_percent
        self._closed = False

    @property
    def percent(self) -> float:
        return 100.0 * self.n / self.total if self.total else 100.0

    def update(self, n: float = 1) -> None:
        self.n += n
        now = self.clock()
        since = now - self._last_logged_t
        due = (self.percent >= self._next_percent and since >= MIN_INTERVAL_S) or since >= self.every_s
        if due and self.n < self.total:  # the last line is close()'s
            self._log(now)

    def line(self, now: float | None = None) -> str:
        """``<desc>: <done> (<percent> %), ETA <duration>`` (no ETA before the first unit is done)."""
        now = self.clock() if now is None else now
        elapsed = now - self.start_t
        counted = self.done or self._counted()
        eta = f", ETA {format_duration(elapsed * (self.total - self.n) / self.n)}" if 0 < self.n < self.total else ""
        return f"{self.desc}: {counted} ({self.percent:.0f} %){eta}"

    def _counted(self) -> str:
        unit = self.unit if self.unit.endswith("s") else f"{self.unit}s"  # tqdm's units are singular
        return f"{self.n:,.0f}/{self.total:,.0f} {unit}"

    def _log(self, now: float) -> None:
        self.logger.info("%s", self.line(now))
        self._last_logged_t, self._last_logged_n = now, self.n
        self._next_percent = (math.floor(self.percent / self.every_percent) + 1) * self.every_percent

    def close(self) -> None:
        """Log the final count and the time it took (once; nothing for work that had nothing to do)."""
        if self._closed:
            return
        self._closed = True
        if self.total or self.n:
            now = self.clock()
            counted = self.done or self._counted()
            self.logger.info("%s: %s done in %s", self.desc, counted, format_duration(now - self.start_t))

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(
    *, total: float | None, desc: str, unit: str, disable: bool = False, tqdm_class: type = tqdm, **options: Any
) -> Any:
    """A progress bar for ``total`` units of work: ``tqdm_class(...)`` on a terminal, a
    :class:`LogProgress` inside :func:`progress_to_log`; ``disable`` turns either off (a tqdm
    bar that draws nothing). ``options``: tqdm's own keywords, for the terminal bar."""
    sink = _SINK.get()
    if sink is None or disable:
        return tqdm_class(total=total, desc=desc, unit=unit, disable=disable, **options)
    return LogProgress(total, desc, unit, sink.logger, sink.every_percent, sink.every_s)
