"""Where an experiment's time goes: wall-clock seconds per stage, kept in ``OUT/timings.json``.

The quick study has a time budget (20 minutes on 2 cores, dataset included), and the machine's
speed moves by a third within an hour, so a single "done in N s" says little about what to cut.
Each stage (a dataset build, one model's training, one evaluation, ...) is timed where it runs and
added to the stage's total in ``timings.json``, which is written after every stage: a run that is
killed keeps what it spent, and a resumed run adds to it, so the totals are the time the folder
cost, over every invocation (``invocations`` says how many). A stage that was up to date and
skipped adds its fraction of a second.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Iterator

from .files import write_atomic


class StageTimes:
    """Seconds per named stage, summed over the invocations that used the folder's ``timings.json``.

    >>> times = StageTimes(path)          # reads what earlier invocations left, counts this one
    >>> with times("train rig-stereo"):   # adds the block's wall-clock seconds, then saves
    ...     train(...)
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.stages: dict[str, float] = {}
        self.invocations = 1
        try:
            old = json.loads(self.path.read_text())
            self.stages = {str(k): float(v) for k, v in old.get("stages", {}).items()}
            self.invocations = int(old.get("invocations", 0)) + 1
        except (OSError, ValueError, AttributeError, TypeError):
            pass  # none yet, or unreadable: start afresh (timings never stop an experiment)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages[stage] = self.stages.get(stage, 0.0) + time.perf_counter() - start
            self.save()

    @property
    def total(self) -> float:
        return sum(self.stages.values())

    def as_dict(self) -> dict:
        """What ``timings.json`` and ``results.json["timings"]`` hold."""
        return {
            "stages": {k: round(v, 1) for k, v in self.stages.items()},
            "total_seconds": round(self.total, 1),
            "invocations": self.invocations,
            "unit": "wall-clock seconds, summed over invocations",
        }

    def save(self) -> None:
        write_atomic(self.path, json.dumps(self.as_dict(), indent=1))


def timing_rows(timings: dict) -> list[tuple[str, float, float]]:
    """``(stage, seconds, share of the total)`` per stage of a ``timings`` dict, in stage order."""
    stages = timings.get("stages") or {}
    total = sum(stages.values()) or 1.0
    return [(name, float(s), float(s) / total) for name, s in stages.items()]
