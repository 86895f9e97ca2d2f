"""The whole study as one resumable command: dataset, training, evaluation, figure, results, report.

Each stage writes into its own folder of the experiment folder ``D`` and is skipped when its output
is already complete, so re-running the same command after an interruption (or after adding a model to
``experiment.models``) redoes only what is missing:

=================  ===========================================================================
``D/dataset``      :func:`~stereo_occ.data.build.build_dataset` (resumes object by object)
``D/runs/<name>``  one training run per model; skipped when ``summary.json`` shows it finished,
                   resumed from ``model_last.pt`` otherwise
``D/eval/<name>``  ``model_best.pt`` on the test split; skipped while ``metrics.json`` is newer
                   than the checkpoint and was made with the same eval config
``D/figure``       per category, test objects seen from their left camera: input, ground truth
                   and every model's mesh (PNG renders, ``figure.json``, ``figure.png``)
``D/results.json`` the numbers (schema in docs/experiment.md), rewritten every run
``D/report.html``  the self-contained report, rewritten every run
=================  ===========================================================================
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from .config import CATEGORIES, Config, to_dict
from .errors import UserError
from .files import write_atomic

FIGURE_SIZE = 192  # pixels per figure cell: the object is zoomed to fill it
STAGES = 6


def _stage(number: int, text: str) -> None:
    print(f"[{number}/{STAGES}] {text}", flush=True)


def _write_json_atomic(path: Path, data: Any) -> None:
    """JSON that never exists half-written; NaN becomes null so strict JSON readers accept it."""
    write_atomic(path, json.dumps(_finite(data), indent=1, allow_nan=False))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _show(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------------
# Stages


def build_stage(cfg: Config, dataset: Path, workers: int) -> None:
    from .data.build import build_dataset

    _stage(1, f"dataset -> {dataset}")
    summary = build_dataset(cfg, dataset, workers=workers)
    if summary.failed:
        object_id, message = summary.failed[0]
        raise UserError(
            f"dataset: {len(summary.failed)} object(s) failed to build (first: {object_id}: {message}); "
            "fix or remove them and run again"
        )


def training_finished(run: Path, iterations: int) -> bool:
    """True when ``run`` holds a finished run of at least ``iterations`` with its best checkpoint."""
    summary = _read_json(run / "summary.json")
    return (
        summary is not None
        and int(summary.get("iterations", -1)) >= iterations
        and (run / "model_best.pt").is_file()
    )


def train_stage(cfg: Config, dataset: Path, runs: Path) -> None:
    from .training.trainer import train

    for i, name in enumerate(cfg.experiment.models):
        run = runs / name
        if training_finished(run, cfg.train.iterations):
            _stage(2, f"train {name}: finished ({run / 'summary.json'}), skipped")
            continue
        resuming = (run / "model_last.pt").exists()
        _stage(2, f"train {name} ({i + 1}/{len(cfg.experiment.models)}) -> {run}" + (" (resuming)" if resuming else ""))
        model_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name=name))
        # resume=True also starts a fresh run when there is nothing to resume.
        train(model_cfg, dataset, run, resume=True)


def evaluation_current(folder: Path, checkpoint: Path, cfg: Config) -> bool:
    """True when ``folder/metrics.json`` evaluated this very checkpoint with this eval config."""
    metrics_path = folder / "metrics.json"
    metrics = _read_json(metrics_path)
    return (
        metrics is not None
        and metrics.get("split") == "test"
        and metrics.get("eval") == dataclasses.asdict(cfg.eval)
        and checkpoint.is_file()
        and metrics_path.stat().st_mtime_ns >= checkpoint.stat().st_mtime_ns
    )


def evaluate_stage(cfg: Config, dataset: Path, runs: Path, evals: Path) -> dict[str, dict]:
    from .evaluation.evaluate import evaluate_checkpoint

    results = {}
    for name in cfg.experiment.models:
        checkpoint = runs / name / "model_best.pt"
        folder = evals / name
        if evaluation_current(folder, checkpoint, cfg):
            _stage(3, f"evaluate {name}: up to date ({folder / 'metrics.json'}), skipped")
        else:
            _stage(3, f"evaluate {name} on the test split -> {folder}")
            evaluate_checkpoint(checkpoint, dataset, split="test", out=folder, eval_cfg=cfg.eval)
        results[name] = json.loads((folder / "metrics.json").read_text())
    return results


def _figure_objects(metrics: dict, per_category: int) -> list[dict]:
    """The first ``per_category`` evaluated test objects of each category (split order), first view only."""
    chosen = []
    for category in CATEGORIES:
        items = [o for o in metrics["per_object"] if o["category"] == category and int(o["view"]) == 0]
        chosen += items[:per_category]
    return chosen


def _figure_fingerprint(cfg: Config, evals: Path) -> dict:
    return {
        "models": list(cfg.experiment.models),
        "figure_objects": cfg.experiment.figure_objects,
        "size": FIGURE_SIZE,
        "evaluations": {
            name: (evals / name / "metrics.json").stat().st_mtime_ns for name in cfg.experiment.models
        },
    }


def figure_stage(cfg: Config, dataset: Path, evals: Path, figure_dir: Path, metrics: dict[str, dict]):
    """Render the figure's cells (or reuse them) and return the :class:`ReconstructionFigure`."""
    import trimesh
    from PIL import Image

    from .data.dataset import dataset_config
    from .data.rig import StereoRig
    from .data.storage import ObjectReader
    from .evaluation.evaluate import mesh_path
    from .evaluation.mise import save_mesh
    from .report.figures import Crop, FigureRow, MeshRenderer, ReconstructionFigure, figure_png

    names = list(cfg.experiment.models)
    description = figure_dir / "figure.json"
    stamp_path = figure_dir / "stamp.json"
    fingerprint = _figure_fingerprint(cfg, evals)
    if description.is_file() and _read_json(stamp_path) == fingerprint:
        _stage(4, f"figure: up to date ({description}), skipped")
        return ReconstructionFigure.load(description)

    _stage(4, f"figure -> {figure_dir}")
    items = _figure_objects(metrics[names[0]], cfg.experiment.figure_objects)
    rig = StereoRig.from_config(dataset_config(dataset).rig)
    # Zoom every cell to the disc any rotation of the object can cover: objects fill the cells, and
    # every column still shares one camera.
    crop = Crop.around_center(rig.K, rig.sphere_image_radius(math.sqrt(3.0) / 2.0) + 1.0, FIGURE_SIZE)
    columns = ["left input", "ground truth", *names]
    rows = []
    with MeshRenderer(FIGURE_SIZE) as renderer:
        for item in items:
            object_id, view = item["object_id"], int(item["view"])
            reader = ObjectReader(dataset / object_id)
            rotation, K, world_to_cam = reader.cameras(view)
            K_zoom = crop.camera(K[0])
            safe = object_id.replace("/", "__")
            images: dict[str, Path] = {}
            meshes: dict[str, Path] = {}

            def save_png(column: str, image: np.ndarray) -> None:
                path = figure_dir / "renders" / column.replace(" ", "_") / f"{safe}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(path)
                images[column] = path

            save_png("left input", crop.image(reader.image(view, 0)))
            gt = reader.mesh()
            gt.vertices = np.asarray(gt.vertices) @ np.asarray(rotation, dtype=np.float64).T
            meshes["ground truth"] = save_mesh(gt, figure_dir / "ground_truth" / f"{object_id}.ply")
            save_png("ground truth", renderer.render(gt, K_zoom, world_to_cam[0]))
            for name in names:
                views = int(metrics[name].get("views_per_object", 1))
                path = mesh_path(evals / name / "meshes", object_id, view, views)
                if not path.is_file():
                    continue  # this model did not evaluate the object (eval.max_objects)
                mesh = trimesh.load(path, force="mesh", process=False)
                meshes[name] = path
                save_png(name, renderer.render(mesh, K_zoom, world_to_cam[0]))
            rows.append(FigureRow(object_id=object_id, category=item["category"], view=view, images=images, meshes=meshes))
    figure = ReconstructionFigure(columns=columns, rows=rows)
    if rows:
        write_atomic(figure_dir / "figure.png", figure_png(figure))
    figure.save(description)
    _write_json_atomic(stamp_path, fingerprint)
    return figure


