"""Evaluate a checkpoint on a dataset split with the Occupancy Networks protocol.

What belongs to an object is prepared once per object (:class:`ObjectTruth`, object frame): its
uniform points with their labels and a surface sample of its mesh with a search tree. Then for every
test item (the object seen from one stored view): encode the stereo pair once, and

1. volumetric IoU of the network on the object's uniform points (all of them, in their stored
   order, rotated into the rig frame by the view's rotation, where the network answers);
2. a mesh by MISE + marching cubes over the object's padded box (the grid follows the object's box,
   exactly the region the uniform points and the training targets fill), so the mesh comes out in
   the object frame, where the truth is;
3. where its wrong points lie: in space either view's true depth shows empty, at a visible surface,
   or hidden from both views (``visibility.py``), and its IoU with both visible surfaces given;
4. mesh IoU (containment of the same points in that mesh), and Chamfer-L1, normal consistency and
   F-score against the truth's surface sample (these are unchanged by a rotation, so nothing of
   the truth is rotated per view); the mesh is then turned into the rig frame to be saved, like
   every prediction.

Results go to ``out/metrics.json`` (per category, the class mean, and per object),
``out/metrics.csv`` (one row per object and view) and ``out/meshes/<object_id>.ply``.
docs/evaluation.md describes the protocol and where it differs from the ONet code.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import CATEGORIES, EvalConfig
from ..errors import UserError
from ..files import write_atomic
from ..models.cameras import Cameras
from ..training.distributed import autocast, autocast_dtype
from .metrics import (
    SUMMARY_METRICS,
    SurfaceSample,
    compare_surfaces,
    iou,
    is_empty,
    mesh_contains,
    probability_iou,
    summarize,
    volume_precision_recall,
)
from .mise import extract_mesh, save_mesh
from .threshold import resolved
from .visibility import Visibility



@dataclass
class ObjectResult:
    """The metrics of one object seen from one view."""

    object_id: str
    category: str
    view: int
    iou: float
    volume_precision: float
    volume_recall: float
    # what the pair can see (visibility.py): IoU lost in space a view's depth shows empty, at a visible
    # surface, where both views are blind, outside an image; and the IoU with both visible surfaces given
    iou_lost_seen: float
    iou_lost_surface: float
    iou_lost_hidden: float
    iou_lost_outside: float
    iou_given_depth: float
    mesh_iou: float
    chamfer_l1: float
    accuracy: float
    completeness: float
    normal_consistency: float
    precision: float
    recall: float
    fscore: float
    n_faces: int
    mise_queries: int
    seconds: float


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def decode_probs(
    model: torch.nn.Module, conditioning: Any, points: np.ndarray | torch.Tensor, batch_points: int
) -> np.ndarray:
    """Occupancy probabilities (N,) of rig-frame points for one encoded pair, in batches."""
    points = torch.as_tensor(points, dtype=torch.float32)
    device = model_device(model)
    out = []
    for start in range(0, len(points), batch_points):
        chunk = points[start : start + batch_points].to(device)[None]
        out.append(torch.sigmoid(model.decode(chunk, conditioning)[0].float()).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)


def occupancy_query(
    model: torch.nn.Module, conditioning: Any, batch_points: int, rotation: np.ndarray | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """The network as a function of points for MISE.

    With ``rotation`` the query points are in the object frame and are turned into the rig frame
    (``p_rig = R p_obj``) before decoding, so the extraction grid follows the object's padded box.
    """

    def query(points: np.ndarray) -> np.ndarray:
        if rotation is not None:
            points = points @ np.asarray(rotation, dtype=np.float32).T
        return decode_probs(model, conditioning, points, batch_points)

    return query


def inference_dtype(model: torch.nn.Module, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``eval.precision`` (None: fp32): ``auto`` is what training's ``auto``
    picks for this model on its device, so a model that trained and validated in bf16 is evaluated
    in bf16, and the study's models, which train in fp32 on the CPU, in fp32."""
    # a module outside the registry (a test's oracle) that does not say is taken to need fp32
    return autocast_dtype(precision, model_device(model), bool(getattr(model, "trains_well_in_bf16", False)))


