"""How far off an axis estimator (`stereo-occ train-axis`) is on a dataset split, per category.

    python experiments/session20/axis_accuracy.py runs/s20/axis-bf16.pt --dataset runs/s18/dev --split test

Prints the median and the 75th percentile of the angle (degrees) between the estimate in the rig
frame and the object's true axis, with both views averaged (as rig-stereo uses it) and with the left
view alone (rig-mono), and the share of estimates within 20 degrees.
"""
from __future__ import annotations

import argparse

import numpy as np

from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.training.axis import axis_errors, estimator_from_record, load_axis_estimator


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("estimator")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--up-axis", default="z")
    args = p.parse_args()
    record = load_axis_estimator(args.estimator)
    estimator = estimator_from_record(record)
    dataset = StereoOccupancyDataset(args.dataset, args.split, points_per_sample=1)
    for views, name in ((2, "both views"), (1, "left view")):
        errors = axis_errors(estimator, dataset, args.up_axis, views=views,
                             handle_axis=record["summary"].get("handle_axis", ""))
        print(f"{name:<11}" + "  ".join(
            f"{c} median {np.median(e):4.0f} p75 {np.percentile(e, 75):4.0f} within 20: {np.mean(np.array(e) < 20):.2f}"
            for c, e in errors.items()))


if __name__ == "__main__":
    main()
