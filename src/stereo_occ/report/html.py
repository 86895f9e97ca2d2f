"""The experiment report: one self-contained HTML file.

Self-contained because reports get mailed, attached to tickets and opened years later: every image is
embedded as a base64 PNG and there is no script or stylesheet from the network. Only the meshes stay
outside (too big to embed); they are linked by paths relative to the report, so the experiment folder
can be moved or zipped as a whole.

The results table stands beside the study's own Table 1 so that a reader sees at once whether the
reproduction reaches (or beats) the published numbers, and on which data it was measured. Means
carry their 95% bootstrap intervals over test objects where the results have them, and "Is the
difference real?" says in words which differences between models exclude 0
(evaluation/statistics.py). Results written before the intervals existed still render: the plain
values are shown.
"""

from __future__ import annotations

import base64
import html
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..config import CATEGORIES, RigConfig
from ..errors import UserError
from ..evaluation.statistics import HIGHER_IS_BETTER, describe_difference
from ..files import write_atomic
from ..stage_times import timing_rows
from .figures import ReconstructionFigure, read_training_log, training_curves_png

STUDY_IOU: dict[str, float] = {"mono": 0.1896, "stereo": 0.1153}
"""Volumetric IoU of "Stereo Occupancy Networks", Table 1 (ShapeNet mugs, bowls, bottles)."""
STUDY_ITERATIONS = 40_000

METRICS: tuple[tuple[str, str, bool, int], ...] = tuple(
    # key in results, column title, higher is better, decimals
    (key, title, HIGHER_IS_BETTER[key], 4)
    for key, title in (("iou", "IoU"), ("mesh_iou", "mesh IoU"), ("chamfer_l1", "Chamfer-L1"),
                       ("normal_consistency", "normal consistency"), ("fscore", "F-score"))
)
"""The headline table's metrics, in its column order."""

VOLUME_METRICS: tuple[tuple[str, str, bool, int], ...] = tuple(
    (key, title, HIGHER_IS_BETTER[key], 4) for key, title in (("volume_precision", "volume precision"),
                                                               ("volume_recall", "volume recall"))
)
"""Per category only: whether IoU is lost to over-filling (precision) or to missed parts (recall)."""

CATEGORY_METRICS = METRICS[:1] + VOLUME_METRICS + METRICS[1:]

CSS = """
:root { --ink:#1d2330; --muted:#5d6678; --line:#dfe3ea; --soft:#f5f7fa; --accent:#2f6fdb; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0; background: #fff; }
main { max-width: 1240px; margin: 0 auto; padding: 28px 28px 60px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.meta, .note { color: var(--muted); }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: 14px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { background: var(--soft); font-weight: 600; }
td:first-child, th:first-child { text-align: left; }
tr.study td { color: var(--muted); font-style: italic; background: #fbfbfd; }
td.best { font-weight: 700; }
.scroll { overflow-x: auto; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 6px 0; }
.facts dt { color: var(--muted); } .facts dd { margin: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 24px; }
span.bar { display: inline-block; height: 10px; background: var(--accent); vertical-align: middle; }
td.num { text-align: right; }
img.curves { max-width: 100%; border: 1px solid var(--line); border-radius: 6px; }
table.figure td, table.figure th { text-align: center; vertical-align: top; border: none; padding: 4px;
                                   background: none; }
table.figure img { width: 150px; height: 150px; image-rendering: auto; border: 1px solid var(--line);
                   border-radius: 4px; display: block; }
table.figure .cat { vertical-align: middle; text-align: right; color: var(--muted); font-weight: 600; }
table.figure .caption { font-size: 12px; }
details { margin: 6px 0; } summary { cursor: pointer; color: var(--accent); }
ul.meshes { columns: 3; font-size: 13px; }
pre { background: var(--soft); padding: 10px; border-radius: 6px; overflow-x: auto; font-size: 12.5px; }
.ci { color: var(--muted); font-size: 12.5px; }
td.sig { font-weight: 700; }
td.missing { text-align: left; color: var(--muted); white-space: normal; }
ul.evidence { margin: 8px 0; padding-left: 22px; } ul.evidence li { margin: 3px 0; }
ul.evidence li.sig { font-weight: 600; }
"""


