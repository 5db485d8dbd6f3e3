"""A nightly config on a generated corpus, and a batch of a new generator dropped into its inbox."""

import csv
import shutil
from pathlib import Path

import yaml

from tasks.ingest.demo_corpus import generate_demo_corpus


def nightly_config(folder: Path, strategy: str = "retrain") -> Path:
    inbox = folder / "inbox"
    inbox.mkdir(exist_ok=True)
    config = {
        "name": "night",
        "workdir": str(folder / "work"),
        "demo_corpus": {
            "root": str(folder / "corpus"),
            "seed": 5,
            "conditions": ["studio", "phone"],
            "utterances_per_split": {"train": 40, "dev": 12, "eval": 30},
        },
        "datasets": [
            {"name": "demo_studio", "adapter": "asvspoof2019_la", "root": str(folder / "corpus" / "demo_studio")},
            {"name": "demo_phone", "adapter": "asvspoof2019_la", "root": str(folder / "corpus" / "demo_phone")},
            {"name": "inbox", "adapter": "inbox", "root": str(inbox)},
        ],
        "encoder": {"id": "tiny-random", "layers": [-1], "batch_seconds": 16, "shard_seconds": 30},
        "cluster": {"n_workers": 1, "threads_per_worker": 1, "memory_limit": "3GiB"},
        "train": {"datasets": ["demo_studio"], "layer": -1, "detectors": [{"name": "lr", "kind": "logreg"}]},
        "evaluate": {"datasets": ["demo_studio", "demo_phone"], "n_boot": 50},
        "nightly": {"inbox": "inbox", "detector": "lr", "strategy": strategy, "holdout_fraction": 0.4, "n_boot": 50},
    }
    path = folder / "night.yaml"
    path.write_text(yaml.safe_dump(config))
    generate_demo_corpus(
        folder / "corpus",
        seed=5,
        conditions=("studio", "phone", "far"),
        utterances_per_split={"train": 40, "dev": 12, "eval": 30},
        progress=False,
    )
    return path


def drop_new_generator_batch(folder: Path) -> int:
    """Copy the far-field corpus' unseen-attack (A04) spoofs and some bona fide into the inbox, with a sidecar."""
    far = folder / "corpus" / "demo_far"
    protocol = far / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.eval.trl.txt"
    batch = folder / "inbox" / "2026-11-20-tipline"
    batch.mkdir(parents=True)
    rows = []
    for line in protocol.read_text().split("\n"):
        if not line.strip():
            continue
        _speaker, utt, _, attack, label = line.split()
        if attack == "A04" or (label == "bonafide" and len(rows) % 3 == 0):
            shutil.copy(far / "ASVspoof2019_LA_eval" / "flac" / f"{utt}.flac", batch / f"{utt}.flac")
            rows.append(
                {
                    "file": f"{utt}.flac",
                    "label": label,
                    "generator": "" if label == "bonafide" else "newgen",
                    "source": "tip line",
                    "collected": "2026-11-20",
                }
            )
    with open(batch / "sidecar.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)
