"""A deterministic synthetic deepfake corpus for the demo pipeline and for tests.

``generate_demo_corpus(root)`` writes one dataset per *condition* (``demo_studio``,
``demo_phone``, ``demo_far``), each laid out exactly as ASVspoof 2019 LA ships::

    ROOT/demo_<condition>/
      ASVspoof2019_LA_{train,dev,eval}/flac/DEMO_<COND>_<SPLIT>_<NNNNN>.flac   (16-bit FLAC)
      ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.{train.trn,dev.trl,eval.trl}.txt
      demo_corpus.json                                                       (stamp, written last)

so that ``tasks.ingest.asvspoof2019.ingest(ROOT/demo_<condition>)`` reads it unchanged.

One module per concept: ``plan`` (speakers, labels, attacks per file), ``dsp`` (the shared
STFT), ``speech`` (the bona fide synthesiser), ``vocoders`` (the attacks), ``channel`` (the
recording conditions), ``render`` (one file: speech → attack → channel), ``writer`` (the
layout, the stamp, idempotence) and ``task`` (the Prefect task). A stage of its own, after
ingest (whose ASVspoof 2019 layout it writes) and degrade (whose transforms it may use).

What is in it (numpy/scipy/soxr only, deterministic from the seed):

* **bona fide** — source–filter speech-like synthesis: a Rosenberg glottal-flow-derivative
  source driven by a smooth F0 contour (declination, accents, drift, jitter, shimmer,
  speaker-dependent mean F0, open quotient and tilt), aspiration noise, time-varying formant
  filtering through a sequence of vowel targets with smooth transitions (vocal-tract length
  per speaker), syllable amplitude envelopes, fricative / plosive / nasal segments, pauses.
* **spoof** — a *different* bona-fide-like utterance of the target speaker (voice slightly
  off and steadier, as a cloned voice is) resynthesised by a frame-based method that leaves
  artefacts:

  ====  ==========================================================================  =========
  A01   Griffin–Lim from a mel-compressed, sharpened STFT magnitude, few iterations  all splits
  A02   coarse band-envelope (channel) vocoder, dB-quantised and held, pulse/noise   all splits
        excitation, frame phases flattened
  A03   OLA harmonic (sinusoidal) vocoder, no noise component, frame phase reset     all splits
  A04   LPC-10-like vocoder: order-10 quantised reflection coefficients, 2 dB gain,  eval only
        dispersed-pulse buzz / hiss switch
  ====  ==========================================================================  =========

  A04 never occurs in train/dev, so eval measures generalisation to an unseen attack. The
  artefact strength of each spoof (how close the frame phases come to zero / to the frame
  grid, the Griffin–Lim initial phase and iteration count) is drawn per utterance from
  ``STRENGTH``: mostly strong, sometimes mild. That table is the corpus' difficulty knob. It
  is tuned so that a logistic regression on mean-pooled embeddings of the small random-weight
  wav2vec2 ("tiny-random") lands at an EER of roughly 10–30 % within a condition, and does
  worse across conditions (see tests/test_demo_corpus.py). A random-weight encoder sees
  little beyond low-frequency balance and waveform/phase structure on a short time grid, so
  the artefacts are of that kind (frame-rate phase structure from overlap-add synthesis is a
  real vocoder artefact, here made rather strong).
* **conditions** — the channel every file of a dataset goes through (bona fide and spoof
  alike), which is what makes the datasets differ as real corpora do: ``studio`` (clean,
  normal level), ``phone`` (8 kHz, 300–3400 Hz, line noise, G.711 μ-law, back to the
  sample rate), ``far`` (synthetic room reverberation, low level, more and coloured noise).

Splits have disjoint speakers (``spk_NN``, numbered across splits); ~40 % of each split is
bona fide. Every utterance draws from its own random stream keyed by (seed, condition,
split, index), so a file never depends on which other files were generated.

Idempotent: the stamp ``demo_corpus.json`` (parameters, generator version, sha256 of every
file) is written atomically after everything else. A dataset whose stamp matches the
requested parameters and whose files still match their hashes is left as it is; otherwise
its generated folders are removed and it is written again.
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
