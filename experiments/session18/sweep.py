"""Many seeds of several quick-study variants at once, judged on a separate development set.

    python experiments/session18/sweep.py run --dataset runs/quick/dataset --dev runs/dev \
        --out runs/s18/sweep --variants base,inject --seeds 0,1,2 --parallel 8 --deadline 420

One CPU run of the quick config's rig-stereo takes 8 minutes, and four seeds of it spread with a
standard deviation of 0.013 test IoU, so single runs cannot rank changes worth 0.01-0.03, and six
validation objects rank them at random (docs/training.md, "Session 17"). On a GPU the same
1,100-step run takes about a minute, so each variant can have several seeds. Every job trains
``model_config(quick config, rig-stereo)`` plus the variant's overrides with ``train.seed`` =
``data.seed`` = its seed, then evaluates ``model_best.pt`` (network IoU on the uniform points; no
MISE refinement, which does not change it) on

* ``--dev``: the test split of a development dataset built like the quick one from other shape,
  render and occupancy seeds (``dev_dataset.sh``), where variants are compared, and
* the quick dataset's own test split, reported but not used to choose.

Jobs run ``--parallel`` at a time, each in its own process, seed-major (every variant's seed 0
first), so a sweep cut short by ``--deadline`` (seconds after which no job starts) still compares
every variant on the same seeds. ``OUT/sweep.json`` has every job; ``summarize`` prints the table:
per variant the mean over seeds of dev and test IoU per category, and the dev difference to
``base`` paired over seeds with its t-interval.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from stereo_occ.config import CATEGORIES

# name -> overrides on top of the quick config's rig-stereo. Costs per step on the 2-core CPU are
# measured separately (bench/bench_step.py with the same overrides).
VARIANTS: dict[str, list[str]] = {
    "base": [],
    "inject": ["model.feature_injection=true"],  # needs `git apply experiments/session18/feature-injection.patch`
    "hidden256": ["model.hidden_dim=256"],
    "pe8": ["model.positional_frequencies=8"],
    "near35": ["data.near_surface_share=0.35"],
    "steps1400": ["train.iterations=1400"],  # a known effect on the CPU (+0.012 at seed 0): the sweep's resolution
    "img48": ["model.image_channels=48"],
    "mono": [],  # the twin, for the gap on the same seeds
    # how far steps and training objects go on the quick model (where the mug and bowl bars would be)
    "steps2200": ["train.iterations=2200", "train.val_every=200"],
    "steps4400": ["train.iterations=4400", "train.val_every=400"],
    "big2200": ["train.iterations=2200", "train.val_every=200"],  # on --big: 3x the objects
    "big4400": ["train.iterations=4400", "train.val_every=400"],
}
MODEL = {"mono": "rig-mono"}  # variants of another model than rig-stereo
EVAL = ["eval.mise_steps=0", "eval.n_surface_points=5000", "eval.views_per_object=1"]


def job(args: argparse.Namespace) -> None:
    """One training and its two evaluations, in this process; writes OUT/result.json."""
    from stereo_occ.config import load_config, model_config, with_overrides
    from stereo_occ.evaluation.evaluate import evaluate_checkpoint
    from stereo_occ.training.trainer import train

    base = load_config(args.config)
    overrides = VARIANTS[args.variant] + [f"train.seed={args.seed}", f"data.seed={args.seed}"] + args.extra
    cfg = with_overrides(model_config(base, MODEL.get(args.variant, "rig-stereo")), overrides)
    eval_cfg = with_overrides(base, EVAL + [e for e in args.extra if e.startswith("eval.")]).eval
    start = time.time()
    train(cfg, args.dataset, args.out, resume=True)
    trained = time.time() - start
    record = {"variant": args.variant, "seed": args.seed, "overrides": overrides, "wall_train": trained}
    summary = json.loads((args.out / "summary.json").read_text())
    record.update(train_seconds=summary["train_seconds"], best_val_iou=summary["best_val_iou"],
                  best_iteration=summary["best_iteration"],
                  threshold=summary["threshold"], device=summary["device"], precision=summary["precision"])
    for name, dataset in (("dev", args.dev), ("test", args.dataset)):
        metrics = evaluate_checkpoint(args.out / "model_best.pt", dataset, split="test", out=args.out / f"eval-{name}",
                                      eval_cfg=eval_cfg, workers=1)
        record[name] = {k: metrics["iou"][k] for k in ("mean", *CATEGORIES)}
        record[f"{name}_per_object"] = [
            {"object_id": o["object_id"], "category": o["category"], "iou": o["iou"]} for o in metrics["per_object"]
        ]
    record["wall_total"] = time.time() - start
    (args.out / "result.json").write_text(json.dumps(record, indent=1))


def run(args: argparse.Namespace) -> None:
    """Every (seed, variant) job, ``--parallel`` at a time, none started after ``--deadline`` seconds."""
    if args.pairs:  # explicit variant:seed jobs instead of the product
        queue = [(p.split(":")[0], int(p.split(":")[1])) for p in args.pairs.split(",")]
    else:
        queue = [(v, int(s)) for s in args.seeds.split(",") for v in args.variants.split(",")]
    unknown = sorted({v for v, _ in queue if v not in VARIANTS})
    if unknown:
        sys.exit(f"unknown variants {unknown} (known: {', '.join(VARIANTS)})")
    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    start, running, done = time.time(), [], []
    while queue or running:
        while queue and len(running) < args.parallel and time.time() - start < args.deadline:
            variant, seed = queue.pop(0)
            out = args.out / f"{variant}-s{seed}"
            out.mkdir(parents=True, exist_ok=True)
            dataset = args.big if variant.startswith("big") else args.dataset
            if dataset is None:
                sys.exit(f"{variant} trains on --big, which is not given")
            cmd = [sys.executable, __file__, "job", "--variant", variant, "--seed", str(seed), "--dataset",
                   str(dataset), "--dev", str(args.dev), "--out", str(out), "--config", args.config,
                   *(f"--extra={e}" for e in args.extra)]
            with open(out / "job.log", "w") as log:  # the child keeps its own copy of the handle
                running.append((variant, seed, out, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)))
            print(f"[{time.time() - start:5.0f} s] started {variant} seed {seed}", flush=True)
        if time.time() - start >= args.deadline and queue:
            print(f"[{time.time() - start:5.0f} s] deadline: {len(queue)} jobs not started", flush=True)
            queue.clear()
        for item in list(running):
            variant, seed, out, proc = item
            if proc.poll() is None:
                if time.time() - start > args.hard_deadline:
                    proc.kill()
                continue
            running.remove(item)
            ok = proc.returncode == 0 and (out / "result.json").exists()
            print(f"[{time.time() - start:5.0f} s] {'done' if ok else 'FAILED'} {variant} seed {seed}"
                  + ("" if ok else f" (rc {proc.returncode}; {out / 'job.log'})"), flush=True)
            if ok:
                done.append(json.loads((out / "result.json").read_text()))
                (args.out / "sweep.json").write_text(json.dumps(done))
        time.sleep(1)
    summarize_records(done)


def summarize_records(records: list[dict]) -> None:
    """Per variant: seeds, mean dev and test IoU (per category), and dev - base paired over seeds."""
    from scipy import stats

    by = {}
    for r in records:
        by.setdefault(r["variant"], {})[r["seed"]] = r
    cols = ("mean", *CATEGORIES)
    print(f"{'variant':<10}{'seeds':>6}  " + "".join(f"{'dev ' + c:>12}" for c in cols)
          + "".join(f"{'test ' + c:>12}" for c in cols) + f"{'val':>7}{'train s':>9}  dev - base [95% t]")
    for variant, runs in by.items():
        line = f"{variant:<10}{len(runs):>6}  "
        for split in ("dev", "test"):
            line += "".join(f"{statistics.mean(r[split][c] for r in runs.values()):>12.3f}" for c in cols)
        line += f"{statistics.mean(r['best_val_iou'] for r in runs.values()):>7.3f}"
        line += f"{statistics.mean(r['wall_train'] for r in runs.values()):>9.0f}"
        shared = sorted(set(runs) & set(by.get("base", {})))
        if variant != "base" and len(shared) >= 2:
            d = [runs[s]["dev"]["mean"] - by["base"][s]["dev"]["mean"] for s in shared]
            half = stats.t.ppf(0.975, len(d) - 1) * statistics.stdev(d) / len(d) ** 0.5
            m = statistics.mean(d)
            line += f"  {m:+.3f} [{m - half:+.3f}, {m + half:+.3f}] over {len(d)} seeds"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", required=True)
    for verb in ("run", "job"):
        p = sub.add_parser(verb)
        p.add_argument("--dataset", type=Path, required=True, help="the quick dataset (trains; its test split reported)")
        p.add_argument("--dev", type=Path, required=True, help="the development dataset (its test split compares)")
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--config", default="configs/quick.yaml")
        p.add_argument("--extra", action="append", default=[], metavar="key=value",
                       help="an override for every job (after the variant's), e.g. to try the sweep small")
    run_p = sub.choices["run"]
    run_p.add_argument("--variants", default="base,inject,hidden256,pe8,near35,img48,steps1400,mono")
    run_p.add_argument("--big", type=Path, help="a dataset with more training objects (the big* variants; "
                       "its own test split is what they report as test)")
    run_p.add_argument("--seeds", default="0,1,2")
    run_p.add_argument("--pairs", help="variant:seed,... jobs, in this order, instead of --variants x --seeds")
    run_p.add_argument("--parallel", type=int, default=1)
    run_p.add_argument("--threads", type=int, default=2, help="torch threads per job")
    run_p.add_argument("--deadline", type=float, default=1e9, help="seconds after which no job starts")
    run_p.add_argument("--hard-deadline", type=float, default=1e9, help="seconds after which running jobs are killed")
    job_p = sub.choices["job"]
    job_p.add_argument("--variant", required=True)
    job_p.add_argument("--seed", type=int, required=True)
    sub.add_parser("summarize").add_argument("sweep", type=Path, help="a sweep.json")
    args = parser.parse_args()
    if args.verb == "job":
        job(args)
    elif args.verb == "run":
        run(args)
    else:
        summarize_records(json.loads(args.sweep.read_text()))


if __name__ == "__main__":
    main()