@dataclass
class ReportInputs:
    """Everything the report shows. Only ``results`` is required; missing parts are left out.

    ``results`` has the ``results.json`` schema (docs/experiment.md). ``training_logs`` maps a model
    name to its ``metrics.csv``; ``mesh_folders`` to the folder of its evaluated meshes.
    """

    results: Mapping[str, Any]
    training_logs: Mapping[str, Path] | None = None
    figure: ReconstructionFigure | None = None
    mesh_folders: Mapping[str, Path] | None = None
    config: Mapping[str, Any] | None = None  # to_dict(cfg) of the experiment's config
    title: str = "Stereo occupancy networks: experiment report"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, decimals: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "&ndash;"
    if isinstance(value, (int, float)):
        return f"{value:.{decimals}f}"
    return _e(value)


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or math.isnan(seconds):
        return "&ndash;"
    s = int(round(seconds))
    if s < 120:
        return f"{seconds:.1f} s"
    h, rem = divmod(s, 3600)
    return f"{h} h {rem // 60:02d} min" if h else f"{rem // 60} min {rem % 60:02d} s"


def _precision(precision: Any) -> str:
    """`` (bf16)`` after a training time where the run trained in bf16 (fp32, and older runs, say nothing)."""
    return f" ({_e(precision)})" if precision and precision != "fp32" else ""


def _img(data: bytes, alt: str, cls: str = "") -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img class="{cls}" alt="{_e(alt)}" src="data:image/png;base64,{b64}">'


def _link(target: Path, base: Path) -> str:
    """A relative URL from the report's folder, so the experiment folder can move as a whole."""
    rel = os.path.relpath(Path(target).resolve(), base.resolve())
    return html.escape(Path(rel).as_posix(), quote=True)


def _mean(metric: Any) -> Any:
    return metric.get("mean") if isinstance(metric, Mapping) else None


