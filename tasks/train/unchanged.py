"""A training run on unchanged inputs registers no new version.

``input_digest`` is one sha256 over everything a fit depends on: the embedding setting and the
encoder's weights digest, the detector kind and its parameters, which datasets/splits/dev
splits were selected, and the content of the training and dev rows (``snapshot_id``: dataset,
utt_id, sha256, label of every row). ``save_model`` records it on the card as
``input_digest``; before fitting, ``unchanged_version`` looks at the newest version of the
name: when its card has the same digest, that version is the result (``addgp run`` on the
same data and config reports it again, instead of writing vN+1 identical to vN). A card
written before the digest existed never matches, so the first run after upgrading fits once.
"""

from __future__ import annotations

import hashlib
import json

from storage.models import EmbeddingSetting, ModelRef, list_versions, read_card

INPUT_DIGEST_KEY = "input_digest"


def input_digest(
    setting: EmbeddingSetting,
    encoder_weights_digest: str | None,
    kind: str,
    params: dict,
    selection: dict,
    train_snapshot: str,
    dev_snapshot: str | None,
) -> str:
    """sha256 over the fit's inputs (module docstring); canonical JSON, so key order does not matter."""
    body = {
        "setting": setting.to_card(),
        "encoder_weights_digest": encoder_weights_digest,
        "kind": kind,
        "params": params,
        "selection": selection,
        "train_rows": train_snapshot,
        "dev_rows": dev_snapshot,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def unchanged_version(models_root: str, name: str, digest: str) -> ModelRef | None:
    """The newest version of ``name`` when its card records ``digest``, else None."""
    versions = list_versions(models_root, name)
    if not versions:
        return None
    newest = versions[-1]
    return newest if read_card(newest).get(INPUT_DIGEST_KEY) == digest else None
