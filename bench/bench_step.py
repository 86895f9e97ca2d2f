"""Training-step throughput of each model on this machine's training device, against mono's step.

    python bench/bench_step.py --dataset DATA [--config configs/quick.yaml]
        [--models mono,stereo,rig-mono,rig-stereo] [--steps 20] [--json out.json] [key=value ...]

Where ``bench/bench_training.py`` trains every model for minutes, this times only the step: forward,
backward and fused Adam on one real batch of ``DATA``'s train split, in the precision the trainer
would pick (bf16 on CUDA), after one untimed step, as its ``step_times`` does. The reference,
measured in the same run, is the study's ``mono`` step at the same config: ``x mono`` is a model's
samples per second over mono's. On a GPU (``bench/gpu_scale.sh`` runs it there) it says what the GPU
changes in the cost of each model, next to the 2-core figures of ``bench/bench_training.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import REFERENCE, device_for_training, one_batch, step_times  # noqa: E402

from stereo_occ.config import load_config, model_config  # noqa: E402
from stereo_occ.errors import UserError  # noqa: E402
from stereo_occ.files import write_atomic  # noqa: E402
from stereo_occ.models import MODELS  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--config", default="configs/quick.yaml")
    parser.add_argument("--models", default="mono,stereo,rig-mono,rig-stereo")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model (default 20)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        raise UserError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    base = load_config(args.config, args.overrides)
    device = device_for_training()
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"

    results = {}
    for name in [REFERENCE, *[m for m in names if m != REFERENCE]]:
        cfg = model_config(base, name)
        batch = one_batch(cfg, args.dataset)
        times, params, precision = step_times(cfg, args.dataset, batch, args.steps)
        median = statistics.median(times)
        results[name] = {"params": params, "batch_size": cfg.train.batch_size, "precision": precision,
                         "step_seconds": median, "samples_per_s": cfg.train.batch_size / median}
    reference = results[REFERENCE]["samples_per_s"]
    print(f"training step on {label} ({args.config}, {args.steps} timed steps, median)")
    print(f"{'model':<12}{'params':>9}{'batch':>7}{'prec.':>6}{'step ms':>10}{'samples/s':>11}{'x mono':>8}")
    for name, r in results.items():
        r["ratio_to_reference"] = r["samples_per_s"] / reference
        print(f"{name:<12}{r['params'] / 1e6:>8.2f}M{r['batch_size']:>7}{r['precision']:>6}{r['step_seconds'] * 1e3:>10.1f}"
              f"{r['samples_per_s']:>11.1f}{r['ratio_to_reference']:>8.2f}")
    report = {"device": label, "config": args.config, "overrides": args.overrides, "models": results}
    if args.json:
        write_atomic(args.json, json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:
        sys.exit(f"error: {exc}")
