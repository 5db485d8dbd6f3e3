"""The corpus registry (``configs/datasets.yaml``) and what ``addgp datasets`` shows about it.

The registry names each corpus with its adapter, root, split roles and options (``${VAR}`` /
``${VAR:-default}`` from the environment, relative paths from the directory the command runs
in). ``describe_registry`` counts each corpus from its manifest when one exists, else, when
``scan`` is true and the root is on disk, from the adapter under ``probe_mode("none")``: no audio
opened, nothing written. The file format and the keys it returns: docs/ingest.md, "The registry
and ``addgp datasets``".
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from addgp.config import read_yaml_mapping
from addgp.contracts import LABELS
from tasks.ingest.common import IngestResult, probe_mode

DATA_PATH_OPTIONS = ("keys_root", "bonafide_root")  # resolved like roots (below data_root)
WORK_PATH_OPTIONS = ("materialise_dir", "state_dir")  # outputs: resolved against the cwd
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class RegistryError(ValueError):
    """A registry file that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorpusEntry(_Strict):
    name: str
    adapter: str
    root: str
    splits: dict[str, list[str]] = Field(
        default_factory=dict, description="role (train/dev/eval) → manifest split names"
    )
    options: dict[str, Any] = Field(default_factory=dict)
    manifest: str | None = None
    description: str | None = None

    @field_validator("adapter")
    @classmethod
    def _known_adapter(cls, value: str) -> str:
        from tasks.ingest.registry import ADAPTERS

        if value not in ADAPTERS:
            raise ValueError(f"unknown adapter {value!r}; known: {', '.join(sorted(ADAPTERS))}")
        return value

    @field_validator("splits")
    @classmethod
    def _roles(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - {"train", "dev", "eval"})
        if unknown:
            raise ValueError(f"unknown split role(s) {unknown}; roles are train, dev, eval")
        return value


class Registry(_Strict):
    data_root: str = "."
    manifest_dir: str = "runs/manifests"
    corpora: list[CorpusEntry] = Field(default_factory=list)

    @field_validator("corpora")
    @classmethod
    def _unique(cls, corpora: list[CorpusEntry]) -> list[CorpusEntry]:
        names = [c.name for c in corpora]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"corpus name(s) {repeated} appear more than once")
        return corpora

    def entry(self, name: str) -> CorpusEntry:
        for corpus in self.corpora:
            if corpus.name == name:
                return corpus
        raise KeyError(f"no corpus {name!r} in the registry; known: {', '.join(c.name for c in self.corpora)}")

    # -- resolution ---------------------------------------------------------------
    def resolved_data_root(self) -> Path:
        return _absolute(expand(self.data_root), Path.cwd())

    def resolved_root(self, corpus: CorpusEntry) -> str:
        root = expand(corpus.root)
        if corpus.adapter == "hf" and root.startswith("hf://"):
            return root
        return str(_absolute(root, self.resolved_data_root()))

    def resolved_options(self, corpus: CorpusEntry) -> dict[str, Any]:
        options = dict(corpus.options)
        for key in DATA_PATH_OPTIONS:
            if isinstance(options.get(key), str):
                options[key] = str(_absolute(expand(options[key]), self.resolved_data_root()))
        for key in WORK_PATH_OPTIONS:
            if isinstance(options.get(key), str):
                options[key] = str(_absolute(expand(options[key]), Path.cwd()))
        return options

    def manifest_path(self, corpus: CorpusEntry) -> Path:
        if corpus.manifest:
            return _absolute(expand(corpus.manifest), Path.cwd())
        return _absolute(expand(self.manifest_dir), Path.cwd()) / f"{corpus.name}.parquet"


def expand(text: str) -> str:
    """``${VAR}`` / ``${VAR:-default}`` from the environment, then ``~``."""

    def substitute(match: re.Match) -> str:
        value = os.environ.get(match.group(1))
        if value is None or value == "":
            if match.group(2) is not None:
                return match.group(2)
            if value is None:
                raise RegistryError(
                    f"environment variable {match.group(1)} is not set (write ${{{match.group(1)}:-default}} for a default)"
                )
        return value

    return os.path.expanduser(_ENV.sub(substitute, str(text)))


def _absolute(text: str, base: Path) -> Path:
    p = Path(text)
    return p if p.is_absolute() else base / p


