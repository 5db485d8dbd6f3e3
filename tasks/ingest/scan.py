"""Helpers the layout adapters share: walking audio folders, reading protocol tables, labels.

Nothing here opens audio: adapters turn folders and tables into candidate rows, and
``common.finalize`` probes the audio. Tables are read line by line so that one bad line
becomes one reject (with its line number) while every good line is kept: every physical
line ends as a row, a reject, or a blank/comment line — a quoted field never spans lines,
so an unterminated quote costs its own line only, and bytes that are not UTF-8 cost the
line they are on (the reason names the byte). A UTF-8 byte-order mark is dropped.
"""

from __future__ import annotations

import codecs
import csv
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import EllipsisType
from typing import Literal

from addgp.contracts import BONAFIDE, SPOOF
from tasks.ingest.common import LayoutError

# Extensions read as audio when an adapter walks a folder (lower case, with the dot).
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif", ".au", ".m4a")

# Spellings corpora use for the two labels (compared case-insensitively, after strip()).
BONAFIDE_SPELLINGS = frozenset(
    {"bonafide", "bona-fide", "bona fide", "bona_fide", "genuine", "real", "human", "natural", "authentic"}
)
SPOOF_SPELLINGS = frozenset(
    {"spoof", "spoofed", "fake", "synthetic", "deepfake", "generated", "ai", "ai-generated", "tts", "vc"}
)


def normalise_label(value, label_map: Mapping | None = None) -> str | None:
    """``bonafide``/``spoof`` for a corpus' own spelling; anything unknown is returned as is.

    ``label_map`` (from an adapter option) is tried first, with the value as written and
    lower-cased, so ``{"1": "spoof", "0": "bonafide"}`` works for numeric labels. Unknown
    values come back unchanged so that ``finalize`` rejects them as ``unknown label 'x'``.
    """
    if value is None:
        return None
    text = str(value).strip()
    if label_map:
        lookup = {str(k).strip().lower(): str(v).strip() for k, v in label_map.items()}
        if text.lower() in lookup:
            mapped = lookup[text.lower()]
            return mapped.lower() if mapped.lower() in (BONAFIDE, SPOOF) else normalise_label(mapped)
    lowered = text.lower()
    if lowered in BONAFIDE_SPELLINGS:
        return BONAFIDE
    if lowered in SPOOF_SPELLINGS:
        return SPOOF
    return text


