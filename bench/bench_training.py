"""Training throughput and time-to-IoU of every model, trained by the project's trainer in one run.

    python bench/bench_training.py [--models mono,stereo,rig-stereo,rig-mono] [--config configs/quick.yaml]
        [--dataset data/quick] [--minutes 5] [--marks 1,2,5] [--val-seconds 30] [--out DIR]
        [--json out.json] [key=value ...]

For each model: the config is ``--config`` with the ``key=value`` overrides, then
``model_config`` (``model.name`` and that model's ``experiment.overrides``). A short warm-up (one
untimed and ``--steps`` timed training steps on one real batch) gives the model's step time, from
which ``train.iterations`` is set so the run lasts about ``--minutes`` (at least: validation,
checkpoints and data loading come on top) and ``train.val_every`` so a validation falls about every
``--val-seconds``. Per-model ``train.iterations`` overrides are replaced by this time budget (with
``train.lr_schedule=cosine`` the decay then spans the budget). The run is
``stereo_occ.training.trainer.train``; afterwards its ``summary.json`` and ``metrics.csv`` are read,
and ``model_last.pt`` is evaluated per category on the test split (its threshold was chosen on
val) with a cheap eval config (10k surface points, MISE 16^3 + 1 step, one view per object).

The reference, measured in this run (at the start and again at the end, so a change in machine load
shows): samples per second of a ``mono`` training step (forward + backward + fused Adam, as the
trainer does it) on the same batch.

Columns: ``params`` parameters; ``step/s`` the model's own training-step samples/s from the warm-up
(compute only); ``train/s`` samples/s of the whole run, batch x iterations / train_seconds
(validation, checkpoints and data loading included); ``x mono`` train/s over the mono reference;
``IoU@Nm`` validation IoU (network IoU on fixed uniform val points at the threshold the validation
chose, the trainer's mean over val objects; per category in a second table) of the last validation
at or before N minutes of training (``*``: the run ended before N
minutes, so this is its final validation; ``-``: no validation by then); ``final`` the last
validation; then the per-category network IoU of the final weights on the test split.
Models built with ``model.align_axis`` (e.g. ``--models rig-stereo,rig-mono model.align_axis=true``) start from an axis estimator
trained once at the start, as ``experiment`` does; its seconds are added to their time axis, so
their ``IoU@Nm`` counts the estimator's minutes too (``axis`` column).
Absolute numbers depend on the machine; compare models by the ratios and the IoU columns.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, RandomSampler

from stereo_occ.config import CATEGORIES, Config, from_dict, load_config, model_config, to_dict, with_overrides
from stereo_occ.data.dataset import StereoOccupancyDataset, dataset_config, read_split
from stereo_occ.errors import UserError
from stereo_occ.evaluation.evaluate import evaluate_checkpoint
from stereo_occ.files import write_atomic
from stereo_occ.models import MODELS, build_model
from stereo_occ.models.cameras import Cameras
from stereo_occ.training.distributed import autocast, autocast_dtype
from stereo_occ.training.axis import describe, train_axis_estimator
from stereo_occ.training.trainer import train

REFERENCE = "mono"


def device_for_training() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")  # as the trainer picks it


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def one_batch(cfg: Config, root: Path) -> dict:
    """One training batch of ``train.batch_size`` items (drawn with replacement: full even on a tiny set)."""
    data = StereoOccupancyDataset.from_config(root, "train", cfg.data)
    sampler = RandomSampler(data, replacement=True, num_samples=cfg.train.batch_size,
                            generator=torch.Generator().manual_seed(0))
    return next(iter(DataLoader(data, batch_size=cfg.train.batch_size, sampler=sampler, num_workers=0)))


def step_times(cfg: Config, root: Path, batch: dict, steps: int) -> tuple[list[float], int, str]:
    """Seconds of ``steps`` training steps of ``cfg.model`` on ``batch`` (after one untimed), its
    parameters, and the precision the trainer would pick for it here (``bf16`` or ``fp32``)."""
    device = device_for_training()
    cfg = from_dict(dict(to_dict(cfg), dataset=to_dict(dataset_config(root))))  # the dataset's rig, as the trainer does
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.dataset.rig).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, fused=True)
    amp = autocast_dtype(cfg.train.precision, device, model.trains_well_in_bf16)  # what the trainer picks
    left, right = batch["left"].to(device), batch["right"].to(device)
    points, occ = batch["points"].to(device), batch["occupancies"].to(device)
    cameras = Cameras.from_batch(batch).to(device)

    def step() -> None:
        with autocast(device, amp):
            logits = model(left, right, points, cameras)
        loss = F.binary_cross_entropy_with_logits(logits.float(), occ)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    return times, sum(p.numel() for p in model.parameters()), "bf16" if amp == torch.bfloat16 else "fp32"


def read_metrics(path: Path) -> list[dict]:
    """Validation rows of a run's metrics.csv: iteration, seconds, iou, and the IoU per category."""
    number = lambda text: float(text) if text else None  # noqa: E731
    with open(path, newline="") as f:
        return [
            {"iteration": int(r["iteration"]), "seconds": float(r["seconds"]), "iou": float(r["iou"]),
             "categories": {c: number(r.get(f"iou_{c}")) for c in CATEGORIES}}
            for r in csv.DictReader(f)
            if r["split"] == "val" and r["iou"]
        ]


