"""`stereo-occ compare`: two evaluations of the same items, paired metric by metric (report/compare.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stereo_occ.cli import main
from stereo_occ.errors import UserError
from stereo_occ.evaluation.metrics import summarize
from stereo_occ.report.compare import Evaluation, compare, format_comparison


def _write(folder, rows, model="rig-stereo"):
    folder.mkdir(parents=True, exist_ok=True)
    results = {"model": model, "split": "test", "n_objects": len({r["object_id"] for r in rows}),
               "views_per_object": 2, "threshold": 0.4, "per_object": rows}
    (folder / "metrics.json").write_text(json.dumps(results))
    return folder


def _rows(seed, shift=0.0, chamfer_shift=0.0, extra=None):
    """Four objects a category, two views each, with IoU and Chamfer-L1 drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    rows = []
    for category in ("mug", "bowl", "bottle"):
        for i in range(4):
            for view in range(2):
                row = {"object_id": f"{category}{i}", "category": category, "view": view,
                       "iou": float(rng.uniform(0.2, 0.8)) + shift, "chamfer_l1": float(rng.uniform(0.02, 0.05)) + chamfer_shift}
                row.update(extra or {})
                rows.append(row)
    return rows


def test_a_constant_shift_is_measured_exactly_and_named_better(tmp_path):
    base_rows = _rows(0)
    new_rows = [{**r, "iou": r["iou"] + 0.05, "chamfer_l1": r["chamfer_l1"] + 0.01} for r in base_rows]
    new = Evaluation.load(_write(tmp_path / "new", new_rows))
    base = Evaluation.load(_write(tmp_path / "base", base_rows) / "metrics.json")  # a file works too
    comparison = compare(new, base)
    iou, chamfer = comparison.metrics
    assert iou.metric == "iou" and chamfer.metric == "chamfer_l1"  # the summary metrics both hold, in order
    assert iou.difference["mean"] == pytest.approx(0.05)
    assert iou.difference["ci"] == pytest.approx([0.05, 0.05])
    assert iou.new["mean"] - iou.base["mean"] == pytest.approx(0.05)
    assert iou.verdict == "better"
    # a larger distance is the worse model
    assert chamfer.lower_is_better and chamfer.verdict == "worse"
    text = format_comparison(comparison)
    assert "+0.050 [+0.050, +0.050]" in text and "Chamfer-L1 (lower is better)" in text


def test_noise_without_a_shift_is_not_significant(tmp_path):
    base_rows = _rows(0)
    rng = np.random.default_rng(1)
    new_rows = [{**r, "iou": r["iou"] + float(rng.normal(0.0, 0.05))} for r in base_rows]
    (iou,) = compare(Evaluation.load(_write(tmp_path / "a", new_rows)), Evaluation.load(_write(tmp_path / "b", base_rows)),
                     ["iou"]).metrics
    lo, hi = iou.difference["ci"]
    assert lo < 0 < hi and iou.verdict == "n.s."


def test_compared_with_itself_the_difference_is_zero(tmp_path):
    folder = _write(tmp_path / "same", _rows(3))
    (iou,) = compare(Evaluation.load(folder), Evaluation.load(folder), ["iou"]).metrics
    assert iou.difference["mean"] == 0.0 and iou.difference["ci"] == [0.0, 0.0] and iou.verdict == "n.s."


def test_evaluations_of_different_items_are_refused(tmp_path):
    rows = _rows(0)
    new = Evaluation.load(_write(tmp_path / "new", rows[:-2]))  # one object fewer
    base = Evaluation.load(_write(tmp_path / "base", rows))
    with pytest.raises(UserError, match="different items.*only in .*base.*bottle3"):
        compare(new, base)


def test_a_metric_one_evaluation_lacks(tmp_path):
    new = Evaluation.load(_write(tmp_path / "new", _rows(0, extra={"iou_lost_seen": 0.1})))
    base = Evaluation.load(_write(tmp_path / "base", _rows(0)))  # an evaluation from before the field existed
    comparison = compare(new, base)
    assert [c.metric for c in comparison.metrics] == ["iou", "chamfer_l1"]  # left out by default, and said so
    assert "left out: iou_lost_seen (missing for 24 items of base)" in format_comparison(comparison)
    with pytest.raises(UserError, match="base.*24 of its 24 items have no 'iou_lost_seen'"):
        compare(new, base, ["iou_lost_seen"])


