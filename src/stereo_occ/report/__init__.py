"""The experiment report: figures (mesh renders, training curves) and one self-contained HTML file."""

from .figures import (
    FigureRow,
    MeshRenderer,
    ReconstructionFigure,
    TrainingLog,
    figure_png,
    read_training_log,
    training_curves_png,
)
from .html import STUDY_ITERATIONS, STUDY_IOU, ReportInputs, render_report, write_report

__all__ = [
    "FigureRow",
    "MeshRenderer",
    "ReconstructionFigure",
    "ReportInputs",
    "STUDY_IOU",
    "STUDY_ITERATIONS",
    "TrainingLog",
    "figure_png",
    "read_training_log",
    "render_report",
    "training_curves_png",
    "write_report",
]
