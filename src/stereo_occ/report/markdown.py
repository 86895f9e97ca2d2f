"""The README's tables, from an experiment's ``results.json``: every number there comes from this.

    python -m stereo_occ.report.markdown runs/quick/results.json

Prints Markdown tables: each model's test metrics beside the study's Table 1, the paired
differences of mean IoU over the same test objects (and real meshes), per category, where each
model's IoU is lost (in space a view sees, or hidden from both; runs since session 30) and (runs
since session 29) the seconds each stage took. The HTML report
(:mod:`.html`) shows the same numbers; this is the form that goes into a README or a note.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import CATEGORIES
from ..evaluation.statistics import significant
from ..stage_times import timing_rows
from .html import STUDY_IOU, VISIBILITY_COLUMNS, visibility_cells


def _ci(interval: list[float]) -> str:
    return f"[{interval[0]:.3f}, {interval[1]:.3f}]"


def _signed_ci(interval: list[float]) -> str:
    return f"[{interval[0]:+.3f}, {interval[1]:+.3f}]"


def _difference(part: dict, with_ci: bool) -> str:
    """``+0.038 [+0.017, +0.064]`` (or the mean alone), with " (n.s.)" where the interval holds 0."""
    text = f"{part['mean']:+.3f}" + (f" {_signed_ci(part['ci'])}" if with_ci else "")
    return text if significant(part["ci"]) else text + " (n.s.)"


def model_table(results: dict) -> str:
    """Per model: IoU per category and mean with its interval, mesh metrics, real meshes, training."""
    head = ["model", *(f"IoU {c}" for c in CATEGORIES), "**IoU mean [95% CI]**", "mesh IoU", "Chamfer-L1",
            "normal cons.", "F-score (1%)", "real meshes: IoU [95% CI]", "threshold", "iterations (best)", "training"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in results["models"].items():
        real = m.get("real") or {}
        real_cell = (f"{real['iou']['mean']:.3f} {_ci(real['iou_ci']['mean'])}" if "iou" in real
                     else "not evaluated" if real else "")  # a folder that was missing says so
        cells = [name, *(f"{m['iou'][c]:.3f}" for c in CATEGORIES), f"**{m['iou']['mean']:.3f}** {_ci(m['iou_ci']['mean'])}",
                 f"{m['mesh_iou']['mean']:.3f}", f"{m['chamfer_l1']['mean']:.3f}", f"{m['normal_consistency']['mean']:.3f}",
                 f"{m['fscore']['mean']:.3f}", real_cell, f"{m['threshold']:.2f}",
                 f"{m['iterations']:,} ({m['best_iteration']:,})", f"{m['train_seconds']:.0f} s"]
        rows.append("| " + " | ".join(cells) + " |")
    for name, iou in STUDY_IOU.items():  # the study reports the mean IoU and its 40,000 iterations
        cells = [f"{name} (the study, Table 1)", *[""] * len(CATEGORIES), f"{iou:.4f}", *[""] * 6, "40,000", ""]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def differences_table(results: dict) -> str:
    """Paired differences of mean IoU (A - B over the same objects); n.s. where the interval holds 0."""
    head = ["A - B", "test split [95% CI]", *CATEGORIES, "real meshes [95% CI]"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    real = results.get("real_differences", {})
    for key, difference in results["differences"].items():
        iou = difference["iou"]
        a, b = difference["models"]
        cells = [f"{a} - {b}", _difference(iou, with_ci=True), *(_difference(iou["categories"][c], with_ci=False) for c in CATEGORIES),
                 _difference(real[key]["iou"], with_ci=True) if key in real else ""]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def visibility_table(results: dict) -> str:
    """Where each model's IoU is lost: in space a view sees, or where both are blind (empty for results
    written before session 30)."""
    rows = [(name, visibility_cells(m)) for name, m in results["models"].items()]
    rows = [(name, cells) for name, cells in rows if cells is not None]
    if not rows:
        return ""
    head = ["model (mug / bowl / bottle: mean)", *VISIBILITY_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([name, *cells]) + " |" for name, cells in rows]
    return "\n".join(lines)


def timings_table(results: dict) -> str:
    """Seconds per stage (``results["timings"]``; empty for results written before session 29)."""
    timings = results.get("timings") or {}
    if not timings.get("stages"):
        return ""
    rows = ["| stage | seconds | share |", "|---|---|---|"]
    rows += [f"| {stage} | {seconds:.0f} | {100 * share:.0f}% |" for stage, seconds, share in timing_rows(timings)]
    rows.append(f"| **all stages** | **{timings['total_seconds']:.0f}** ({timings['total_seconds'] / 60:.1f} min) | |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m stereo_occ.report.markdown", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, help="an experiment's results.json")
    args = p.parse_args(argv)
    if not args.results.is_file():
        raise SystemExit(f"no such file: {args.results} (an experiment writes OUT/results.json)")
    results = json.loads(args.results.read_text())
    print(model_table(results))
    print()
    print(differences_table(results))
    for table in (visibility_table(results), timings_table(results)):
        if table:
            print()
            print(table)


if __name__ == "__main__":
    main()
