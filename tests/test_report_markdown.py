"""The README's tables from results.json (report/markdown.py)."""

from __future__ import annotations

import json

import pytest

from stereo_occ.report.markdown import differences_table, main, model_table, visibility_table
from test_report_evidence import _diff, _results


def _complete() -> dict:
    results = _results()
    for entry in results["models"].values():
        entry.update(threshold=0.45, best_iteration=150)
    return results


def test_the_model_table_has_a_row_per_model_and_the_study_beside_them():
    table = model_table(_complete()).splitlines()
    assert len(table) == 2 + 2 + 2  # header, rule, two models, the study's two
    mono = table[2].split(" | ")
    assert mono[0] == "| mono" and mono[1:4] == ["0.171", "0.181", "0.191"]  # mug, bowl, bottle
    assert "**0.181** [0.151, 0.212]" in table[2] and "0.120 [0.101, 0.139]" in table[2]  # real meshes
    assert "200 (150)" in table[2] and table[2].endswith("| 120 s |")
    assert "0.1896" in table[4] and "0.1153" in table[5]
    assert all(row.count("|") == table[0].count("|") for row in table)


def test_the_differences_table_marks_what_is_not_significant():
    results = _complete()
    results["differences"]["stereo-mono"]["iou"]["categories"]["mug"] = {"mean": -0.004, "ci": [-0.01, 0.002]}
    row = differences_table(results).splitlines()[2]
    assert row.startswith("| stereo - mono | +0.021 [+0.005, +0.037] | -0.004 (n.s.) | +0.021 | +0.021 |")
    assert row.endswith("| -0.011 [-0.043, +0.019] (n.s.) |")  # real meshes
    results["differences"]["stereo-mono"]["iou"] = _diff(0.004, -0.002, 0.01)
    assert "+0.004 [-0.002, +0.010] (n.s.)" in differences_table(results)


def test_the_command_prints_both_tables_and_refuses_a_missing_file(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_complete()))
    main([str(path)])
    out = capsys.readouterr().out
    assert "| stereo - mono |" in out and "| stereo (the study, Table 1) |" in out
    assert "not evaluated" in out  # the stereo model's real meshes were missing
    with pytest.raises(SystemExit, match="no such file"):
        main([str(tmp_path / "nothing.json")])


def test_the_visibility_table_splits_what_each_model_lost():
    results = _complete()
    assert visibility_table(results) == ""  # results written before session 30 have no such fields
    for entry, (lost_seen, lost_hidden) in zip(results["models"].values(), ((0.20, 0.60), (0.05, 0.70))):
        iou = entry["iou"]
        entry["iou_lost_seen"] = {c: lost_seen for c in iou}
        entry["iou_lost_surface"] = {c: 0.0 for c in iou}
        entry["iou_lost_hidden"] = {c: lost_hidden for c in iou}
        entry["iou_lost_outside"] = {c: 0.0 for c in iou}
        entry["iou_given_depth"] = {c: v + 0.1 for c, v in iou.items()}
    rows = visibility_table(results).splitlines()
    assert len(rows) == 2 + 2
    mono = rows[2].split(" | ")
    assert mono[1] == "0.171 / 0.181 / 0.191: 0.181" and mono[2] == "0.271 / 0.281 / 0.291: 0.281"
    assert mono[3] == "0.200 / 0.200 / 0.200: 0.200" and rows[2].endswith("| 75% |")  # 0.60 of 0.80 lost
    assert rows[3].endswith("| 93% |")  # 0.70 of 0.75
    results["models"]["mono"]["iou_given_depth"]["bowl"] = None  # a category without test objects
    assert visibility_table(results).splitlines()[2].split(" | ")[2] == "0.271 / – / 0.291: 0.281"
    del results["models"]["stereo"]["iou_given_depth"]
    assert len(visibility_table(results).splitlines()) == 3  # a model without the fields has no row