def _best(values: list[Any], higher: bool) -> Any:
    nums = [v for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    if len(nums) < 2 or min(nums) == max(nums):  # nothing to single out
        return None
    return max(nums) if higher else min(nums)


CI_DECIMALS: dict[str, int] = {"chamfer_l1": 4}
"""Decimals of an interval's ends (3 unless listed): enough for intervals a few hundredths wide."""


def _ci(value: Any) -> tuple[float, float] | None:
    """``[lo, hi]`` as two finite numbers, or None (absent, ``null`` or malformed)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return None
    return float(value[0]), float(value[1])


def _ci_text(ci: Any, decimals: int = 3) -> str:
    bounds = _ci(ci)
    if bounds is None:
        return ""
    return f'<span class="ci">[{bounds[0]:.{decimals}f}, {bounds[1]:.{decimals}f}]</span>'


def _with_ci(value: Any, ci: Any, decimals: int = 4, ci_decimals: int = 3) -> str:
    """``0.2020 [0.171, 0.233]``; just the value when there is no interval."""
    text = _fmt(value, decimals)
    interval = _ci_text(ci, ci_decimals) if isinstance(value, (int, float)) else ""
    return f"{text} {interval}" if interval else text


def _test_set(objects: Any, views: Any) -> str:
    if not isinstance(objects, int) or isinstance(objects, bool):
        return "&ndash;"
    return f"{objects} &times; {views}" if isinstance(views, int) and not isinstance(views, bool) else str(objects)


def _results_table(results: Mapping[str, Any]) -> str:
    models: Mapping[str, Any] = results.get("models", {})
    names = list(models)
    head = (
        "<tr><th>model</th>"
        + "".join(f"<th>IoU {c}</th>" for c in CATEGORIES)
        + "<th>IoU mean [95% CI]</th><th>mesh IoU</th><th>Chamfer-L1</th><th>NC</th><th>F-score</th>"
        + "<th>test objects &times; views</th><th>threshold</th><th>iterations</th><th>training</th></tr>"
    )
    cols: list[tuple[str, Any, bool]] = []  # (label, getter, higher is better)
    for c in CATEGORIES:
        cols.append((f"iou.{c}", lambda m, c=c: (m.get("iou") or {}).get(c), True))
    cols.append(("iou.mean", lambda m: _mean(m.get("iou")), True))
    for key, _, higher, _ in METRICS[1:]:
        cols.append((key, lambda m, key=key: _mean(m.get(key)), higher))
    best = {label: _best([get(models[n]) for n in names], higher) for label, get, higher in cols}
    rows = []
    for name in names:
        m = models[name]
        cells = []
        for label, get, _ in cols:
            v = get(m)
            cls = ' class="best"' if v is not None and v == best[label] else ""
            text = _with_ci(v, _mean(m.get("iou_ci"))) if label == "iou.mean" else _fmt(v)
            cells.append(f"<td{cls}>{text}</td>")
        rows.append(
            f"<tr><td>{_e(name)}</td>{''.join(cells)}"
            f"<td>{_test_set(m.get('test_objects'), m.get('test_views_per_object'))}</td>"
            f"<td>{_fmt(m.get('threshold'), 2)}</td>"
            f"<td>{_e(m.get('iterations', '–'))}</td>"
            f"<td>{_duration(m.get('train_seconds'))}{_precision(m.get('train_precision'))}</td></tr>"
        )
    for name, iou in STUDY_IOU.items():
        blanks = "<td>&ndash;</td>" * len(CATEGORIES)
        rows.append(
            f'<tr class="study"><td>{_e(name)} (study, Table 1)</td>{blanks}<td>{iou:.4f}</td>'
            + "<td>&ndash;</td>" * 6
            + f"<td>{STUDY_ITERATIONS}</td><td>&ndash;</td></tr>"
        )
    source = (results.get("dataset") or {}).get("source", "unknown")
    note = (
        f'<p class="note">Study rows: "Stereo Occupancy Networks", Table 1, volumetric IoU after '
        f"{STUDY_ITERATIONS:,} iterations, measured on ShapeNet mugs, bowls and bottles. This run used "
        f"<b>{_e(source)}</b> shapes, so the numbers compare the methods, not the exact data. IoU: the "
        "network's, on uniform points of the padded box; mesh IoU: the extracted mesh's; "
        "Chamfer-L1 is in object units (lower is better); NC is normal consistency. Bold: best model. "
        "Brackets: 95% bootstrap interval of the mean over test objects (the views of an object are "
        "averaged first; docs/evaluation.md, Confidence intervals). Threshold: each model's decision "
        "threshold, chosen on the validation split during training (the test split takes no part).</p>"
    )
    budgets = {name: m.get("iterations") for name, m in models.items()}
    if len(set(budgets.values())) > 1:
        listed = ", ".join(f"{_e(name)} {n}" for name, n in budgets.items())
        note += (
            f'<p class="note"><b>The models trained for different numbers of iterations</b> ({listed}; '
            "<code>experiment.overrides</code> in the config): compare them knowing their budgets, "
            "which the training column also gives in time.</p>"
        )
    return f'<div class="scroll"><table>{head}{"".join(rows)}</table></div>{note}'


def _per_category_tables(models: Mapping[str, Any]) -> str:
    parts = []
    for key, title, higher, decimals in CATEGORY_METRICS:
        if not any(isinstance(m.get(key), Mapping) for m in models.values()):
            continue
        with_ci = any(_ci(_mean(m.get(f"{key}_ci"))) for m in models.values())
        head = (
            "<tr><th>model</th>"
            + "".join(f"<th>{c}</th>" for c in (*CATEGORIES, "mean"))
            + ("<th>mean: 95% CI</th>" if with_ci else "")
            + "</tr>"
        )
        rows = []
        for name, m in models.items():
            vals = m.get(key) or {}
            ci_cell = ""
            if with_ci:
                ci_cell = f"<td>{_ci_text(_mean(m.get(f'{key}_ci')), CI_DECIMALS.get(key, 3)) or '&ndash;'}</td>"
            rows.append(
                f"<tr><td>{_e(name)}</td>"
                + "".join(f"<td>{_fmt(vals.get(c), decimals)}</td>" for c in (*CATEGORIES, "mean"))
                + ci_cell
                + "</tr>"
            )
        arrow = "higher is better" if higher else "lower is better"
        parts.append(f"<div><h3>{_e(title)} <span class='note'>({arrow})</span></h3>"
                     f"<table>{head}{''.join(rows)}</table></div>")
    return f'<div class="cards">{"".join(parts)}</div>'


VISIBILITY_COLUMNS: tuple[str, ...] = (
    "IoU",
    "IoU given both views' depth",
    "IoU lost where a view sees empty space",
    "lost at a visible surface",
    "lost where both views are blind",
    "share of the lost IoU where both are blind",
)
"""The columns of "What the pair can see" (evaluation/visibility.py), the report's and the README's."""


def visibility_cells(m: Mapping[str, Any]) -> list[str] | None:
    """One model's row of "What the pair can see" as plain text, or None for results without it."""
    keys = ("iou", "iou_given_depth", "iou_lost_seen", "iou_lost_surface", "iou_lost_hidden")
    if not all(isinstance(m.get(key), Mapping) for key in keys):
        return None

    def number(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, (int, float)) and math.isfinite(value) else "–"

    def by_category(key: str) -> str:
        values = m[key]
        return " / ".join(number(values.get(c)) for c in CATEGORIES) + f": {number(values.get('mean'))}"

    lost = [_mean(m.get(key)) for key in ("iou_lost_seen", "iou_lost_surface", "iou_lost_hidden", "iou_lost_outside")]
    known = all(isinstance(v, (int, float)) for v in lost) and sum(lost) > 0
    return [by_category(key) for key in keys] + [f"{100 * lost[2] / sum(lost):.0f}%" if known else "–"]


def _visibility(models: Mapping[str, Any]) -> str:
    rows = [(name, visibility_cells(m)) for name, m in models.items()]
    rows = [(name, cells) for name, cells in rows if cells is not None]
    if not rows:
        return ""
    head = "<tr><th>model (mug / bowl / bottle: mean)</th>" + "".join(f"<th>{_e(c)}</th>" for c in VISIBILITY_COLUMNS) + "</tr>"
    body = "".join(f"<tr><td>{_e(name)}</td>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>" for name, cells in rows)
    note = (
        '<p class="note">Each point of the test items is classed by the true depth maps of the two views: '
        "seen empty (in front of either view's visible surface: a perfect stereo matcher knows it is "
        "empty), at a visible surface (up to 0.05 behind it: the visible wall, where a matcher pins the "
        "front but not the thickness), or blind (deeper behind both: only a shape prior can place it). "
        "IoU + the three losses (+ a little outside an image) = 1. IoU given both views' depth: the "
        "prediction with every point either view shows empty removed (docs/evaluation.md, &ldquo;What "
        "the pair can see&rdquo;).</p>"
    )
    return f'<div class="scroll"><table>{head}{body}</table></div>{note}'


DIFFERENCE_METRICS: tuple[str, ...] = ("iou", "mesh_iou", "chamfer_l1", "fscore")
"""The columns of the differences table."""

_TITLES = {key: title for key, title, _, _ in CATEGORY_METRICS}


def _difference_cell(diff: Any, key: str) -> str:
    """``+0.0660 [0.031, 0.102]``, bold when the interval excludes 0."""
    if not isinstance(diff, Mapping) or not isinstance(diff.get("mean"), (int, float)):
        return "<td>&ndash;</td>"
    d = float(diff["mean"])
    text = f"{d:+.4f}" if math.isfinite(d) else _fmt(d)
    interval = _ci_text(diff.get("ci"), CI_DECIMALS.get(key, 3))
    cls = ' class="sig"' if diff.get("significant") is True else ""
    return f"<td{cls}>{text}{' ' + interval if interval else ''}</td>"


def _pair_models(name: str, entry: Mapping[str, Any]) -> list[str] | None:
    models = entry.get("models")
    if isinstance(models, (list, tuple)) and len(models) == 2:
        return [str(m) for m in models]
    return None


def _differences(differences: Any, what: str) -> str:
    """The table of every pair and, below it, one sentence on the IoU of each pair."""
    if not isinstance(differences, Mapping):
        return ""
    pairs = {name: entry for name, entry in differences.items() if isinstance(entry, Mapping)}
    if not pairs:
        return ""
    head = (
        "<tr><th>pair (A&minus;B)</th><th>test objects / items</th>"
        + "".join(f"<th>&Delta; {_e(_TITLES.get(k, k))}</th>" for k in DIFFERENCE_METRICS)
        + "</tr>"
    )
    rows, sentences = [], []
    for name, entry in pairs.items():
        n_objects, n_items = entry.get("n_objects"), entry.get("n_items")
        count = "&ndash;" if n_objects is None else f"{_e(n_objects)} / {_e('?' if n_items is None else n_items)}"
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{count}</td>"
            + "".join(_difference_cell(entry.get(k), k) for k in DIFFERENCE_METRICS)
            + "</tr>"
        )
        if isinstance(entry.get("iou"), Mapping):
            sentence = describe_difference(name, "iou", entry["iou"], True, models=_pair_models(name, entry))
            cls = ' class="sig"' if entry["iou"].get("significant") is True else ""
            sentences.append(f"<li{cls}>{_e(sentence)}</li>")
    note = (
        f'<p class="note">{what} A&minus;B is model A minus model B on the same items (object and view); brackets: '
        "95% bootstrap interval of the difference of the class means, resampling objects within each "
        "category with the same objects for both models (paired). Bold: the interval excludes 0, so "
        "the difference is significant; otherwise a different draw of test objects could well reverse "
        "it. For Chamfer-L1 a negative difference means A is better.</p>"
    )
    listing = f'<ul class="evidence">{"".join(sentences)}</ul>' if sentences else ""
    return f'<div class="scroll"><table>{head}{"".join(rows)}</table></div>{listing}{note}'


