"""The whole study as one resumable command: dataset, training, evaluation, figure, results, report.

Each stage writes into its own folder of the experiment folder ``D`` and is skipped when its output
is already complete, so re-running the same command after an interruption (or after adding a model to
``experiment.models``) redoes only what is missing:

=================  ===========================================================================
``D/dataset``      :func:`~stereo_occ.data.build.build_dataset` (resumes object by object)
``D/axis-dataset`` more procedural objects for the axis estimator alone (``experiment.axis_objects``)
``D/runs/<name>``  one training run per model; skipped when ``summary.json`` shows it finished,
                   resumed from ``model_last.pt`` otherwise; ``D/runs/axis_estimator.pt`` first
                   when a model sets ``model.align_axis`` (one estimator for all such models)
``D/eval/<name>``  ``model_best.pt`` on the test split; skipped while ``metrics.json`` is newer
                   than the checkpoint, was made with the same eval config and holds every
                   metric this version reports
``D/real``         the real-mesh folder (``experiment.real_meshes``) as a test-only dataset
                   (``D/real/dataset``) and every model's evaluation on it (``D/real/eval/<name>``)
``D/figure``       per category, test objects seen from their left camera: input, ground truth
                   and every model's mesh (PNG renders, ``figure.json``, ``figure.png``)
``D/results.json`` the numbers with 95% bootstrap intervals over objects and paired differences
                   between every two models (schema in docs/experiment.md), rewritten every run
``D/report.html``  the self-contained report, rewritten every run
=================  ===========================================================================
"""

from __future__ import annotations

import contextlib
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

from .config import CATEGORIES, Config, model_config, to_dict
from .errors import UserError
from .files import write_atomic
from .stage_times import StageTimes, timing_rows

FIGURE_SIZE = 192  # pixels per figure cell: the object is zoomed to fill it
STAGES = 7


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


def _interval(ci: list[float] | None) -> str:
    return "[no interval: too few objects]" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------------
# Stages


def build_stage(cfg: Config, dataset: Path, workers: int, stage: int = 1) -> None:
    from .data.build import build_dataset

    _stage(stage, f"dataset -> {dataset}")
    summary = build_dataset(cfg, dataset, workers=workers)
    if summary.failed:
        object_id, message = summary.failed[0]
        raise UserError(
            f"dataset: {len(summary.failed)} object(s) failed to build (first: {object_id}: {message}); "
            "fix or remove them and run again"
        )


AXIS_DATASET = "axis-dataset"
"""The folder of an experiment's own objects for the axis estimator (``experiment.axis_objects``)."""

RUN_LENGTH_KEYS = ("iterations", "val_every", "checkpoint_every", "log_every", "val_batch_size")
"""Train settings that may change between runs of an experiment: a longer run resumes the old one."""


def stale_run_settings(run: Path, cfg: Config) -> list[str]:
    """The model, train or data settings of ``cfg`` that the finished run in ``run`` was not trained with."""
    summary = _read_json(run / "summary.json") or {}
    trained = summary.get("config")
    if not trained:
        return []
    wanted = {key: to_dict(getattr(cfg, key)) for key in ("model", "train", "data")}
    defaults = to_dict(Config())
    differ = []
    for section, values in wanted.items():
        for key, value in values.items():
            if section == "train" and key in RUN_LENGTH_KEYS:
                continue
            if section == "model" and key == "axis_estimator":  # where the file was; its weights are in the run
                continue
            # a setting newer than the run: the run had the behaviour its default keeps
            if trained.get(section, {}).get(key, defaults[section][key]) != value:
                differ.append(f"{section}.{key}")
    return differ


def training_finished(run: Path, cfg: Config) -> bool:
    """True when ``run`` holds a finished run of at least ``train.iterations`` with its best checkpoint.

    UserError when that run was trained with other model, train or data settings: its results
    would be reported under the new config.
    """
    summary = _read_json(run / "summary.json")
    differ = stale_run_settings(run, cfg)
    if differ:
        raise UserError(
            f"{run} was trained with other settings ({', '.join(differ[:5])}); "
            "delete that folder to train it again with the current config"
        )
    return (
        summary is not None
        and int(summary.get("iterations", -1)) >= cfg.train.iterations
        and (run / "model_best.pt").is_file()
    )