def default_registry_path() -> Path:
    """``configs/datasets.yaml`` as installed with the package."""
    from importlib import resources

    return Path(str(resources.files("configs") / "datasets.yaml"))


def load_registry(path: str | os.PathLike | None = None) -> Registry:
    """Read and validate a registry file; RegistryError names the file and the key."""
    path = Path(path) if path is not None else default_registry_path()
    raw = read_yaml_mapping(path, "registry", RegistryError)
    try:
        return Registry.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for item in exc.errors():
            key = ".".join(str(part) for part in item["loc"]) or "(top level)"
            message = {"extra_forbidden": "unknown key", "missing": "required key is missing"}.get(
                item["type"], item["msg"]
            )
            lines.append(f"{path}: {key}: {message}")
        raise RegistryError("\n".join(lines)) from None


# ------------------------------------------------------------------ counts


def manifest_counts(manifest, rejects=None) -> dict:
    by_split: dict[str, dict[str, int]] = {}
    for split, group in manifest.groupby("split", sort=True):
        by_split[str(split)] = {label: int((group["label"] == label).sum()) for label in LABELS}
    by_label = {label: int((manifest["label"] == label).sum()) for label in LABELS}
    by_attack = {str(k): int(v) for k, v in manifest["attack"].value_counts(dropna=True).sort_index().items()}
    out = {"rows": int(len(manifest)), "by_split": by_split, "by_label": by_label, "by_attack": by_attack}
    if rejects is not None:
        out["rejects"] = int(len(rejects))
        out["reject_reasons"] = {str(k): int(v) for k, v in rejects["reason"].value_counts().items()}
    return out


def _reason_key(reason: str) -> str:
    return reason.split(":")[0]


def describe_registry(registry_yaml_path: str | os.PathLike | None = None, *, scan: bool = True) -> list[dict]:
    """One dict per registered corpus, in registry order:

    ``name``, ``adapter``, ``root`` (resolved), ``on_disk`` (ROOT exists; false for Hub ids),
    ``splits`` (role → split names, from the registry), ``options`` (resolved),
    ``manifest`` (its path), ``manifest_exists``, ``counts_from`` (``"manifest"``, ``"scan"``
    or None), ``rows``, ``by_split`` ({split: {bonafide: n, spoof: n}}), ``by_label``,
    ``by_attack`` ({attack: n}), ``rejects`` (rows rejected: from the manifest's rejects table,
    ``_rejects/X.rejects.parquet`` beside it, or the protocol-level rejects of a scan), ``reject_reasons`` ({reason: n};
    for scans the reason up to its first colon), ``hours`` (manifest only) and ``note``
    (why counts are missing, or what they mean). Counts are None when unknown.

    A manifest that exists wins. Otherwise, with ``scan`` and ROOT on disk, the adapter runs
    under ``probe_mode("none")``: protocols are parsed and folders listed, no audio is
    opened and nothing is written. An adapter error (wrong ROOT, unreadable protocol) goes
    to ``note`` rather than raising, so one broken corpus does not hide the others.
    """
    from storage.manifests import find_rejects, read_manifest, read_rejects
    from tasks.ingest.registry import get_adapter

    registry = load_registry(registry_yaml_path)
    out: list[dict] = []
    for corpus in registry.corpora:
        root = registry.resolved_root(corpus)
        options = registry.resolved_options(corpus)
        manifest_path = registry.manifest_path(corpus)
        is_hub = corpus.adapter == "hf" and (root.startswith("hf://") or not Path(root).exists())
        info: dict[str, Any] = {
            "name": corpus.name,
            "adapter": corpus.adapter,
            "root": root,
            "on_disk": (not is_hub) and Path(root).exists(),
            "splits": dict(corpus.splits),
            "options": options,
            "manifest": str(manifest_path),
            "manifest_exists": manifest_path.is_file(),
            "counts_from": None,
            "rows": None,
            "by_split": None,
            "by_label": None,
            "by_attack": None,
            "rejects": None,
            "reject_reasons": None,
            "hours": None,
            "note": None,
        }
        if info["manifest_exists"]:
            try:
                manifest = read_manifest(manifest_path)
                rejects_file = find_rejects(manifest_path)
                rejects = read_rejects(rejects_file) if rejects_file else None
                info.update(manifest_counts(manifest, rejects))
                info["hours"] = round(float(manifest["duration_s"].sum()) / 3600.0, 3)
                info["counts_from"] = "manifest"
            except Exception as exc:  # a broken manifest is reported, not raised
                info["note"] = f"manifest unreadable: {exc}"
        elif is_hub:
            info["note"] = "Hugging Face Hub dataset: not scanned (run `addgp ingest` to materialise it)"
        elif not info["on_disk"]:
            info["note"] = f"root not found: {root}"
        elif not scan:
            info["note"] = "no manifest yet (scan disabled)"
        else:
            try:
                with probe_mode("none"):
                    result: IngestResult = get_adapter(corpus.adapter)(
                        root, dataset=corpus.name, progress=False, **options
                    )
                info.update(manifest_counts(result.manifest))
                reasons = result.rejects["reason"].map(_reason_key).value_counts()
                info["rejects"] = int(len(result.rejects))
                info["reject_reasons"] = {str(k): int(v) for k, v in reasons.items()}
                info["counts_from"] = "scan"
                info["note"] = "counts from the layout (protocols and folder listings); audio not opened"
            except Exception as exc:
                info["note"] = f"{type(exc).__name__}: {exc}"
        out.append(info)
    return out