def _real_meshes(models: Mapping[str, Any], real_differences: Any) -> str:
    """A row per model evaluated on the real-mesh folder, or the reason it was not."""
    reals = {
        name: m["real"] for name, m in models.items() if isinstance(m, Mapping) and isinstance(m.get("real"), Mapping)
    }
    if not reals:
        return ""
    head = (
        "<tr><th>model</th>"
        + "".join(f"<th>IoU {c}</th>" for c in CATEGORIES)
        + "<th>IoU mean [95% CI]</th><th>Chamfer-L1</th><th>objects &times; views</th><th>source</th></tr>"
    )
    rows = []
    for name, real in reals.items():
        source = f"<td><code>{_e(real['source'])}</code></td>" if real.get("source") else "<td>&ndash;</td>"
        if "missing" in real:
            rows.append(
                f'<tr><td>{_e(name)}</td><td class="missing" colspan="{len(CATEGORIES) + 3}">'
                f"not evaluated: {_e(real['missing'])}</td>{source}</tr>"
            )
            continue
        iou = real.get("iou") if isinstance(real.get("iou"), Mapping) else {}
        chamfer = real.get("chamfer_l1")
        rows.append(
            f"<tr><td>{_e(name)}</td>"
            + "".join(f"<td>{_fmt(iou.get(c))}</td>" for c in CATEGORIES)
            + f"<td>{_with_ci(iou.get('mean'), _mean(real.get('iou_ci')))}</td>"
            + f"<td>{_with_ci(_mean(chamfer), _mean(real.get('chamfer_l1_ci')), 4, CI_DECIMALS['chamfer_l1'])}</td>"
            + f"<td>{_test_set(real.get('n_objects'), real.get('views_per_object'))}</td>"
            + source
            + "</tr>"
        )
    note = (
        '<p class="note">The same metrics, with the models trained above, on the objects of the '
        "real-mesh folder named in the last column (brackets: 95% bootstrap interval over objects).</p>"
    )
    parts = [f'<div class="scroll"><table>{head}{"".join(rows)}</table></div>', note]
    diffs = _differences(real_differences, "On the real meshes:")
    if diffs:
        parts += ["<h3>Differences on the real meshes</h3>", diffs]
    return "".join(parts)


