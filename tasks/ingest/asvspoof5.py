"""ASVspoof 5 (Zenodo record 14498691): train, dev and eval of track 1, from either metadata release.

Both releases read: the public one (``ASVspoof5_protocols/*.tsv``, ten whitespace-separated
fields) and the challenge phase's (``ASVspoof5.{train,dev}.metadata.txt``, six fields, no
labelled eval). The release is detected per split from the files present (the public file wins)
and each file's column layout from its first data line, so a renamed file still reads. A bona
fide file under a codec condition is marked ``resynthesised`` and labelled by option
``resynthesised`` (:mod:`tasks.ingest.label_policy`). Layouts, columns and options:
docs/ingest.md, "``asvspoof5``".
"""

from __future__ import annotations

import os
from pathlib import Path

from addgp.contracts import BONAFIDE
from tasks.ingest.common import IngestResult, LayoutError, OptionError, finalize, listing, reject, require_dir
from tasks.ingest.label_policy import apply_resynthesis_policy, check_resynthesis_option
from tasks.ingest.scan import list_audio, none_if_dash, subdirs

PUBLIC, CHALLENGE = "public", "challenge"
PROTOCOLS = {
    "train": ("ASVspoof5.train.tsv", "ASVspoof5.train.track_1.tsv", "ASVspoof5.train.metadata.txt"),
    "dev": ("ASVspoof5.dev.track_1.tsv", "ASVspoof5.dev.tsv", "ASVspoof5.dev.metadata.txt"),
    "eval": ("ASVspoof5.eval.track_1.tsv", "ASVspoof5.eval.tsv"),
}
AUDIO_PREFIX = {"train": "flac_T", "dev": "flac_D", "eval": "flac_E"}
# (fields, fewest fields a line may have) per release; the public TMP column may be absent.
# Messages name the columns as the releases' READMEs do.
COLUMN_NAMES = {
    PUBLIC: "SPEAKER_ID FLAC_FILE_NAME SPEAKER_GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG ATTACK_LABEL KEY TMP",
    CHALLENGE: "SPEAKER_ID FLAC_FILE_NAME SPEAKER_GENDER CODEC ATTACK KEY",
}
LAYOUTS = {
    PUBLIC: (
        ("speaker", "utt_id", "gender", "codec", "codec_q", "codec_seed", "attack_tag", "attack_label", "key", "tmp"),
        9,
    ),
    CHALLENGE: (("speaker", "utt_id", "gender", "codec", "attack_label", "key"), 6),
}
OPTIONAL_COLUMNS = ("gender", "codec", "codec_q", "codec_seed", "attack_tag", "tmp")


def _protocol_dirs(root: Path) -> list[Path]:
    return [d for d in (root / "ASVspoof5_protocols", root / "protocols", root / "cm_protocols", root) if d.is_dir()]


def find_protocol(root: Path, split: str) -> Path | None:
    """The split's protocol file: a public name before a challenge-phase one, in the folders of
    ``_protocol_dirs`` in order."""
    for name in PROTOCOLS[split]:
        for folder in _protocol_dirs(root):
            if (folder / name).is_file():
                return folder / name
    return None


def detect_layout(lines: list[str]) -> str | None:
    """``public`` or ``challenge`` from the field count of the first data line (None: no data)."""
    for line in lines:
        parts = line.split()
        if not parts or parts[0].upper() == "SPEAKER_ID":
            continue
        return CHALLENGE if len(parts) == len(LAYOUTS[CHALLENGE][0]) else PUBLIC
    return None


def audio_dirs(root: Path, split: str) -> list[Path]:
    """``flac_T``, ``flac_D``, ``flac_E*`` folders of ROOT and the ``flac_?`` folders one level
    below them (tar shards unpacked into their own folders)."""
    prefix = AUDIO_PREFIX[split]
    found = []
    for folder in subdirs(root):
        if folder.name == prefix or folder.name.startswith(prefix + "_"):
            found.append(folder)
            found += [inner for inner in subdirs(folder) if inner.name.startswith(prefix)]
    return found


def ingest(
    root: str | os.PathLike,
    dataset: str = "asvspoof5",
    *,
    splits: tuple[str, ...] | list[str] = ("train", "dev", "eval"),
    resynthesised: str | None = None,
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    check_resynthesis_option("asvspoof5", resynthesised)
    root = require_dir(root, "ASVspoof 5")
    unknown = [s for s in splits if s not in PROTOCOLS]
    if unknown:
        raise OptionError(f"asvspoof5: unknown split(s) {unknown}; known: {list(PROTOCOLS)}")
    candidates: list[dict] = []
    rejects: list[dict] = []
    found_any = False
    for split in splits:
        protocol = find_protocol(root, split)
        if protocol is None:
            continue
        found_any = True
        folders = audio_dirs(root, split)
        audio: dict[str, str] = {}
        for folder in folders:
            for name, path in list_audio(folder, (".flac",)).items():
                audio.setdefault(name[: -len(".flac")], path)
        default_dir = str(
            folders[0] if folders else root / f"{AUDIO_PREFIX[split]}{'_eval' if split == 'eval' else ''}"
        )
        with open(protocol, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
        release = detect_layout(lines)
        if release is None:
            continue
        fields, min_fields = LAYOUTS[release]
        for number, line in enumerate(lines, start=1):
            parts = line.split()
            if not parts or (number == 1 and parts[0].upper() == "SPEAKER_ID"):
                continue
            source = f"{protocol}:{number}"
            if len(parts) < min_fields or len(parts) > len(fields):
                rejects.append(
                    reject(
                        dataset,
                        source,
                        parts[1] if len(parts) > 1 else None,
                        f"unparseable protocol line: expected {len(fields)} whitespace-separated fields "
                        f"({COLUMN_NAMES[release]}; the {release} release, detected from the "
                        f"file's first line), got {len(parts)}",
                    )
                )
                continue
            record = dict(zip(fields, parts))
            utt_id = record["utt_id"]
            if utt_id.endswith(".flac"):
                utt_id = utt_id[: -len(".flac")]
            label = record["key"]
            attack = none_if_dash(record["attack_label"])
            if label == BONAFIDE or attack == BONAFIDE:
                attack = None
            candidates.append(
                {
                    "utt_id": utt_id,
                    "split": split,
                    "label": label,
                    "attack": attack,
                    "speaker": none_if_dash(record["speaker"]),
                    "path": audio.get(utt_id) or os.path.join(default_dir, f"{utt_id}.flac"),
                    **{column: none_if_dash(record.get(column)) for column in OPTIONAL_COLUMNS},
                    "metadata_release": release,
                    "resynthesised": label == BONAFIDE and none_if_dash(record.get("codec")) is not None,
                    "resynthesis_system": none_if_dash(record.get("codec")) if label == BONAFIDE else None,
                    "_source": source,
                }
            )
    if not found_any:
        expected = ", ".join(names[0] for s, names in PROTOCOLS.items() if s in splits)
        challenge = ", ".join(
            n for s, names in PROTOCOLS.items() if s in splits for n in names if n.endswith(".metadata.txt")
        )
        raise LayoutError(
            f"{root} is not an ASVspoof 5 root: expected the protocol file(s) {expected} in ROOT/ASVspoof5_protocols/ "
            f"(or ROOT) beside flac_T/, flac_D/, flac_E*/ (public release), or {challenge} in ROOT beside flac_T/, "
            f"flac_D/ (challenge-phase release); found: {listing(root)}"
        )
    candidates = apply_resynthesis_policy(dataset, candidates, rejects, resynthesised, BONAFIDE)
    return finalize(dataset, candidates, rejects, workers=workers, progress=progress)
