"""What an embed run did (``EmbedSummary``) and the error its reject check raises.

Apart from ``tasks/embed/run.py`` so that the stages reading the summary (the run report's
notes) need no encoder code: nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from storage import embeddings as store
from storage.paths import join


class TooManyRejectsError(RuntimeError):
    """A dataset of the run has more rows not embedded than ``embed.max_reject_fraction`` allows.

    Raised after the run wrote everything it could; the message names each dataset, its count,
    the commonest reason and the fix.
    """


@dataclass(frozen=True)
class EmbedSummary:
    """What an embed run did: rows embedded and rejected (per dataset too), its shards and timings."""

    encoder: str
    random_weights: bool
    layers: list[int]
    shards_planned: int
    utterances_embedded: int
    rejects: int
    audio_s: float
    model_s: float
    decode_s: float
    wall_s: float
    oom_splits: int
    warnings: list[str] = field(default_factory=list)
    shards_fenced: int = 0  # shards a newer run took over before they were committed
    files_crashed: int = 0  # files that killed their worker alone and were rejected
    store: str = ""
    # Per dataset of the manifest: rows, rows still not embedded (rejected), of which transient
    # (retried by the next run) and permanent, and the commonest reason (see ``tasks.embed.run.reason_head``).
    rejects_by_dataset: dict[str, dict] = field(default_factory=dict)

    @property
    def audio_seconds_per_second(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "audio_seconds_per_second": round(self.audio_seconds_per_second, 2)}

    def check_rejects(self, max_fraction: float) -> None:
        """Raise ``TooManyRejectsError`` when a dataset's share of rejected rows exceeds ``max_fraction``."""
        over = {
            name: counts
            for name, counts in self.rejects_by_dataset.items()
            if counts["rows"] and counts["rejected"] / counts["rows"] > max_fraction
        }
        if not over:
            return
        lines = []
        for name, counts in over.items():
            kind = counts["commonest_kind"]
            retry = (
                "transient: the file could not be read where it was embedded; make every manifest path readable on "
                "every Dask worker and re-run (transient rejects are tried again)"
                if kind == store.TRANSIENT
                else "permanent: the file's bytes cannot be embedded; inspect and replace the files, re-ingest them, "
                "or raise embed.max_reject_fraction (--max-reject-fraction) if losing them is acceptable"
            )
            lines.append(
                f"dataset {name}: {counts['rejected']} of {counts['rows']} rows not embedded "
                f"({counts['rejected'] / counts['rows']:.1%} > embed.max_reject_fraction {max_fraction:g}; "
                f"{counts['transient']} transient, {counts['permanent']} permanent); commonest reason "
                f"{counts['commonest_reason']!r} ({counts['commonest_count']} rows, e.g. {counts['example']!r}) — {retry}"
            )
        rejects_dir = join(self.store, store.REJECTS_DIR)
        raise TooManyRejectsError(
            "; ".join(lines) + f". Everything embeddable was written to {self.store}; the rejects are in {rejects_dir}"
        )