def _facts(items: list[tuple[str, Any]]) -> str:
    body = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items if v not in (None, ""))
    return f'<dl class="facts">{body}</dl>'


def _machine(machine: Mapping[str, Any]) -> str:
    return _facts(
        [
            ("CPU", machine.get("cpu")),
            ("cores", machine.get("cores")),
            ("GPU", machine.get("gpu") or "none"),
            ("torch", machine.get("torch")),
            ("Python", machine.get("python")),
            ("platform", machine.get("platform")),
        ]
    )


def _timings(timings: Any) -> str:
    """Seconds per stage of the experiment (``results["timings"]``, :mod:`stereo_occ.stage_times`),
    each with its share of the total as a bar: what to cut when the run is too slow."""
    if not isinstance(timings, Mapping) or not timings.get("stages"):
        return ""
    stages = timing_rows(timings)
    longest = max(share for _, _, share in stages) or 1.0  # the longest stage's bar is 200 px wide
    rows = "".join(
        f'<tr><td>{_e(stage)}</td><td class="num">{_duration(seconds)}</td>'
        f'<td><span class="bar" style="width:{200 * share / longest:.0f}px"></span> {100 * share:.0f}%</td></tr>'
        for stage, seconds, share in stages
    )
    invocations = int(timings.get("invocations", 1) or 1)
    resumed = f", summed over the {invocations} times the command ran in this folder" if invocations > 1 else ""
    note = (f'<p class="note">Wall-clock time of each stage up to the results, {_duration(timings.get("total_seconds"))} '
            f"in all{_e(resumed)} (timings.json in the experiment's folder).</p>")
    return f'<div class="scroll"><table><tr><th>stage</th><th>time</th><th>share</th></tr>{rows}</table></div>{note}'


