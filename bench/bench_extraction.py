"""Mesh extraction, evaluation and reconstruction cost per model, as ratios measured in one run.

    python bench/bench_extraction.py [--models mono,stereo,...] [--checkpoint NAME=PATH ...]
        [--config configs/quick.yaml] [--dataset data/quick] [--items 6] [--views 2]
        [--dense-resolution 128] [--device cpu|cuda] [--json out.json] [key=value ...]

For every registered model (or ``--models``): the checkpoint given with ``--checkpoint NAME=PATH``,
else an untrained model built from ``--config`` (``model.name`` and the config's
``experiment.overrides`` for it applied, the dataset's own rig). Extraction settings are the eval
section of ``--config`` with the ``key=value`` overrides (e.g. ``eval.mise_resolution=16``), the
same for every model; the reconstruct path refines by that config's ``reconstruct.mise_steps``
(default 2), which may differ from ``eval.mise_steps`` (``rec/M`` then compares two grids). Items are views 0..V-1 (``--views``) of test objects taken in turn from each
category, ``--items`` in all. Per item, in this order:

* encode the pair; decode 8,192 random box points against it (the **reference**: the decoder's raw
  points per second, so any time reads as "equivalent decoded points", eq. pts = seconds x rate);
* the evaluation's pieces, timed one by one: the IoU decode of the truth's uniform points, MISE
  (``extract_mesh(occupancy_query(...))`` exactly as ``evaluate_item`` calls it), the surface
  metrics (mesh IoU by containment, surface sample, Chamfer/normals/F-score);
* dense extraction of the same function at ``--dense-resolution`` (129^3 points by default), and
  the IoU of the MISE mesh against the dense one (containment of 100k uniform box points): MISE
  should lose nothing, the goal is >= 0.99;
* ``evaluate_item`` itself, whole (its time should match the sum of the pieces);
* ``Reconstructor(model, cfg).reconstruct(left, right)`` on the item's uint8 images (the user's
  path: sphere box, MISE refined reconstruct.mise_steps times, simplification); its per-pair time is
  the mean over pairs after the first.

The ``ObjectTruth`` of each object (uniform points, labels, surface sample + tree) is made once per
object, shared by all views and models, and timed on its own.

Columns: ``MISE q`` / ``dense q`` network queries; ``d/M`` dense time / MISE time (higher = MISE
saves more); ``IoU M~d`` MISE mesh vs dense mesh; ``item s`` one ``evaluate_item``; ``item/d`` item
time / dense time; ``recon s`` one reconstruct; ``rec/M`` reconstruct time / evaluation MISE time;
``q/eq`` queries per equivalent decoded point (1.0 = all the time goes to the decoder, lower = the
rest of MISE costs that much on top). Absolute seconds depend on the machine; read the ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from stereo_occ.config import Config, from_dict, load_config, model_config, to_dict
from stereo_occ.data.dataset import StereoOccupancyDataset, dataset_config
from stereo_occ.data.occupancy import box_half_side
from stereo_occ.errors import UserError
from stereo_occ.evaluation.evaluate import (
    ObjectTruth,
    decode_probs,
    encode_pair,
    evaluate_item,
    inference_dtype,
    occupancy_query,
    select_objects,
)
from stereo_occ.evaluation.metrics import SurfaceSample, compare_surfaces, iou, is_empty, mesh_contains
from stereo_occ.evaluation.mise import extract_mesh, extract_mesh_dense
from stereo_occ.evaluation.reconstruct import Reconstructor
from stereo_occ.files import write_atomic
from stereo_occ.models import MODELS, build_model
from stereo_occ.models.cameras import Cameras
from stereo_occ.evaluation.threshold import resolved
from stereo_occ.training.checkpoint import load_model
from stereo_occ.training.distributed import autocast

REFERENCE_POINTS = 8192
CONTAINMENT_POINTS = 100_000
IOU_GOAL = 0.99


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """``with clock("name"): ...`` adds the block's seconds to ``clock.seconds["name"]``."""

    def __init__(self, device: torch.device):
        self.device, self.seconds, self._name = device, {}, None

    def __call__(self, name: str) -> "Clock":
        self._name = name
        return self

    def __enter__(self) -> "Clock":
        sync(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        sync(self.device)
        self.seconds[self._name] = self.seconds.get(self._name, 0.0) + time.perf_counter() - self._start


class CountingReconstructor(Reconstructor):
    """A Reconstructor that counts the grid points its MISE asks about (``self.queries``)."""

    queries = 0

    def occupancy(self, code):
        query = super().occupancy(code)

        def counted(points: np.ndarray) -> np.ndarray:
            self.queries += len(points)
            return query(points)

        return counted


def parse_checkpoints(items: list[str]) -> dict[str, Path]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--checkpoint {item!r}: expected NAME=PATH, e.g. stereo=runs/quick/stereo/model_best.pt")
        if not Path(path).is_file():
            raise UserError(f"--checkpoint {name}: file not found: {path}")
        out[name] = Path(path)
    return out


def load(name: str, checkpoints: dict[str, Path], base: Config, root: Path, device: torch.device):
    """(model in eval mode, its config with the dataset's section, a description)."""
    if name in checkpoints:
        model, cfg = load_model(checkpoints[name], device=device)
        if cfg.model.name != name:
            raise UserError(f"--checkpoint {name}={checkpoints[name]} holds a {cfg.model.name!r} model")
        ours, theirs = dataset_config(root).rig, cfg.dataset.rig
        if ours.image_size != theirs.image_size:
            raise UserError(
                f"{checkpoints[name]}: trained on {theirs.image_size}px images, {root} has {ours.image_size}px"
            )
        return model, cfg, f"checkpoint {checkpoints[name]}"
    cfg = model_config(base, name)
    cfg = from_dict(dict(to_dict(cfg), dataset=to_dict(dataset_config(root))))
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.dataset.rig).to(device).eval()
    return model, cfg, "untrained"