@torch.inference_mode()
def encode_pair(model: torch.nn.Module, left: torch.Tensor, right: torch.Tensor, cameras: Cameras) -> Any:
    """The conditioning of one stereo pair given as float (3, H, W) tensors in [0, 1] and its cameras."""
    device = model_device(model)
    return model.encode(left[None].to(device), right[None].to(device), cameras.to(device))


def select_objects(categories: list[str], max_objects: int) -> list[int]:
    """Indices of at most ``max_objects`` objects, taken in turn from each category.

    Quick runs then still cover every category instead of the first one in split order.
    """
    if max_objects <= 0 or max_objects >= len(categories):
        return list(range(len(categories)))
    by_category = {c: [i for i, cat in enumerate(categories) if cat == c] for c in dict.fromkeys(categories)}
    chosen: list[int] = []
    while len(chosen) < max_objects:
        for indices in by_category.values():
            if indices and len(chosen) < max_objects:
                chosen.append(indices.pop(0))
    return sorted(chosen)


@dataclass
class ObjectTruth:
    """What every view of one object is compared with, in the object frame (made once per object)."""

    points: np.ndarray  # (n, 3) float64 uniform points of the padded box, stored order
    occupied: np.ndarray  # (n,) bool ground-truth labels
    surface: SurfaceSample  # of the ground-truth mesh, with its search tree

    @classmethod
    def from_object(cls, reader, eval_cfg: EvalConfig, seed: int = 0) -> "ObjectTruth":
        """From a dataset object (:class:`~stereo_occ.data.storage.ObjectReader`)."""
        n = min(eval_cfg.n_iou_points, reader.n_uniform)
        points = np.asarray(reader.points()[:n], dtype=np.float64)
        return cls.from_mesh(reader.mesh(), points, reader.occupancies()[:n], eval_cfg, seed)

    @classmethod
    def from_mesh(cls, mesh, points: np.ndarray, occupied: np.ndarray, eval_cfg: EvalConfig, seed: int = 0) -> "ObjectTruth":
        surface = SurfaceSample.from_mesh(mesh, eval_cfg.n_surface_points, seed=seed)
        surface.tree  # built now, once per object, not inside the first view's timing
        return cls(np.asarray(points, dtype=np.float64), np.asarray(occupied, dtype=bool), surface)


def evaluate_item(
    model: torch.nn.Module,
    item: dict,
    truth: ObjectTruth,
    eval_cfg: EvalConfig,
    box: float,
    object_id: str,
    category: str,
    seed: int = 0,
) -> tuple[ObjectResult, object]:
    """All metrics of one dataset item, and its predicted mesh (rig frame).

    ``eval_cfg.threshold`` None (no checkpoint to take one from) means ONet's 0.2; the network runs
    at ``eval_cfg.precision`` (:func:`inference_dtype`).
    """
    if "depth" not in item:
        raise UserError("an evaluated item needs its views' depth maps (StereoOccupancyDataset(..., load_depth=True))")
    start = time.perf_counter()
    eval_cfg = resolved(eval_cfg, None)
    cameras = Cameras.from_batch(item)
    rotation = item["rotation"].numpy().astype(np.float64)
    with autocast(model_device(model), inference_dtype(model, eval_cfg.precision)):
        code = encode_pair(model, item["left"], item["right"], cameras)
        points_rig = truth.points @ rotation.T  # the view's rig frame, where the network answers
        probs = decode_probs(model, code, points_rig, eval_cfg.batch_points)
        mesh, n_queries = extract_mesh(
            occupancy_query(model, code, eval_cfg.batch_points, rotation=rotation),
            resolution=eval_cfg.mise_resolution,
            steps=eval_cfg.mise_steps,
            threshold=eval_cfg.threshold,
            box=box,
            batch_points=eval_cfg.batch_points,
        )  # object frame: the grid follows the object's box
    predicted = None if is_empty(mesh) else SurfaceSample.from_mesh(mesh, eval_cfg.n_surface_points, seed=seed + 1)
    surface = compare_surfaces(predicted, truth.surface, eval_cfg.fscore_tau)
    volume_precision, volume_recall = volume_precision_recall(probs, truth.occupied, eval_cfg.threshold)
    visibility = Visibility.of_points(points_rig, item["depth"].numpy(), item["K"].numpy(),
                                      item["world_to_cam"].numpy())
    seen_by_pair = visibility.metrics(probs >= eval_cfg.threshold, truth.occupied)
    result = ObjectResult(
        object_id=object_id,
        category=category,
        view=int(item["view"]),
        iou=probability_iou(probs, truth.occupied, eval_cfg.threshold),
        volume_precision=volume_precision,
        volume_recall=volume_recall,
        **seen_by_pair,
        mesh_iou=iou(mesh_contains(mesh, truth.points), truth.occupied),
        **surface.as_dict(),
        n_faces=int(len(mesh.faces)),
        mise_queries=int(n_queries),
        seconds=time.perf_counter() - start,
    )
    if len(mesh.faces):
        mesh.vertices = mesh.vertices @ rotation.T  # object frame -> rig frame, like every prediction
    return result, mesh


