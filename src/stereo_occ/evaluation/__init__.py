"""Evaluation: the Occupancy Networks metrics, MISE mesh extraction, checkpoint evaluation, and
reconstruction from a user's own stereo pair (docs/evaluation.md, docs/reconstruct.md)."""

from .evaluate import evaluate_checkpoint
from .metrics import iou, mesh_contains, probability_iou, summarize, surface_metrics
from .mise import extract_mesh, extract_mesh_dense, save_mesh
from .reconstruct import InputWarning, Reconstructor, reconstruct_files

__all__ = [
    "InputWarning",
    "Reconstructor",
    "evaluate_checkpoint",
    "extract_mesh",
    "extract_mesh_dense",
    "iou",
    "mesh_contains",
    "probability_iou",
    "reconstruct_files",
    "save_mesh",
    "summarize",
    "surface_metrics",
]