def iou_by(val: list[dict], minutes: float, run_seconds: float) -> dict:
    """The last validation at or before ``minutes``; ``ended`` when the run stopped before the mark."""
    seen = [v for v in val if v["seconds"] <= minutes * 60.0]
    ended = run_seconds < minutes * 60.0
    if not seen:
        return {"iou": None, "iteration": None, "seconds": None, "categories": {}, "ended": ended}
    return {**seen[-1], "ended": ended}


def shared_axis_estimator(args, base: Config) -> tuple[Path, float]:
    """The axis estimator the ``model.align_axis`` models start from, trained once (as the experiment
    does) and timed: its minutes count towards those models' time-to-IoU."""
    path = args.out / "axis_estimator.pt"
    if not hasattr(args, "axis_seconds"):
        started = time.perf_counter()
        summary = train_axis_estimator(base, args.dataset, path)
        args.axis_seconds = time.perf_counter() - started
        print(f"\n== {base.axis.steps} axis estimator steps in {args.axis_seconds:.0f} s -> {path}; {describe(summary)}")
    return path, args.axis_seconds


def bench_model(name: str, args, base: Config, batch: dict) -> dict:
    cfg = model_config(base, name)
    head_start = 0.0  # seconds of training before the model's own: its axis estimator
    if cfg.model.align_axis and not cfg.model.axis_estimator:
        path, head_start = shared_axis_estimator(args, base)
        cfg = with_overrides(cfg, [f"model.axis_estimator={path}"], "bench")
    times, params, _ = step_times(cfg, args.dataset, batch, args.steps)
    fastest = min(times)
    iterations = max(1, math.ceil(args.minutes * 60.0 / fastest))
    val_every = max(1, round(args.val_seconds / fastest))
    cfg = with_overrides(cfg, [f"train.iterations={iterations}", f"train.val_every={val_every}"], "bench")
    out = args.out / name
    print(f"\n== {name}: {params / 1e6:.2f} M parameters, warm-up step {statistics.median(times):.2f} s "
          f"-> {iterations} iterations for {args.minutes:g} min, validation every {val_every} -> {out}")
    train(cfg, args.dataset, out, resume=False)

    summary = json.loads((out / "summary.json").read_text())
    run_seconds = float(summary["train_seconds"])
    samples = cfg.train.batch_size * int(summary["iterations"])
    val = [{**v, "seconds": v["seconds"] + head_start} for v in read_metrics(out / "metrics.csv")]
    marks = {f"{m:g}": iou_by(val, m, run_seconds + head_start) for m in args.marks}

    per_category = None
    if read_split(args.dataset, args.eval_split):
        cheap = replace(base.eval, n_surface_points=10_000, mise_resolution=16, mise_steps=1,
                        views_per_object=1, max_objects=0)
        with contextlib.redirect_stdout(io.StringIO()):  # its own table; ours prints the IoU below
            results = evaluate_checkpoint(out / "model_last.pt", args.dataset, split=args.eval_split, eval_cfg=cheap)
        per_category = {k: results["iou"][k] for k in (*CATEGORIES, "mean")}
    rate = samples / run_seconds
    return {
        "params": params,
        "step_seconds": times,
        "step_samples_per_s": cfg.train.batch_size / statistics.median(times),
        "iterations": int(summary["iterations"]),
        "batch_size": cfg.train.batch_size,
        "train_seconds": run_seconds,
        "axis_estimator_seconds": head_start,  # before the run, counted in iou_at_minutes
        "train_samples_per_s": rate,
        "ratio_to_reference": None,  # set once the reference is measured again at the end
        "val_every": val_every,
        "val": val,
        "iou_at_minutes": marks,
        "final_val_iou": val[-1]["iou"] if val else None,
        "eval_split": args.eval_split,
        "eval_iou": per_category,
        "run": str(out),
    }


def cell(value: float | None, width: int, flag: bool = False) -> str:
    if value is None:
        return f"{'-':>{width}}"
    return f"{f'{value:.3f}' + ('*' if flag else ''):>{width}}"


