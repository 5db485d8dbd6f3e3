"""A report's run notes (tasks/report/notes.py): typed stage values in, metrics.json's ``notes`` out,
with the keys, their order and their values each stage's own ``as_dict`` gives."""

from __future__ import annotations

import json

import pandas as pd
from test_crossdataset import make_scores

from storage.reports import PROVENANCE_COLUMNS, score_provenance
from tasks.degrade.run import DegradeSummary
from tasks.degrade.task import DegradedCopies
from tasks.embed.summary import EmbedSummary
from tasks.evaluate.crossdataset import EvaluationSettings, evaluate_scores
from tasks.ingest.common import IngestedCorpus, IngestResult
from tasks.report.build import render_report
from tasks.report.content import DATA_CHECK_COLUMNS, ReportInput
from tasks.report.format import without_paths
from tasks.report.from_cards import report_input_from_cards
from tasks.report.notes import RunNotes
from tasks.report.run_input import RunStages, run_report_input

RESYNTHESISED_POLICY = "resynthesised=spoof (corpus label)"


def ingested_corpus(dataset: str, manifest_path: str, rows: int = 12, resynthesised: int = 0) -> IngestedCorpus:
    """A corpus as the ingest stage hands it on: the summary of a small manifest (train and eval,
    both labels, ``resynthesised`` rows labelled by RESYNTHESISED_POLICY) and where it was written."""
    manifest = pd.DataFrame(
        {
            "split": ["train" if i % 4 < 2 else "eval" for i in range(rows)],
            "label": ["bonafide" if i % 2 else "spoof" for i in range(rows)],
            "attack": [None if i % 2 else f"A0{i % 3}" for i in range(rows)],
            "duration_s": [1.0 + i / 10 for i in range(rows)],
        }
    )
    if resynthesised:
        flags = [i < resynthesised for i in range(rows)]
        manifest["label_policy"] = [RESYNTHESISED_POLICY if f else None for f in flags]
        manifest["resynthesised"] = flags
    rejects = pd.DataFrame({"reason": ["unreadable", "too short", "unreadable"]})
    summary = IngestResult(dataset, manifest, rejects, {"train": rows // 2, "eval": rows // 2, "dev": 2}).summary()
    return IngestedCorpus(summary, manifest_path, reused=False)


def embed_summary() -> EmbedSummary:
    return EmbedSummary(
        encoder="/models/wav2vec2-xls-r-300m",
        random_weights=True,
        layers=[4, 8],
        shards_planned=3,
        utterances_embedded=40,
        rejects=2,
        audio_s=60.0,
        model_s=3.0,
        decode_s=1.0,
        wall_s=7.0,
        oom_splits=1,
        store="/data/work/store",
        rejects_by_dataset={"demo_studio": {"rows": 12, "rejected": 2, "transient": 0, "permanent": 2}},
    )


def pipeline_stages(degraded: bool) -> RunStages:
    ingests = {
        "demo_studio": ingested_corpus("demo_studio", "/data/work/manifests/demo_studio.parquet"),
        "demo_phone": ingested_corpus("demo_phone", "/data/work/manifests/demo_phone.parquet", resynthesised=3),
    }
    summaries = [
        DegradeSummary("demo_studio@resample_8k", "resample_8k", 10, 8, 2, 0, 12.5, 3.0),
        DegradeSummary("demo_phone@mp3_32k", "mp3_32k", 4, 0, 4, 1, 5.0, 0.0),
    ]
    copies = DegradedCopies(["/data/work/manifests/d.parquet"], summaries) if degraded else None
    return RunStages(ingests, embed_summary(), copies, [], pd.DataFrame(columns=list(DATA_CHECK_COLUMNS)), [])


def test_a_pipeline_runs_notes_are_each_stages_own_summary_under_its_key():
    for degraded in (True, False):
        stages = pipeline_stages(degraded)
        expected = {
            "ingest": {name: corpus.as_dict() for name, corpus in stages.ingests.items()},
            "embed": stages.embed.as_dict(),
        }
        if degraded:
            assert stages.degraded is not None
            expected["degrade"] = [summary.as_dict() for summary in stages.degraded.summaries]
        notes = stages.notes().as_dict()
        assert notes == expected and list(notes) == list(expected)
        assert list(notes["ingest"]) == ["demo_studio", "demo_phone"]
        assert "label_policy" not in notes["ingest"]["demo_studio"]  # a corpus without resynthesised audio
        assert notes["ingest"]["demo_phone"]["label_policy"] == [RESYNTHESISED_POLICY]


def test_metrics_json_holds_the_notes_with_paths_cut_to_names():
    scores = make_scores(detectors=("lr",), datasets=("studio",), n=60)
    evaluation = evaluate_scores(scores, EvaluationSettings(n_boot=0))
    stages = pipeline_stages(degraded=True)
    report = run_report_input("cfg", "20250101T000000Z-notes", stages, evaluation)
    files = render_report(report)
    notes = json.loads(files["metrics.json"])["notes"]
    assert notes == json.loads(json.dumps(without_paths(stages.notes().as_dict())))
    assert "Run notes (ingest, embed, degrade)" in files["index.html"], "the label names what the notes hold"
    assert list(notes) == ["ingest", "embed", "degrade"]
    assert notes["ingest"]["demo_studio"]["manifest"] == "demo_studio.parquet"
    assert notes["embed"]["encoder"] == "wav2vec2-xls-r-300m" and notes["embed"]["store"] == "store"
    # a report with no notes given (tests, other callers) writes an empty mapping
    bare = ReportInput(title="t", run_id="r", models=[], encoder="e", evaluation=evaluation)
    assert json.loads(render_report(bare)["metrics.json"])["notes"] == {}
    assert "Run notes (none)" in render_report(bare)["index.html"]


def test_a_report_of_score_files_notes_the_files_and_each_detectors_provenance():
    scores = make_scores(detectors=("lr", "gp"), datasets=("studio",), n=60)
    lr = scores["detector"] == "lr"
    scores.loc[lr, "model_name"], scores.loc[lr, "encoder"] = "lr", "enc@x"
    evaluation = evaluate_scores(scores, EvaluationSettings(n_boot=0))
    report = report_input_from_cards("t", "r", ["lr", "gp"], {}, evaluation, ["a.parquet", "b.csv"], scores)
    notes = report.notes.as_dict()
    assert "Run notes (scores, score provenance)" in render_report(report)["index.html"]
    provenance = score_provenance(scores).to_dict("records")
    assert list(notes) == ["scores", "score_provenance"] and notes["scores"] == ["a.parquet", "b.csv"]
    # every null of the provenance table (a column the file lacked) is "unknown"; nothing else changes
    assert notes["score_provenance"] == [{k: "unknown" if v is None else v for k, v in r.items()} for r in provenance]
    assert notes["score_provenance"][1] == {"detector": "gp", **dict.fromkeys(PROVENANCE_COLUMNS, "unknown")}
    assert notes["score_provenance"][0]["model_name"] == "lr" and notes["score_provenance"][0]["encoder"] == "enc@x"
    assert RunNotes().as_dict() == {}
