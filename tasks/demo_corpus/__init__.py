"""A deterministic synthetic deepfake corpus for the demo pipeline and for tests.

``generate_demo_corpus(root)`` writes one dataset per *condition* (``demo_studio``,
``demo_phone``, ``demo_far``) in the ASVspoof 2019 LA layout, so ``tasks.ingest.asvspoof2019``
reads it unchanged: synthetic bona fide speech, spoofs by four frame-based vocoders (one seen only
in eval) and a channel per condition, every file deterministic from the seed and idempotent
through a stamp. One module per concept: ``plan`` (speakers, labels, attacks per file), ``dsp``
(the shared STFT), ``speech`` (the bona fide synthesiser), ``vocoders`` (the attacks),
``channel`` (the recording conditions), ``render`` (one file: speech → attack → channel),
``writer`` (the layout, the stamp, idempotence) and ``task`` (the Prefect task); a stage of its
own, after ingest (whose layout it writes) and degrade (whose transforms it may use). What is
synthesised and why: docs/ingest.md, "The generated demo corpus".
"""

from tasks.demo_corpus.plan import (
    ATTACKS,
    CONDITIONS,
    GENERATOR_VERSION,
    MAX_SECONDS,
    MIN_SECONDS,
    STAMP_NAME,
    dataset_name,
    plan_dataset,
)
from tasks.demo_corpus.render import render_utterance
from tasks.demo_corpus.writer import generate_demo_corpus

__all__ = [
    "ATTACKS",
    "CONDITIONS",
    "GENERATOR_VERSION",
    "MAX_SECONDS",
    "MIN_SECONDS",
    "STAMP_NAME",
    "dataset_name",
    "generate_demo_corpus",
    "plan_dataset",
    "render_utterance",
]
