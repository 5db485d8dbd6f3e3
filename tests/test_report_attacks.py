"""Issue 23 item 12: the per-attack table marks eval-only attacks; the models table says what dev EER is."""

from __future__ import annotations

from test_crossdataset import make_scores

from tasks.evaluate.crossdataset import EvaluationSettings, evaluate_scores
from tasks.report.build import ReportInput, render_report
from tasks.train.trained import TrainedModel


def rendered(train_attacks: dict[str, list[str] | None]) -> str:
    scores = make_scores(detectors=("lr", "gp"), datasets=("studio",), n=90)
    models = [
        TrainedModel(d, "logreg", f"/m/{d}/v1", 1, {"eer": 0.0}, "", a, reused=False) for d, a in train_attacks.items()
    ]
    report = ReportInput(
        title="t",
        run_id="r1",
        models=models,
        encoder="e",
        evaluation=evaluate_scores(scores, EvaluationSettings(n_boot=20)),
        scores=scores,
    )
    return str(render_report(report)["report.md"])


def attack_rows(markdown: str) -> dict[str, str]:
    """attack -> its 'in training' cell, from the Markdown per-attack table."""
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 3 and cells[1] in ("A01", "A02", "A03"):
            rows[cells[1]] = cells[2]
    return rows


def test_eval_only_attacks_are_marked_and_dev_eer_is_explained():
    markdown = rendered({"lr": ["A01", "A02"], "gp": ["A01"]})
    assert attack_rows(markdown) == {"A01": "yes", "A02": "by lr", "A03": "eval-only"}
    assert "early stopping" in markdown and "dev EER (%), its own dev set" in markdown
    # Cards from before attacks were recorded: nothing claimed either way.
    assert set(attack_rows(rendered({"lr": None, "gp": None})).values()) == {""}
