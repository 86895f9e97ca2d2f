"""Confidence intervals for the evaluation metrics, and paired differences between models.

Why: a test split of a few dozen objects gives means that move by several IoU points from one draw
of objects to the next. A difference between two models is evidence only when its interval
excludes 0; otherwise the other sign was about as likely under a different set of test objects.

How (docs/evaluation.md, "Confidence intervals"):

* **Objects are the unit of resampling.** The views of one object are not independent (same shape,
  same difficulty), so the views of each object are averaged first and an object with 3 views is
  one sample. Resampling views would pretend there is 3 times as much data as there is.
* **Percentile bootstrap, stratified by category.** Each resample draws, within every category,
  as many objects as that category has, with replacement. The class mean (the mean of the category
  means, as :func:`stereo_occ.evaluation.metrics.summarize` defines ``"mean"``) is then defined in
  every resample and no category's weight changes between resamples.
* **Paired differences.** Two models evaluated on the same items are compared on the per-object
  differences, resampled with the same object indices for both models. Most of the spread between
  objects (an easy bowl is easy for both) cancels, so a paired interval is much narrower than the
  two separate intervals suggest. A model compared with itself gives exactly 0 and ``[0.0, 0.0]``.

The resampled indices depend only on the seed and the number of objects per category, so with the
same seed every model's interval and every paired difference use the same resamples.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..config import CATEGORIES
from ..errors import UserError
from .metrics import SUMMARY_METRICS

DEFAULT_METRICS = SUMMARY_METRICS

LABELS: dict[str, str] = {
    "iou": "IoU",
    "volume_precision": "volume precision",
    "volume_recall": "volume recall",
    "iou_lost_seen": "IoU lost where a view sees empty space",
    "iou_lost_surface": "IoU lost at a visible surface",
    "iou_lost_hidden": "IoU lost where both views are blind",
    "iou_lost_outside": "IoU lost outside an image",
    "iou_given_depth": "IoU given both views' depth",
    "mesh_iou": "mesh IoU",
    "chamfer_l1": "Chamfer-L1",
    "normal_consistency": "normal consistency",
    "fscore": "F-score",
}
"""How :func:`describe_difference` names a metric in a sentence."""

HIGHER_IS_BETTER: dict[str, bool] = {
    **dict.fromkeys(("iou", "volume_precision", "volume_recall", "iou_given_depth", "mesh_iou", "normal_consistency",
                     "fscore", "precision", "recall"), True),
    **dict.fromkeys(("chamfer_l1", "accuracy", "completeness", "iou_lost_seen", "iou_lost_surface", "iou_lost_hidden",
                     "iou_lost_outside"), False),
}
"""Every per-object metric of an evaluation that compares models, and whether a larger value is the
better model (distances and the IoU lost in each visibility class are better smaller)."""

Rows = Sequence[Mapping[str, Any]]


def _value(row: Mapping[str, Any], metric: str) -> float:
    if metric not in row:
        raise UserError(
            f"per-object results of {row.get('object_id', '?')} (view {row.get('view', '?')}) have no {metric!r}"
        )
    value = row[metric]
    return math.nan if value is None else float(value)


def object_means(per_object: Rows, metric: str) -> tuple[list[str], list[str], np.ndarray]:
    """``(object_ids, categories, values)``: ``metric`` averaged over the views of each object.

    Objects are listed in the order they first appear. An object with 3 views is one sample.
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    cats: dict[str, str] = {}
    for row in per_object:
        oid = str(row["object_id"])
        category = str(row["category"])
        if oid in cats and cats[oid] != category:
            raise UserError(f"object {oid} is listed as both {cats[oid]} and {category}")
        cats.setdefault(oid, category)
        sums[oid] = sums.get(oid, 0.0) + _value(row, metric)
        counts[oid] = counts.get(oid, 0) + 1
    ids = list(cats)
    values = np.array([sums[i] / counts[i] for i in ids], dtype=np.float64)
    return ids, [cats[i] for i in ids], values


def _check(n_resamples: int, level: float) -> None:
    if int(n_resamples) < 1:
        raise UserError(f"the bootstrap needs at least 1 resample (got {n_resamples})")
    if not 0.0 < float(level) < 1.0:
        raise UserError(f"confidence level must lie between 0 and 1 (got {level})")


