"""One variant of a quick-study model: the quick config's own settings for it, plus overrides.

    python experiments/session17/variant.py --dataset runs/quick/dataset --out runs/s17/NAME \
        [--config configs/quick.yaml] [--model rig-stereo] [key=value ...]

Trains ``model_config(config, model)`` (the config with that model's ``experiment.overrides``, as
the experiment trains it) with the extra ``key=value`` overrides on top, then evaluates its
``model_best.pt`` on the test split into ``OUT/eval`` as the experiment does. Compare with the
study's own run of the model, paired over the same test objects and rotations:

    stereo-occ compare runs/s17/NAME/eval runs/quick/eval/rig-stereo
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stereo_occ.config import load_config, model_config, with_overrides
from stereo_occ.evaluation.evaluate import evaluate_checkpoint
from stereo_occ.training.trainer import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--config", default="configs/quick.yaml")
    parser.add_argument("--model", default="rig-stereo")
    parser.add_argument("--workers", type=int, default=2, help="evaluation processes")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    base = load_config(args.config)
    cfg = with_overrides(model_config(base, args.model), args.overrides)
    train(cfg, args.dataset, args.out, resume=True)
    evaluate_checkpoint(args.out / "model_best.pt", args.dataset, split="test", out=args.out / "eval",
                        eval_cfg=base.eval, workers=args.workers)


if __name__ == "__main__":
    main()
