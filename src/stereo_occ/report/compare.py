"""Two evaluations of the same test items, compared metric by metric with paired intervals.

    stereo-occ compare NEW BASE [--metrics iou,chamfer_l1] [--markdown] [--json FILE]

Why: every change to a model is judged by whether its evaluation beats the one before it on the same
test objects, and by how much more than chance. Two separate 95% intervals overlap long after a
paired difference is clear (an easy bowl is easy for both), so the question is answered on the
per-object differences (:func:`stereo_occ.evaluation.statistics.paired_difference`: objects
resampled, views of an object averaged first, stratified by category), as the experiment's report
does for its own models. This works on any two ``metrics.json`` files written by ``stereo-occ
evaluate`` or ``stereo-occ experiment`` (``D/eval/<model>``, ``D/real/eval/<model>``): two models on
one dataset, or one model before and after a change.

NEW and BASE must hold the same (object, view) items. The metrics are those an evaluation writes per
item whose better direction is known (``statistics.HIGHER_IS_BETTER``); one an older evaluation lacks
(the visibility fields came in session 30) is left out of the default list, with a note, and is an
error when asked for.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..config import CATEGORIES
from ..errors import UserError
from ..evaluation.metrics import SUMMARY_METRICS
from ..evaluation.statistics import HIGHER_IS_BETTER, LABELS, decimals, object_means, paired_difference

COMPARABLE: tuple[str, ...] = (*SUMMARY_METRICS, *(m for m in HIGHER_IS_BETTER if m not in SUMMARY_METRICS))
"""What ``--metrics`` accepts, in the order the table lists them (the summary metrics by default)."""


@dataclass(frozen=True)
class Evaluation:
    """One ``metrics.json``: where it came from and what it holds."""

    path: Path
    results: Mapping[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> "Evaluation":
        """A ``metrics.json`` file, or a folder holding one (``stereo-occ evaluate --out``)."""
        path = Path(path)
        file = path / "metrics.json" if path.is_dir() else path
        if not file.is_file():
            raise UserError(f"{path}: no evaluation there (expected a metrics.json written by stereo-occ evaluate, "
                            "or the folder that holds one)")
        try:
            results = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{file}: not a readable metrics.json ({exc})") from None
        if not isinstance(results, dict) or not isinstance(results.get("per_object"), list) or not results["per_object"]:
            raise UserError(f"{file}: has no per-object results to pair (is it a stereo-occ evaluate metrics.json?)")
        return cls(file, results)

    @property
    def rows(self) -> list[Mapping[str, Any]]:
        return self.results["per_object"]

    def missing(self, metric: str) -> int:
        """How many items lack ``metric``."""
        return sum(metric not in row for row in self.rows)

    def describe(self) -> str:
        r = self.results
        parts = [f"{r.get('model', '?')} on {r.get('split', '?')}"]
        if "n_objects" in r:
            views = r.get("views_per_object", 1)
            parts.append(f"{r['n_objects']} objects x {views} view{'s' if views != 1 else ''}")
        if r.get("threshold") is not None:
            parts.append(f"threshold {r['threshold']}")
        return f"{self.path.parent if self.path.name == 'metrics.json' else self.path} ({', '.join(parts)})"


@dataclass(frozen=True)
class MetricComparison:
    """One metric: each evaluation's class mean and per-category means, and the paired NEW - BASE."""

    metric: str
    new: Mapping[str, float]
    base: Mapping[str, float]
    difference: Mapping[str, Any]  # paired_difference's dict

    @property
    def lower_is_better(self) -> bool:
        return not HIGHER_IS_BETTER[self.metric]

    @property
    def verdict(self) -> str:
        """NEW against BASE by the metric's own direction: better, worse, n.s. (the interval holds 0), or
        "no interval" (a category with a single object: one object says nothing about the spread)."""
        if self.difference["ci"] is None:
            return "no interval"
        if not self.difference["significant"]:
            return "n.s."
        return "better" if (self.difference["mean"] > 0) != self.lower_is_better else "worse"


@dataclass(frozen=True)
class Comparison:
    """NEW against BASE, one :class:`MetricComparison` per metric, and the metrics left out (and why)."""

    new: Evaluation
    base: Evaluation
    metrics: list[MetricComparison]
    left_out: dict[str, str]


