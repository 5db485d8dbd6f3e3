"""Score tables ↔ the score and key files of the ASVspoof 5 evaluation package, WeDefense and the Speech DF Arena.

:mod:`storage.interchange` reads and writes the files; this module converts, with pure
functions: :func:`export_groups` (one score/key pair per detector, dataset and condition, since a
``filename`` names one trial only within one system's scores of one corpus), :func:`arena_groups`
(one Speech DF Arena score file and protocol CSV per detector, dataset and condition, named by
the protocol's own paths) and :func:`table_from_files` (a score file and a key file, or an
ASVspoof 5 protocol used as the key, back to a score table). Scores are addgp's LLR unchanged.
The formats and what is checked: docs/reports.md, "ASVspoof 5 / WeDefense score and key files".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from addgp.contracts import BONAFIDE, LABELS
from storage.interchange import CM_LABEL, CM_SCORE, FILENAME
from tasks.evaluate.trials import check_unique_trials
from tasks.ingest.asvspoof5 import CHALLENGE, COLUMN_NAMES, LAYOUTS, PUBLIC

FORMATS = ("asvspoof5", "wedefense")  # the same two files; both names are accepted
ARENA_FORMAT = "df-arena"  # the Speech DF Arena toolkit's per-corpus score file and protocol CSV
EXPORT_FORMATS = (*FORMATS, ARENA_FORMAT)
GROUP_COLUMNS = ("detector", "dataset", "condition")
SCORES_FILE, KEYS_FILE = "cm-scores.tsv", "cm-keys.tsv"
ATTACK = "attack"


@dataclass(frozen=True)
class ExportGroup:
    """One score file and its key file.

    Attributes
    ----------
    group : the group's ``detector`` / ``dataset`` / ``condition`` values (those the table has).
    folder : where the pair goes below the output folder (``detector/dataset[/condition]``).
    scores : ``filename``, ``cm-score``.
    keys : ``filename``, ``cm-label``, ``attack`` (None for bona fide and unnamed attacks).
    """

    group: dict[str, str]
    folder: str
    scores: pd.DataFrame
    keys: pd.DataFrame


def group_columns(frame: pd.DataFrame) -> list[str]:
    """The columns that tell different score sets of one table apart: detector, dataset, condition
    (those the table has with at least one value)."""
    return [c for c in GROUP_COLUMNS if c in frame.columns and frame[c].notna().any()]


def _folder_part(column: str, value: object) -> str:
    text = str(value)
    if not text or text in (".", "..") or "/" in text or "\\" in text:
        raise ValueError(f"{column} {text!r} cannot name an export folder: no '/', '\\', '.' or '..'")
    return text


def export_groups(scores: pd.DataFrame) -> list[ExportGroup]:
    """A score table (``utt_id``, ``score``, ``label``, optional ``attack`` and group columns) →
    one :class:`ExportGroup` per (detector, dataset[, condition]), in first-seen order.

    ValueError when a column is missing, a group holds an utt_id twice (the files key rows by
    filename; ``tasks.evaluate.trials.check_unique_trials``), a score is not finite or a label is
    not bonafide/spoof.
    """
    missing = [c for c in ("utt_id", "score", "label") if c not in scores.columns]
    if missing:
        raise ValueError(f"score table lacks column(s) {missing}; found {list(scores.columns)}")
    if scores.empty:
        raise ValueError("score table has no rows: nothing to export")
    check_unique_trials([("the score table", scores)])  # the files key rows by filename (utt_id)
    columns = group_columns(scores)
    grouped = scores.groupby(columns, dropna=False, sort=False) if columns else [((), scores)]
    out = []
    for key, rows in grouped:
        values = dict(zip(columns, key if isinstance(key, tuple) else (key,)))
        where = ", ".join(f"{c} {v!r}" for c, v in values.items()) or "the score table"
        score = rows["score"].to_numpy(dtype=float)
        if not np.isfinite(score).all():
            raise ValueError(f"{where}: {int((~np.isfinite(score)).sum())} non-finite score(s); scores must be LLRs")
        unknown = sorted(set(rows["label"].astype(str)) - set(LABELS))
        if unknown:
            raise ValueError(f"{where}: label(s) {unknown}; a key file holds {' or '.join(LABELS)}")
        attack = rows[ATTACK] if ATTACK in rows.columns else pd.Series(None, index=rows.index, dtype=object)
        out.append(
            ExportGroup(
                group={c: str(v) for c, v in values.items()},
                folder="/".join(_folder_part(c, v) for c, v in values.items()),
                scores=pd.DataFrame({FILENAME: rows["utt_id"].astype(str).to_numpy(), CM_SCORE: score}),
                keys=pd.DataFrame(
                    {
                        FILENAME: rows["utt_id"].astype(str).to_numpy(),
                        CM_LABEL: rows["label"].astype(str).to_numpy(),
                        ATTACK: attack.astype(object).where(attack.notna(), None).to_numpy(),
                    }
                ),
            )
        )
    return out


def _protocol_keys(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    """An ASVspoof 5 protocol (public, ten fields) or metadata (challenge, six fields) file's
    columns → ``filename``, ``cm-label``, ``attack``; the names are the ingest adapter's."""
    if len(raw) and str(raw.iloc[0, 0]).upper() == "SPEAKER_ID":
        raw = raw.iloc[1:]
    width = raw.shape[1]
    if width == len(LAYOUTS[CHALLENGE][0]):
        names = LAYOUTS[CHALLENGE][0]
    elif LAYOUTS[PUBLIC][1] <= width <= len(LAYOUTS[PUBLIC][0]):
        names = LAYOUTS[PUBLIC][0][:width]
    else:
        raise ValueError(
            f"key file {source}: neither the header {FILENAME}<TAB>{CM_LABEL} nor an ASVspoof 5 protocol "
            f"({COLUMN_NAMES[PUBLIC]}) or metadata ({COLUMN_NAMES[CHALLENGE]}) layout: its lines have "
            f"{width} whitespace-separated fields"
        )
    table = raw.set_axis(list(names), axis=1)
    short = table["key"] == ""
    if short.any():
        first = table.loc[short, "utt_id"].iloc[0]
        raise ValueError(f"key file {source}: {int(short.sum())} line(s) with too few fields, first {first!r}")
    attack = table["attack_label"].where(~table["attack_label"].isin(["-", BONAFIDE]), None)
    return pd.DataFrame({FILENAME: table["utt_id"], CM_LABEL: table["key"], ATTACK: attack})


