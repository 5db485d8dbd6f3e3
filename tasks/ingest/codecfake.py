"""Codecfake (Xie et al. 2024; Zenodo records 11171708 …, github.com/xieyuankun/Codecfake).

Label files ``label/<part>.txt`` (``<file> <real|fake> <tag>``) beside the ``train``, ``dev`` and
test-subset folders (C1–C7 codecs, A1–A3 audio language models): train/dev → train/dev, every
test subset → eval; ``attack`` is the tag, else the subset. The codec fakes are real speech
through a neural codec, so they are marked ``resynthesised`` and labelled by option
``resynthesised`` (:mod:`tasks.ingest.label_policy`). Layout and what it was checked against:
docs/ingest.md, "``codecfake``".
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from addgp.contracts import SPOOF
from tasks.ingest.common import IngestResult, LayoutError, OptionError, finalize, listing, reject, require_dir
from tasks.ingest.label_policy import apply_resynthesis_policy, check_resynthesis_option
from tasks.ingest.scan import none_if_dash, normalise_label, read_table, strip_extension

SPLIT_OF = {"train": "train", "dev": "dev"}
GENERATED_SUBSET = re.compile(r"^A\d+$")  # audio-language-model subsets: generated, not resynthesised


def _audio_dir(root: Path, subset: str) -> Path:
    for candidate in (root / subset, root / "test" / subset):
        if candidate.is_dir():
            return candidate
    return root / ("test" if subset not in SPLIT_OF else "") / subset


def ingest(
    root: str | os.PathLike,
    dataset: str = "codecfake",
    *,
    subsets: list[str] | str | None = None,
    resynthesised: str | None = None,
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    check_resynthesis_option("codecfake", resynthesised)
    root = require_dir(root, "Codecfake")
    label_dir = root / "label"
    files = sorted(label_dir.glob("*.txt")) if label_dir.is_dir() else []
    if not files:
        raise LayoutError(
            f"{root} is not a Codecfake root: expected label/*.txt (train.txt, dev.txt, C1.txt …, lines "
            f"'<file> <real|fake> <tag>') beside train/, dev/ and test/<subset>/; found: {listing(root)}"
        )
    available = [f.stem for f in files]
    wanted = [subsets] if isinstance(subsets, str) else list(subsets or available)
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise OptionError(f"codecfake: subset(s) {unknown} have no label file in {label_dir}; found: {available}")
    candidates: list[dict] = []
    rejects: list[dict] = []
    for label_file in files:
        subset = label_file.stem
        if subset not in wanted:
            continue
        audio = _audio_dir(root, subset)
        table = read_table(label_file, delimiter=None, header=False, columns=["file", "label"], strict_fields=True)
        rejects += [
            reject(dataset, f"{label_file}:{n}", None, f"unparseable protocol line: {why}") for n, why in table.bad
        ]
        for number, record in table.rows:
            name = record["file"]
            label = normalise_label(record["label"])
            tag = none_if_dash(record.get("field_3"))
            candidates.append(
                {
                    "utt_id": f"{subset}/{strip_extension(name)}",
                    "split": SPLIT_OF.get(subset, "eval"),
                    "label": label,
                    "attack": (tag or subset) if label == SPOOF else None,
                    "speaker": None,
                    "path": str(audio / name),
                    "subset": subset,
                    "resynthesised": label == SPOOF and not GENERATED_SUBSET.match(subset),
                    "_source": f"{label_file}:{number}",
                }
            )
    candidates = apply_resynthesis_policy(dataset, candidates, rejects, resynthesised, SPOOF)
    return finalize(dataset, candidates, rejects, workers=workers, progress=progress)