def _means(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[str, float]:
    """Per-category means over objects (views averaged first, as the paired difference takes them) and
    their mean, the class mean: what ``metrics.json`` reports, whose objects all have the same views."""
    _, cats, values = object_means(rows, metric)
    out = {c: float(values[[k == c for k in cats]].mean()) for c in CATEGORIES if c in cats}
    out["mean"] = sum(out.values()) / len(out)
    return out


def _check_finite(evaluation: Evaluation, metric: str) -> None:
    for row in evaluation.rows:
        value = row[metric]
        if value is None or not math.isfinite(float(value)):
            raise UserError(f"{evaluation.path}: {metric} of {row.get('object_id', '?')} (view {row.get('view', '?')}) "
                            f"is {value}; a paired difference needs a number for every item")


def compare(new: Evaluation, base: Evaluation, metrics: Sequence[str] | None = None, *,
            n_resamples: int = 2000, seed: int = 0) -> Comparison:
    """NEW against BASE on ``metrics`` (default: every summary metric both evaluations hold for every item)."""
    left_out: dict[str, str] = {}
    if metrics is None:
        chosen = []
        for metric in SUMMARY_METRICS:
            lacking = [(e, n) for e, n in (("new", new.missing(metric)), ("base", base.missing(metric))) if n]
            if lacking:
                left_out[metric] = ", ".join(f"missing for {n} items of {e}" for e, n in lacking)
            else:
                chosen.append(metric)
    else:
        chosen = list(dict.fromkeys(metrics))  # in the order given, once each
        if not chosen:
            raise UserError("--metrics names no metric")
        unknown = [m for m in chosen if m not in HIGHER_IS_BETTER]
        if unknown:
            raise UserError(f"unknown metric {', '.join(map(repr, unknown))}; choose from {', '.join(COMPARABLE)}")
        for metric in chosen:
            for evaluation in (new, base):
                if n := evaluation.missing(metric):
                    raise UserError(f"{evaluation.path}: {n} of its {len(evaluation.rows)} items have no {metric!r} "
                                    "(an evaluation from before that metric existed? evaluate the checkpoint again)")
    for metric in chosen:
        _check_finite(new, metric)
        _check_finite(base, metric)
    names = (str(new.path), str(base.path))
    results = [
        MetricComparison(metric, _means(new.rows, metric), _means(base.rows, metric),
                         paired_difference(new.rows, base.rows, metric, n_resamples=n_resamples, seed=seed, names=names))
        for metric in chosen
    ]
    return Comparison(new, base, results, left_out)


def _difference_cells(d: Mapping[str, Any]) -> tuple[str, list[str]]:
    """``+0.048 [+0.030, +0.071]`` and the per-category differences, at one precision for the row."""
    cats = [d["categories"].get(c) for c in CATEGORIES]
    values = [d["mean"], *(d["ci"] or []), *(c["mean"] for c in cats if c is not None)]
    places = decimals(*values)
    text = f"{d['mean']:+.{places}f}"
    if d["ci"] is not None:
        text += f" [{d['ci'][0]:+.{places}f}, {d['ci'][1]:+.{places}f}]"
    return text, ["" if c is None else f"{c['mean']:+.{places}f}" for c in cats]


def format_comparison(comparison: Comparison, markdown: bool = False) -> str:
    """A table, one row per metric: both means, NEW - BASE with its 95% interval, per category, verdict."""
    head = ["metric", "new", "base", "new - base [95% CI]", *CATEGORIES, "new is"]
    rows = []
    for c in comparison.metrics:
        label = LABELS.get(c.metric, c.metric) + (" (lower is better)" if c.lower_is_better else "")
        difference, per_category = _difference_cells(c.difference)
        rows.append([label, f"{c.new['mean']:.4f}", f"{c.base['mean']:.4f}", difference, *per_category, c.verdict])
    new, base = comparison.new, comparison.base
    lines = [f"new:  {new.describe()}", f"base: {base.describe()}", ""]
    if markdown:
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    n_objects = len({str(r["object_id"]) for r in new.rows})
    lines += ["", f"Paired over the same {len(new.rows)} items of {n_objects} objects (views averaged per object, "
                  "objects resampled within each category); n.s.: the interval includes 0."]
    if any(c.verdict == "no interval" for c in comparison.metrics):
        lines.append("no interval: a category with a single object, whose spread nothing measures.")
    lines += [f"left out: {metric} ({why})" for metric, why in comparison.left_out.items()]
    return "\n".join(lines)


def as_json(comparison: Comparison) -> dict[str, Any]:
    """The comparison as ``{"new": path, "base": path, "metrics": {metric: {...}}, "left_out": {...}}``."""
    return {
        "new": str(comparison.new.path),
        "base": str(comparison.base.path),
        "metrics": {
            c.metric: {"new": dict(c.new), "base": dict(c.base), "difference": c.difference,
                       "lower_is_better": c.lower_is_better, "verdict": c.verdict}
            for c in comparison.metrics
        },
        "left_out": comparison.left_out,
    }
