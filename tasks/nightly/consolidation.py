"""Scheduled consolidation: which step makes tonight's challenger, decided from the champion chain.

The streaming update (``adapt``) learns new rows at a flat cost but keeps the feature extractor
``g`` fixed, and its forgetting accumulates over the nights (docs/detectors.md, "A season of
nights"). A consolidation is a fresh fit of the detector on the configured training data plus
every inbox row the loop has learnt so far: what a nightly retrain does, paid once every few
nights. ``nightly.consolidate_every_nights: N`` makes every Nth night since the chain's last
full fit a consolidation and the nights between updates: with N = 7 and a baseline fitted on
night 0, nights 7, 14, 21, … consolidate (one a week) and the six nights between update.

The rule reads only the champion chain's steps (the models promoted, oldest first, each
recording the step that made it), so it is the same for the nightly loop and for
benchmarks/season.py:

* the steps since the chain's last full fit (``fit``, ``retrain`` or ``consolidate``) are
  counted; when ``N - 1`` updates have been promoted since it, tonight consolidates;
* a refused (or undecided) challenger adds nothing to the chain: after a refused
  consolidation the count is unchanged, so the next night consolidates again (with one more
  night of rows), until one is promoted — the champion still carries every update since its
  last full fit, which is what the consolidation is for. A refused update does not advance the
  schedule either: the model in service did not move.

Records written before steps were recorded have no ``step``: the first model of a chain was
the baseline (a fit), later ones count as updates, so an old chain consolidates at the
latest N nights after the schedule is switched on.
"""

from __future__ import annotations

from collections.abc import Sequence

FIT, UPDATE, RETRAIN, CONSOLIDATE = "fit", "update", "retrain", "consolidate"
FULL_FITS = (FIT, RETRAIN, CONSOLIDATE)


def step_of(step: str | None, first: bool) -> str:
    """The step that made a chain's model (None, not recorded: the baseline's fit, else an update)."""
    return step or (FIT if first else UPDATE)


def updates_since_full_fit(chain_steps: Sequence[str | None]) -> int:
    """How many models of the chain (its steps, oldest first) came after its last full fit."""
    steps = [step_of(step, i == 0) for i, step in enumerate(chain_steps)]
    fits = [i for i, step in enumerate(steps) if step in FULL_FITS]
    return len(steps) - 1 - fits[-1] if fits else len(steps)


def tonight_step(chain_steps: Sequence[str | None], consolidate_every_nights: int | None) -> str:
    """``consolidate`` or ``update`` for a challenger built on the newest model of the chain
    whose steps (oldest first) are ``chain_steps``."""
    if consolidate_every_nights is None:
        return UPDATE
    return CONSOLIDATE if updates_since_full_fit(chain_steps) >= consolidate_every_nights - 1 else UPDATE
