"""What a workspace holds, for the verbs a team reaches for (``addgp models``, ``runs``,
``show``, ``compare``; flows/cli/inspect.py): every model version with its champion status,
every published report, one model's card in words, and the diff of two chosen runs.

Read-only, through storage; the answers are plain records (``--json`` prints them as they
are) and ``text_table`` lines for a terminal.
"""

from __future__ import annotations

import math
from pathlib import PurePath

from storage import champions
from storage.models import ModelRegistryError, list_versions, read_card
from storage.paths import OldFormatError, filesystem, join
from storage.reports import latest_report, list_reports, read_report_metrics
from tasks.report.compare import AVERAGE_LABEL, compare_with_previous, metric_cells
from tasks.train.detectors import detector_summary


def text_table(rows: list[tuple]) -> str:
    """Left-aligned columns, two spaces apart (the first row is the header)."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _subfolders(root: str) -> list[str]:
    fs, path = filesystem(root)
    if not fs.exists(path):
        return []
    names = (
        str(e["name"]).rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(path, detail=True) if e["type"] == "directory"
    )
    return sorted(n for n in names if not n.startswith((".", "_")))


def _ref(path) -> str | None:
    """``NAME/vN`` of a model folder path (None for None)."""
    return "/".join(PurePath(str(path)).parts[-2:]) if path else None


def _parent(card: dict) -> str | None:
    """The model this one was made from (adapted, or a nightly challenger), as ``NAME/vN``."""
    steps = (card.get("training_data") or {}).get("adaptations") or []
    parent = steps[-1].get("parent") if steps else None
    return f"{parent['name']}/v{parent['version']}" if parent and parent.get("name") else None


def model_inventory(models_root: str, state_dir: str) -> list[dict]:
    """One record per registered version, by name then version: kind, created, what it was
    trained on, its parent, and whether it is the latest and the champion in service."""
    records = []
    for name in _subfolders(models_root):
        versions = list_versions(models_root, name)
        champion = champions.current_champion(state_dir, name) if versions else None
        champion_ref = _ref(champion.get("model_path")) if champion else None
        for ref in versions:
            record = {"name": name, "version": ref.version, "ref": f"{name}/v{ref.version}", "path": str(ref.path)}
            try:
                card = read_card(ref)
            except (ModelRegistryError, OSError, ValueError) as exc:
                records.append({**record, "note": f"card unreadable: {exc}"})
                continue
            training = card.get("training_data") or {}
            records.append(
                {
                    **record,
                    "kind": card.get("model_type"),
                    "created": card.get("created_utc"),
                    "trained_on": ",".join(str(d) for d in training.get("datasets") or []),
                    "parent": _parent(card),
                    "latest": ref.version == versions[-1].version,
                    "champion": champion_ref == f"{name}/v{ref.version}",
                }
            )
    return records


def render_models(records: list[dict]) -> str:
    if not records:
        return "No model registered yet (`addgp run` or `addgp train` writes MODELS/NAME/vN)."
    rows: list[tuple] = [("model", "kind", "created", "trained on", "parent", "status")]
    for r in records:
        status = " ".join(s for s, on in (("champion", r.get("champion")), ("latest", r.get("latest"))) if on)
        rows.append(
            (
                r["ref"],
                r.get("kind") or "-",
                r.get("created") or "-",
                r.get("trained_on") or "-",
                r.get("parent") or "-",
            )
            + (status or r.get("note", ""),)
        )
    return text_table(rows)


def _nightly_roots(reports_root: str) -> list[tuple[str, str]]:
    """(detector, folder) of the nightly reports: one folder per detector under ``reports/nightly/``;
    a report right in ``reports/nightly/`` (earlier versions' shared folder) is an OldFormatError."""
    nightly = join(reports_root, "nightly")
    shared = list_reports(nightly)
    if shared:
        raise OldFormatError(
            join(nightly, shared[0]), "a nightly report in the shared folder (reports/nightly/DETECTOR/ now)"
        )
    return [(d, join(nightly, d)) for d in _subfolders(nightly)]


def run_inventory(reports_root: str) -> list[dict]:
    """One record per published report (runs, then nightly reports), in run-id order."""
    records = []
    latest = latest_report(reports_root)
    latest_id = latest.rstrip("/").rsplit("/", 1)[-1] if latest else None
    for run_id in list_reports(reports_root):
        document = _document(join(reports_root, run_id))
        comparison = document.get("comparison") or {}
        records.append(
            {
                "run_id": run_id,
                "kind": "run",
                "created": document.get("created"),
                "models": [m.get("ref") for m in document.get("models") or []],
                "datasets": document.get("datasets") or [],
                "regressions": len(comparison.get("regressions") or []),
                "left_out": len(document.get("left_out") or []),
                "latest": run_id == latest_id,
                "path": join(reports_root, run_id),
            }
        )
    for detector, folder in _nightly_roots(reports_root):
        for run_id in list_reports(folder):
            document = _document(join(folder, run_id))
            decision = document.get("decision") or {}
            verdict = (
                "nothing new"
                if document.get("nothing_new")
                else ("promoted" if decision.get("promote") else "kept")
                if decision
                else "-"
            )
            records.append(
                {
                    "run_id": run_id,
                    "kind": "nightly",
                    "detector": detector,
                    "created": document.get("created"),
                    "decision": verdict,
                    "path": join(folder, run_id),
                }
            )
    return records


def _document(folder: str) -> dict:
    try:
        document = read_report_metrics(folder)
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def render_runs(records: list[dict]) -> str:
    if not records:
        return "No report published yet (`addgp run` publishes REPORTS/<run-id>/)."
    rows: list[tuple] = [("run", "kind", "created", "what")]
    for r in records:
        if r["kind"] == "run":
            what = f"models {', '.join(str(m) for m in r['models']) or '-'}; {len(r['datasets'])} eval corpora"
            what += f"; {r['regressions']} regression(s)" if r["regressions"] else ""
            what += f"; {r['left_out']} corpus role(s) left out" if r["left_out"] else ""
            what += " (LATEST)" if r["latest"] else ""
        else:
            what = f"detector {r.get('detector') or '?'}: {r['decision']}"
        rows.append((r["run_id"], r["kind"], r.get("created") or "-", what))
    return text_table(rows)


def in_service(version_path: str, card: dict) -> bool:
    """Whether the version at ``WORKDIR/models/NAME/vN`` is NAME's champion (``WORKDIR/state``)."""
    workdir = PurePath(version_path).parent.parent.parent
    record = champions.current_champion(str(workdir / "state"), str(card.get("name")))
    return record is not None and _ref(record.get("model_path")) == f"{card.get('name')}/v{card.get('version')}"


def model_card_lines(card: dict, resolved_why: str, champion: bool) -> list[str]:
    """A model card in words: what it is, what it was trained on, its parent and adaptations, its settings."""
    training = card.get("training_data") or {}
    dev = card.get("dev_metrics") or {}
    lines = [
        f"model      {card.get('name')}/v{card.get('version')} ({resolved_why})"
        + (" — the champion in service" if champion else ""),
        f"kind       {card.get('model_type')}; created {card.get('created_utc')}",
        f"settings   {detector_summary(card.get('model_type'), card.get('detector_params')) or 'defaults'}",
        f"encoder    {card.get('encoder')} layer {card.get('layer')} pooling {card.get('pooling')}"
        + (f" crop {card['crop_s']} s" if card.get("crop_s") else "")
        + (" (RANDOM weights)" if card.get("random_weight_encoder") else ""),
        f"trained on {', '.join(training.get('datasets') or []) or '-'} splits {', '.join(training.get('splits') or []) or '-'}"
        f" (dev {', '.join(training.get('dev_splits') or []) or 'none'}): "
        f"{training.get('n_bonafide', '?')} bona fide, {training.get('n_spoof', '?')} spoof; "
        f"rows sha256 {str(training.get('snapshot_sha256', '-'))[:12]}",
    ]
    if isinstance(dev.get("eer"), (int, float)) and math.isfinite(dev["eer"]):
        lines.append(
            f"dev EER    {100 * dev['eer']:.2f} % (on its dev splits, which also chose its early stopping "
            "or regularisation and fitted its calibration: not an estimate of new-data error)"
        )
    parent = _parent(card)
    if parent:
        lines.append(f"parent     {parent}")
    for i, step in enumerate(training.get("adaptations") or [], 1):
        how = step.get("nightly_strategy") or ("adapt (manual)" if "adapted_from" in training else "adapt")
        run = f", night {step['nightly_run_id']}" if step.get("nightly_run_id") else ""
        lines.append(
            f"adaptation {i}: {how} from {step.get('parent', {}).get('name')}/v{step.get('parent', {}).get('version')}"
            f" on {step.get('rows')} row(s) of {', '.join(step.get('datasets') or [])}"
            f" ({step.get('n_bonafide')} bona fide, {step.get('n_spoof')} spoof{run})"
        )
    if card.get("input_digest"):
        lines.append(
            f"inputs     sha256 {card['input_digest'][:12]} (data + config; an unchanged run reuses this version)"
        )
    if card.get("warning"):
        lines.append(f"warning    {card['warning']}")
    return lines


def compare_runs(before: dict, after: dict) -> dict:
    """Two chosen runs' metrics.json documents diffed as the report diffs a run with the previous
    one (tasks/report/compare.py), plus every EER cell side by side."""
    comparison = compare_with_previous(after, before)
    old, new = metric_cells(before), metric_cells(after)
    cells = [
        {
            "detector": key[0],
            "dataset": key[1],
            "eer_before": old[key]["value"] if key in old else None,
            "eer_after": new[key]["value"] if key in new else None,
        }
        for key in sorted(old.keys() | new.keys(), key=lambda k: (k[0], k[1] == AVERAGE_LABEL, k[1]))
    ]
    return {
        "before": before.get("run_id"),
        "after": after.get("run_id"),
        **comparison.as_dict(),
        "eer": cells,
    }


def render_comparison(diff: dict) -> str:
    def pct(value) -> str:
        return "-" if value is None else f"{100 * value:.2f}"

    rows: list[tuple] = [
        ("detector", "dataset", f"EER {diff['before']} (%)", f"EER {diff['after']} (%)", "change (pp)")
    ]
    for c in diff["eer"]:
        both = c["eer_before"] is not None and c["eer_after"] is not None
        change = f"{100 * (c['eer_after'] - c['eer_before']):+.2f}" if both else "-"
        rows.append((c["detector"], c["dataset"], pct(c["eer_before"]), pct(c["eer_after"]), change))
    lines = [text_table(rows), ""]
    for title, changes in (("regressions", diff["regressions"]), ("improvements", diff["improvements"])):
        lines.append(f"{len(changes)} {title} beyond the CI half-width ({diff['n_compared']} cells × metrics compared)")
        lines += [
            f"  {c['metric']} {c['detector']} {c['dataset']}: {c['old']:.4f} → {c['new']:.4f} (tolerance {c['tolerance']:.4f}, {c['tolerance_from']})"
            for c in changes
        ]
    return "\n".join(lines)