def decoder_rate(model, code, device: torch.device, rng: np.random.Generator, box: float) -> float:
    """Points per second of ``model.decode`` on REFERENCE_POINTS random box points (best of 3)."""
    points = torch.from_numpy(rng.uniform(-box, box, (1, REFERENCE_POINTS, 3)).astype(np.float32)).to(device)
    best = math.inf
    with torch.inference_mode():
        model.decode(points, code)  # warm-up
        for _ in range(3):
            sync(device)
            start = time.perf_counter()
            model.decode(points, code)
            sync(device)
            best = min(best, time.perf_counter() - start)
    return REFERENCE_POINTS / best


def bench_model(name, args, base_cfg, checkpoints, data, chosen_items, truths, device) -> dict:
    model, cfg, origin = load(name, checkpoints, base_cfg, args.dataset, device)
    ev = resolved(base_cfg.eval, cfg.eval.threshold)  # the checkpoint's threshold unless --config fixes one
    box = box_half_side(cfg.dataset.occupancy)
    fine = ev.mise_resolution * 2**ev.mise_steps
    rng = np.random.default_rng(0)
    probe = rng.uniform(-box, box, (CONTAINMENT_POINTS, 3))
    recon = CountingReconstructor(model, cfg, ev, base_cfg.reconstruct)  # the user's path: reconstruct.mise_steps
    rows = []
    # every piece in the precision evaluate_item and reconstruct run the network in (eval.precision)
    with autocast(device, inference_dtype(model, ev.precision)):
        for i in tqdm(chosen_items, desc=f"{name}", unit="item", dynamic_ncols=True, leave=False):
            item = data[i]
            index = int(item["object_index"])
            truth = truths[index]["truth"]
            clock = Clock(device)
            rotation = item["rotation"].numpy().astype(np.float64)
            cameras = Cameras.from_arrays(item["K"], item["world_to_cam"], tuple(item["left"].shape[-1:-3:-1]))
            if not rows:
                encode_pair(model, item["left"], item["right"], cameras)  # warm-up: the model's first call
            # The evaluation's pieces, in evaluate_item's order.
            with clock("encode"):
                code = encode_pair(model, item["left"], item["right"], cameras)
            rate = decoder_rate(model, code, device, rng, box)
            with clock("iou_decode"):
                decode_probs(model, code, truth.points @ rotation.T, ev.batch_points)
            query = occupancy_query(model, code, ev.batch_points, rotation=rotation)
            with clock("mise"):
                mesh, q_mise = extract_mesh(
                    query, resolution=ev.mise_resolution, steps=ev.mise_steps, threshold=ev.threshold,
                    box=box, batch_points=ev.batch_points,
                )
            with clock("surface"):
                iou(mesh_contains(mesh, truth.points), truth.occupied)
                predicted = None if is_empty(mesh) else SurfaceSample.from_mesh(mesh, ev.n_surface_points, seed=index + 1)
                compare_surfaces(predicted, truth.surface, ev.fscore_tau)
            # The reference MISE saves on, and what MISE may lose against it.
            with clock("dense"):
                dense, q_dense = extract_mesh_dense(
                    query, resolution=args.dense_resolution, threshold=ev.threshold, box=box,
                    batch_points=ev.batch_points,
                )
            agreement = iou(mesh_contains(mesh, probe), mesh_contains(dense, probe))
            with clock("item"):
                result, _ = evaluate_item(
                    model, item, truth, ev, box, object_id=data.object_ids[index],
                    category=data.categories[index], seed=index,
                )
            left = data.objects[index].image(int(item["view"]), 0)
            right = data.objects[index].image(int(item["view"]), 1)
            recon.queries = 0
            with clock("reconstruct"):
                recon.reconstruct(left, right)
            s = clock.seconds
            rows.append(
                {
                    "object": data.object_ids[index],
                    "view": int(item["view"]),
                    "decoder_points_per_s": rate,
                    "mise_queries": int(q_mise),
                    "dense_queries": int(q_dense),
                    "faces": int(len(mesh.faces)),
                    "mise_vs_dense_iou": agreement,
                    "reconstruct_queries": int(recon.queries),
                    "mesh_iou": result.mesh_iou,
                    **{f"{k}_s": v for k, v in s.items()},
                }
            )
    first_only = len(rows) == 1
    recon_rows = rows if first_only else rows[1:]
    mean = lambda key, rs=rows: float(np.mean([r[key] for r in rs]))  # noqa: E731
    summary = {
        "origin": origin,
        "items": len(rows),
        "decoder_points_per_s": mean("decoder_points_per_s"),
        "truth_s_per_object": float(np.mean([t["seconds"] for t in truths.values()])),
        **{k: mean(k) for k in ("encode_s", "iou_decode_s", "mise_s", "surface_s", "dense_s", "item_s")},
        "mise_queries": mean("mise_queries"),
        "dense_queries": mean("dense_queries"),
        "reconstruct_s": mean("reconstruct_s", recon_rows),
        "reconstruct_queries": mean("reconstruct_queries", recon_rows),
        "reconstruct_after_first": not first_only,
        "mise_vs_dense_iou_min": min(r["mise_vs_dense_iou"] for r in rows),
        "mise_grid": f"{ev.mise_resolution}^3+{ev.mise_steps} (={fine}^3)",
        "dense_grid": f"{args.dense_resolution}^3",
        "threshold": ev.threshold,  # the checkpoint's (chosen on validation) unless --config fixes one
    }
    summary["dense_over_mise"] = summary["dense_s"] / summary["mise_s"]
    summary["query_ratio"] = summary["dense_queries"] / summary["mise_queries"]
    summary["item_over_dense"] = summary["item_s"] / summary["dense_s"]
    summary["reconstruct_over_mise"] = summary["reconstruct_s"] / summary["mise_s"]
    summary["mise_queries_per_eq_point"] = summary["mise_queries"] / (summary["mise_s"] * summary["decoder_points_per_s"])
    summary["dense_queries_per_eq_point"] = summary["dense_queries"] / (summary["dense_s"] * summary["decoder_points_per_s"])
    print_model(name, summary, rows, fine != args.dense_resolution)
    return {"summary": summary, "items": rows}


