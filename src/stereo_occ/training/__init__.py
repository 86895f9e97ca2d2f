"""Training: the loop (:func:`train`), checkpoints, and the distributed plumbing.

``from stereo_occ.training import train, load_model`` covers most uses; see docs/training.md.
"""

from .checkpoint import load_checkpoint, load_model, save_checkpoint
from .trainer import TrainResult, train

__all__ = ["TrainResult", "load_checkpoint", "load_model", "save_checkpoint", "train"]