def mesh_path(meshes: Path, object_id: str, view: int, views_per_object: int) -> Path:
    """``meshes/<object_id>.ply``; with several views per object ``meshes/<object_id>-view<k>.ply``."""
    name = object_id if views_per_object == 1 else f"{object_id}-view{view}"
    return meshes / f"{name}.ply"


def results_csv(per_object: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(ObjectResult.__dataclass_fields__))
    writer.writeheader()
    writer.writerows(per_object)
    return buf.getvalue()


def format_table(results: dict) -> str:
    """A plain-text table: one row per metric, one column per category and the class mean."""
    columns = list(CATEGORIES) + ["mean"]
    lines = [f"{'metric':<20}" + "".join(f"{c:>10}" for c in columns)]
    for metric in SUMMARY_METRICS:
        row = results[metric]
        cells = "".join(f"{'-':>10}" if row[c] is None else f"{row[c]:>10.4f}" for c in columns)
        lines.append(f"{metric:<20}{cells}")
    return "\n".join(lines)


class _Evaluator:
    """One process's view of an evaluation: the model, the items, and where meshes go.

    Built once per process; :meth:`evaluate_object` does every view of one object, so the
    object's :class:`ObjectTruth` is made once and never crosses a process boundary.
    """

    def __init__(self, checkpoint, dataset, split: str, eval_cfg: EvalConfig | None, meshes_dir, device=None):
        from ..data.dataset import StereoOccupancyDataset, read_split
        from ..data.occupancy import box_half_side
        from ..training.checkpoint import load_model

        self.model, self.cfg = load_model(checkpoint, device=device or default_device())
        # as asked (threshold None = the checkpoint's), and as used: the checkpoint's threshold, chosen
        # on validation, unless eval_cfg fixes one
        self.requested_eval = eval_cfg or self.cfg.eval
        self.eval_cfg = resolved(self.requested_eval, self.cfg.eval.threshold)
        self.model.set_axis_copies(self.eval_cfg.axis_copies)
        if self.eval_cfg.views_per_object < 1:
            raise UserError(f"eval.views_per_object must be at least 1 (got {self.eval_cfg.views_per_object})")
        if not read_split(dataset, split):
            raise UserError(f"{dataset}: the {split} split is empty")
        views = "first" if self.eval_cfg.views_per_object == 1 else self.eval_cfg.views_per_object
        # Items carry only images, depth maps and cameras here; the points come from each object's ObjectTruth.
        self.data = StereoOccupancyDataset(
            dataset, split, points_per_sample=1, uniform_only=True, views=views, seed=self.cfg.data.seed,
            load_depth=True,
        )
        self.per_view = len(self.data) // len(self.data.objects)
        self.box = box_half_side(self.cfg.dataset.occupancy)
        self.meshes_dir = meshes_dir

    def evaluate_object(self, index: int) -> list[dict]:
        truth = ObjectTruth.from_object(self.data.objects[index], self.eval_cfg, seed=index)
        rows = []
        for view in range(self.per_view):
            result, mesh = evaluate_item(
                self.model,
                self.data[index * self.per_view + view],
                truth,
                self.eval_cfg,
                self.box,
                object_id=self.data.object_ids[index],
                category=self.data.categories[index],
                seed=index,
            )
            rows.append(asdict(result))
            if self.meshes_dir is not None:
                save_mesh(mesh, mesh_path(self.meshes_dir, result.object_id, result.view, self.per_view))
        return rows


