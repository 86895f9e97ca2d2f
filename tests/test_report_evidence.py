"""The report's evidence: intervals beside the means, "Is the difference real?", real meshes."""

from __future__ import annotations

import copy
import html
import json
import re

import numpy as np

from stereo_occ.config import CATEGORIES
from stereo_occ.evaluation.statistics import evidence
from stereo_occ.report import ReportInputs, render_report

METRICS = ("iou", "mesh_iou", "chamfer_l1", "normal_consistency", "fscore")


def _per_category(mean: float, step: float = 0.01) -> dict:
    return {"mug": mean - step, "bowl": mean, "bottle": mean + step, "mean": mean}


def _old_results() -> dict:
    """results.json as written before the evidence fields existed."""
    return {
        "models": {
            name: {
                "iou": _per_category(iou),
                "mesh_iou": _per_category(iou - 0.01),
                "chamfer_l1": _per_category(chamfer, 0.001),
                "normal_consistency": _per_category(0.8),
                "fscore": _per_category(0.3),
                "iterations": 200,
                "train_seconds": 120.0,
            }
            for name, iou, chamfer in (("mono", 0.1812, 0.052), ("stereo", 0.2020, 0.047))
        },
        "dataset": {"source": "procedural", "views_per_object": 3},
    }


def _diff(mean: float, lo: float, hi: float) -> dict:
    return {
        "mean": mean,
        "ci": [lo, hi],
        "significant": lo > 0 or hi < 0,
        "categories": {c: {"mean": mean, "ci": [lo, hi]} for c in CATEGORIES},
    }


def _results() -> dict:
    results = _old_results()
    for name, (lo, hi) in (("mono", (0.151, 0.212)), ("stereo", (0.171, 0.233))):
        entry = results["models"][name]
        for metric in METRICS:
            mean = entry[metric]["mean"]
            entry[f"{metric}_ci"] = {c: [mean - 0.03, mean + 0.03] for c in (*CATEGORIES, "mean")}
        entry["iou_ci"]["mean"] = [lo, hi]
        entry["test_objects"] = 30
        entry["test_views_per_object"] = 3
    results["models"]["mono"]["real"] = {
        "iou": {"mug": 0.1101, "bowl": 0.1202, "bottle": 0.1303, "mean": 0.1202},
        "iou_ci": {"mug": [0.09, 0.13], "bowl": [0.1, 0.14], "bottle": [0.11, 0.15], "mean": [0.101, 0.139]},
        "chamfer_l1": {"mug": 0.06, "bowl": 0.06, "bottle": 0.06, "mean": 0.0611},
        "chamfer_l1_ci": {"mean": [0.0552, 0.0671]},
        "mesh_iou": _per_category(0.11),
        "normal_consistency": _per_category(0.7),
        "fscore": _per_category(0.2),
        "n_objects": 9,
        "views_per_object": 2,
        "source": "shared/real-meshes",
    }
    results["models"]["stereo"]["real"] = {
        "missing": "folder shared/real-meshes-b not found",
        "source": "shared/real-meshes-b",
    }
    results["differences"] = {
        "stereo-mono": {
            "iou": _diff(0.0208, 0.0051, 0.0366),
            "mesh_iou": _diff(0.012, -0.004, 0.027),
            "chamfer_l1": _diff(-0.0050, -0.0081, -0.0019),
            "normal_consistency": _diff(0.0, 0.0, 0.0),
            "fscore": _diff(0.01, -0.02, 0.04),
            "n_objects": 30,
            "n_items": 90,
            "models": ["stereo", "mono"],
        }
    }
    results["real_differences"] = {
        "stereo-mono": {"iou": _diff(-0.011, -0.043, 0.019), "n_objects": 9, "n_items": 18}
    }
    return results