def none_if_dash(value) -> str | None:
    """Protocol placeholders (``-``, empty) → None; anything else as a stripped string."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", "-", "--", "nan", "None", "NA", "N/A") else text


def strip_extension(name: str) -> str:
    stem, ext = os.path.splitext(name)
    return stem if ext.lower() in AUDIO_EXTENSIONS else name


def walk_audio(root: str | os.PathLike[str], extensions: Iterable[str] = AUDIO_EXTENSIONS) -> list[Path]:
    """Every audio file under ROOT (following links), sorted; hidden files and folders skipped."""
    extensions = tuple(e.lower() for e in extensions)
    found: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions:
                found.append(Path(folder) / name)
    return found


def list_audio(folder: str | os.PathLike[str], extensions: Iterable[str] = AUDIO_EXTENSIONS) -> dict[str, str]:
    """Audio files directly in FOLDER as {file name: path string} (one scandir, no recursion;
    strings, not Paths: corpora list hundreds of thousands of files here)."""
    extensions = tuple(e.lower() for e in extensions)
    out: dict[str, str] = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not entry.name.startswith(".") and os.path.splitext(entry.name)[1].lower() in extensions:
                    out[entry.name] = entry.path
    except (FileNotFoundError, NotADirectoryError):
        pass
    return dict(sorted(out.items()))


def subdirs(folder: str | os.PathLike[str]) -> list[Path]:
    """Sub-folders of FOLDER, sorted, hidden ones skipped; [] when FOLDER is not a folder."""
    try:
        with os.scandir(folder) as entries:
            return sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


def rel_posix(path: str | os.PathLike, root: str | os.PathLike) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def resolve_path(value: str, base: str | os.PathLike) -> str:
    """A path from a protocol: absolute as is, otherwise joined to ``base`` (string ops only)."""
    value = value.strip()
    if value.startswith("~"):
        value = os.path.expanduser(value)
    return value if os.path.isabs(value) else os.path.join(os.fspath(base), value)


# ---------------------------------------------------------------------------- tables


@dataclass
class Table:
    """A delimited text file read line by line: good rows and unparseable lines."""

    path: Path
    columns: list[str]
    rows: list[tuple[int, dict]] = field(default_factory=list)  # (line number, {column: value})
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    delimiter: str | None = None  # None: runs of whitespace


_DELIMITER_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe", None: "whitespace"}


def sniff_delimiter(sample_line: str, suffix: str = "") -> str | None:
    """The delimiter of a protocol: tab for .tsv with tabs, else the most frequent of
    ``| \\t , ;`` on the first line, else whitespace (None)."""
    if suffix.lower() == ".tsv" and "\t" in sample_line:
        return "\t"
    counts = {d: sample_line.count(d) for d in ("|", "\t", ",", ";")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else None


def parse_delimiter(value: str | None) -> str | None:
    """Option value → delimiter: ``","``, ``"\\t"``/``"tab"``, ``"|"``, ``"whitespace"``/``" "`` → None."""
    if value is None:
        return None
    named = {
        "tab": "\t",
        "\\t": "\t",
        "comma": ",",
        "semicolon": ";",
        "pipe": "|",
        "whitespace": None,
        "space": None,
        " ": None,
    }
    return named.get(value, value)


def read_lines(path: str | os.PathLike) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """([(line number, text)], [(line number, reason)]) of a UTF-8 text file.

    Lines end at ``\n``, ``\r\n`` or ``\r``; a leading byte-order mark is dropped; a line
    that is not valid UTF-8 goes to the second list with the offending byte and column.
    """
    data = Path(path).read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    good: list[tuple[int, str]] = []
    bad: list[tuple[int, str]] = []
    for number, raw in enumerate(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"), start=1):
        try:
            good.append((number, raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            bad.append(
                (
                    number,
                    f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); save the file as UTF-8",
                )
            )
    if good and good[-1] == (number, ""):
        good.pop()  # the empty string after the final newline is not a line
    return good, bad


def read_table(
    path: str | os.PathLike,
    *,
    delimiter: str | EllipsisType | None = ...,
    header: bool = True,
    columns: list[str] | None = None,
    min_fields: int | None = None,
    comment: str | None = "#",
    skip_header_if: str | None = None,
    strict_fields: bool = True,
    join_overflow: bool = False,
) -> Table:
    """Read a CSV/TSV/pipe/whitespace table; one entry in ``bad`` per line that cannot be parsed.

    ``delimiter``: ``...`` (default) sniffs it from the first line; ``None`` splits on runs
    of whitespace. ``header=True`` takes column names from the first line, else ``columns``
    names the fields (extra fields are kept as ``field_N``). ``min_fields``: lines with fewer
    fields are bad (default: the number of columns when ``strict_fields``). ``skip_header_if``:
    with ``header=False``, a first line starting with this text is skipped (a stray header).
    Comma and semicolon files honour double quotes; pipe, tab and whitespace files do not
    (their free-text fields, such as transcripts, may contain stray quotes).
    ``join_overflow``: a line with more fields than the header has its surplus joined back
    (with the delimiter) into the last column — for a free-text last column that may contain
    the delimiter — instead of being bad.
    """
    path = Path(path)
    lines, undecodable = read_lines(path)
    first_data = next(
        ((n, ln) for n, ln in lines if ln.strip() and not (comment and ln.lstrip().startswith(comment))), None
    )
    if header and undecodable and (first_data is None or undecodable[0][0] < first_data[0]):
        number, why = undecodable[0]
        raise LayoutError(f"{path}: header line {number} is {why}")
    first = first_data[1] if first_data else ""
    if delimiter is ...:
        delimiter = sniff_delimiter(first, path.suffix)
    table = Table(path=path, columns=[], delimiter=delimiter)
    table.bad.extend(undecodable)

    def split_lines() -> Iterator[tuple[int, list[str]]]:
        if delimiter is None:
            for number, line in lines:
                yield number, line.split()
            return
        quoting: Literal[0, 3] = csv.QUOTE_MINIMAL if delimiter in (",", ";") else csv.QUOTE_NONE
        for number, line in lines:
            # One physical line at a time, strictly: an unterminated quote must not swallow
            # the lines after it (a reader over the whole text would make them one field).
            try:
                fields = next(
                    csv.reader([line], delimiter=delimiter, quoting=quoting, skipinitialspace=False, strict=True), []
                )
            except csv.Error as exc:
                table.bad.append((number, f"unparseable line: {exc} (a quoted field must close on its own line)"))
                continue
            yield number, fields

    header_done = not header
    expected: int | None = None
    for number, raw_fields in split_lines():
        raw = delimiter.join(raw_fields) if delimiter else " ".join(raw_fields)
        if not raw_fields or not raw.strip():
            continue
        if comment and raw_fields[0].lstrip().startswith(comment):
            continue
        fields = [f.strip() for f in raw_fields]
        if not header_done:
            table.columns = [c.strip().lstrip("\ufeff") for c in fields]
            header_done = True
            expected = len(table.columns)
            continue
        if not table.columns:
            if skip_header_if and fields[0].startswith(skip_header_if):
                continue
            table.columns = list(columns or [])
            expected = len(table.columns) if columns else None
        need = min_fields if min_fields is not None else (expected if strict_fields else None)
        if need is not None and len(fields) < need:
            table.bad.append(
                (
                    number,
                    f"expected {need} {_DELIMITER_NAMES.get(delimiter, repr(delimiter))}-separated fields, got {len(fields)}",
                )
            )
            continue
        if join_overflow and expected and len(fields) > expected:
            fields = fields[: expected - 1] + [(delimiter or " ").join(fields[expected - 1 :])]
        if header and strict_fields and expected is not None and len(fields) > expected:
            table.bad.append((number, f"expected {expected} fields (as in the header), got {len(fields)}"))
            continue
        record = {}
        for index, value in enumerate(fields):
            name = table.columns[index] if index < len(table.columns) else f"field_{index + 1}"
            record[name] = value
        table.rows.append((number, record))
    if header and not table.columns:
        table.columns = []
    table.bad.sort()
    return table


def pick_column(columns: Iterable[str], wanted: str | None, candidates: Iterable[str], what: str, source) -> str | None:
    """The column to use: ``wanted`` (must exist) or the first of ``candidates`` present
    (case-insensitive). Raises ValueError naming the file and the columns it has."""
    columns = list(columns)
    by_lower = {c.lower(): c for c in columns}
    if wanted is not None:
        if wanted in columns:
            return wanted
        if wanted.lower() in by_lower:
            return by_lower[wanted.lower()]
        raise ValueError(f"{source}: no {what} column {wanted!r}; columns are {columns}")
    for name in candidates:
        if name.lower() in by_lower:
            return by_lower[name.lower()]
    return None


# -------------------------------------------------------------------- path semantics

LANGUAGE_NAMES = {
    "english": "en",
    "german": "de",
    "spanish": "es",
    "french": "fr",
    "italian": "it",
    "polish": "pl",
    "russian": "ru",
    "ukrainian": "uk",
    "portuguese": "pt",
    "dutch": "nl",
    "chinese": "zh",
    "japanese": "ja",
}
_LANG_CODE = re.compile(r"^[a-z]{2,3}([_-][a-z]{2})?$", re.IGNORECASE)


def language_of(part: str, known_codes: Iterable[str] | None = None) -> str | None:
    """A language from a folder name: ``english`` → ``en``, ``en_US`` → ``en``, ``de`` → ``de``."""
    lowered = part.lower()
    if lowered in LANGUAGE_NAMES:
        return LANGUAGE_NAMES[lowered]
    if known_codes is not None and lowered in {c.lower() for c in known_codes}:
        return lowered.split("_")[0].split("-")[0]
    if known_codes is None and _LANG_CODE.match(part) and ("_" in part or "-" in part or len(part) == 2):
        return lowered.split("_")[0].split("-")[0]
    return None


def safe_name(text: str, limit: int = 120) -> str:
    """A file-system-safe name for ids used as file names (materialised HF audio)."""
    cleaned = re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("._") or "item"
    return cleaned[:limit]


# ------------------------------------------------------------------- foreign path prefixes


def parse_prefix_map(value: Mapping | None, base: str | os.PathLike, where: str) -> list[tuple[str, str]]:
    """Option ``path_prefix`` (``{foreign prefix: local prefix, …}``) → ``[(foreign, local)]``,
    longest foreign prefix first, so ``/data/a/b`` wins over ``/data/a`` for ``/data/a/b/c.wav``.

    Protocols shipped by benchmarks name their authors' disks (``/data/data/AntiSpoofing-Datasets/…``);
    the map says where those folders are here. A relative local prefix is taken relative to
    ``base`` (the protocol's folder). OptionError-like ValueError for an empty or non-text entry.
    """
    if not value:
        return []
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: path_prefix must be a mapping such as {{/their/root: /my/root}}, got {value!r}")
    pairs = []
    for foreign, local in value.items():
        if not isinstance(foreign, str) or not isinstance(local, str) or not foreign.strip() or not local.strip():
            raise ValueError(
                f"{where}: path_prefix entries map a path prefix to a folder, both text, got {foreign!r}: {local!r}"
            )
        foreign_norm = foreign.strip().rstrip("/\\") or "/"
        local_path = os.path.expanduser(local.strip())
        if not os.path.isabs(local_path):
            local_path = os.path.join(os.fspath(base), local_path)
        pairs.append((foreign_norm, os.path.normpath(os.path.abspath(local_path))))
    return sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)


def map_prefix(path: str, prefixes: list[tuple[str, str]]) -> tuple[str, str] | None:
    """``(local path, the part below the prefix)`` of ``path`` with its foreign prefix replaced by
    the local one (whole path components only: ``/data/ab`` does not match ``/data/a``); None
    when no prefix of the map matches."""
    text = path.strip()
    for foreign, local in prefixes:
        if text == foreign:
            return local, os.path.basename(text)
        head = foreign if foreign.endswith(("/", "\\")) else foreign + "/"
        if text.startswith(head):
            rest = text[len(head) :]
            return os.path.join(local, rest), rest
    return None


def format_prefix_map(prefixes: list[tuple[str, str]]) -> str:
    """The map as the option is written: ``{/their/root: /my/root, …}`` (``{}`` when none)."""
    return "{" + ", ".join(f"{foreign}: {local}" for foreign, local in prefixes) + "}"


# ------------------------------------------------------------ one folder per generator


def system_folder_rows(root: Path, bonafide_folders: Iterable[str], split: str) -> tuple[list[dict], list[str]]:
    """Candidate rows of a corpus laid out as one folder per generator beside bona fide folder(s)
    (SONAR, LibriSeVoc): ``(rows, generator folder names)``.

    Audio anywhere below a folder belongs to it (walked recursively). A folder whose name is in
    ``bonafide_folders`` (compared case-insensitively) is bona fide with no attack; every other
    folder is spoof with ``attack`` = its name. ``utt_id`` is the path below ROOT without
    extension; ``speaker`` is null (the adapters fill it where the names carry one).
    """
    bona = {name.lower() for name in bonafide_folders}
    rows: list[dict] = []
    systems: list[str] = []
    for folder in subdirs(root):
        is_bona = folder.name.lower() in bona
        if not is_bona:
            systems.append(folder.name)
        for path in walk_audio(folder):
            rows.append(
                {
                    "utt_id": strip_extension(rel_posix(path, root)),
                    "split": split,
                    "label": BONAFIDE if is_bona else SPOOF,
                    "attack": None if is_bona else folder.name,
                    "speaker": None,
                    "path": str(path),
                }
            )
    return rows, systems
