"""ADD-GP's own recipe: the deep kernel's g is the encoder's last transformer block, fine-tuned with the GP.

``dkl_gp`` learns g on pooled embeddings, so whatever the frozen encoder averaged away is lost to
it. Here g(h) = P · standardise(masked mean of block_L(h)) over the frames h of layer L - 1, with
``block_L`` a trainable copy of encoder layer L, so g sees every frame. Everything after g is
``dkl_gp``'s variational mode, inherited, not copied. X is an (n, T, hidden) frame array padded
with NaN (the frame cache); few-shot ``adapt`` is not supported. The recipe, its parameters and
its cost: docs/detectors.md, "Last-block DKL GP".
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import torch
from pydantic import Field
from pydantic.fields import FieldInfo
from torch import nn
from transformers import Wav2Vec2Config
from transformers.masking_utils import create_bidirectional_mask

from tasks.embed.frames import DEFAULT_CROP_SECONDS, EncoderBlock, block_class
from tasks.embed.loading import ATTENTION
from tasks.train.base import DEFAULT_SHOT_WEIGHT, FRAMES_INPUT
from tasks.train.calibration import CalibrationMethod, class_balanced, is_spoof_target
from tasks.train.dkl_gp import DKLGPDetector, VariationalDKL, seeded


class LastBlockFeatures(nn.Module):
    """g: the block on the valid frames, masked mean over time, fixed standardisation, optional projection."""

    feature_mean: torch.Tensor  # buffers (saved with the model, not trained)
    feature_scale: torch.Tensor

    def __init__(self, block: nn.Module, config: Wav2Vec2Config, projection_dim: int | None):
        super().__init__()
        self.block = block
        self.config = config
        hidden = config.hidden_size
        self.register_buffer("feature_mean", torch.zeros(hidden))
        self.register_buffer("feature_scale", torch.ones(hidden))
        self.projection: nn.Module = nn.Identity() if projection_dim is None else nn.Linear(hidden, projection_dim)

    def frames(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(block output per frame, valid-frame mask) for NaN-padded input frames x (batch, T, hidden)."""
        valid = ~torch.isnan(x[..., 0])
        h = torch.where(valid.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))
        # The mask the encoder itself builds for its layers: padded frames are never attended to.
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=h, attention_mask=valid)
        return self.block(h, attention_mask=mask), valid

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        h, valid = self.frames(x)
        weight = valid.unsqueeze(-1).to(h.dtype)
        return (h * weight).sum(1) / weight.sum(1).clamp(min=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection((self.pooled(x) - self.feature_mean) / self.feature_scale)


def check_frames(X, what: str = "X") -> np.ndarray:
    """X as an (n, T, hidden) array, or a ValueError saying what this kind reads instead."""
    X = np.asarray(X)
    if X.ndim != 3:
        raise ValueError(
            f"dkl_gp_lastblock reads frame-level features, an (n, frames, hidden) array from the frame cache "
            f"(storage/frames.py read_frames), but {what} has shape {X.shape}: pooled embeddings cannot be scored "
            "by it; score it through the pipeline or `addgp evaluate`, which read the frame cache"
        )
    return X


class LastBlockGPDetector(DKLGPDetector):
    """Variational GP whose g is a fine-tuned copy of the encoder's last used transformer layer.

    Parameters
    ----------
    crop_seconds : seconds of each utterance's start the frames cover (the frame cache's crop);
        ``None`` = whole files (cache and training memory then grow with the longest file).
    projection_dim : width of a linear projection of the pooled block output before the GP;
        ``None`` = no projection (the GP sees the hidden size).
    ard, n_inducing, lr, max_steps, min_steps, eval_every, batch_size, patience, calibration,
    random_state, progress : as for ``dkl_gp`` (variational mode).
    feature_lr : Adam learning rate of the block (and projection); small, as the block starts
        from trained weights that a large step would destroy.
    device : torch device; ``"auto"`` = cuda when available, else cpu (resolved by ``fit``).
    """

    kind = "dkl_gp_lastblock"
    input = FRAMES_INPUT
    # None = whole files; a crop is positive seconds.
    param_limits: ClassVar[Mapping[str, FieldInfo]] = {**DKLGPDetector.param_limits, "crop_seconds": Field(gt=0)}
    mode = "variational"
    # A row is T × hidden values (200 × 1,024 for 4 s of XLS-R 300m), not one vector.
    block_rows: ClassVar[int] = 256
    predict_rows: ClassVar[int] = 64

    def __init__(
        self,
        crop_seconds: float | None = DEFAULT_CROP_SECONDS,
        projection_dim: int | None = None,
        ard: bool = False,
        n_inducing: int = 128,
        lr: float = 0.05,
        feature_lr: float = 1e-4,
        max_steps: int = 300,
        min_steps: int | None = None,
        eval_every: int | None = None,
        batch_size: int = 32,
        patience: int = 5,
        calibration: CalibrationMethod | None = "regularised",
        device: str = "auto",
        random_state: int = 0,
        progress: bool = True,
    ):
        self.crop_seconds = crop_seconds
        self.projection_dim = projection_dim
        self.ard = ard
        self.n_inducing = n_inducing
        self.lr = lr
        self.feature_lr = feature_lr
        self.max_steps = max_steps
        self.min_steps = min_steps
        self.eval_every = eval_every
        self.batch_size = batch_size
        self.patience = patience
        self.calibration = calibration
        self.device = device
        self.random_state = random_state
        self.progress = progress

    def fit(self, X, y, X_dev=None, y_dev=None, *, block: EncoderBlock | None = None) -> LastBlockGPDetector:
        """Fit on frames X (n, T, hidden; NaN past each row's length), g starting from ``block``."""
        X = check_frames(X)
        if block is None:
            raise ValueError(
                "dkl_gp_lastblock.fit needs block=, the encoder layer g starts from "
                "(tasks.embed.frames.encoder_block; the train stage passes it through tasks/train/data.py fit_params)"
            )
        if X.shape[2] != block.config.hidden_size:
            raise ValueError(
                f"frames have {X.shape[2]} values per frame but layer {block.layer} of {block.encoder} takes "
                f"{block.config.hidden_size}: the frames come from another encoder"
            )
        is_spoof = is_spoof_target(y)
        if len(is_spoof) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(is_spoof)} labels")
        self._check_calibration_data(X_dev, y_dev)
        dev = (
            (check_frames(X_dev, "X_dev"), is_spoof_target(y_dev)) if X_dev is not None and y_dev is not None else None
        )
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.n_train_ = int(len(X))
        self.log_prior_odds_ = 0.0  # the class-balanced ELBO gives the posterior under equal priors
        self.input_dim_ = self.n_features_in_ = int(X.shape[2])
        self.encoder_, self.layer_ = block.encoder, block.layer
        self.block_config_ = block.config.to_dict()
        self.best_dev_cllr_: float | None = None
        self.shots_ = None
        self._start_block = block
        try:
            with seeded(self.random_state, self.device):
                self._fit_variational(
                    X, is_spoof, class_balanced(is_spoof), dev, np.random.default_rng(self.random_state)
                )
        finally:
            del self._start_block
        self._fit_calibration(X_dev, y_dev)
        return self

    def _new_g(self) -> nn.Module:
        block = self._start_block
        return LastBlockFeatures(copy.deepcopy(block.module), block.config, self.projection_dim)

    def standardise(self, X) -> torch.Tensor:
        """Frames as a float32 tensor on the device; the block reads them as the encoder produced them."""
        return torch.as_tensor(np.asarray(X), dtype=torch.float32, device=self.device)

    def _initial_features(self, g: nn.Module, X_rows) -> torch.Tensor:
        """Pooled initial-block outputs of the inducing sample; they also set g's fixed standardisation."""
        assert isinstance(g, LastBlockFeatures)
        g.eval()
        with torch.no_grad():
            pooled = torch.cat(
                [
                    g.pooled(self.standardise(X_rows[i : i + self.predict_rows]))
                    for i in range(0, len(X_rows), self.predict_rows)
                ]
            )
            scale = pooled.std(0, unbiased=False)
            g.feature_mean.copy_(pooled.mean(0))
            g.feature_scale.copy_(torch.where(scale > 1e-6, scale, torch.ones_like(scale)))
            return g.projection((pooled - g.feature_mean) / g.feature_scale).clone()

    def raw_llr(self, X) -> np.ndarray:
        return super().raw_llr(check_frames(X))

    def adapt(
        self,
        X_shots,
        y_shots,
        X_replay=None,
        y_replay=None,
        *,
        shot_weight=DEFAULT_SHOT_WEIGHT,
        random_state=0,
        **options,
    ) -> LastBlockGPDetector:
        raise NotImplementedError(
            "dkl_gp_lastblock does not support few-shot adaptation (it would condition on frames; `addgp adapt` and "
            "the nightly loop work on pooled embeddings): retrain it with the new rows, or adapt a dkl_gp model"
        )

    def to_state(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {f"model.{k}": v.detach().cpu().numpy() for k, v in self.model_.state_dict().items()}
        params = {
            "hyper_parameters": self.get_params(),
            "fitted": {
                "input_dim": self.input_dim_,
                "n_train": self.n_train_,
                "steps_run": self.steps_run_,
                "best_dev_cllr": self.best_dev_cllr_,
                "calibration": self._calibration_state(),
                "encoder": self.encoder_,
                "layer": self.layer_,
                "block_config": self.block_config_,
            },
        }
        return arrays, params

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], params: dict) -> LastBlockGPDetector:
        detector = cls(**params["hyper_parameters"])
        if detector.device == "auto" or (detector.device.startswith("cuda") and not torch.cuda.is_available()):
            detector.device = "cuda" if torch.cuda.is_available() else "cpu"
        fitted = params["fitted"]
        detector.input_dim_ = detector.n_features_in_ = int(fitted["input_dim"])
        detector.n_train_ = int(fitted["n_train"])
        detector.log_prior_odds_ = 0.0
        detector.steps_run_ = int(fitted["steps_run"])
        detector.best_dev_cllr_ = fitted["best_dev_cllr"]
        detector.encoder_, detector.layer_ = fitted["encoder"], int(fitted["layer"])
        detector.block_config_ = fitted["block_config"]
        detector.shots_ = None
        detector._restore_fitted(fitted)
        config = Wav2Vec2Config.from_dict(detector.block_config_)
        config._attn_implementation = ATTENTION
        state = {k[len("model.") :]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("model.")}
        # The modules' initial weights are overwritten by the state; seeding only keeps the caller's RNG intact.
        with seeded(detector.random_state, detector.device):
            g = LastBlockFeatures(block_class(config)(config), config, detector.projection_dim)
            detector.model_ = VariationalDKL(g, state["gp.variational_strategy.inducing_points"], detector.ard)
        detector.model_.load_state_dict(state)
        detector.model_.to(detector.device).eval()
        return detector