def _resampled_category_means(
    values: np.ndarray, cats: Sequence[str], categories: Sequence[str], n_resamples: int, seed: int
) -> tuple[dict[str, float | None], dict[str, np.ndarray | None]]:
    """Per category: the mean of its objects, and its mean in each of ``n_resamples`` resamples.

    One ``(n_resamples, n)`` index matrix per category, drawn in the order of ``categories`` from one
    generator: the draws depend only on the seed and the counts, not on the values.
    """
    rng = np.random.default_rng(seed)
    cats_arr = np.asarray(cats, dtype=object)
    point: dict[str, float | None] = {}
    resampled: dict[str, np.ndarray | None] = {}
    for category in categories:
        v = values[cats_arr == category]
        if len(v) == 0:
            point[category], resampled[category] = None, None
            continue
        point[category] = float(v.mean())
        if len(v) == 1:  # one object says nothing about the spread: no interval
            resampled[category] = None
            continue
        index = rng.integers(0, len(v), size=(n_resamples, len(v)))
        resampled[category] = v[index].mean(axis=1)
    return point, resampled


def _interval(samples: np.ndarray, level: float) -> list[float]:
    alpha = (1.0 - level) / 2.0
    lo, hi = np.percentile(samples, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    # A constant sample gives exactly its value (percentile interpolation could round otherwise).
    if samples.min() == samples.max():
        lo = hi = samples[0]
    return [float(lo), float(hi)]


def _class_mean(
    point: Mapping[str, float | None], resampled: Mapping[str, np.ndarray | None]
) -> np.ndarray | None:
    """The class mean in every resample; None when a category present has too few objects to resample."""
    if any(point[c] is not None and resampled[c] is None for c in point):
        return None
    present = [r for r in resampled.values() if r is not None]
    return np.mean(np.stack(present), axis=0) if present else None


def bootstrap_ci(
    per_object: Rows,
    metric: str,
    categories: Sequence[str] = CATEGORIES,
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, list[float] | None]:
    """Percentile bootstrap interval of each category's mean of ``metric`` and of the class mean.

    ``{category: [lo, hi], ..., "mean": [lo, hi]}``; objects (views averaged) are resampled with
    replacement within each category. A category without objects gets ``None``, and so does one with a
    single object (nothing to resample: the data say nothing about its spread); then the class mean
    gets no interval either.
    """
    _check(n_resamples, level)
    _, cats, values = object_means(per_object, metric)
    point, resampled = _resampled_category_means(values, cats, categories, int(n_resamples), seed)
    out: dict[str, list[float] | None] = {
        c: None if r is None else _interval(r, level) for c, r in resampled.items()
    }
    mean = _class_mean(point, resampled)
    out["mean"] = None if mean is None else _interval(mean, level)
    return out


def _items(rows: Rows, which: str) -> dict[tuple[str, int], Mapping[str, Any]]:
    items: dict[tuple[str, int], Mapping[str, Any]] = {}
    for row in rows:
        key = (str(row["object_id"]), int(row["view"]))
        if key in items:
            raise UserError(f"{which}: object {key[0]} view {key[1]} is listed twice")
        items[key] = row
    return items


def _describe_keys(keys: Sequence[tuple[str, int]], limit: int = 5) -> str:
    shown = ", ".join(f"{o} view {v}" for o, v in sorted(keys)[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _paired_rows(
    per_object_a: Rows, per_object_b: Rows, metric: str, names: Sequence[str] = ("A", "B")
) -> list[dict[str, Any]]:
    """One row per item of A: its object, category, view and ``metric`` of A minus that of B."""
    name_a, name_b = names
    a, b = _items(per_object_a, f"model {name_a}"), _items(per_object_b, f"model {name_b}")
    only_a = [k for k in a if k not in b]
    only_b = [k for k in b if k not in a]
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"only in {name_a}: {_describe_keys(only_a)}")
        if only_b:
            parts.append(f"only in {name_b}: {_describe_keys(only_b)}")
        raise UserError(
            f"cannot pair the results of {name_a} and {name_b}: they were evaluated on different items "
            f"({'; '.join(parts)})"
        )
    rows = []
    for key, row_a in a.items():
        row_b = b[key]
        if str(row_a["category"]) != str(row_b["category"]):
            raise UserError(
                f"object {key[0]} is a {row_a['category']} in the results of {name_a} and a "
                f"{row_b['category']} in those of {name_b}"
            )
        rows.append(
            {
                "object_id": key[0],
                "category": row_a["category"],
                "view": key[1],
                metric: _value(row_a, metric) - _value(row_b, metric),
            }
        )
    return rows


def significant(ci: list[float] | None) -> bool:
    """Whether a difference's interval excludes 0 (the report's and the README's "n.s." otherwise)."""
    return ci is not None and (ci[0] > 0.0 or ci[1] < 0.0)


def paired_difference(
    per_object_a: Rows,
    per_object_b: Rows,
    metric: str,
    categories: Sequence[str] = CATEGORIES,
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    names: Sequence[str] = ("A", "B"),
) -> dict[str, Any]:
    """A minus B on ``metric``, paired on (object_id, view), with a bootstrap interval.

    ``{"mean": d, "ci": [lo, hi], "significant": bool, "categories": {c: {"mean": d, "ci": [lo, hi]}
    or None}}``; ``d`` is the difference of the class means, ``significant`` says the interval
    excludes 0. Computed on the per-object differences (views averaged) with the same resampled
    objects for both models, so a model against itself gives exactly 0 and ``[0.0, 0.0]``.
    :class:`UserError` when the two lists do not hold the same items (``names`` name A and B there).
    """
    _check(n_resamples, level)
    rows = _paired_rows(per_object_a, per_object_b, metric, names)
    _, cats, values = object_means(rows, metric)
    point, resampled = _resampled_category_means(values, cats, categories, int(n_resamples), seed)
    per_category: dict[str, dict[str, Any] | None] = {}
    for category in categories:
        r = resampled[category]
        per_category[category] = (
            None if point[category] is None else {"mean": point[category], "ci": None if r is None else _interval(r, level)}
        )
    present = [v for v in point.values() if v is not None]
    mean = float(np.mean(present)) if present else None
    class_mean = _class_mean(point, resampled)
    ci = None if class_mean is None else _interval(class_mean, level)
    return {"mean": mean, "ci": ci, "significant": significant(ci), "categories": per_category}


def evidence(
    per_object_by_model: Mapping[str, Rows],
    metrics: Sequence[str] = DEFAULT_METRICS,
    categories: Sequence[str] = CATEGORIES,
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Intervals for every model and paired differences for every pair of models.

    Returns ``(intervals, differences)``: ``intervals[name] = {"<metric>_ci": bootstrap_ci(...)}``;
    for models ``i < j`` in the mapping's order, ``differences["<j>-<i>"] = {metric:
    paired_difference(j, i), ..., "n_objects": n, "n_items": m, "models": [j, i]}`` (later minus
    earlier, so models ``[mono, stereo]`` give ``"stereo-mono"``).
    """
    names = list(per_object_by_model)
    kwargs = {"categories": categories, "n_resamples": n_resamples, "seed": seed, "level": level}
    intervals = {
        name: {f"{metric}_ci": bootstrap_ci(per_object_by_model[name], metric, **kwargs) for metric in metrics}
        for name in names
    }
    differences: dict[str, dict[str, Any]] = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            rows_a, rows_b = per_object_by_model[a], per_object_by_model[b]
            entry: dict[str, Any] = {
                metric: paired_difference(rows_b, rows_a, metric, names=(b, a), **kwargs) for metric in metrics
            }
            entry["n_objects"] = len({str(r["object_id"]) for r in rows_b})
            entry["n_items"] = len(rows_b)
            entry["models"] = [b, a]
            differences[f"{b}-{a}"] = entry
    return intervals, differences


def decimals(*values: float) -> int:
    """At least 3 decimals, more when needed to show 2 significant digits of the largest value."""
    scale = max((abs(v) for v in values if v), default=0.0)
    if scale == 0.0 or not math.isfinite(scale):
        return 3
    return int(min(6, max(3, 1 - math.floor(math.log10(scale)))))


def describe_difference(
    name: str,
    metric: str,
    diff: Mapping[str, Any] | None,
    higher_is_better: bool,
    models: Sequence[str] | None = None,
    level: float = 0.95,
) -> str:
    """One plain sentence about a :func:`paired_difference` result, for the report.

    ``name`` is the pair's key ``"B-A"`` (B minus A); ``models = (B, A)`` names them when a model's
    name holds a ``-``. E.g. ``"stereo-mono: stereo's IoU is higher by 0.066 (95% CI 0.031 to
    0.102): significant."``
    """
    label = LABELS.get(metric, metric)
    if models is not None and len(models) == 2:
        b, a = str(models[0]), str(models[1])
    else:
        b, _, a = name.partition("-")
    d = diff.get("mean") if isinstance(diff, Mapping) else None
    ci = diff.get("ci") if isinstance(diff, Mapping) else None
    if not isinstance(d, (int, float)) or not isinstance(ci, Sequence) or len(ci) != 2 or None in ci:
        return f"{name}: no {label} difference could be computed (no objects in common)."
    lo, hi = float(ci[0]), float(ci[1])
    places = decimals(d, lo, hi)
    pct = f"{100 * level:g}%"
    interval = f"({pct} CI {lo:.{places}f} to {hi:.{places}f})"
    real = significant([lo, hi])
    if d == 0:
        text = f"{name}: {b}'s {label} is the same as {a}'s {interval}"
    else:
        direction = "higher" if d > 0 else "lower"
        text = f"{name}: {b}'s {label} is {direction} by {abs(d):.{places}f} {interval}"
        if not higher_is_better:
            winner = b if d < 0 else a
            text += f"; lower is better, so {winner} {'is' if real else 'looks'} better"
    if real:
        return text + ": significant."
    return text + ": not significant: the interval includes 0."
