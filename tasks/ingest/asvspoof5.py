"""ASVspoof 5 (Zenodo record 14498691): train, dev and eval of track 1.

Layout after unpacking ``ASVspoof5_protocols.tar.gz`` and the ``flac_{T,D,E}_a?.tar`` shards::

    ASVspoof5_protocols/ASVspoof5.train.tsv
    ASVspoof5_protocols/ASVspoof5.dev.track_1.tsv
    ASVspoof5_protocols/ASVspoof5.eval.track_1.tsv
    flac_T/T_0000000000.flac
    flac_D/D_0000000000.flac
    flac_E_eval/E_0000000000.flac        (or flac_E/, or one flac_E_a?/ folder per shard)

Protocol lines are whitespace-separated (the files say ``.tsv`` but hold spaces), ten fields::

    SPEAKER_ID FLAC_FILE_NAME SPEAKER_GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG ATTACK_LABEL KEY TMP
    T_4850     T_0000000000   F              -     -       0          bonafide   bonafide     bonafide -

``attack`` is ATTACK_LABEL (A01…A32; null for bona fide); the manifest keeps ``gender``,
``codec``, ``codec_q``, ``codec_seed``, ``attack_tag`` and ``tmp``. ROOT is the folder
holding the protocol folder (or the protocol files) and the flac folders.
"""

from __future__ import annotations

import os
from pathlib import Path

from addgp.contracts import BONAFIDE
from tasks.ingest.common import IngestResult, LayoutError, OptionError, finalize, listing, reject, require_dir
from tasks.ingest.scan import list_audio, none_if_dash, subdirs

PROTOCOLS = {
    "train": ("ASVspoof5.train.tsv", "ASVspoof5.train.track_1.tsv"),
    "dev": ("ASVspoof5.dev.track_1.tsv", "ASVspoof5.dev.tsv"),
    "eval": ("ASVspoof5.eval.track_1.tsv", "ASVspoof5.eval.tsv"),
}
AUDIO_PREFIX = {"train": "flac_T", "dev": "flac_D", "eval": "flac_E"}
FIELDS = (
    "speaker", "utt_id", "gender", "codec", "codec_q", "codec_seed", "attack_tag", "attack_label", "key", "tmp",
)
MIN_FIELDS = 9  # TMP may be absent


def _protocol_dirs(root: Path) -> list[Path]:
    return [d for d in (root / "ASVspoof5_protocols", root / "protocols", root) if d.is_dir()]


def find_protocol(root: Path, split: str) -> Path | None:
    for folder in _protocol_dirs(root):
        for name in PROTOCOLS[split]:
            if (folder / name).is_file():
                return folder / name
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
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
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
        default_dir = str(folders[0] if folders else root / f"{AUDIO_PREFIX[split]}{'_eval' if split == 'eval' else ''}")
        with open(protocol, "r", encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                parts = line.split()
                if not parts or (number == 1 and parts[0].upper() == "SPEAKER_ID"):
                    continue
                source = f"{protocol}:{number}"
                if len(parts) < MIN_FIELDS or len(parts) > len(FIELDS):
                    rejects.append(
                        reject(dataset, source, parts[1] if len(parts) > 1 else None,
                               f"unparseable protocol line: expected {len(FIELDS)} whitespace-separated fields "
                               f"({' '.join(f.upper() for f in FIELDS)}), got {len(parts)}")
                    )
                    continue
                record = dict(zip(FIELDS, parts))
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
                        "gender": none_if_dash(record["gender"]),
                        "codec": none_if_dash(record["codec"]),
                        "codec_q": none_if_dash(record["codec_q"]),
                        "codec_seed": none_if_dash(record["codec_seed"]),
                        "attack_tag": none_if_dash(record["attack_tag"]),
                        "tmp": none_if_dash(record.get("tmp")),
                        "_source": source,
                    }
                )
    if not found_any:
        expected = ", ".join(names[0] for s, names in PROTOCOLS.items() if s in splits)
        raise LayoutError(
            f"{root} is not an ASVspoof 5 root: expected the protocol file(s) {expected} in ROOT/ASVspoof5_protocols/ "
            f"(or ROOT) beside flac_T/, flac_D/, flac_E*/; found: {listing(root)}"
        )
    return finalize(dataset, candidates, rejects, workers=workers, progress=progress)
