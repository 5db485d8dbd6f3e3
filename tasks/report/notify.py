"""Telling people about a finished run that needs them: a JSON POST to ``notify.webhook_url``.

Three events (``notify.on`` picks which are sent): ``regressions`` - a run report found metrics
worse than the previous report's beyond the CI (tasks/report/compare.py) - ``promotion``
- a nightly promoted its challenger - and ``drift`` - tonight's inbox lies beyond the drift
threshold from the champion's training data (tasks/nightly/drift.py). The payload is small and stable::

    {"event": "regressions", "config": "demo", "run_id": "20260101T020000Z-demo",
     "report": "file:///…/reports/20260101T020000Z-demo/index.html",
     "previous_run_id": "…", "regressions": [{"detector", "dataset", "metric", "old", "new", …}]}

(``promotion`` carries ``champion`` instead of the regression fields; ``drift`` carries
``detector`` and ``drift``: tonight's drift record). A POST that fails
(refused, timed out, an HTTP error) is logged as a warning and never fails the run: the
report is published either way.
"""

from __future__ import annotations

import json
import logging
import urllib.request

from addgp.config import NotifyConfig

EVENT_REGRESSIONS = "regressions"
EVENT_PROMOTION = "promotion"
EVENT_DRIFT = "drift"


def regression_payload(config_name: str, run_id: str, report: str, comparison: dict) -> dict | None:
    """The ``regressions`` payload of a report's comparison (``metrics.json``), None when nothing regressed."""
    regressions = comparison.get("regressions") or []
    if not regressions:
        return None
    return {
        "event": EVENT_REGRESSIONS,
        "config": config_name,
        "run_id": run_id,
        "report": report,
        "previous_run_id": comparison.get("previous_run_id"),
        "regressions": regressions,
    }


def promotion_payload(config_name: str, run_id: str, report: str, champion: dict) -> dict:
    """The ``promotion`` payload of a night that promoted its challenger (``champion``: the new record)."""
    return {"event": EVENT_PROMOTION, "config": config_name, "run_id": run_id, "report": report, "champion": champion}


def drift_payload(config_name: str, run_id: str, report: str, detector: str, drift: dict) -> dict:
    """The ``drift`` payload of a night whose inbox crossed a drift threshold (``drift``: its record)."""
    return {
        "event": EVENT_DRIFT,
        "config": config_name,
        "run_id": run_id,
        "report": report,
        "detector": detector,
        "drift": drift,
    }


def post_json(url: str, payload: dict, timeout_s: float) -> int:
    """POST ``payload`` as JSON; the HTTP status (urllib raises for 4xx/5xx and for no answer)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=str).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "addgp"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # the URL is validated http(s)
        return int(response.status)


def send(config: NotifyConfig, payload: dict, logger: logging.Logger | logging.LoggerAdapter) -> bool:
    """POST ``payload`` when a webhook is configured for its event; True when it was delivered.
    Failures are logged, never raised."""
    if config.webhook_url is None or payload["event"] not in config.on:
        return False
    try:
        status = post_json(config.webhook_url, payload, config.timeout_s)
    except (OSError, ValueError) as exc:  # urllib's URLError and HTTPError are OSErrors
        logger.warning(
            "notify: the %s POST to %s failed (%s); the run's report is published, but nobody was told - "
            "check notify.webhook_url",
            payload["event"],
            config.webhook_url,
            exc,
        )
        return False
    logger.info(
        "notify: %s of run %s sent to %s (HTTP %d)", payload["event"], payload["run_id"], config.webhook_url, status
    )
    return True