STUDY_FOV_DEG = RigConfig().fov_deg


def _field_of_view(dataset: Mapping[str, Any]) -> str | None:
    """The rig's field of view and the sphere it was narrowed to (the study's rig: 60 degrees)."""
    fov, radius = dataset.get("fov_deg"), dataset.get("object_radius")
    if fov is None:
        return None
    text = f"{fov:g} degrees" + ("" if fov == STUDY_FOV_DEG else f" (the study's rig: {STUDY_FOV_DEG:g})")
    if radius is not None:
        text += f"; every object lies within {radius:.3g} object units of its centre at any rotation"
    return text


def _dataset(dataset: Mapping[str, Any]) -> str:
    counts = dataset.get("counts") or {}
    items: list[tuple[str, Any]] = [
        ("shape source", dataset.get("source")),
        ("views per object", dataset.get("views_per_object")),
        ("image size", f"{dataset['image_size']} x {dataset['image_size']} px" if "image_size" in dataset else None),
        ("field of view", _field_of_view(dataset)),
        ("occupancy points", dataset.get("occupancy_points")),
    ]
    table = ""
    if counts:
        head = "<tr><th>split</th>" + "".join(f"<th>{c}</th>" for c in (*CATEGORIES, "total")) + "</tr>"
        rows = "".join(
            f"<tr><td>{_e(split)}</td>"
            + "".join(f"<td>{_e((per or {}).get(c, 0))}</td>" for c in (*CATEGORIES, "total"))
            + "</tr>"
            for split, per in counts.items()
        )
        table = f"<table>{head}{rows}</table>"
    return _facts(items) + table


def _figure(figure: ReconstructionFigure, base: Path) -> str:
    from .figures import load_image, png_bytes

    head = "<tr><th></th>" + "".join(f"<th>{_e(c)}</th>" for c in figure.columns) + "</tr>"
    rows = []
    for row in figure.rows:
        cells = []
        for column in figure.columns:
            if column not in row.images:
                cells.append("<td>&ndash;</td>")
                continue
            img = _img(png_bytes(load_image(row.images[column])), f"{row.object_id}: {column}")
            mesh = row.meshes.get(column)
            caption = (
                f'<div class="caption"><a href="{_link(mesh, base)}">{_e(Path(mesh).name)}</a></div>'
                if mesh is not None
                else ""
            )
            cells.append(f"<td>{img}{caption}</td>")
        rows.append(
            f'<tr><td class="cat">{_e(row.category)}<br><span class="caption">{_e(row.object_id)}'
            f"</span></td>{''.join(cells)}</tr>"
        )
    return (
        f'<table class="figure">{head}{"".join(rows)}</table>'
        '<p class="note">Every mesh is seen from the left camera of the same view as the input image, '
        "in one grey material under the same lights. Links open the mesh files (PLY, rig frame).</p>"
    )


def _mesh_lists(mesh_folders: Mapping[str, Path], base: Path) -> str:
    parts = []
    for name, folder in mesh_folders.items():
        files = sorted(Path(folder).rglob("*.ply")) if Path(folder).is_dir() else []
        if not files:
            continue
        items = "".join(
            f'<li><a href="{_link(f, base)}">{_e(f.relative_to(folder).with_suffix("").as_posix())}</a></li>'
            for f in files
        )
        parts.append(
            f"<details><summary>{_e(name)}: {len(files)} meshes</summary><ul class='meshes'>{items}</ul></details>"
        )
    return "".join(parts)