def key_table(raw: pd.DataFrame, has_header: bool, source: str) -> pd.DataFrame:
    """What :func:`storage.interchange.read_key_file` read → ``filename``, ``cm-label``, ``attack``."""
    if not has_header:
        return _protocol_keys(raw, source)
    attack = raw[ATTACK] if ATTACK in raw.columns else pd.Series("", index=raw.index, dtype=object)
    return pd.DataFrame(
        {FILENAME: raw[FILENAME], CM_LABEL: raw[CM_LABEL], ATTACK: attack.where(attack != "", None)}
    ).reset_index(drop=True)


def table_from_files(scores: pd.DataFrame, keys: pd.DataFrame, source: str) -> pd.DataFrame:
    """A score file (``filename``, ``cm-score``) joined with its key table (:func:`key_table`) →
    ``utt_id``, ``score``, ``label``, ``attack`` in the score file's order.

    As the ASVspoof 5 package, the two files must name the same trials; ValueError (naming
    ``source``, how many and the first few) otherwise, and on a filename given twice.
    """
    for what, frame in (("score", scores), ("key", keys)):
        duplicated = frame[FILENAME][frame[FILENAME].duplicated()]
        if len(duplicated):
            raise ValueError(f"{source}: the {what} file names {duplicated.iloc[0]!r} more than once")
    in_scores, in_keys = set(scores[FILENAME]), set(keys[FILENAME])
    if in_scores != in_keys:
        only_scores, only_keys = sorted(in_scores - in_keys), sorted(in_keys - in_scores)
        raise ValueError(
            f"{source}: score and key files name different trials: {len(only_scores)} only in the scores "
            f"{only_scores[:3]}, {len(only_keys)} only in the keys {only_keys[:3]}"
        )
    merged = scores.merge(keys, on=FILENAME, how="left", validate="one_to_one")
    return pd.DataFrame(
        {
            "utt_id": merged[FILENAME].astype(str),
            "score": merged[CM_SCORE].astype(float),
            "label": merged[CM_LABEL].astype(str),
            ATTACK: merged[ATTACK].astype(object).where(merged[ATTACK].notna(), None),
        }
    )


