"""The reconstruction figure of evaluated checkpoints, outside an experiment (docs/images/gpu-s13-figure.png).

    python experiments/session13/figure.py --dataset data/gpu --out docs/images/gpu-s13-figure.png \
        --per-category 2 "GPU, 32^3=runs/gpu-s13/eval" "GPU, 16^3=runs/gpu-s13-abl/eval"

Each NAME=EVAL is a folder written by ``stereo-occ evaluate`` (its metrics.json and meshes/); the
rows are the first test objects of each category that the first evaluation holds, as in the
experiment's figure, which this reuses (``stereo_occ.experiment.figure_stage``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from stereo_occ.config import Config, ExperimentConfig
from stereo_occ.experiment import figure_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--per-category", type=int, default=1)
    parser.add_argument("evaluations", nargs="+", metavar="NAME=EVAL")
    args = parser.parse_args()
    pairs = [text.split("=", 1) for text in args.evaluations]
    with tempfile.TemporaryDirectory() as tmp:
        evals = Path(tmp) / "evals"
        evals.mkdir()
        metrics = {}
        for name, folder in pairs:
            (evals / name).symlink_to(Path(folder).resolve(), target_is_directory=True)
            metrics[name] = json.loads((Path(folder) / "metrics.json").read_text())
        cfg = Config(experiment=ExperimentConfig(models=[name for name, _ in pairs], figure_objects=args.per_category))
        figure_stage(cfg, args.dataset, evals, Path(tmp) / "figure", metrics)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(tmp) / "figure" / "figure.png", args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
