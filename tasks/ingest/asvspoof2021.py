"""ASVspoof 2021 LA and DF evaluation sets with the released keys (``*-keys-full.tar.gz``).

ROOT holds the audio (``ASVspoof2021_LA_eval/``, the DF part folders, or the folder above them);
the keys' ``trial_metadata.txt`` may live elsewhere (option ``keys_root``). Every row is split
``eval``, the challenge subset (``eval``, ``progress``, ``hidden``) kept in the ``subset``
column; bona fide trials (``bonafide`` in LA, ``-`` in DF) get a null ``attack``. Layouts, key
fields and where the keys are searched for: docs/ingest.md, "``asvspoof2021_la``,
``asvspoof2021_df``".
"""

from __future__ import annotations

import os
from pathlib import Path

from addgp.contracts import BONAFIDE
from tasks.ingest.common import IngestResult, LayoutError, finalize, listing, reject, require_dir
from tasks.ingest.scan import list_audio, none_if_dash, read_lines, subdirs

LA_FIELDS = ("speaker", "utt_id", "codec", "transmission", "attack", "key", "trim", "subset")
DF_FIELDS = ("speaker", "utt_id", "codec", "source", "attack", "key", "trim", "subset", "vocoder")


def _key_candidates(keys_root: Path, track: str) -> list[Path]:
    return [
        keys_root / "keys" / track / "CM" / "trial_metadata.txt",
        keys_root / track / "CM" / "trial_metadata.txt",
        keys_root / "CM" / "trial_metadata.txt",
        keys_root / "trial_metadata.txt",
        keys_root / f"{track}-keys-full" / "keys" / track / "CM" / "trial_metadata.txt",
        keys_root / f"{track}-keys-stage-1" / "keys" / "CM" / "trial_metadata.txt",
    ]


def find_keys(keys_root: Path, track: str) -> Path:
    candidates = _key_candidates(keys_root, track)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c.relative_to(keys_root)) for c in candidates)
    raise LayoutError(
        f"no ASVspoof 2021 {track} keys under {keys_root}: expected one of {tried} "
        f"(from {track}-keys-full.tar.gz; pass keys_root=… if the keys are unpacked elsewhere); "
        f"found: {listing(keys_root)}"
    )


def find_flac_dirs(root: Path, track: str) -> list[Path]:
    """Every ``flac/`` folder of the track's eval audio under ROOT (DF ships in four parts)."""
    name = f"ASVspoof2021_{track}_eval"
    candidates = [root / "flac", root / name / "flac"]
    for part in subdirs(root):
        if part.name.startswith(f"{name}_part"):
            candidates += [part / name / "flac", part / "flac"]
    seen: list[Path] = []
    for candidate in candidates:
        if candidate.is_dir() and candidate not in seen:
            seen.append(candidate)
    return seen


def _ingest(
    root: str | os.PathLike,
    dataset: str,
    track: str,
    *,
    keys_root: str | os.PathLike | None,
    subsets: list[str] | tuple[str, ...] | None,
    split: str,
    workers: int,
    progress: bool,
) -> IngestResult:
    root = require_dir(root, f"ASVspoof 2021 {track}")
    keys_root = require_dir(keys_root, f"the ASVspoof 2021 {track} keys") if keys_root is not None else root
    flac_dirs = find_flac_dirs(root, track)
    if not flac_dirs:
        expected = (
            "ASVspoof2021_LA_eval/flac/"
            if track == "LA"
            else "ASVspoof2021_DF_eval_part00..03/ASVspoof2021_DF_eval/flac/ (or ASVspoof2021_DF_eval/flac/)"
        )
        raise LayoutError(
            f"{root} is not an ASVspoof 2021 {track} root: expected {expected} in ROOT; found: {listing(root)}"
        )
    keys = find_keys(keys_root, track)

    audio: dict[str, str] = {}
    for folder in flac_dirs:
        for name, path in list_audio(folder, (".flac",)).items():
            audio.setdefault(name[: -len(".flac")], path)

    default_dir = str(flac_dirs[0])
    wanted = {s.strip() for s in subsets} if subsets else None
    fields = LA_FIELDS if track == "LA" else DF_FIELDS
    candidates: list[dict] = []
    rejects: list[dict] = []
    lines, undecodable = read_lines(keys)
    rejects += [reject(dataset, f"{keys}:{n}", None, f"unparseable protocol line: {why}") for n, why in undecodable]
    for number, line in lines:
        parts = line.split()
        if not parts:
            continue
        source = f"{keys}:{number}"
        if len(parts) < len(fields):
            rejects.append(
                reject(
                    dataset,
                    source,
                    parts[1] if len(parts) > 1 else None,
                    f"unparseable protocol line: expected at least {len(fields)} fields ({' '.join(fields)}), got {len(parts)}",
                )
            )
            continue
        record = dict(zip(fields, parts))
        if wanted is not None and record["subset"] not in wanted:
            continue
        utt_id = record["utt_id"]
        label = record["key"]
        attack = none_if_dash(record["attack"])
        if label == BONAFIDE or attack == BONAFIDE:
            attack = None
        row = {
            "utt_id": utt_id,
            "split": split,
            "label": label,
            "attack": attack,
            "speaker": none_if_dash(record["speaker"]),
            "path": audio.get(utt_id) or os.path.join(default_dir, f"{utt_id}.flac"),
            "codec": none_if_dash(record["codec"]),
            "trim": record["trim"],
            "subset": record["subset"],
            "_source": source,
        }
        if track == "LA":
            row["transmission"] = none_if_dash(record["transmission"])
        else:
            row["source_corpus"] = none_if_dash(record["source"])
            vocoder = none_if_dash(record["vocoder"])
            row["vocoder"] = None if vocoder == BONAFIDE else vocoder
        extra = [p for p in parts[len(fields) :] if p != "-"]
        row["extra_meta"] = " ".join(parts[len(fields) :]) if extra else None
        candidates.append(row)
    return finalize(dataset, candidates, rejects, workers=workers, progress=progress)


def ingest_la(
    root: str | os.PathLike,
    dataset: str = "asvspoof2021_la",
    *,
    keys_root: str | os.PathLike | None = None,
    subsets: list[str] | tuple[str, ...] | None = None,
    split: str = "eval",
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    """ASVspoof 2021 LA eval: columns codec, transmission, trim, subset, extra_meta (+ the contract)."""
    return _ingest(
        root, dataset, "LA", keys_root=keys_root, subsets=subsets, split=split, workers=workers, progress=progress
    )


def ingest_df(
    root: str | os.PathLike,
    dataset: str = "asvspoof2021_df",
    *,
    keys_root: str | os.PathLike | None = None,
    subsets: list[str] | tuple[str, ...] | None = None,
    split: str = "eval",
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    """ASVspoof 2021 DF eval (all four part folders): columns codec, source_corpus, vocoder, trim, subset, extra_meta."""
    return _ingest(
        root, dataset, "DF", keys_root=keys_root, subsets=subsets, split=split, workers=workers, progress=progress
    )
