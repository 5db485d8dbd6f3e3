"""Any CSV/TSV protocol with a path and a label column (the adapter of last resort).

ROOT is the protocol file, or a folder and option ``protocol``. Audio paths are relative to the
protocol's folder or absolute and must lie inside the audio root unless ``path_prefix`` maps
them, so a protocol cannot pull in files from elsewhere. Every line ends as a row or a reject;
when every line is rejected for its path, the ingest stops with a ``LayoutError`` before anything
is written. The options (columns, label and split maps, delimiter, headerless tables,
``path_prefix`` for benchmark protocols as shipped): docs/ingest.md, "``protocol_csv``".
"""

from __future__ import annotations

import os
from pathlib import Path
from types import EllipsisType

from addgp.contracts import BONAFIDE, MANIFEST_COLUMNS, SPOOF
from tasks.ingest.common import IngestResult, LayoutError, OptionError, finalize, listing, reject
from tasks.ingest.scan import (
    format_prefix_map,
    map_prefix,
    none_if_dash,
    normalise_label,
    parse_delimiter,
    parse_prefix_map,
    pick_column,
    read_table,
    resolve_path,
    strip_extension,
)

PATH_CANDIDATES = (
    "path",
    "file",
    "filename",
    "file_name",
    "audio",
    "audio_path",
    "wav",
    "flac",
    "filepath",
    "utt",
    "utt_id",
)
LABEL_CANDIDATES = ("label", "key", "class", "target", "is_fake", "fake", "spoof")
RESERVED = set(MANIFEST_COLUMNS) | {"_source"}


def _attack(value) -> str | None:
    """The attack id of a row; placeholders and bona fide spellings are none (``finalize`` rejects
    a bona fide row that still names one)."""
    text = none_if_dash(value)
    return None if text is None or normalise_label(text) == BONAFIDE else text


def _inside(path: str, root: str) -> bool:
    """``path`` lies in ``root`` (both normalised; string comparison, links are not followed)."""
    return os.path.commonpath([path, root]) == root


def find_protocol(root: Path, protocol: str | os.PathLike | None) -> Path:
    if root.is_file():
        return root
    if not root.exists():
        raise LayoutError(f"{root} does not exist; expected a protocol CSV/TSV file or a folder holding one")
    if protocol is None:
        tables = sorted(p for p in root.iterdir() if p.suffix.lower() in (".csv", ".tsv") and p.is_file())
        if len(tables) == 1:
            return tables[0]
        raise LayoutError(
            f"{root} is a folder: pass the protocol file as ROOT or name it with protocol=… "
            f"({'several tables: ' + ', '.join(p.name for p in tables) if tables else 'no .csv/.tsv in it'}); found: {listing(root)}"
        )
    path = Path(protocol)
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise LayoutError(f"protocol {path} does not exist; found in {path.parent}: {listing(path.parent)}")
    return path


