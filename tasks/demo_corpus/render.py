"""One planned file of the demo corpus, rendered: speech, then the attack (a spoof), then the channel."""

from __future__ import annotations

import contextlib

import numpy as np

from tasks.demo_corpus.channel import apply_condition
from tasks.demo_corpus.plan import UttPlan, name_code
from tasks.demo_corpus.speech import perturbed_speaker, synthesize_bonafide
from tasks.demo_corpus.vocoders import ATTACK_FUNCTIONS


def _single_threaded_blas():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def render_utterance(plan: UttPlan, seed: int, sample_rate: int = 16000) -> np.ndarray:
    """The int16 samples of one planned file: a function of the plan and the seed only.

    BLAS runs single-threaded here: the matrix products are small (threads would only fight
    over the cores), and a fixed thread count keeps the floating-point results, hence the
    file bytes, the same whatever the machine's core count.
    """
    with _single_threaded_blas():
        return _render(plan, seed, sample_rate)


def _render(plan: UttPlan, seed: int, sample_rate: int) -> np.ndarray:
    key = [seed, name_code(plan.condition), name_code(plan.split), plan.index]
    content_rng, attack_rng, channel_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(key).spawn(3))
    if plan.label == "bonafide":
        wave = synthesize_bonafide(content_rng, plan.speaker, sample_rate).wave
    else:
        voice = perturbed_speaker(attack_rng, plan.speaker)
        source = synthesize_bonafide(content_rng, voice, sample_rate)
        if plan.attack is None:
            raise ValueError(f"{plan.utt_id}: a spoofed utterance needs an attack")
        wave = ATTACK_FUNCTIONS[plan.attack](attack_rng, source, sample_rate)
    wave = apply_condition(channel_rng, wave, plan.condition, sample_rate)
    return np.clip(np.round(wave * 32767.0), -32768, 32767).astype(np.int16)
