"""One flow per stage, for running a stage on its own (by hand, or as its own deployment).

Each is composition only: the same Prefect tasks the full pipeline uses. Reports are
published by `addgp report` (flows/cli_evaluate.py), which runs the report task inside a
flow when asked for Prefect artifacts.
"""

from __future__ import annotations

from prefect import flow

from addgp.config import EncoderConfig, TrainConfig
from tasks.embed.task import embed_task
from tasks.evaluate.crossdataset import Evaluation
from tasks.evaluate.task import cross_dataset_task, evaluate_task
from tasks.train.task import train_task


@flow(name="addgp-embed", log_prints=True)
def embed_flow(manifest_paths: list[str], encoder: EncoderConfig, store: str, scheduler_address: str | None = None) -> dict:
    """Embed every manifest row the store lacks; on the Dask scheduler at ``scheduler_address`` when given."""
    return embed_task(manifest_paths, encoder, store, scheduler_address)


@flow(name="addgp-train", log_prints=True)
def train_flow(manifest_paths: list[str], store: str, models_root: str, encoder: EncoderConfig, train: TrainConfig) -> list[dict]:
    """Fit and register every detector of ``train``."""
    return [train_task(manifest_paths, store, models_root, encoder, train, detector) for detector in train.detectors]


@flow(name="addgp-evaluate", log_prints=True)
def evaluate_flow(
    manifest_paths: list[str], store: str, model_paths: dict[str, str], datasets: list[str], splits: list[str], n_boot: int = 1000
) -> Evaluation:
    """The cross-dataset evaluation (matrix, CIs, breakdowns, selective prediction) of registered models."""
    return cross_dataset_task(evaluate_task(manifest_paths, store, model_paths, datasets, splits), n_boot=n_boot)
