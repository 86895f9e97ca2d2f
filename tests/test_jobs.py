"""The job scheduler behind ``experiment --workers N``: order, side by side, logs, failures."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stereo_occ.errors import UserError
from stereo_occ.jobs import Job, order, run_jobs


def _stamp(path: Path, seconds: float) -> None:
    """Record when this job ran (start and end, wall clock) and say so on its output."""
    start = time.time()
    print(f"working on {path.name}")
    time.sleep(seconds)
    path.write_text(f"{start} {time.time()}")


def _fail(message: str) -> None:
    print("about to fail")
    raise UserError(message)


def _interval(path: Path) -> tuple[float, float]:
    start, end = path.read_text().split()
    return float(start), float(end)


def test_order_runs_each_job_after_what_it_needs_heaviest_chain_first():
    jobs = [
        Job("evaluate a", _stamp, after=("train a",)),
        Job("train a", _stamp, weight=100),
        Job("train b", _stamp, weight=1000),
        Job("evaluate b", _stamp, after=("train b",)),
        Job("figure", _stamp, after=("evaluate a", "evaluate b")),
    ]
    names = [j.name for j in order(jobs)]
    assert names[0] == "train b"  # the heaviest chain starts first
    assert names.index("train a") < names.index("evaluate a")
    assert names.index("train b") < names.index("evaluate b")
    assert names[-1] == "figure"
    # of two ready jobs with equal chains, the one listed first
    assert [j.name for j in order([Job("x", _stamp), Job("y", _stamp)])] == ["x", "y"]


def test_bad_job_lists_are_errors():
    with pytest.raises(ValueError, match="cycle"):
        order([Job("a", _stamp, after=("b",)), Job("b", _stamp, after=("a",))])
    with pytest.raises(ValueError, match="unknown"):
        order([Job("a", _stamp, after=("nothing",))])
    with pytest.raises(ValueError, match="two jobs"):
        order([Job("a", _stamp), Job("a", _stamp)])
    with pytest.raises(UserError, match="at least 1"):
        run_jobs([Job("a", _stamp)], workers=0)


def test_two_workers_run_independent_jobs_at_once_and_dependent_ones_after(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    logs = tmp_path / "logs"
    jobs = [
        Job("a", _stamp, (a, 1.5), log=logs / "a.log"),
        Job("b", _stamp, (b, 1.5), log=logs / "b.log"),
        Job("c", _stamp, (c, 0.1), after=("a", "b"), log=logs / "c.log"),
    ]
    said: list[str] = []
    seconds = run_jobs(jobs, workers=2, threads=1, say=said.append)
    (a0, a1), (b0, b1), (c0, _) = _interval(a), _interval(b), _interval(c)
    assert a0 < b1 and b0 < a1, "a and b should overlap"
    assert c0 >= max(a1, b1), "c needs a and b"
    assert set(seconds) == {"a", "b", "c"} and seconds["a"] >= 1.5
    # each job's output went to its own log, not the console
    assert (logs / "a.log").read_text() == "working on a\n"
    assert (logs / "c.log").read_text() == "working on c\n"
    assert any(line.strip().startswith("c: done in") for line in said)


def test_a_failing_job_stops_what_waits_for_it_and_names_its_log(tmp_path):
    logs = tmp_path / "logs"
    jobs = [
        Job("train", _fail, ("the dataset is empty",), log=logs / "train.log"),
        Job("evaluate", _stamp, (tmp_path / "e", 0.0), after=("train",), log=logs / "evaluate.log"),
    ]
    with pytest.raises(UserError, match=r"^train: the dataset is empty \(its output: .*train.log\)"):
        run_jobs(jobs, workers=2, threads=1, say=lambda line: None)
    assert "about to fail" in (logs / "train.log").read_text()
    assert not (tmp_path / "e").exists() and not (logs / "evaluate.log").exists()


def test_one_worker_runs_the_jobs_here_in_order(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    run_jobs([Job("b", _stamp, (b, 0.0), after=("a",)), Job("a", _stamp, (a, 0.0))], workers=1)
    out = capsys.readouterr().out
    assert out.index("working on a") < out.index("working on b")  # on the console, in dependency order
    assert _interval(a)[1] <= _interval(b)[0]
