"""Test IoU of several training runs of one configuration that differ only in their seeds.

    python experiments/session17/seeds.py runs/quick/eval/rig-stereo runs/s17/seed1/eval runs/s17/seed2/eval ...

Each argument is an evaluation folder (its ``metrics.json``). Printed: each run's mean and per-category
IoU, then their mean, standard deviation and a 95% t-interval for the mean over seeds. The bootstrap
intervals of the report are over test objects for one trained model; this is the other half of the
noise, how much the trained model itself moves with its seed (initialisation, sample order,
validation points, hence threshold and checkpoint).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from scipy import stats

from stereo_occ.config import CATEGORIES


def main() -> None:
    folders = [Path(a) for a in sys.argv[1:]]
    if len(folders) < 2:
        sys.exit(__doc__)
    columns = ["mean", *CATEGORIES]
    rows = {}
    print(f"{'run':<40}" + "".join(f"{c:>9}" for c in columns) + f"{'thr':>6}")
    for folder in folders:
        metrics = json.loads((folder / "metrics.json").read_text())
        rows[folder] = [metrics["iou"][c] for c in columns]
        print(f"{str(folder):<40}" + "".join(f"{v:>9.3f}" for v in rows[folder]) + f"{metrics['threshold']:>6.2f}")
    n = len(rows)
    t = stats.t.ppf(0.975, n - 1)
    for label, fn in (("mean", statistics.mean), ("sd", statistics.stdev)):
        print(f"{label:<40}" + "".join(f"{fn([r[i] for r in rows.values()]):>9.3f}" for i in range(len(columns))))
    half = [t * statistics.stdev([r[i] for r in rows.values()]) / n**0.5 for i in range(len(columns))]
    means = [statistics.mean([r[i] for r in rows.values()]) for i in range(len(columns))]
    print(f"{f'95% t-interval of the mean ({n} seeds)':<40}" + "".join(f"  [{m - h:.3f}, {m + h:.3f}]" for m, h in zip(means, half)))


if __name__ == "__main__":
    main()
