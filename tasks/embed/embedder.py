"""Waveforms → pooled hidden states, batched by length, with masked pooling.

Padding is the main waste in batched speech encoding, so utterances are sorted by length
and packed into batches whose *padded* size stays under a budget of audio seconds.
Pooling averages only the frames that belong to each utterance (its true length through
the CNN), so a batched embedding equals the unbatched one up to float error.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from tasks.embed.audio import normalise
from tasks.embed.loading import LoadedEncoder


def length_buckets(lengths: list[int] | np.ndarray, max_batch_samples: int) -> list[list[int]]:
    """Indices grouped so that len(batch) × longest-in-batch ≤ max_batch_samples.

    Longest first, so a batch that does not fit in accelerator memory fails at the start
    of a shard rather than after most of it has run. A single utterance longer than the
    budget still forms a batch of its own.
    """
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        length = int(lengths[index])
        if current and max(longest, length) * (len(current) + 1) > max_batch_samples:
            batches.append(current)
            current, longest = [], 0
        current.append(int(index))
        longest = max(longest, length)
    if current:
        batches.append(current)
    return batches


@dataclass
class Timings:
    """Where a shard's wall time went: the benchmark's 'model vs the rest' split."""

    model_s: float = 0.0
    decode_s: float = 0.0
    audio_s: float = 0.0
    batches: int = 0
    oom_splits: int = 0


class Embedder:
    """Runs a loaded encoder on lists of waveforms and pools the requested layers."""

    def __init__(self, encoder: LoadedEncoder):
        self.encoder = encoder
        self.layers = encoder.layer_indices()
        self.pooling = encoder.spec.pooling
        self.device = encoder.device
        # bf16 on GPUs (XLS-R is trained in fp16/fp32; bf16 keeps the range, halves the traffic);
        # fp32 on CPU, where autocast brings no speed for these convolutions.
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if self.device.startswith("cuda") else nullcontext()
        )

    @property
    def output_dim(self) -> int:
        hidden = self.encoder.model.config.hidden_size
        return hidden * (2 if self.pooling == "mean+std" else 1)

    def embed(self, waves: list[np.ndarray], timings: Timings | None = None) -> dict[int, np.ndarray]:
        """{layer index: (len(waves), output_dim) float32} for one batch; splits the batch on OOM."""
        timings = timings if timings is not None else Timings()
        try:
            return self._forward(waves, timings)
        except torch.cuda.OutOfMemoryError:
            if len(waves) == 1:
                raise
            torch.cuda.empty_cache()
            timings.oom_splits += 1
            half = len(waves) // 2
            first, second = self.embed(waves[:half], timings), self.embed(waves[half:], timings)
            return {layer: np.concatenate([first[layer], second[layer]]) for layer in first}

    @torch.inference_mode()
    def _forward(self, waves: list[np.ndarray], timings: Timings) -> dict[int, np.ndarray]:
        started = time.perf_counter()
        hidden_states, frames = self.hidden_states(waves)
        pooled = {layer: self._pool(hidden_states[layer].float(), frames) for layer in self.layers}
        result = {layer: value.cpu().numpy() for layer, value in pooled.items()}
        timings.model_s += time.perf_counter() - started
        timings.batches += 1
        return result

    @torch.inference_mode()
    def hidden_states(self, waves: list[np.ndarray]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """(every hidden state of the batch, each (batch, frames, hidden) on the device; frames per utterance).

        Rows are padded to the longest wave; frames past an utterance's count are padding.
        """
        lengths = torch.tensor([len(w) for w in waves])
        batch = torch.zeros(len(waves), int(lengths.max()))
        for row, wave in enumerate(waves):
            batch[row, : len(wave)] = torch.from_numpy(normalise(wave))
        attention = (torch.arange(batch.shape[1])[None, :] < lengths[:, None]).long()
        batch, attention = batch.to(self.device, non_blocking=True), attention.to(self.device, non_blocking=True)
        with self.autocast:
            out = self.encoder.model(batch, attention_mask=attention, output_hidden_states=True)
        # torch.tensor of ints is a LongTensor at run time; the stubs type it as a plain Tensor.
        frames = self.encoder.model._get_feat_extract_output_lengths(cast(torch.LongTensor, lengths)).to(self.device)
        return out.hidden_states, frames

    def _pool(self, hidden: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(hidden.shape[1], device=hidden.device)[None, :] < frames[:, None]).unsqueeze(-1)
        count = frames.clamp(min=1).unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(dim=1) / count
        if self.pooling == "mean":
            return mean
        variance = (((hidden - mean.unsqueeze(1)) * mask) ** 2).sum(dim=1) / count
        return torch.cat([mean, variance.clamp(min=0).sqrt()], dim=-1)