_worker: dict = {}


def _init_worker(args: tuple, threads: int) -> None:
    torch.set_num_threads(threads)
    _worker["evaluator"] = _Evaluator(*args, device="cpu")


def _evaluate_in_worker(index: int) -> list[dict]:
    return _worker["evaluator"].evaluate_object(index)


def evaluate_checkpoint(
    checkpoint: str | Path,
    dataset: str | Path,
    split: str = "test",
    out: str | Path | None = None,
    eval_cfg: EvalConfig | None = None,
    workers: int = 1,
) -> dict:
    """Evaluate ``checkpoint`` on ``split`` of ``dataset``; write results to ``out`` when given.

    ``eval_cfg`` defaults to the eval section stored in the checkpoint. ``workers`` > 1 evaluates
    objects in that many processes on the CPU (each with its share of the torch threads): much of an
    item's time (marching cubes, surface sampling, containment) runs on one core, so two processes
    on two cores finish sooner than one with two threads; the numbers are the same. Returns
    ``{"iou": {"mug", "bowl", "bottle", "mean"}, "mesh_iou": ..., "chamfer_l1": ...,
    "normal_consistency": ..., "fscore": ..., "per_object": [...], ...}``.
    """
    import multiprocessing as mp

    dataset = Path(dataset)
    meshes_dir = Path(out) / "meshes" if out is not None else None
    if workers < 1:
        raise UserError(f"--workers must be at least 1 (got {workers})")
    evaluator = _Evaluator(checkpoint, dataset, split, eval_cfg, meshes_dir)
    cfg, eval_cfg, data, per_view = evaluator.cfg, evaluator.eval_cfg, evaluator.data, evaluator.per_view
    chosen = select_objects(list(data.categories), eval_cfg.max_objects)
    bar = tqdm(total=len(chosen) * per_view, desc=f"evaluate {cfg.model.name} on {split}", unit="view", dynamic_ncols=True)
    rows: dict[int, list[dict]] = {}
    on_cpu = next(evaluator.model.parameters()).device.type == "cpu"
    if workers > 1 and on_cpu and len(chosen) > 1:
        threads = max(1, torch.get_num_threads() // workers)
        init = ((checkpoint, dataset, split, eval_cfg, meshes_dir), threads)
        with mp.get_context("spawn").Pool(min(workers, len(chosen)), initializer=_init_worker, initargs=init) as pool:
            for index, result in zip(chosen, pool.imap(_evaluate_in_worker, chosen)):
                rows[index] = result
                bar.update(len(result))
    else:
        for index in chosen:
            rows[index] = evaluator.evaluate_object(index)
            bar.update(len(rows[index]))
    bar.close()
    per_object = [row for index in chosen for row in rows[index]]

    results: dict = summarize(per_object, SUMMARY_METRICS)
    results.update(
        {
            "model": cfg.model.name,
            "checkpoint": str(checkpoint),
            "dataset": str(dataset),
            "split": split,
            "n_objects": len(chosen),
            "views_per_object": per_view,
            "eval": asdict(evaluator.requested_eval),
            "threshold": eval_cfg.threshold,
            "per_object": per_object,
        }
    )
    print(f"\n{cfg.model.name} on {split} ({len(chosen)} objects x {per_view} views, threshold {eval_cfg.threshold})")
    print(format_table(results))
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "metrics.json", json.dumps(results, indent=1))
        write_atomic(out / "metrics.csv", results_csv(per_object))
    return results