def _get(tree: Mapping[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


CONFIG_SUMMARY: tuple[tuple[str, str], ...] = (
    ("models", "experiment.models"),
    ("iterations", "train.iterations"),
    ("batch size", "train.batch_size"),
    ("learning rate", "train.lr"),
    ("points per sample", "data.points_per_sample"),
    ("image size (px)", "dataset.rig.image_size"),
    ("views per object", "dataset.render.views_per_object"),
    ("mugs / bowls / bottles", "dataset.shapes"),
    ("IoU threshold", "eval.threshold"),
    ("MISE resolution / steps", "eval"),
)


def _config_summary(config: Mapping[str, Any]) -> str:
    items: list[tuple[str, Any]] = []
    for label, key in CONFIG_SUMMARY:
        value = _get(config, key)
        if key == "dataset.shapes" and isinstance(value, Mapping):
            value = " / ".join(str(value.get(c, "?")) for c in CATEGORIES)
        elif key == "eval.threshold" and value is None:
            value = "chosen per model on the validation split (results table)"
        elif key == "eval" and isinstance(value, Mapping):
            value = f"{value.get('mise_resolution')} / {value.get('mise_steps')}"
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        items.append((label, value))
    return _facts(items)


def render_report(inputs: ReportInputs, base: Path) -> str:
    """The report's HTML text; relative links are computed from folder ``base``."""
    results = inputs.results
    if not isinstance(results.get("models"), Mapping):
        raise UserError("results have no 'models' section; not an experiment's results")
    models: Mapping[str, Any] = results["models"]
    sections = [
        f"<h1>{_e(inputs.title)}</h1>",
        f'<p class="meta">{_e(results.get("date", ""))} &middot; models: {_e(", ".join(models))}</p>',
        '<div class="cards"><div><h3>Machine</h3>',
        _machine(results.get("machine") or {}),
        "</div>",
        f"<div><h3>Configuration</h3>{_config_summary(inputs.config)}</div>" if inputs.config else "",
        "</div>",
        "<h2>Results</h2>",
        _results_table(results),
        "<h3>Per category</h3>",
        _per_category_tables(models),
    ]
    differences = _differences(results.get("differences"), "On the test split:")
    if differences:
        sections += ["<h2>Is the difference real?</h2>", differences]
    visibility = _visibility(models)
    if visibility:
        sections += ["<h2>What the pair can see</h2>", visibility]
    real = _real_meshes(models, results.get("real_differences"))
    if real:
        sections += ["<h2>Real meshes</h2>", real]
    logs = {}
    for name, path in (inputs.training_logs or {}).items():
        if Path(path).is_file():
            logs[name] = read_training_log(path)
    if logs:
        sections += [
            "<h2>Training curves</h2>",
            _img(training_curves_png(logs), "training loss and validation IoU", "curves"),
            '<p class="note">Top: training loss (thin: per logged step, thick: running mean). Bottom: '
            "IoU on the validation split. Left against iterations, right against training time.</p>",
        ]
    if inputs.figure is not None and inputs.figure.rows:
        sections += ["<h2>Reconstructions</h2>", _figure(inputs.figure, base)]
    mesh_html = _mesh_lists(inputs.mesh_folders or {}, base)
    if mesh_html:
        sections += ["<h2>All test meshes</h2>", mesh_html]
    sections += [
        "<h2>Data</h2>",
        _dataset(results.get("dataset") or {}),
    ]
    timings = _timings(results.get("timings"))
    if timings:
        sections += ["<h2>Where the time went</h2>", timings]
    if inputs.config:
        from omegaconf import OmegaConf

        yaml_text = OmegaConf.to_yaml(OmegaConf.create(dict(inputs.config)))
        sections += [
            "<h2>Full configuration</h2>",
            f"<details><summary>YAML (reproduces this run with --config)</summary><pre>{_e(yaml_text)}</pre>"
            "</details>",
        ]
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(inputs.title)}</title><style>{CSS}</style></head>"
        f"<body><main>\n{body}\n</main></body></html>\n"
    )


def write_report(path: str | Path, inputs: ReportInputs) -> Path:
    """Write the report to ``path`` atomically (a reader never sees half a file); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, render_report(inputs, path.parent))