def stale_estimator_settings(path: Path, cfg: Config, own_dataset: Path | None = None) -> list[str]:
    """The ``axis`` settings (and ``data.up_axis``, ``data.handle_axis``) of ``cfg`` that the estimator at ``path`` was not
    trained with. Estimators from before the summary held every setting are compared on those it has.

    ``own_dataset``: the experiment's own axis dataset (``D/axis-dataset``, the last of
    ``axis.extra_datasets``), compared by its folder's name rather than its path, so that an experiment
    folder that was moved or copied keeps its estimator (like ``model.axis_estimator``, where a file
    lies is not how it was trained)."""
    from .training.axis import load_axis_estimator

    record = load_axis_estimator(path)
    summary = record["summary"]
    trained = summary.get("axis")
    if trained is None:  # older files: the few settings at the summary's top level ("precision" there is
        trained = {k: v for k, v in summary.items() if k != "precision"}  # the one used, not the setting)
    # the kind the file holds: files before session 25 regress, those before session 28 have GroupNorm
    trained = {**trained, "bins": int(record.get("bins", 0)), "norm": record.get("norm", "group")}
    wanted = to_dict(cfg.axis)
    if own_dataset is not None and wanted["extra_datasets"][-1:] == [str(own_dataset)]:
        extra = list(trained.get("extra_datasets", []))
        if extra and Path(extra[-1]).name == own_dataset.name:
            trained["extra_datasets"] = [*extra[:-1], str(own_dataset)]
    differ = [f"axis.{key}" for key, value in wanted.items() if key in trained and trained[key] != value]
    if summary.get("up_axis", cfg.data.up_axis) != cfg.data.up_axis:
        differ.append("data.up_axis")
    if summary.get("handle_axis", "") != cfg.data.handle_axis:  # older files found no handle
        differ.append("data.handle_axis")
    return differ


def axis_objects_config(cfg: Config) -> Config | None:
    """The dataset config of ``experiment.axis_objects`` (None: none asked for, or no model aligns its
    volume with the axis): the main dataset's rig and rendering with those procedural counts, the next
    shape seed (other objects than the study's), every object in the training split, ``axis_views``
    views each and a token pool of occupancy labels (the estimator reads only the images)."""
    wanted = {c: n for c, n in cfg.experiment.axis_objects.items() if n > 0}
    aligned = any(model_config(cfg, name).model.align_axis for name in cfg.experiment.models)
    if not wanted or not aligned:
        return None
    d = cfg.dataset
    shapes = dataclasses.replace(d.shapes, source="procedural", root=None, categories=sorted(wanted, key=CATEGORIES.index),
                                 seed=d.shapes.seed + 1, **{c: wanted.get(c, 0) for c in CATEGORIES})
    dataset_cfg = dataclasses.replace(
        d, shapes=shapes, splits=dataclasses.replace(d.splits, train=1.0, val=0.0, test=0.0),
        render=dataclasses.replace(d.render, views_per_object=cfg.experiment.axis_views),
        occupancy=dataclasses.replace(d.occupancy, n_uniform=256, n_surface=256))
    return dataclasses.replace(cfg, dataset=dataset_cfg)


def _timed(times: StageTimes | None, stage: str):
    """``times(stage)``, or nothing to time."""
    return times(stage) if times is not None else contextlib.nullcontext()


