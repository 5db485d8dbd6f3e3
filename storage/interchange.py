"""Score and key files of the ASVspoof 5 evaluation package and WeDefense, and of the Speech DF Arena, read and written.

ASVspoof 5 and WeDefense share two tab-separated files with a header line (``filename
cm-score`` and ``filename cm-label``); the Speech DF Arena reads a protocol CSV
(``file_name,label``) and a space-separated score file without a header. In all of them the score
is higher = bona fide, addgp's LLR unchanged. This module only moves the files; the conversions
to and from score tables are pure functions in :mod:`tasks.evaluate.interchange`. The formats as
each tool reads them: docs/reports.md, "ASVspoof 5 / WeDefense score and key files" and "Speech
DF Arena score files".
"""

from __future__ import annotations

import io
import os

import pandas as pd

from storage.paths import atomic_write, filesystem

FILENAME = "filename"
CM_SCORE = "cm-score"
CM_LABEL = "cm-label"
SCORE_HEADER = (FILENAME, CM_SCORE)
KEY_HEADER = (FILENAME, CM_LABEL)


def _read_text(path: str | os.PathLike, what: str) -> str:
    fs, p = filesystem(path)
    if not fs.exists(p):
        raise FileNotFoundError(f"{what} {path} does not exist")
    with fs.open(p, "rb") as handle:
        data = handle.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {path} is not UTF-8 text ({exc})") from None


def _tsv(text: str) -> pd.DataFrame:
    # Every column as text: file names like 0001 or 1e5 must stay what they are.
    return pd.read_csv(io.StringIO(text), sep="\t", header=0, dtype=str, keep_default_na=False)


def read_score_file(path: str | os.PathLike) -> pd.DataFrame:
    """An ASVspoof 5 / WeDefense score file → columns ``filename`` (str), ``cm-score`` (float)."""
    text = _read_text(path, "score file")
    header = text.split("\n", 1)[0].rstrip("\r").split("\t")
    if tuple(header[:2]) != SCORE_HEADER:
        raise ValueError(
            f"score file {path}: first line {header!r} is not the header {chr(9).join(SCORE_HEADER)!r} "
            "(tab-separated) that the ASVspoof 5 evaluation package and WeDefense read; add it"
        )
    frame = _tsv(text)
    scores = pd.to_numeric(frame[CM_SCORE], errors="coerce")
    bad = frame.loc[scores.isna(), FILENAME]
    if len(bad):
        raise ValueError(
            f"score file {path}: {len(bad)} row(s) without a numeric {CM_SCORE}, first {bad.iloc[0]!r} "
            f"({frame.loc[bad.index[0], CM_SCORE]!r})"
        )
    return pd.DataFrame({FILENAME: frame[FILENAME], CM_SCORE: scores.astype(float)})


def read_key_file(path: str | os.PathLike) -> tuple[pd.DataFrame, bool]:
    """A key file → (table, has_header).

    With the ``filename<TAB>cm-label`` header: its columns by name, as text. Without it (an
    ASVspoof 5 protocol file): the whitespace-separated fields as columns 0, 1, … (text);
    lines with fewer fields get empty cells.
    """
    text = _read_text(path, "key file")
    header = text.split("\n", 1)[0].rstrip("\r").split("\t")
    if tuple(header[:2]) == KEY_HEADER:
        return _tsv(text), True
    rows = [line.split() for line in text.splitlines() if line.strip()]
    width = max((len(r) for r in rows), default=0)
    return pd.DataFrame([r + [""] * (width - len(r)) for r in rows], columns=range(width), dtype=str), False


def _write_tsv(frame: pd.DataFrame, path: str | os.PathLike) -> str:
    text = frame.to_csv(sep="\t", index=False, lineterminator="\n")
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return str(path)


def write_score_file(frame: pd.DataFrame, path: str | os.PathLike) -> str:
    """``frame`` (``filename``, ``cm-score``) as a score file; scores with every digit (``repr``),
    so reading it back gives the same floats."""
    out = pd.DataFrame({FILENAME: frame[FILENAME].astype(str), CM_SCORE: [repr(float(s)) for s in frame[CM_SCORE]]})
    return _write_tsv(out, path)


def write_key_file(frame: pd.DataFrame, path: str | os.PathLike) -> str:
    """``frame`` (``filename``, ``cm-label``, then any extra columns) as a key file; nulls are empty."""
    columns = [*KEY_HEADER, *[c for c in frame.columns if c not in KEY_HEADER]]
    return _write_tsv(frame[columns].astype(object).where(frame[columns].notna(), ""), path)


ARENA_FILE_NAME, ARENA_SCORE, ARENA_LABEL = "file_name", "cm_score", "label"


def write_arena_scores(frame: pd.DataFrame, path: str | os.PathLike) -> str:
    """``frame`` (``file_name``, ``cm_score``) as a Speech DF Arena score file: ``file_name cm_score``
    per line, space-separated, no header; scores with every digit (``repr``)."""
    lines = [f"{name} {float(score)!r}\n" for name, score in zip(frame[ARENA_FILE_NAME], frame[ARENA_SCORE])]
    with atomic_write(path, "w") as handle:
        handle.write("".join(lines))
    return str(path)


def write_arena_protocol(frame: pd.DataFrame, path: str | os.PathLike) -> str:
    """``frame`` (``file_name``, ``label``) as a Speech DF Arena protocol CSV (header ``file_name,label``)."""
    text = frame[[ARENA_FILE_NAME, ARENA_LABEL]].to_csv(index=False, lineterminator="\n")
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return str(path)