def ingest(
    root: str | os.PathLike,
    dataset: str = "protocol_csv",
    *,
    protocol: str | os.PathLike | None = None,
    path_column: str | None = None,
    label_column: str | None = None,
    label_map: dict | None = None,
    split_column: str | None = None,
    split_map: dict | None = None,
    split: str = "eval",
    attack_column: str | None = None,
    speaker_column: str | None = None,
    id_column: str | None = None,
    delimiter: str | EllipsisType | None = ...,
    header: bool = True,
    columns: list[str] | None = None,
    extension: str | None = None,
    audio_root: str | os.PathLike | None = None,
    path_prefix: dict | None = None,
    keep_columns: str | list[str] = "all",
    workers: int = 16,
    progress: bool = True,
) -> IngestResult:
    table_path = find_protocol(Path(root), protocol)
    if not header and not columns:
        raise OptionError("protocol_csv: header=False needs columns=[…] naming the fields")
    table = read_table(
        table_path,
        delimiter=parse_delimiter(delimiter) if delimiter is not ... else ...,
        header=header,
        columns=columns,
        strict_fields=True,
    )
    if not table.columns:
        raise LayoutError(f"{table_path} is empty; expected a header line and one row per audio file")
    try:
        path_col = pick_column(table.columns, path_column, PATH_CANDIDATES, "path", table_path)
        label_col = pick_column(table.columns, label_column, LABEL_CANDIDATES, "label", table_path)
        split_col = pick_column(table.columns, split_column, (), "split", table_path) if split_column else None
        attack_col = pick_column(table.columns, attack_column, (), "attack", table_path) if attack_column else None
        speaker_col = pick_column(table.columns, speaker_column, (), "speaker", table_path) if speaker_column else None
        id_col = pick_column(table.columns, id_column, (), "id", table_path) if id_column else None
    except ValueError as exc:
        raise LayoutError(str(exc)) from None
    if path_col is None or label_col is None:
        what = " and ".join(w for w, c in (("a path", path_col), ("a label", label_col)) if c is None)
        raise LayoutError(
            f"{table_path}: cannot find {what} column among {table.columns}; "
            f"name them with path_column=… / label_column=… (delimiter read as {table.delimiter!r})"
        )
    # A relative audio_root is relative to the protocol's folder; the folder itself is taken
    # once (joining it to itself doubled a relative protocol path: c/c/audio/a0.wav).
    base = table_path.parent
    if audio_root is not None:
        base = Path(audio_root) if Path(audio_root).is_absolute() else table_path.parent / audio_root
    base_text = os.path.normpath(os.path.abspath(base))
    try:
        prefixes = parse_prefix_map(path_prefix, os.path.abspath(table_path.parent), "protocol_csv")
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    shown_map = format_prefix_map(prefixes)
    used = {c for c in (path_col, label_col, split_col, attack_col, speaker_col, id_col) if c}
    if isinstance(keep_columns, str) and keep_columns != "all":
        keep_columns = [keep_columns]
    if keep_columns == "all":
        kept = [c for c in table.columns if c not in used and not c.startswith("_")]
    else:
        kept = [c for c in (keep_columns or []) if c in table.columns and c not in used]
    split_lookup = {str(k): str(v) for k, v in (split_map or {}).items()}
    if extension and not extension.startswith("."):
        extension = "." + extension

    rejects = [reject(dataset, f"{table_path}:{n}", None, f"unparseable protocol line: {why}") for n, why in table.bad]
    candidates = []
    path_rejects = 0
    for number, record in table.rows:
        source = f"{table_path}:{number}"
        raw_path = (record.get(path_col) or "").strip()
        if not raw_path:
            rejects.append(reject(dataset, source, None, f"unparseable protocol line: empty {path_col!r}"))
            continue
        if extension and not os.path.splitext(raw_path)[1]:
            raw_path += extension
        mapped = map_prefix(raw_path, prefixes) if prefixes else None
        # A mapped path's id is the part below its prefix: the same on every machine, whatever the root.
        id_path = mapped[1] if mapped is not None else raw_path
        utt_id = none_if_dash(record.get(id_col)) if id_col else strip_extension(os.path.normpath(id_path))
        if not utt_id:
            rejects.append(reject(dataset, source, None, f"unparseable protocol line: empty {id_col!r}"))
            continue
        row_split = split
        if split_col:
            value = (record.get(split_col) or "").strip()
            row_split = split_lookup.get(value, value) or split
        label = normalise_label(record.get(label_col), label_map)
        path = os.path.normpath(mapped[0] if mapped is not None else resolve_path(raw_path, base_text))
        if mapped is None and prefixes and not os.path.exists(path):
            rejects.append(
                reject(
                    dataset,
                    source,
                    utt_id,
                    f"path {raw_path!r} matches no prefix of path_prefix {shown_map} and no file is there; "
                    f"add its folder to the map, e.g. path_prefix='{_example_map(raw_path, prefixes)}'",
                )
            )
            path_rejects += 1
            continue
        if mapped is None and not _inside(path, base_text):
            hint = "set audio_root=… to a folder that holds it"
            if os.path.isabs(raw_path) and not os.path.exists(path):
                hint += f", or map the protocol's folders with path_prefix='{_example_map(raw_path, prefixes)}'"
            rejects.append(
                reject(
                    dataset,
                    source,
                    utt_id,
                    f"path {raw_path!r} resolves to {path}, outside the audio root {base_text}; {hint}",
                )
            )
            path_rejects += 1
            continue
        row = {
            "utt_id": utt_id,
            "split": row_split,
            "label": label,
            "attack": _attack(record.get(attack_col)) if attack_col else None,
            "speaker": none_if_dash(record.get(speaker_col)) if speaker_col else None,
            "path": path,
            "_source": source,
        }
        if prefixes:
            row["protocol_path"] = raw_path
        for column in kept:
            name = column if column not in RESERVED else f"src_{column}"
            row[name] = record.get(column)
        candidates.append(row)
    _check_some_label_known(candidates, label_col, table_path)
    result = finalize(dataset, candidates, rejects, workers=workers, progress=progress)
    if table.rows and result.manifest.empty:
        _refuse_if_no_path_resolved(table_path, result, path_rejects, shown_map, prefixes)
    return result


def _example_map(raw_path: str, prefixes: list[tuple[str, str]]) -> str:
    """A path_prefix value that would map ``raw_path``'s folder: the map so far plus that folder."""
    folder = os.path.dirname(raw_path.strip()) or raw_path
    return format_prefix_map([*[(f, loc) for f, loc in prefixes if f != folder], (folder, "/where/it/is/here")])


def _refuse_if_no_path_resolved(
    table_path: Path, result: IngestResult, path_rejects: int, shown_map: str, prefixes: list
) -> None:
    """LayoutError when every line was rejected and every reason is where its file is: a protocol
    naming somebody else's disk (or an unmounted folder) must stop the ingest, not write an empty
    manifest that the embed step would only find out about later."""
    reasons = result.rejects["reason"].astype(str)
    missing = reasons.eq("audio file missing")
    if path_rejects + int(missing.sum()) < len(reasons) or reasons.empty:
        return
    first = result.rejects.iloc[0]
    fix = (
        f"path_prefix is {shown_map}: check that its local folders hold the files"
        if prefixes
        else "if the paths name another machine's folders, map them with "
        "--option path_prefix='{/their/root: /where/it/is/here}'"
    )
    raise LayoutError(
        f"{table_path}: every one of its {len(reasons)} rows was rejected for its audio path "
        f"(e.g. {first['source']}: {first['utt_id']!s}: {first['reason']}); {fix}"
    )


def _check_some_label_known(candidates: list[dict], label_col: str, table_path: Path) -> None:
    """Every row's label unknown (``is_fake`` = 0/1, ``class`` = real/fake …): the column needs a
    ``label_map``, which one message says, instead of one reject per row."""
    found = sorted({str(row["label"]) for row in candidates})
    if not candidates or any(row["label"] in (BONAFIDE, SPOOF) for row in candidates):
        return
    example = "{0: bonafide, 1: spoof}" if set(found) <= {"0", "1"} else f"{{{found[0]}: bonafide, …: spoof}}"
    raise LayoutError(
        f"{table_path}: no value of the label column {label_col!r} is bonafide/spoof or a known spelling of them "
        f"(found {found[:6]}{' …' if len(found) > 6 else ''}); map them with label_map, e.g. "
        f"--option 'label_map={example}' (check the corpus' documentation for which value is bona fide)"
    )