def train_stage(cfg: Config, dataset: Path, runs: Path, times: StageTimes | None = None) -> None:
    from .training.trainer import train

    shared_estimator = runs / "axis_estimator.pt"
    wanted = {name: model_config(cfg, name).model for name in cfg.experiment.models}
    aligned = [name for name, model in wanted.items() if model.align_axis and not model.axis_estimator]
    if aligned and shared_estimator.is_file():
        differ = stale_estimator_settings(shared_estimator, cfg, own_dataset=dataset.parent / AXIS_DATASET)
        if differ:
            raise UserError(
                f"{shared_estimator} was trained with other settings ({', '.join(differ[:5])}); delete it and the runs "
                f"that use it ({', '.join(str(runs / name) for name in aligned)}) to train them again with the current config"
            )
    for i, name in enumerate(cfg.experiment.models):
        run = runs / name
        model_cfg = model_config(cfg, name)
        if model_cfg.model.align_axis and not model_cfg.model.axis_estimator:
            # one estimator for every model that lays its volume along the axis, so that rig-stereo and
            # rig-mono still differ only in the second view (and it is trained once)
            model_cfg = dataclasses.replace(model_cfg, model=dataclasses.replace(model_cfg.model, axis_estimator=str(shared_estimator)))
            # (a run already under way has its estimator in its checkpoint)
            if not shared_estimator.is_file() and not (run / "model_last.pt").exists():
                from .training.axis import describe, train_axis_estimator

                _stage(2, f"train the axis estimator (for {name} and every other model with model.align_axis) -> {shared_estimator}")
                with _timed(times, "train the axis estimator"):
                    summary = train_axis_estimator(cfg, dataset, shared_estimator)
                print(describe(summary))
        if training_finished(run, model_cfg):
            _stage(2, f"train {name}: finished ({run / 'summary.json'}), skipped")
            continue
        resuming = (run / "model_last.pt").exists()
        _stage(2, f"train {name} ({i + 1}/{len(cfg.experiment.models)}) -> {run}" + (" (resuming)" if resuming else ""))
        # resume=True also starts a fresh run when there is nothing to resume.
        with _timed(times, f"train {name}"):
            train(model_cfg, dataset, run, resume=True)


def _eval_settings(eval_cfg: dict) -> dict:
    """The eval settings that change the numbers (not how many points go to the network at once)."""
    return {k: v for k, v in eval_cfg.items() if k != "batch_points"}


def evaluation_current(folder: Path, checkpoint: Path, cfg: Config, dataset: Path) -> bool:
    """True when ``folder/metrics.json`` evaluated this very checkpoint with these eval settings on
    every object of the dataset's test split (objects added to a folder dataset are evaluated), and
    holds every metric this version reports."""
    from .data.dataset import read_split
    from .evaluation.metrics import SUMMARY_METRICS

    metrics_path = folder / "metrics.json"
    metrics = _read_json(metrics_path)
    return (
        metrics is not None
        and metrics.get("split") == "test"
        and all(key in metrics for key in SUMMARY_METRICS)
        and _eval_settings(metrics.get("eval") or {}) == _eval_settings(dataclasses.asdict(cfg.eval))
        and (
            cfg.eval.max_objects > 0
            or {o["object_id"] for o in metrics.get("per_object", [])} == set(read_split(dataset, "test"))
        )
        and checkpoint.is_file()
        and metrics_path.stat().st_mtime_ns >= checkpoint.stat().st_mtime_ns
    )


def evaluate_stage(
    cfg: Config, dataset: Path, runs: Path, evals: Path, workers: int = 1, stage: int = 3, what: str = "the test split",
    times: StageTimes | None = None, timed_as: str = "evaluate {name}",
) -> dict[str, dict]:
    """Evaluate every model of the experiment (each with its own eval settings, ``model_config``) on
    the test split of ``dataset``; ``timed_as`` names each evaluation in ``times``."""
    from .evaluation.evaluate import evaluate_checkpoint

    results = {}
    for name in cfg.experiment.models:
        checkpoint = runs / name / "model_best.pt"
        folder = evals / name
        model_cfg = model_config(cfg, name)  # the eval section with the model's own eval.precision, ...
        if evaluation_current(folder, checkpoint, model_cfg, dataset):
            _stage(stage, f"evaluate {name} on {what}: up to date ({folder / 'metrics.json'}), skipped")
        else:
            _stage(stage, f"evaluate {name} on {what} -> {folder}")
            with _timed(times, timed_as.format(name=name)):
                evaluate_checkpoint(checkpoint, dataset, split="test", out=folder, eval_cfg=model_cfg.eval, workers=workers)
        results[name] = json.loads((folder / "metrics.json").read_text())
    return results


@dataclasses.dataclass
class RealMeshes:
    """The real-mesh folder as a test-only dataset with the study's rig (``experiment.real_meshes``)."""

    cfg: Config
    folder: Path
    dataset: Path


