"""The label of resynthesised audio: one explicit, per-dataset setting, recorded in the manifest.

Codec-resynthesised or vocoded-back bona fide speech is human speech passed through a neural
analysis/synthesis chain: some benchmarks count it as spoof, others as bona fide. Adapters of
corpora with such audio mark those rows ``resynthesised`` and take an option ``resynthesised``
(``spoof``, ``bonafide``, ``excluded``; unset: the corpus' own label), and every row records the
policy in ``label_policy``. The policies and why the corpus' label is the default:
docs/ingest.md, "Resynthesised audio: a label policy".
"""

from __future__ import annotations

from addgp.contracts import BONAFIDE, SPOOF
from tasks.ingest.common import OptionError, reject

RESYNTHESIS_CHOICES = (SPOOF, BONAFIDE, "excluded")


def check_resynthesis_option(adapter: str, value: str | None) -> None:
    if value is not None and value not in RESYNTHESIS_CHOICES:
        raise OptionError(
            f"{adapter}: resynthesised={value!r}; allowed values: {', '.join(RESYNTHESIS_CHOICES)} "
            "(or leave it unset for the corpus' own label)"
        )


def apply_resynthesis_policy(
    dataset: str, candidates: list[dict], rejects: list[dict], policy: str | None, corpus_label: str
) -> list[dict]:
    """``candidates`` with the policy applied to the rows marked ``resynthesised`` (others get the
    policy columns only); excluded rows are appended to ``rejects``. ``corpus_label``: the label the
    corpus itself gives its resynthesised rows (used when ``policy`` is None)."""
    label = policy or corpus_label
    recorded = f"resynthesised={label} ({'option' if policy else 'corpus label'})"
    kept = []
    for row in candidates:
        row.setdefault("resynthesis_system", None)
        row["resynthesised"] = bool(row.get("resynthesised"))
        row["label_policy"] = recorded
        if row["resynthesised"]:
            system = row.get("resynthesis_system") or row.get("attack")
            row["resynthesis_system"] = system
            if label == "excluded":
                rejects.append(
                    reject(
                        dataset,
                        row.get("_source", row.get("path", "")),
                        row.get("utt_id"),
                        f"resynthesised audio excluded by the label policy ({recorded}); "
                        "set resynthesised=spoof or bonafide to keep it",
                    )
                )
                continue
            row["label"] = label
            row["attack"] = system if label == SPOOF else None
        kept.append(row)
    return kept
