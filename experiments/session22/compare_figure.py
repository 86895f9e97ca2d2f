"""The experiment's reconstruction figure for any evaluation folders, side by side.

    python experiments/session22/compare_figure.py --dataset runs/quick-s17/dataset --objects 10 \
        --out runs/s22/compare "rig-stereo=runs/quick-s17/eval/rig-stereo" \
        "rig-stereo, axis=runs/s22/bothpos-s0/eval-test" "rig-mono, axis=runs/s22/mono-bothpos-s0/eval-test"

Each NAME=FOLDER is an evaluation of the dataset's test split (``metrics.json`` and ``meshes/``, as
``stereo-occ evaluate`` writes them); the figure stage of the experiment renders the first
``--objects`` test objects of each category from their left camera, one column per folder, into
``--out`` (``figure.png``). The folders are linked under ``--out/evals`` by their names.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from stereo_occ.config import load_config
from stereo_occ.experiment import figure_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--objects", type=int, default=1, help="test objects per category")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("columns", nargs="+", help="NAME=EVALUATION_FOLDER")
    args = parser.parse_args()

    evals = args.out / "evals"
    evals.mkdir(parents=True, exist_ok=True)
    names = []
    for column in args.columns:
        name, folder = column.split("=", 1)
        link = evals / name
        if link.is_symlink():
            link.unlink()
        link.symlink_to(Path(folder).resolve())
        names.append(name)
    cfg = load_config("configs/quick.yaml", [f"experiment.figure_objects={args.objects}"])
    cfg = dataclasses.replace(cfg, experiment=dataclasses.replace(cfg.experiment, models=names))
    metrics = {name: json.loads((evals / name / "metrics.json").read_text()) for name in names}
    figure_stage(cfg, args.dataset, evals, args.out / "figure", metrics)


if __name__ == "__main__":
    main()
