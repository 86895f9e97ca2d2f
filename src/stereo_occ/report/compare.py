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

NEW and BASE must hold the same (object, view) items; a metric an older evaluation lacks (the
visibility fields came in session 30) is left out of the default list and is an error when asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..config import CATEGORIES
from ..errors import UserError
from ..evaluation.metrics import SUMMARY_METRICS
from ..evaluation.statistics import LABELS, LOWER_IS_BETTER, object_means, paired_difference


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

    def has(self, metric: str) -> bool:
        return all(metric in row for row in self.rows)

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
        return self.metric in LOWER_IS_BETTER

    @property
    def verdict(self) -> str:
        """"better", "worse" or "n.s." for NEW against BASE (by the metric's own direction)."""
        if not self.difference["significant"]:
            return "n.s."
        up = self.difference["mean"] > 0
        return "better" if up != self.lower_is_better else "worse"


def _means(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[str, float]:
    """Per-category means of ``metric`` over objects (views averaged first) and their mean, the class mean."""
    _, cats, values = object_means(rows, metric)
    out = {c: float(values[[k == c for k in cats]].mean()) for c in CATEGORIES if c in cats}
    out["mean"] = sum(out.values()) / len(out)
    return out


def compare(new: Evaluation, base: Evaluation, metrics: Sequence[str] | None = None, *,
            n_resamples: int = 2000, seed: int = 0) -> list[MetricComparison]:
    """NEW against BASE on ``metrics`` (default: every summary metric both evaluations hold)."""
    if metrics is None:
        metrics = [m for m in SUMMARY_METRICS if new.has(m) and base.has(m)]
    else:
        for metric in metrics:
            for evaluation in (new, base):
                if not evaluation.has(metric):
                    raise UserError(f"{evaluation.path}: has no {metric!r} for every item "
                                    f"(metrics it has: {', '.join(m for m in SUMMARY_METRICS if evaluation.has(m))})")
    names = (str(new.path), str(base.path))
    return [
        MetricComparison(metric, _means(new.rows, metric), _means(base.rows, metric),
                         paired_difference(new.rows, base.rows, metric, n_resamples=n_resamples, seed=seed, names=names))
        for metric in metrics
    ]


def _signed(value: float) -> str:
    return f"{value:+.4f}" if abs(value) < 0.01 and value != 0 else f"{value:+.3f}"


def format_comparison(comparisons: Sequence[MetricComparison], new: Evaluation, base: Evaluation,
                      markdown: bool = False) -> str:
    """A table, one row per metric: both means, NEW - BASE with its 95% interval, per category, verdict."""
    head = ["metric", "new", "base", "new - base [95% CI]", *CATEGORIES, "new is"]
    rows = []
    for c in comparisons:
        d = c.difference
        cats = [("" if d["categories"].get(k) is None else _signed(d["categories"][k]["mean"])) for k in CATEGORIES]
        label = LABELS.get(c.metric, c.metric) + (" (lower is better)" if c.lower_is_better else "")
        interval = "" if d["ci"] is None else f" [{_signed(d['ci'][0])}, {_signed(d['ci'][1])}]"
        rows.append([label, f"{c.new['mean']:.4f}", f"{c.base['mean']:.4f}", _signed(d["mean"]) + interval,
                     *cats, c.verdict])
    lines = [f"new:  {new.describe()}", f"base: {base.describe()}", ""]
    if markdown:
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
        lines += ["  ".join(str(cell).ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    n_objects = len({str(r["object_id"]) for r in new.rows})
    lines += ["", f"Paired over the same {len(new.rows)} items of {n_objects} objects (views averaged per object, "
                  "objects resampled within each category); n.s.: the interval includes 0."]
    return "\n".join(lines)


def as_json(comparisons: Sequence[MetricComparison], new: Evaluation, base: Evaluation) -> dict[str, Any]:
    """The comparison as ``{"new": path, "base": path, "metrics": {metric: {...}}}``."""
    return {
        "new": str(new.path),
        "base": str(base.path),
        "metrics": {
            c.metric: {"new": dict(c.new), "base": dict(c.base), "difference": c.difference,
                       "lower_is_better": c.lower_is_better, "verdict": c.verdict}
            for c in comparisons
        },
    }