def print_table(results: dict, marks: list[float], reference: dict, split: str) -> None:
    print(f"\nreference: {REFERENCE} training step (fwd + bwd + Adam), {reference['batch_size']} samples: "
          f"{reference['start']:.2f} samples/s at the start, {reference['end']:.2f} at the end "
          f"(ratios use their mean, {reference['mean']:.2f})")
    mark_heads = "".join(f"{'IoU@' + format(m, 'g') + 'm':>10}" for m in marks)
    cat_heads = "".join(f"{c:>8}" for c in (*CATEGORIES, "mean"))
    head = (f"{'model':<12}{'params':>8}{'step/s':>8}{'train/s':>9}{'x mono':>8}{'iters':>7}{'axis':>6}{'min':>7}"
            f"{mark_heads}{'final':>8} |{cat_heads}")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        at = r["iou_at_minutes"]
        cats = r["eval_iou"] or {}
        print(f"{name:<12}{r['params'] / 1e6:>7.2f}M{r['step_samples_per_s']:>8.2f}{r['train_samples_per_s']:>9.2f}"
              f"{r['ratio_to_reference']:>8.2f}{r['iterations']:>7}{r['axis_estimator_seconds'] / 60:>6.1f}"
              f"{r['train_seconds'] / 60:>7.1f}"
              + "".join(cell(at[f"{m:g}"]["iou"], 10, at[f"{m:g}"]["ended"]) for m in marks)
              + cell(r["final_val_iou"], 8) + " |"
              + "".join(cell(cats.get(c), 8) for c in (*CATEGORIES, "mean")))
    print(f"(samples/s: step/s = warm-up compute only, train/s = the whole run; x mono = train/s over the reference; "
          f"per-category IoU: final weights on the {split} split; *: the run ended before that mark)")
    print("\nvalidation IoU per category at each mark (" + " / ".join(CATEGORIES) + ")")
    for name, r in results.items():
        at = r["iou_at_minutes"]
        print(f"{name:<12}" + "".join(
            f"  {m:g} min: " + " / ".join(cell(at[f"{m:g}"]["categories"].get(c), 5).strip() for c in CATEGORIES)
            for m in marks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help=f"comma-separated (default: all of {','.join(MODELS)})")
    parser.add_argument("--config", type=Path, default=Path("configs/quick.yaml"))
    parser.add_argument("--dataset", type=Path, default=Path("data/quick"))
    parser.add_argument("--minutes", type=float, default=5.0, help="training wall time per model (default 5)")
    parser.add_argument("--marks", default="1,2,5", help="minutes at which to read the val IoU (default 1,2,5)")
    parser.add_argument("--val-seconds", type=float, default=30.0, help="validate about this often (default 30)")
    parser.add_argument("--steps", type=int, default=3, help="timed warm-up / reference steps (default 3)")
    parser.add_argument("--eval-split", default="test", choices=["train", "val", "test"],
                        help="split of the per-category evaluation at the end (default test: the "
                             "threshold is chosen on val)")
    parser.add_argument("--out", type=Path, help="folder for the runs (default: a temporary one, removed at the end)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.batch_size=8")
    args = parser.parse_args()

    temporary = args.out is None
    try:
        names = args.models.split(",") if args.models else list(MODELS)
        unknown = [n for n in names if n not in MODELS]
        if unknown:
            raise UserError(f"unknown model(s) {', '.join(unknown)} (known: {', '.join(MODELS)})")
        try:
            args.marks = sorted(float(m) for m in args.marks.split(","))
        except ValueError:
            raise UserError(f"--marks {args.marks!r}: expected minutes separated by commas, e.g. 1,2,5") from None
        if args.minutes <= 0 or args.val_seconds <= 0 or args.steps < 1:
            raise UserError("--minutes, --val-seconds and --steps must be positive")
        base = load_config(args.config, args.overrides)
        dataset_config(args.dataset)  # a clear error for a folder that is not a dataset
        args.out = Path(tempfile.mkdtemp(prefix="bench_training_")) if temporary else args.out
        device = device_for_training()
        print(f"{args.dataset}, {args.minutes:g} min per model, device {device}, torch threads {torch.get_num_threads()}, "
              f"runs in {args.out}{' (temporary)' if temporary else ''}")

        reference_cfg = model_config(base, REFERENCE)
        batch = one_batch(reference_cfg, args.dataset)
        start = statistics.median(step_times(reference_cfg, args.dataset, batch, args.steps)[0])
        results = {}
        for name in names:
            results[name] = bench_model(name, args, base, batch)
        end = statistics.median(step_times(reference_cfg, args.dataset, batch, args.steps)[0])
        size = reference_cfg.train.batch_size
        reference = {"batch_size": size, "start": size / start, "end": size / end}
        reference["mean"] = 0.5 * (reference["start"] + reference["end"])
        for r in results.values():  # ratios against the mean of both reference measurements
            r["ratio_to_reference"] = r["train_samples_per_s"] / reference["mean"]
        print_table(results, args.marks, reference, args.eval_split)
        if args.json:
            meta = {"dataset": str(args.dataset), "config": str(args.config), "overrides": args.overrides,
                    "minutes": args.minutes, "device": str(device), "threads": torch.get_num_threads()}
            write_atomic(args.json, json.dumps({"run": meta, "reference": reference, "models": results}, indent=1))
            print(f"wrote {args.json}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        if temporary and isinstance(args.out, Path) and args.out.name.startswith("bench_training_"):
            shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()