def real_meshes_source(cfg: Config, out: Path) -> tuple[RealMeshes | None, str]:
    """The real-mesh dataset to build and evaluate, or ``(None, why)`` when there is no folder."""
    from .data.build import folder_test_config

    source = cfg.experiment.real_meshes
    if not source:
        return None, "no real-mesh folder configured (experiment.real_meshes is empty)"
    folder = Path(source)
    if not folder.is_dir():
        return None, f"the real-mesh folder {folder} was not found"
    real_cfg = folder_test_config(cfg, folder, cfg.experiment.real_views_per_object)
    # The evaluation looks at every rendered view of each real object.
    real_cfg = dataclasses.replace(
        real_cfg, eval=dataclasses.replace(cfg.eval, views_per_object=cfg.experiment.real_views_per_object)
    )
    return RealMeshes(real_cfg, folder, out / "real" / "dataset"), str(folder)


def real_meshes_stage(real: RealMeshes | None, why: str, out: Path, runs: Path, workers: int,
                      times: StageTimes | None = None) -> dict[str, dict] | None:
    """Every model on the real meshes, whose dataset stage 1 built (so that a mesh the rig cannot hold
    fails before any training); None when there is no folder (``why`` says so)."""
    if real is None:
        _stage(4, f"real meshes: {why}, skipped")
        return None
    _stage(4, f"real meshes: {real.folder} -> {out / 'real' / 'eval'}")
    what = f"the real meshes ({real.folder})"
    return evaluate_stage(real.cfg, real.dataset, runs, out / "real" / "eval", workers, stage=4, what=what, times=times,
                          timed_as="evaluate {name} on the real meshes")


def _figure_objects(metrics: dict, per_category: int) -> list[dict]:
    """``per_category`` test objects of each category at evenly spaced ranks of one model's IoU.

    Ranks ``(i + 0.5) / k`` of the category's objects sorted by IoU (k = 1: the median object; k = 3:
    one from the lower, the middle and the upper third), first view only: the figure shows what is
    typical of the model, and its spread, rather than whichever objects come first in the split.
    """
    chosen = []
    for category in CATEGORIES:
        items = [o for o in metrics["per_object"] if o["category"] == category and int(o["view"]) == 0]
        items.sort(key=lambda o: (float(o["iou"]), o["object_id"]))
        ranks = sorted({min(len(items) - 1, int((i + 0.5) * len(items) / per_category)) for i in range(per_category)})
        chosen += [items[r] for r in ranks] if items else []
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
        _stage(5, f"figure: up to date ({description}), skipped")
        return ReconstructionFigure.load(description)

    _stage(5, f"figure -> {figure_dir}")
    items = _figure_objects(metrics[names[-1]], cfg.experiment.figure_objects)  # ranked by the last model listed
    rig = StereoRig.from_config(dataset_config(dataset).rig)
    # Zoom every cell to the disc any rotation of the object can cover: objects fill the cells, and
    # every column still shares one camera.
    crop = Crop.around_center(rig.K, rig.sphere_image_radius(rig.object_radius) + 1.0, FIGURE_SIZE)
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
    from .data.dataset import dataset_config, read_meta, read_split

    meta = read_meta(dataset)
    config = meta["config"]
    rig = dataset_config(dataset).rig  # with today's defaults for fields added since the build
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
        "fov_deg": rig.fov_deg,
        "object_radius": rig.object_radius,
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
            "train_precision": summary.get("precision"),  # bf16 or fp32, what train.precision chose there
            "test_objects": metrics.get("n_objects"),
            "test_views_per_object": metrics.get("views_per_object"),
            "threshold": metrics.get("threshold", (metrics.get("eval") or {}).get("threshold")),
            "checkpoint": f"runs/{name}/model_best.pt",
        }
    )
    return entry


def _evidence(cfg: Config, metrics: dict[str, dict]) -> tuple[dict[str, dict], dict[str, dict]]:
    """95% bootstrap intervals per model and paired differences of every two models."""
    from .evaluation.evaluate import SUMMARY_METRICS
    from .evaluation.statistics import evidence

    return evidence(
        {name: metrics[name]["per_object"] for name in cfg.experiment.models},
        metrics=SUMMARY_METRICS,
        n_resamples=cfg.experiment.bootstrap_samples,
        seed=cfg.experiment.bootstrap_seed,
    )