def registry_data_checks(registry_yaml_path: str | os.PathLike | None = None):
    """The data checks (tasks/ingest/checks.py) over every manifest of the registry that exists:
    duplicate audio within each, audio shared between corpora, and train/eval overlap where
    one corpus' train or dev role splits hold audio of an eval role split (its own or
    another corpus'). Corpora without a manifest are not hashed, so not checked."""
    import pandas as pd

    from storage.manifests import read_manifest
    from tasks.ingest.checks import CHECK_COLUMNS, content_checks

    registry = load_registry(registry_yaml_path)
    frames, train, evaluate = [], [], []
    for corpus in registry.corpora:
        path = registry.manifest_path(corpus)
        if not path.is_file():
            continue
        try:
            manifest = read_manifest(path)
        except (OSError, ValueError):  # describe_registry reports an unreadable manifest in its note
            continue
        frames.append(manifest.assign(dataset=corpus.name))
        train += [(corpus.name, s) for role in ("train", "dev") for s in corpus.splits.get(role, [])]
        evaluate += [(corpus.name, s) for s in corpus.splits.get("eval", [])]
    if not frames:
        return pd.DataFrame(columns=list(CHECK_COLUMNS))
    return content_checks(pd.concat(frames, ignore_index=True), train=train, evaluate=evaluate)


def _text_table(lines: list[tuple]) -> str:
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def render_checks(checks) -> str:
    """A plain-text table of data checks (what ``addgp datasets`` prints below the corpora)."""
    if checks is None or not len(checks):
        return "Data checks: no manifest written yet (`addgp ingest`), nothing to check."
    lines = [("check", "scope", "count", "severity", "examples")]
    for r in checks.to_dict("records"):
        examples = r["examples"] if len(r["examples"]) <= 100 else r["examples"][:99] + "…"
        lines.append((r["check"], r["scope"], str(r["count"]), r["severity"], examples))
    return "Data checks (manifests on disk; same bytes = same sha256):\n" + _text_table(lines)


def render_registry(rows: list[dict], checks=None) -> str:
    """A plain-text table of ``describe_registry`` rows (what ``addgp datasets`` prints), and
    below it the table of ``registry_data_checks`` when given."""
    header = ("name", "adapter", "on disk", "counts", "rows", "bonafide", "spoof", "splits", "attacks", "note")
    lines = [header]
    for r in rows:
        splits = " ".join(f"{s}:{sum(v.values())}" for s, v in (r["by_split"] or {}).items())
        lines.append(
            (
                r["name"],
                r["adapter"],
                "yes" if r["on_disk"] else "no",
                r["counts_from"] or "-",
                "-" if r["rows"] is None else str(r["rows"]),
                "-" if r["by_label"] is None else str(r["by_label"]["bonafide"]),
                "-" if r["by_label"] is None else str(r["by_label"]["spoof"]),
                splits or "-",
                "-" if r["by_attack"] is None else str(len(r["by_attack"])),
                (r["note"] or "")[:80],
            )
        )
    table = _text_table(lines)
    return table if checks is None else f"{table}\n\n{render_checks(checks)}"