def _text(report: str) -> str:
    """The report's visible text: tags dropped, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", report)))


def _section(report: str, title: str) -> str:
    """The HTML from the ``<h2>`` titled ``title`` to the next ``<h2>``."""
    start = report.index(f"<h2>{title}</h2>")
    end = report.find("<h2>", start + 4)
    return report[start : end if end > 0 else len(report)]


def test_means_carry_their_intervals_and_the_test_set_size(tmp_path):
    report = render_report(ReportInputs(results=_results()), tmp_path)
    results_table = _text(_section(report, "Results"))
    assert "0.2020 [0.171, 0.233]" in results_table
    assert "0.1812 [0.151, 0.212]" in results_table
    assert "test objects × views" in results_table and "30 × 3" in results_table
    assert "0.1896" in results_table and "0.1153" in results_table  # the study rows stay
    # Per-category tables give every metric's interval of the mean.
    assert "[0.0170, 0.0770]" in results_table  # stereo's Chamfer-L1 0.047 +- 0.03, 4 decimals
    # Every row of the main table has as many cells as its header.
    table = re.search(r"<table>(.*?)</table>", _section(report, "Results"), re.S).group(1)
    widths = {len(re.findall(r"<t[dh][ >]", row)) for row in re.findall(r"<tr.*?</tr>", table, re.S)}
    assert len(widths) == 1
    assert "different numbers of iterations" not in results_table  # both trained 200


def test_the_report_says_when_models_trained_different_budgets(tmp_path):
    results = _results()
    results["models"]["mono"]["iterations"] = 100
    results["models"]["stereo"]["threshold"] = 0.45
    results_table = _text(_section(render_report(ReportInputs(results=results), tmp_path), "Results"))
    assert "different numbers of iterations (mono 100, stereo 200" in results_table
    assert "0.45" in results_table  # each model's own threshold
    assert "(bf16)" not in results_table  # fp32, and runs from before the field, say nothing


def test_the_report_says_which_models_trained_in_bf16(tmp_path):
    results = _results()
    results["models"]["stereo"]["train_precision"] = "bf16"
    results["models"]["mono"]["train_precision"] = "fp32"
    results_table = _text(_section(render_report(ReportInputs(results=results), tmp_path), "Results"))
    assert "2 min 00 s (bf16)" in results_table and results_table.count("(bf16)") == 1


def test_differences_are_shown_with_their_significance_in_words(tmp_path):
    report = render_report(ReportInputs(results=_results()), tmp_path)
    section = _section(report, "Is the difference real?")
    text = _text(section)
    assert "stereo-mono" in text and "30 / 90" in text
    assert "+0.0208 [0.005, 0.037]" in text  # IoU
    assert "+0.0120 [-0.004, 0.027]" in text  # mesh IoU
    assert "-0.0050 [-0.0081, -0.0019]" in text  # Chamfer-L1, 4 decimals
    assert "+0.0100 [-0.020, 0.040]" in text  # F-score
    assert "stereo-mono: stereo's IoU is higher by 0.021 (95% CI 0.005 to 0.037): significant." in text
    # Significant cells are bold, the others are not.
    assert '<td class="sig">+0.0208' in section and '<td class="sig">+0.0120' not in section
    assert '<td class="sig">-0.0050' in section


def test_real_meshes_rows_and_missing_folders(tmp_path):
    report = render_report(ReportInputs(results=_results()), tmp_path)
    section = _section(report, "Real meshes")
    text = _text(section)
    mono_row = _text(re.search(r"<tr><td>mono</td>.*?</tr>", section, re.S).group(0))
    for value in ("0.1101", "0.1202", "0.1303", "0.1202 [0.101, 0.139]", "0.0611 [0.0552, 0.0671]",
                  "9 × 2", "shared/real-meshes"):
        assert value in mono_row, value
    stereo_row = _text(re.search(r"<tr><td>stereo</td>.*?</tr>", section, re.S).group(0))
    assert "folder shared/real-meshes-b not found" in stereo_row and "shared/real-meshes-b" in stereo_row
    assert (
        "stereo-mono: stereo's IoU is lower by 0.011 (95% CI -0.043 to 0.019): not significant: "
        "the interval includes 0."
    ) in text


def test_old_results_without_evidence_still_render(tmp_path):
    report = render_report(ReportInputs(results=_old_results()), tmp_path)
    text = _text(report)
    assert "0.2020" in text and "0.1812" in text and "0.1896" in text
    assert "Is the difference real?" not in text and "Real meshes" not in text
    assert "[0." not in text  # no interval was invented
    # Partial and null evidence fields (a category without objects, NaN written as null) render too.
    results = _results()
    results["models"]["stereo"]["iou_ci"]["mean"] = None
    results["models"]["mono"]["iou_ci"] = {"mean": [None, 0.2]}
    del results["models"]["mono"]["test_objects"]
    results["differences"]["stereo-mono"]["fscore"] = {"mean": None, "ci": None, "significant": False}
    del results["differences"]["stereo-mono"]["mesh_iou"]
    results["models"]["mono"]["real"] = {"source": "x", "iou": None}
    text = _text(render_report(ReportInputs(results=results), tmp_path))
    assert "0.2020 " in text and "0.2020 [" not in text


def test_report_reads_what_evidence_computes(tmp_path):
    """End to end through JSON: the keys statistics.evidence writes are the ones the report reads."""
    rng = np.random.default_rng(0)
    base = {c: rng.uniform(0.1, 0.4, 6) for c in CATEGORIES}
    per_object = {
        name: [
            {"object_id": f"{c}/{i}", "category": c, "view": v,
             **{m: float(values[i] + shift + 0.001 * v) for m in METRICS}}
            for c, values in base.items() for i in range(len(values)) for v in range(2)
        ]
        for name, shift in (("mono", 0.0), ("stereo", 0.05))
    }
    intervals, differences = evidence(per_object, METRICS, n_resamples=200)
    results = copy.deepcopy(_old_results())
    for name, entry in results["models"].items():
        entry.update(intervals[name])
    results["differences"] = differences
    results = json.loads(json.dumps(results))
    text = _text(render_report(ReportInputs(results=results), tmp_path))
    lo, hi = intervals["stereo"]["iou_ci"]["mean"]
    assert f"0.2020 [{lo:.3f}, {hi:.3f}]" in text
    assert "stereo-mono: stereo's IoU is higher by 0.050" in text and ": significant." in text
    assert "12 / 36" not in text and "18 / 36" in text


def test_what_the_pair_can_see_is_shown_only_with_its_fields(tmp_path):
    results = _results()
    assert "<h2>What the pair can see</h2>" not in render_report(ReportInputs(results=results), tmp_path)
    for entry in results["models"].values():
        entry["iou_lost_seen"] = _per_category(0.1)
        entry["iou_lost_surface"] = _per_category(0.1)
        entry["iou_lost_hidden"] = _per_category(0.5)
        entry["iou_lost_outside"] = _per_category(0.0)
        entry["iou_given_depth"] = _per_category(0.3)
    section = _text(_section(render_report(ReportInputs(results=results), tmp_path), "What the pair can see"))
    assert "IoU given both views' depth" in section
    assert "0.290 / 0.300 / 0.310: 0.300" in section and "71%" in section  # 0.5 of 0.7 lost where both are blind