def test_lower_means_worse_for_iou_and_better_for_distances(tmp_path):
    base_rows = _rows(0)
    new_rows = [{**r, "iou": r["iou"] - 0.05, "chamfer_l1": r["chamfer_l1"] - 0.01} for r in base_rows]
    iou, chamfer = compare(Evaluation.load(_write(tmp_path / "new", new_rows)),
                           Evaluation.load(_write(tmp_path / "base", base_rows))).metrics
    assert iou.verdict == "worse" and chamfer.verdict == "better"


def test_the_means_are_what_the_evaluation_reports(tmp_path):
    rows = _rows(5)
    (iou,) = compare(Evaluation.load(_write(tmp_path / "a", rows)), Evaluation.load(_write(tmp_path / "b", rows)),
                     ["iou"]).metrics
    assert iou.new == pytest.approx(summarize(rows, ["iou"])["iou"])


def test_a_category_with_one_object_has_no_interval(tmp_path):
    base_rows = [r for r in _rows(0) if r["category"] != "bottle" or r["object_id"] == "bottle0"]
    new_rows = [{**r, "iou": r["iou"] + 0.1} for r in base_rows]
    comparison = compare(Evaluation.load(_write(tmp_path / "new", new_rows)),
                         Evaluation.load(_write(tmp_path / "base", base_rows)), ["iou"])
    (iou,) = comparison.metrics
    assert iou.difference["ci"] is None and iou.verdict == "no interval"
    assert iou.difference["categories"]["bottle"]["mean"] == pytest.approx(0.1)
    assert "no interval: a category with a single object" in format_comparison(comparison)


@pytest.mark.parametrize("value", [None, float("nan")])
def test_an_item_without_a_number_is_named(tmp_path, value):
    rows = _rows(0)
    broken = [dict(r) for r in rows]
    broken[3]["chamfer_l1"] = value  # e.g. a distance that could not be measured
    with pytest.raises(UserError, match=r"chamfer_l1 of mug1 \(view 1\) is"):
        compare(Evaluation.load(_write(tmp_path / "new", broken)), Evaluation.load(_write(tmp_path / "base", rows)))


@pytest.mark.parametrize("metrics, message", [
    (["IoU"], "unknown metric 'IoU'; choose from iou, "),
    (["seconds"], "unknown metric 'seconds'"),  # a field of every item, but not a measure of quality
    ([], "names no metric"),
])
def test_metrics_that_cannot_be_compared(tmp_path, metrics, message):
    folder = _write(tmp_path / "e", _rows(0, extra={"seconds": 1.0}))
    with pytest.raises(UserError, match=message):
        compare(Evaluation.load(folder), Evaluation.load(folder), metrics)


def test_a_metric_asked_for_twice_is_compared_once(tmp_path):
    folder = _write(tmp_path / "e", _rows(0))
    assert [c.metric for c in compare(Evaluation.load(folder), Evaluation.load(folder), ["iou", "iou"]).metrics] == ["iou"]


@pytest.mark.parametrize("content, message", [
    (None, "no evaluation there"),
    ("{not json", "not a readable metrics.json"),
    ('{"iou": {"mean": 0.5}}', "no per-object results"),
])
def test_what_is_not_an_evaluation(tmp_path, content, message):
    folder = tmp_path / "eval"
    folder.mkdir()
    if content is not None:
        (folder / "metrics.json").write_text(content)
    with pytest.raises(UserError, match=message):
        Evaluation.load(folder)


def test_the_verb_prints_the_table_and_writes_json(tmp_path, capsys):
    base_rows = _rows(0)
    new = _write(tmp_path / "new", [{**r, "iou": r["iou"] + 0.1} for r in base_rows])
    base = _write(tmp_path / "base", base_rows, model="rig-mono")
    out = tmp_path / "cmp.json"
    main(["compare", str(new), str(base), "--metrics", "iou", "--markdown", "--json", str(out)])
    printed = capsys.readouterr().out
    assert "| IoU |" in printed and "| better |" in printed
    assert "12 objects x 2 views" in printed
    saved = json.loads(out.read_text())
    assert saved["metrics"]["iou"]["difference"]["mean"] == pytest.approx(0.1)
    assert saved["metrics"]["iou"]["verdict"] == "better"


def test_the_verb_reports_bad_input_without_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(tmp_path / "missing"), str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_output_cut_short_by_its_reader_is_no_error(tmp_path):
    """`stereo-occ compare A B | head -1`: no traceback when the reader closes the pipe first."""
    import subprocess
    import sys

    folder = _write(tmp_path / "e", _rows(0))
    script = (f"{sys.executable} -c 'from stereo_occ.cli import main; main()' compare {folder} {folder} "
              "| true")  # the reader is gone before the first line
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
