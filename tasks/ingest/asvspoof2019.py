"""ASVspoof 2019 LA as shipped (LA.zip from Edinburgh DataShare).

Layout::

    LA/
      ASVspoof2019_LA_train/flac/LA_T_1138215.flac
      ASVspoof2019_LA_dev/flac/…
      ASVspoof2019_LA_eval/flac/…
      ASVspoof2019_LA_cm_protocols/
        ASVspoof2019.LA.cm.train.trn.txt    SPEAKER UTT - ATTACK|- bonafide|spoof
        ASVspoof2019.LA.cm.dev.trl.txt
        ASVspoof2019.LA.cm.eval.trl.txt

ROOT may be the ``LA`` folder or the folder that contains it.
"""

from __future__ import annotations

import os
from pathlib import Path

from tasks.ingest.common import IngestResult, LayoutError, OptionError, finalize, listing, reject, require_dir
from tasks.ingest.scan import read_lines

PROTOCOL_DIR = "ASVspoof2019_LA_cm_protocols"
PROTOCOLS = {
    "train": "ASVspoof2019.LA.cm.train.trn.txt",
    "dev": "ASVspoof2019.LA.cm.dev.trl.txt",
    "eval": "ASVspoof2019.LA.cm.eval.trl.txt",
}


def _find_la_root(root: Path) -> Path:
    for candidate in (root, root / "LA"):
        if (candidate / PROTOCOL_DIR).is_dir():
            return candidate
    raise LayoutError(
        f"{root} is not an ASVspoof 2019 LA root: expected a folder '{PROTOCOL_DIR}/' "
        f"(in ROOT or ROOT/LA) beside ASVspoof2019_LA_{{train,dev,eval}}/flac/; found: {listing(root)}"
    )


def parse_protocol_line(line: str) -> tuple[str, str, str | None, str]:
    """``SPEAKER UTT - ATTACK KEY`` → (speaker, utt_id, attack or None, label)."""
    fields = line.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 whitespace-separated fields, got {len(fields)}")
    speaker, utt_id, _, attack, key = fields
    return speaker, utt_id, (None if attack == "-" else attack), key


def ingest(
    root: str | os.PathLike,
    dataset: str = "asvspoof2019_la",
    *,
    splits: tuple[str, ...] = ("train", "dev", "eval"),
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    unknown = [s for s in splits if s not in PROTOCOLS]
    if unknown:
        raise OptionError(f"asvspoof2019_la: unknown split(s) {unknown}; known: {list(PROTOCOLS)}")
    la = _find_la_root(require_dir(root, "ASVspoof 2019 LA"))
    candidates: list[dict] = []
    rejects: list[dict] = []
    found_any = False
    for split in splits:
        protocol = la / PROTOCOL_DIR / PROTOCOLS[split]
        if not protocol.is_file():
            continue
        found_any = True
        audio_dir = la / f"ASVspoof2019_LA_{split}" / "flac"
        lines, undecodable = read_lines(protocol)
        rejects += [
            reject(dataset, f"{protocol}:{n}", None, f"unparseable protocol line: {why}") for n, why in undecodable
        ]
        for number, line in lines:
            if not line.strip():
                continue
            source = f"{protocol}:{number}"
            try:
                speaker, utt_id, attack, label = parse_protocol_line(line)
            except ValueError as exc:
                rejects.append(reject(dataset, source, None, f"unparseable protocol line: {exc}"))
                continue
            candidates.append(
                {
                    "utt_id": utt_id,
                    "split": split,
                    "label": label,
                    "attack": attack,
                    "speaker": speaker,
                    "path": str(audio_dir / f"{utt_id}.flac"),
                    "_source": source,
                }
            )
    if not found_any:
        expected = ", ".join(PROTOCOLS[s] for s in splits)
        raise LayoutError(
            f"{la / PROTOCOL_DIR} holds none of the protocol files {expected}; found: {listing(la / PROTOCOL_DIR)}"
        )
    return finalize(dataset, candidates, rejects, workers=workers, progress=progress)
