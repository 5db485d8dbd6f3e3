"""addgp: audio deepfake detection pipeline (XLS-R embeddings, LR and DKL-GP detectors, cross-dataset reports)."""

__version__ = "0.1.0"