def real_results(cfg: Config, real: dict[str, dict] | None, source: str) -> tuple[dict[str, dict], dict]:
    """``models[NAME]["real"]`` for every model, and the paired differences on the real meshes."""
    from .evaluation.evaluate import SUMMARY_METRICS

    if real is None:
        return {name: {"missing": source, "source": cfg.experiment.real_meshes} for name in cfg.experiment.models}, {}
    intervals, differences = _evidence(cfg, real)
    entries = {}
    for name in cfg.experiment.models:
        entries[name] = {
            **{key: real[name][key] for key in SUMMARY_METRICS},
            **intervals[name],
            "n_objects": real[name]["n_objects"],
            "views_per_object": real[name]["views_per_object"],
            "source": source,
        }
    return entries, differences


def collect_results(
    cfg: Config, out: Path, metrics: dict[str, dict], real: dict[str, dict] | None, real_source: str
) -> dict:
    intervals, differences = _evidence(cfg, metrics)
    real_entries, real_differences = real_results(cfg, real, real_source)
    models = {}
    for name in cfg.experiment.models:
        entry = model_results(name, out / "runs" / name, metrics[name])
        entry.update(intervals[name])
        entry["real"] = real_entries[name]
        models[name] = entry
    return {
        "models": models,
        "differences": differences,
        "real_differences": real_differences,
        "confidence": {"level": 0.95, "resamples": cfg.experiment.bootstrap_samples, "unit": "test object"},
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
    stray = [m for m in cfg.experiment.overrides if m not in MODELS]
    if stray:
        raise UserError(f"experiment.overrides: unknown model(s) {', '.join(stray)} (known: {', '.join(MODELS)})")
    for name in cfg.experiment.models:
        model_config(cfg, name)  # a bad per-model override is an error before anything runs
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    dataset, runs, evals = out / "dataset", out / "runs", out / "eval"

    times = StageTimes(out / "timings.json")

    with times("dataset"):
        build_stage(cfg, dataset, workers)
    real_meshes, real_source = real_meshes_source(cfg, out)
    if real_meshes is not None:
        with times("dataset of the real meshes"):
            build_stage(real_meshes.cfg, real_meshes.dataset, workers)
    axis_cfg = axis_objects_config(cfg)
    if axis_cfg is not None:
        with times("dataset of the axis estimator (experiment.axis_objects)"):
            build_stage(axis_cfg, out / AXIS_DATASET, workers)
        cfg = dataclasses.replace(cfg, axis=dataclasses.replace(
            cfg.axis, extra_datasets=[*cfg.axis.extra_datasets, str(out / AXIS_DATASET)]))
    train_stage(cfg, dataset, runs, times)
    metrics = evaluate_stage(cfg, dataset, runs, evals, workers, times=times)
    real = real_meshes_stage(real_meshes, real_source, out, runs, workers, times)
    with times("figure"):
        figure = figure_stage(cfg, dataset, evals, out / "figure", metrics)

    with times("results and report"):
        _stage(6, f"results -> {out / 'results.json'}")
        results = collect_results(cfg, out, metrics, real, real_source)
        results["timings"] = times.as_dict()  # every stage before this one (timings.json: this one too)
        _write_json_atomic(out / "results.json", results)

        _stage(7, f"report -> {out / 'report.html'}")
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
        real_iou = (entry["real"].get("iou") or {}).get("mean")
        print(f"  {name:<8} IoU {_show(entry['iou']['mean'])} {_interval(entry['iou_ci']['mean'])}  "
              f"mesh IoU {_show(entry['mesh_iou']['mean'])}  real meshes {_show(real_iou)}  "
              f"{entry['iterations']} iterations, {entry['train_seconds']:.0f} s training")
    for pair, diff in results["differences"].items():
        d = diff["iou"]
        verdict = "significant" if d["significant"] else "not significant"
        print(f"  {pair}: IoU {d['mean']:+.3f} {_interval(d['ci'])} ({verdict})")
    print("  where the time went (timings.json):", ", ".join(
        f"{stage} {seconds:.0f} s" for stage, seconds, _ in timing_rows(times.as_dict())))
    print(f"done in {time.perf_counter() - start:.0f} s: {out / 'report.html'}", flush=True)
    return results
