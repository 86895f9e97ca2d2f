"""Seconds per experiment stage, summed over invocations (stage_times.py), and where reports show them."""

from __future__ import annotations

import json
import time

import pytest

from stereo_occ.report.html import _timings
from stereo_occ.report.markdown import timings_table
from stereo_occ.stage_times import StageTimes, timing_rows


def test_each_stage_is_timed_and_saved_when_it_ends(tmp_path):
    path = tmp_path / "timings.json"
    times = StageTimes(path)
    with times("dataset"):
        time.sleep(0.05)
    saved = json.loads(path.read_text())
    assert saved["invocations"] == 1 and list(saved["stages"]) == ["dataset"]
    assert 0.05 <= saved["stages"]["dataset"] < 1.0
    with times("train mono"):
        pass
    assert list(json.loads(path.read_text())["stages"]) == ["dataset", "train mono"]  # in the order they ran


def test_a_stage_that_fails_still_counts_and_a_resumed_run_adds_to_the_totals(tmp_path):
    path = tmp_path / "timings.json"
    first = StageTimes(path)
    with pytest.raises(KeyboardInterrupt):
        with first("train rig-stereo"):
            time.sleep(0.05)
            raise KeyboardInterrupt  # killed in the middle of training
    spent = json.loads(path.read_text())["stages"]["train rig-stereo"]
    assert spent >= 0.05

    second = StageTimes(path)  # the resumed run
    with second("train rig-stereo"):
        time.sleep(0.05)
    saved = json.loads(path.read_text())
    assert saved["invocations"] == 2
    assert saved["stages"]["train rig-stereo"] == pytest.approx(spent + 0.05, abs=0.05)
    assert saved["total_seconds"] == pytest.approx(sum(saved["stages"].values()), abs=0.2)


def test_an_unreadable_file_starts_afresh(tmp_path):
    path = tmp_path / "timings.json"
    path.write_text("{not json")
    times = StageTimes(path)
    assert times.invocations == 1 and times.stages == {}


def test_reports_show_each_stage_with_its_share():
    timings = {"stages": {"dataset": 90.0, "train rig-stereo": 270.0}, "total_seconds": 360.0, "invocations": 1}
    assert timing_rows(timings) == [("dataset", 90.0, 0.25), ("train rig-stereo", 270.0, 0.75)]
    table = timings_table({"timings": timings}).splitlines()
    assert table[2] == "| dataset | 90 | 25% |" and table[3] == "| train rig-stereo | 270 | 75% |"
    assert "**360** (6.0 min)" in table[-1]
    html = _timings(timings)
    assert "train rig-stereo" in html and "75%" in html and "6 min 00 s" in html and "times the command ran" not in html
    assert "summed over the 3 times the command ran" in _timings({**timings, "invocations": 3})
    assert 'width:200px' in html and 'width:67px' in html  # bars against the longest stage
    assert timings_table({}) == "" and _timings(None) == ""  # results written before session 29
