"""Development-set IoU of the quick rig-stereo against training steps, per category, from sweeps.

    python experiments/session18/scaling_figure.py runs/s18/gpu1/sweep.json runs/s18/gpu2/sweep.json \
        --out docs/images/s18-scaling.png

Each point is one seed's ``model_best.pt`` on the 60 development objects (sweep.py); lines join the
means over seeds. ``base`` and ``stepsN`` train on the quick dataset (54 training objects), ``bigN``
on a dataset of three times the objects (162). The dashed lines are issue 10's quick-study bars.
The top axis converts steps to minutes of rig-stereo training on the 2-core CPU (the quick study's
0.42 s per step, loader and validations included), the budget the bars are set for.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STEPS = {"base": 1100, "steps1400": 1400, "steps2200": 2200, "steps4400": 4400, "big2200": 2200, "big4400": 4400}
BARS = {"mean": 0.40, "mug": 0.28, "bowl": 0.22, "bottle": 0.70}
CPU_SECONDS_PER_STEP = 462.8 / 1100  # runs/quick-s17: rig-stereo's 1,100 steps in 462.8 s on 2 cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweeps", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    records = [r for path in args.sweeps for r in json.loads(path.read_text()) if r["variant"] in STEPS]
    series = {"54 training objects (the quick dataset)": lambda v: not v.startswith("big"),
              "162 training objects": lambda v: v.startswith("big")}
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8), sharex=True)
    for ax, key in zip(axes, BARS):
        for (label, belongs), colour in zip(series.items(), ("tab:blue", "tab:orange")):
            runs = [r for r in records if belongs(r["variant"])]
            xs = sorted({STEPS[r["variant"]] for r in runs})
            means = [statistics.mean(r["dev"][key] for r in runs if STEPS[r["variant"]] == x) for x in xs]
            ax.plot(xs, means, "-", color=colour, label=label)
            ax.plot([STEPS[r["variant"]] for r in runs], [r["dev"][key] for r in runs], "o", color=colour,
                    alpha=0.5, markersize=4)
        ax.axhline(BARS[key], color="grey", linestyle="--", linewidth=1)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xticks([1100, 2200, 4400], ["1,100", "2,200", "4,400"])
        ax.set_title(f"{key} (bar {BARS[key]:.2f})")
        ax.set_xlabel("training steps (batch 16)")
        top = ax.secondary_xaxis("top", functions=(lambda s: s * CPU_SECONDS_PER_STEP / 60,
                                                   lambda m: m * 60 / CPU_SECONDS_PER_STEP))
        top.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        top.set_xticks([7.7, 15.4, 30.9], ["7.7", "15.4", "30.9"])
        top.set_xlabel("CPU minutes")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("development-set IoU")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