# ---------------------------------------------------------------------------------------------------
# Results


def machine_info() -> dict:
    """The machine the report was made on: enough to judge the timings."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": gpu,
        "gpus": torch.cuda.device_count() if gpu else 0,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def dataset_summary(dataset: Path) -> dict:
    """Source, sizes and object counts per split and category of a built dataset."""
    from .data.dataset import read_meta, read_split

    meta = read_meta(dataset)
    config = meta["config"]
    objects: dict[str, str] = meta["objects"]
    counts = {}
    for split in ("train", "val", "test"):
        ids = read_split(dataset, split)
        per = {c: sum(objects.get(i) == c for i in ids) for c in CATEGORIES}
        counts[split] = {**per, "total": len(ids)}
    occupancy = config["occupancy"]
    return {
        "path": "dataset",
        "source": config["shapes"]["source"],
        "root": config["shapes"].get("root"),
        "objects": len(objects),
        "counts": counts,
        "views_per_object": config["render"]["views_per_object"],
        "image_size": config["rig"]["image_size"],
        "occupancy_points": f"{occupancy['n_uniform']:,} uniform + {occupancy['n_surface']:,} near-surface",
    }


def model_results(name: str, run: Path, metrics: dict) -> dict:
    summary = _read_json(run / "summary.json") or {}
    from .evaluation.evaluate import SUMMARY_METRICS

    entry: dict[str, Any] = {key: metrics[key] for key in SUMMARY_METRICS}
    entry.update(
        {
            "iterations": int(summary.get("iterations", 0)),
            "train_seconds": float(summary.get("train_seconds", math.nan)),
            "best_val_iou": summary.get("best_val_iou"),
            "best_iteration": summary.get("best_iteration"),
            "train_device": summary.get("device"),
            "test_objects": metrics.get("n_objects"),
            "test_views_per_object": metrics.get("views_per_object"),
            "threshold": (metrics.get("eval") or {}).get("threshold"),
            "checkpoint": f"runs/{name}/model_best.pt",
        }
    )
    return entry


def collect_results(cfg: Config, out: Path, metrics: dict[str, dict]) -> dict:
    return {
        "models": {name: model_results(name, out / "runs" / name, metrics[name]) for name in cfg.experiment.models},
        "dataset": dataset_summary(out / "dataset"),
        "machine": machine_info(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------------------------------------------


def run_experiment(cfg: Config, out: Path, workers: int = 1) -> dict:
    """Run (or resume) the study into folder ``out``; returns what ``out/results.json`` holds."""
    from .report.html import ReportInputs, write_report

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"experiment output {out} exists and is not a folder")
    if not cfg.experiment.models:
        raise UserError("experiment.models is empty; name at least one model, e.g. [mono, stereo]")
    if len(set(cfg.experiment.models)) != len(cfg.experiment.models):
        raise UserError(f"experiment.models lists a model twice: {cfg.experiment.models}")
    from .models import MODELS

    unknown = [m for m in cfg.experiment.models if m not in MODELS]
    if unknown:
        raise UserError(f"experiment.models: unknown model(s) {', '.join(unknown)} (known: {', '.join(MODELS)})")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    dataset, runs, evals = out / "dataset", out / "runs", out / "eval"

    build_stage(cfg, dataset, workers)
    train_stage(cfg, dataset, runs)
    metrics = evaluate_stage(cfg, dataset, runs, evals)
    figure = figure_stage(cfg, dataset, evals, out / "figure", metrics)

    _stage(5, f"results -> {out / 'results.json'}")
    results = collect_results(cfg, out, metrics)
    _write_json_atomic(out / "results.json", results)

    _stage(6, f"report -> {out / 'report.html'}")
    write_report(
        out / "report.html",
        ReportInputs(
            results=_finite(results),
            training_logs={name: runs / name / "metrics.csv" for name in cfg.experiment.models},
            figure=figure,
            mesh_folders={name: evals / name / "meshes" for name in cfg.experiment.models},
            config=to_dict(cfg),
        ),
    )
    for name, entry in results["models"].items():
        print(f"  {name:<8} IoU {_show(entry['iou']['mean'])}  mesh IoU {_show(entry['mesh_iou']['mean'])}  "
              f"{entry['iterations']} iterations, {entry['train_seconds']:.0f} s training")
    print(f"done in {time.perf_counter() - start:.0f} s: {out / 'report.html'}", flush=True)
    return results