@dataclass(frozen=True)
class ArenaGroup:
    """One corpus' Speech DF Arena files for one detector.

    Attributes
    ----------
    group : the group's ``detector`` / ``dataset`` / ``condition`` values.
    detector_folder : the folder the scores go in (``detector[/condition]``), as the toolkit's
        ``scores/<model>/`` (the protocol CSVs go in ``protocol_files[/condition]``).
    protocol_name : the file stem, the corpus (its protocol is ``protocol_files/<name>.csv``,
        its scores ``<detector_folder>/<name>.txt``).
    scores : ``file_name``, ``cm_score``.
    protocol : ``file_name``, ``label``.
    """

    group: dict[str, str]
    detector_folder: str
    protocol_name: str
    scores: pd.DataFrame
    protocol: pd.DataFrame


def file_names_of(manifest: pd.DataFrame) -> dict[tuple[str, str], str]:
    """``(dataset, utt_id)`` → the audio path as the corpus' protocol names it: ``protocol_path``
    where the manifest has one (``protocol_csv`` with ``path_prefix``), else ``path``."""
    names = manifest["path"].astype(str)
    if "protocol_path" in manifest.columns:
        names = manifest["protocol_path"].where(manifest["protocol_path"].notna(), names).astype(str)
    return dict(zip(zip(manifest["dataset"].astype(str), manifest["utt_id"].astype(str)), names))


def arena_groups(scores: pd.DataFrame, file_names: dict[tuple[str, str], str] | None = None) -> list[ArenaGroup]:
    """A score table → one :class:`ArenaGroup` per (detector, dataset[, condition]).

    ``file_names`` (:func:`file_names_of` of the manifests) names each row's audio as the
    arena's protocol does; without it the ``utt_id`` stands in (the exported protocol CSV uses
    the same names, so the pair still evaluates). ValueError for what :func:`export_groups`
    refuses, a row without a file name when ``file_names`` is given, and a file name holding
    whitespace (the score file is space-separated).
    """
    out = []
    for group in export_groups(scores):
        dataset = group.group.get("dataset", "scores")
        ids = group.scores[FILENAME].astype(str)
        if file_names is not None:
            names = [file_names.get((dataset, utt)) for utt in ids]
            missing = [utt for utt, name in zip(ids, names) if name is None]
            if missing:
                raise ValueError(
                    f"dataset {dataset!r}: {len(missing)} utt_id(s) not in the manifests given, first {missing[0]!r}; "
                    "pass the manifest(s) this dataset was ingested into"
                )
        else:
            names = list(ids)
        spaced = [n for n in names if n is not None and any(ch.isspace() for ch in n)]
        if spaced:
            raise ValueError(
                f"dataset {dataset!r}: file name {spaced[0]!r} holds whitespace, which the arena's space-separated "
                "score file cannot carry"
            )
        folder = "/".join(_folder_part(c, v) for c, v in group.group.items() if c != "dataset")
        out.append(
            ArenaGroup(
                group=group.group,
                detector_folder=folder,
                protocol_name=_folder_part("dataset", dataset),
                scores=pd.DataFrame({"file_name": names, "cm_score": group.scores[CM_SCORE].to_numpy()}),
                protocol=pd.DataFrame({"file_name": names, "label": group.keys[CM_LABEL].to_numpy()}),
            )
        )
    return out
