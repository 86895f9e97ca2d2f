"""Evaluation: the Occupancy Networks metrics, MISE mesh extraction, checkpoint evaluation, and
reconstruction from a user's own stereo pair (docs/evaluation.md, docs/reconstruct.md)."""

from .evaluate import evaluate_checkpoint
from .metrics import iou, mesh_contains, probability_iou, summarize, surface_metrics
from .mise import extract_mesh, extract_mesh_dense, save_mesh
from .pairs import Pair, find_pairs
from ..config import ConfigChanges
from .reconstruct import InputWarning, PairResult, Reconstructor, reconstruct_files, reconstruct_folder
from .simplify import SimplifyWarning, simplify_mesh

__all__ = [
    "ConfigChanges",
    "InputWarning",
    "Pair",
    "PairResult",
    "Reconstructor",
    "SimplifyWarning",
    "evaluate_checkpoint",
    "extract_mesh",
    "extract_mesh_dense",
    "find_pairs",
    "iou",
    "mesh_contains",
    "probability_iou",
    "reconstruct_files",
    "reconstruct_folder",
    "save_mesh",
    "simplify_mesh",
    "summarize",
    "surface_metrics",
]