def kpts(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def print_model(name: str, s: dict, rows: list[dict], grids_differ: bool) -> None:
    rate = s["decoder_points_per_s"]
    print(f"\n== {name} ({s['origin']}): MISE {s['mise_grid']} vs dense {s['dense_grid']}, "
          f"decoder {kpts(rate)} points/s (reference, {REFERENCE_POINTS} points)")
    if grids_differ:
        print("   note: MISE's final grid and the dense grid differ, so their meshes differ by construction")
    head = (f"{'item':<24}{'faces':>7}{'MISE q':>9}{'MISE s':>8}{'dense q':>9}{'dense s':>8}{'d/M':>6}"
            f"{'IoU M~d':>8}{'item s':>8}{'item/d':>7}{'recon s':>8}{'rec/M':>6}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['object'] + ' v' + str(r['view']):<24}{r['faces']:>7}{kpts(r['mise_queries']):>9}{r['mise_s']:>8.2f}"
              f"{kpts(r['dense_queries']):>9}{r['dense_s']:>8.2f}{r['dense_s'] / r['mise_s']:>6.1f}"
              f"{r['mise_vs_dense_iou']:>8.4f}{r['item_s']:>8.2f}{r['item_s'] / r['dense_s']:>7.2f}"
              f"{r['reconstruct_s']:>8.2f}{r['reconstruct_s'] / r['mise_s']:>6.1f}")
    verdict = "meets" if s["mise_vs_dense_iou_min"] >= IOU_GOAL else "MISSES"
    print(f"{'mean':<24}{'':>7}{kpts(s['mise_queries']):>9}{s['mise_s']:>8.2f}{kpts(s['dense_queries']):>9}"
          f"{s['dense_s']:>8.2f}{s['dense_over_mise']:>6.1f}{s['mise_vs_dense_iou_min']:>8.4f}{s['item_s']:>8.2f}"
          f"{s['item_over_dense']:>7.2f}{s['reconstruct_s']:>8.2f}{s['reconstruct_over_mise']:>6.1f}")
    print(f"   IoU M~d: the worst item {verdict} the {IOU_GOAL} goal; queries: dense {s['query_ratio']:.1f}x MISE's")
    pieces = ("encode_s", "iou_decode_s", "mise_s", "surface_s")
    total = sum(s[k] for k in pieces)
    print("   evaluate_item = " + " + ".join(f"{k[:-2].replace('_', ' ')} {s[k]:.2f}" for k in pieces)
          + f" = {total:.2f} s (measured whole: {s['item_s']:.2f} s); truth {s['truth_s_per_object']:.2f} s per object")
    print(f"   as decoded points: MISE {kpts(s['mise_s'] * rate)} eq. for {kpts(s['mise_queries'])} queries "
          f"(q/eq {s['mise_queries_per_eq_point']:.2f}), dense {kpts(s['dense_s'] * rate)} eq. for "
          f"{kpts(s['dense_queries'])} (q/eq {s['dense_queries_per_eq_point']:.2f}), item {kpts(s['item_s'] * rate)} eq.")
    after = "after the first" if s["reconstruct_after_first"] else "ONLY ONE pair: includes the first call"
    print(f"   reconstruct: {s['reconstruct_s']:.2f} s per pair ({after}), {kpts(s['reconstruct_queries'])} grid "
          f"queries, {s['reconstruct_over_mise']:.1f}x the evaluation's MISE time")


def print_summary(results: dict) -> None:
    print("\nsummary (means over items; ratios measured in this run)")
    head = (f"{'model':<12}{'dec pts/s':>10}{'MISE s':>8}{'dense s':>8}{'d/M':>6}{'q d/M':>6}{'IoU M~d':>8}"
            f"{'truth s':>8}{'item s':>8}{'item/d':>7}{'recon s':>8}{'rec/M':>6}")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        s = r["summary"]
        print(f"{name:<12}{kpts(s['decoder_points_per_s']):>10}{s['mise_s']:>8.2f}{s['dense_s']:>8.2f}"
              f"{s['dense_over_mise']:>6.1f}{s['query_ratio']:>6.1f}{s['mise_vs_dense_iou_min']:>8.4f}"
              f"{s['truth_s_per_object']:>8.2f}{s['item_s']:>8.2f}{s['item_over_dense']:>7.2f}"
              f"{s['reconstruct_s']:>8.2f}{s['reconstruct_over_mise']:>6.1f}")
    print("(IoU M~d: worst item; truth s: per object, shared by its views and the models)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help=f"comma-separated (default: all of {','.join(MODELS)})")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                        help="trained weights for model NAME (repeatable); others are untrained")
    parser.add_argument("--config", type=Path, default=Path("configs/quick.yaml"))
    parser.add_argument("--dataset", type=Path, default=Path("data/quick"))
    parser.add_argument("--items", type=int, default=6, help="test items in all (default 6)")
    parser.add_argument("--views", type=int, default=2, help="views per object, 0..V-1 (default 2)")
    parser.add_argument("--dense-resolution", type=int, default=128, help="dense grid cells per side (default 128)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. eval.mise_resolution=16")
    args = parser.parse_args()

    try:
        names = args.models.split(",") if args.models else list(MODELS)
        unknown = [n for n in names if n not in MODELS]
        if unknown:
            raise UserError(f"unknown model(s) {', '.join(unknown)} (known: {', '.join(MODELS)})")
        if args.items < 1 or args.views < 1:
            raise UserError("--items and --views must be at least 1")
        checkpoints = parse_checkpoints(args.checkpoint)
        base_cfg = load_config(args.config, args.overrides)
        device = torch.device(args.device)
        data = StereoOccupancyDataset(args.dataset, "test", points_per_sample=1, uniform_only=True, views=args.views)
        n_objects = math.ceil(args.items / args.views)
        chosen = select_objects(list(data.categories), n_objects)
        items = [o * args.views + v for o in chosen for v in range(args.views)][: args.items]
        print(f"{args.dataset} test split: {len(items)} items ({len(chosen)} objects x up to {args.views} views), "
              f"device {device}, torch threads {torch.get_num_threads()}, eval: threshold {base_cfg.eval.threshold or 'per checkpoint'}, "
              f"batch_points {base_cfg.eval.batch_points}, n_surface_points {base_cfg.eval.n_surface_points}")

        truths = {}
        for o in tqdm(chosen, desc="ground truth", unit="object", dynamic_ncols=True, leave=False):
            start = time.perf_counter()
            truth = ObjectTruth.from_object(data.objects[o], base_cfg.eval, seed=o)
            truth.surface.tree  # built lazily on first use: count it here, not in the first view's metrics
            truths[o] = {"truth": truth, "seconds": time.perf_counter() - start}

        results = {}
        for name in names:
            results[name] = bench_model(name, args, base_cfg, checkpoints, data, items, truths, device)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print_summary(results)
    if args.json:
        meta = {"dataset": str(args.dataset), "config": str(args.config), "overrides": args.overrides,
                "device": str(device), "threads": torch.get_num_threads(), "eval": to_dict(base_cfg.eval),
                "reconstruct": to_dict(base_cfg.reconstruct)}
        write_atomic(args.json, json.dumps({"run": meta, "models": results}, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
