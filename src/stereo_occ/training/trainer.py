"""The training loop: BCE on sampled points, validation IoU, checkpoints, resume, DDP.

Loss: binary cross-entropy with logits, averaged over every point of every sample in the batch (the
Occupancy Networks paper sums over points and averages over the batch; with Adam the two differ only
by a constant factor in the gradient, which Adam's normalisation cancels).

Resuming is exact: the sample order is a function of (seed, epoch) and the step count
(:mod:`.sampler`), item randomness is a function of (seed, epoch, index) (the dataset), and the model,
optimiser, RNG states, best IoU and logs come from ``model_last.pt``; a resumed run ends with the same
weights as one that never stopped.

Under ``torchrun`` each process trains a DDP replica on ``train.batch_size / world_size`` samples per
step (``train.batch_size`` is the global batch); rank 0 alone validates, logs and writes files.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from ..config import (
    CATEGORIES,
    Config,
    DatasetConfig,
    ModelConfig,
    TrainConfig,
    config_differences,
    dataset_differences,
    from_dict,
    to_dict,
)
from ..errors import UserError
from ..evaluation.threshold import DEFAULT_THRESHOLD, choose_threshold, ious_at, validation_thresholds
from ..files import write_atomic
from ..models.cameras import Cameras
from .axis import describe, load_axis_estimator, train_axis_estimator
from .checkpoint import (
    FORMAT_VERSION,
    capture_rng_state,
    load_checkpoint,
    load_weights,
    restore_rng_state,
    save_checkpoint,
)
from .distributed import (
    DistContext,
    autocast,
    autocast_dtype,
    barrier,
    init_distributed,
    local_batch_size,
    mean_over_ranks,
    shutdown,
)
from .sampler import EpochKeyed, EpochStream, ResumableDistributedSampler, category_weights

LAST, BEST = "model_last.pt", "model_best.pt"
AXIS_ESTIMATOR = "axis_estimator.pt"  # trained first when model.align_axis has no model.axis_estimator
METRICS_COLUMNS = ("iteration", "seconds", "split", "loss", "iou", "threshold") + tuple(f"iou_{c}" for c in CATEGORIES)


@dataclass
class TrainResult:
    """What a finished run produced."""

    model: str
    iterations: int
    train_seconds: float
    best_val_iou: float | None
    best_iteration: int | None
    last_checkpoint: Path
    best_checkpoint: Path


def train(cfg: Config, dataset: str | Path, out: str | Path, resume: bool = False) -> TrainResult:
    """Train ``cfg.model.name`` on the dataset folder ``dataset``; write checkpoints and logs to ``out``.

    ``resume=True`` continues from ``out/model_last.pt`` (or starts fresh when there is none); a run
    that already reached ``cfg.train.iterations`` says so and returns. Under torchrun it trains with DDP.
    """
    ctx = init_distributed()
    try:
        return _Run(cfg, Path(dataset), Path(out), ctx).run(resume)
    finally:
        shutdown(ctx)


# --- validation ---------------------------------------------------------------------------------------


@dataclass
class PointScores:
    """What :func:`evaluate_points` measured: the mean BCE and each item's IoU at each threshold."""

    loss: float
    thresholds: tuple[float, ...]
    ious: np.ndarray  # (thresholds, items)
    categories: np.ndarray  # (items,) category index of each item (-1: unknown)

    def mean(self) -> list[float]:
        """Mean IoU over items, per threshold."""
        return self.ious.mean(axis=1).tolist()

    def by_category(self, threshold: float) -> dict[str, float]:
        """Mean IoU per category at ``threshold`` (categories with items only)."""
        row = self.ious[self.thresholds.index(threshold)]
        return {c: float(row[self.categories == k].mean()) for k, c in enumerate(CATEGORIES) if (self.categories == k).any()}


@torch.no_grad()
def evaluate_points(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    thresholds: Sequence[float] = (DEFAULT_THRESHOLD,),
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    amp_dtype: torch.dtype | None = None,
) -> PointScores:
    """Mean BCE over all points and each item's volumetric IoU at each threshold, of ``model`` on ``dataset``.

    IoU of an item is |pred & gt| / |pred | gt| with pred = sigmoid(logit) >= threshold; an item where
    both are empty counts as 1. Items are taken in order, so a fixed dataset gives fixed numbers.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    loss_sum, n_points, ious, categories = 0.0, 0, [], []
    try:
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0):
            left, right = batch["left"].to(device), batch["right"].to(device)
            points, occ = batch["points"].to(device), batch["occupancies"].to(device)
            cameras = Cameras.from_batch(batch).to(device)
            with autocast(device, amp_dtype):
                logits = model(left, right, points, cameras)
            logits = logits.float()
            loss_sum += float(F.binary_cross_entropy_with_logits(logits, occ, reduction="sum"))
            n_points += occ.numel()
            ious.append(ious_at(torch.sigmoid(logits).cpu().numpy(), occ.cpu().numpy() > 0.5, thresholds))
            categories.append(np.asarray(batch["category"]) if "category" in batch else np.full(len(occ), -1))
    finally:
        model.train(was_training)
    if not ious:
        raise ValueError("evaluate_points needs a non-empty dataset")
    return PointScores(loss_sum / n_points, tuple(thresholds), np.concatenate(ious, axis=1), np.concatenate(categories))


# --- pieces of a run ----------------------------------------------------------------------------------


def _item_categories(dataset: Dataset) -> list[str]:
    """Each training item's category, through the ``Subset`` that ``train.train_objects`` makes."""
    if isinstance(dataset, Subset):
        categories = _item_categories(dataset.dataset)
        return [categories[i] for i in dataset.indices]
    return dataset.item_categories()  # type: ignore[attr-defined]


def _first_items(dataset: Dataset, n_objects: int, views_per_object: int) -> Dataset:
    """The items of the first ``n_objects`` objects (items are ordered object-major)."""
    return Subset(dataset, range(min(len(dataset), n_objects * views_per_object)))  # type: ignore[arg-type]


def open_datasets(cfg: Config, root: Path) -> tuple[Dataset, Dataset | None]:
    """The training set (``train.train_objects``/``train_views`` applied) and the fixed validation set.

    Validation uses each val object's first ``train.val_views`` views and ``train.val_points`` uniform
    points drawn once (epoch 0): the same items and points at every validation, so IoUs over a run are
    comparable.
    """
    from ..data.dataset import StereoOccupancyDataset, read_split

    if not read_split(root, "train"):
        raise UserError(f"{root}: the train split is empty")
    views: Any = cfg.train.train_views if cfg.train.train_views > 0 else "all"
    train_set = StereoOccupancyDataset.from_config(
        root, "train", cfg.data, views=views, load_distances=cfg.train.distance_weight > 0,
        volume_weights=cfg.train.iou_weight > 0 and cfg.train.iou_estimator == "mixture",
    )
    if cfg.train.train_objects > 0:
        per_object = len(train_set) // len(train_set.objects)
        train_set = _first_items(train_set, cfg.train.train_objects, per_object)
    if not read_split(root, "val"):
        return train_set, None
    try:
        val_set: Dataset = StereoOccupancyDataset(
            root,
            "val",
            points_per_sample=cfg.train.val_points,
            seed=cfg.data.seed,
            views=cfg.train.val_views,
            uniform_only=True,
        )
    except UserError as exc:
        raise UserError(f"the validation set (train.val_views={cfg.train.val_views}): {exc}") from None
    if cfg.train.val_objects > 0:
        val_set = _first_items(val_set, cfg.train.val_objects, cfg.train.val_views)
    return train_set, val_set


def load_pretrained(model: torch.nn.Module, path: str | Path) -> None:
    """Initialise the encoder's ResNet-18 from a local torchvision-format state dict (.pt/.pth or .safetensors).

    The file is read here (models never read files) and handed to the model, which loads it into its
    encoder's ResNet-18 with ``models.resnet.load_torchvision_resnet18``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model.pretrained: file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt files fail in many ways
        raise UserError(f"model.pretrained: cannot read {path} ({str(exc).splitlines()[0][:120]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"model.pretrained: {path} does not hold a state dict")
    loader = getattr(model, "load_resnet18_weights", None)
    if loader is None:
        raise UserError(f"model.pretrained is set but {type(model).__name__} has no ResNet-18 to load it into")
    try:
        loader(state)
    except UserError as exc:
        raise UserError(f"model.pretrained: {path}: {exc}") from None
    except (RuntimeError, KeyError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:120]
        raise UserError(f"model.pretrained: {path} is not a ResNet-18 state dict ({reason})") from None


class MetricsLog:
    """``metrics.csv`` (:data:`METRICS_COLUMNS`), appended row by row; trimmed on resume.

    Validation rows also carry the threshold chosen and the IoU per category at it.
    """

    def __init__(self, path: Path, keep_through: int | None):
        self.path = path
        rows: list[list[str]] = []
        if keep_through is not None and path.is_file():
            with open(path, newline="") as f:
                reader = csv.reader(f)
                next(reader, None)
                rows = [r for r in reader if r and int(r[0]) <= keep_through]
                rows = [r + [""] * (len(METRICS_COLUMNS) - len(r)) for r in rows]  # rows of an older log
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(METRICS_COLUMNS)
            writer.writerows(rows)
        os.replace(tmp, path)
        self._file = open(path, "a", newline="")
        self._writer = csv.writer(self._file)

    def add(
        self,
        iteration: int,
        seconds: float,
        split: str,
        loss: float,
        iou: float | None,
        threshold: float | None = None,
        per_category: dict[str, float] | None = None,
    ) -> None:
        number = lambda v, fmt: "" if v is None else format(v, fmt)  # noqa: E731
        per_category = per_category or {}
        self._writer.writerow(
            [iteration, f"{seconds:.3f}", split, f"{loss:.6f}", number(iou, ".6f"), number(threshold, ".2f")]
            + [number(per_category.get(c), ".6f") for c in CATEGORIES]
        )
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data, indent=1))


def soft_iou_loss(logits: Tensor, occupied: Tensor, weights: Tensor, false_positive_weight: float = 1.0) -> Tensor:
    """One minus the soft IoU of each sample's points, each weighted, averaged over the batch.

    ``weights`` (B, N) is what each point counts for in the volume: the uniform mask (1 on uniform
    points, 0 on near-surface ones; ``train.iou_estimator=uniform``), or the importance weights of
    data/mixture.py, which estimate the same volume from all the points (``mixture``).

    On the uniform points the soft IoU estimates the sample's volumetric IoU, so each object weighs
    the same whatever its volume: a bowl filling 2% of the box counts as much as a bottle filling
    20%, as in the mean IoU, where in the BCE its few inside points are drowned. With
    ``false_positive_weight`` a != 1 it is the Tversky index ``TP / (TP + a FP + FN)``: at low overlap
    the plain IoU's gradient favours recall (raising an inside point gains more than lowering one
    false positive), which over-fills thin shells; a > 1 weighs the false positives up.
    """
    p = torch.sigmoid(logits)
    y = occupied
    intersection = (weights * p * y).sum(1)
    union = (weights * (p + y - p * y)).sum(1)  # TP + FP + FN
    if false_positive_weight != 1.0:
        union = union + (false_positive_weight - 1.0) * (weights * p * (1 - y)).sum(1)
    return (1.0 - (intersection + 1e-6) / (union + 1e-6)).mean()


def learning_rate(tc: TrainConfig, iteration: int) -> float:
    """The learning rate of step ``iteration`` (0-based): linear warm-up, then constant or cosine decay.

    A function of the step alone, so a resumed run continues on the same curve.
    """
    warm = min(1.0, (iteration + 1) / tc.warmup_iterations) if tc.warmup_iterations > 0 else 1.0
    if tc.lr_schedule == "cosine":
        progress = min(1.0, iteration / max(1, tc.iterations))
        return tc.lr * warm * 0.5 * (1.0 + math.cos(math.pi * progress))
    return tc.lr * warm


class _Run:
    """One training run: owns the model, optimiser, data and outputs of one process."""

    def __init__(self, cfg: Config, root: Path, out: Path, ctx: DistContext):
        from ..data.dataset import dataset_config

        self.ctx, self.root, self.out = ctx, root, out
        self.dataset_cfg: DatasetConfig = dataset_config(root)
        # The checkpoint's config carries the dataset's own config: image size and cameras for inference.
        self.cfg: Config = from_dict(dict(to_dict(cfg), dataset=to_dict(self.dataset_cfg)))
        self.tc = self.cfg.train
        if self.tc.iterations < 1 or self.tc.batch_size < 1:
            raise UserError("train.iterations and train.batch_size must be positive")
        for name in ("val_every", "checkpoint_every", "log_every"):
            if getattr(self.tc, name) < 1:
                raise UserError(f"train.{name} must be at least 1 (got {getattr(self.tc, name)})")
        self._check_losses()
        self.local_batch = local_batch_size(self.tc.batch_size, ctx.world_size)

    def _check_losses(self) -> None:
        """Loss weights in range; a distance loss needs a model with the head and a dataset whose
        distances reach the truncation."""
        from ..data.dataset import read_meta

        tc = self.tc
        if tc.iou_weight < 0:
            raise UserError(f"train.iou_weight must be 0 or more (got {tc.iou_weight})")
        if tc.iou_false_positive_weight <= 0:
            raise UserError(f"train.iou_false_positive_weight must be positive (got {tc.iou_false_positive_weight})")
        if tc.distance_weight < 0:
            raise UserError(f"train.distance_weight must be 0 or more (got {tc.distance_weight})")
        if tc.distance_weight == 0:
            return
        if not self.cfg.model.distance_head or not self.cfg.model.name.startswith("rig-"):
            raise UserError(
                "train.distance_weight > 0 trains a distance head: set model.distance_head=true "
                f"(rig models only; the model is {self.cfg.model.name})"
            )
        cap = read_meta(self.root).get("distance_cap")
        if cap is None:
            raise UserError(
                f"{self.root} stores no signed distances (format 1): run `stereo-occ dataset` again with its "
                "--config and --out to add them, or set train.distance_weight=0"
            )
        if not 0 < tc.distance_truncation <= cap:
            raise UserError(f"train.distance_truncation must be in (0, {cap}] (the dataset's distance cap), got {tc.distance_truncation}")

    # -- state ---------------------------------------------------------------------------------------

    def _build(self, resume_state: dict | None) -> None:
        from ..models import build_model

        random.seed(self.tc.seed)
        np.random.seed(self.tc.seed)
        torch.manual_seed(self.tc.seed)
        self.model = build_model(self.cfg.model, self.cfg.dataset.rig)
        self.model.set_axis_copies(self.cfg.eval.axis_copies)  # validation shows the estimator what evaluation will
        if resume_state is None and self.cfg.model.pretrained:
            load_pretrained(self.model, self.cfg.model.pretrained)
        if self.cfg.model.align_axis and getattr(self.model.encoder, "axis_estimator", None) is None:
            raise UserError(f"model.align_axis is for the camera-aware models (rig-stereo, rig-mono), not {self.cfg.model.name}")
        if resume_state is None and self.cfg.model.align_axis:
            self.model.load_axis_estimator(self._axis_estimator()["state_dict"])
        self.model.to(self.ctx.device)
        self.amp_dtype = autocast_dtype(self.tc.precision, self.ctx.device, self.model.trains_well_in_bf16)
        self.precision: str | None = "bf16" if self.amp_dtype == torch.bfloat16 else "fp32"  # what auto chose here
        # fused: one kernel for all parameters, 1.1-9x faster steps on this CPU (docs/models.md)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.tc.lr, fused=True)
        self.iteration, self.train_seconds = 0, 0.0
        self.best_val_iou: float | None = None
        self.best_iteration: int | None = None
        # decision thresholds chosen on validation (evaluation/threshold.py): the latest, and the best's
        self.threshold: float | None = None
        self.best_threshold: float | None = None
        if resume_state is not None:
            path = self.out / LAST
            load_weights(self.model, resume_state["model"], path, self.cfg.model.name)
            self.optimizer.load_state_dict(resume_state["optimizer"])  # its lr is set per step (learning_rate)
            self.iteration = int(resume_state["iteration"])
            self.train_seconds = float(resume_state.get("train_seconds", 0.0))
            self.best_val_iou = resume_state.get("best_val_iou")
            self.best_iteration = resume_state.get("best_iteration")
            self.threshold = resume_state.get("threshold")
            self.best_threshold = resume_state.get("best_threshold")
            restore_rng_state(resume_state["rng"])
        self.ddp = (
            DistributedDataParallel(
                self.model, device_ids=[self.ctx.device.index] if self.ctx.device.type == "cuda" else None
            )
            if self.ctx.distributed
            else self.model
        )

    def _state(self, with_optimizer: bool) -> dict:
        state = {
            "format_version": FORMAT_VERSION,
            "model_name": self.cfg.model.name,
            "config": to_dict(self.cfg),
            "model": self.model.state_dict(),
            "iteration": self.iteration,
            "epoch": self.stream.position(self.iteration * self.local_batch)[0],
            "position": self.iteration * self.local_batch,
            "world_size": self.ctx.world_size,
            "train_seconds": self.train_seconds_now(),
            "best_val_iou": self.best_val_iou,
            "best_iteration": self.best_iteration,
            "threshold": self.threshold,
            "best_threshold": self.best_threshold,
            "rng": capture_rng_state(),
            "precision": self.precision,
        }
        if with_optimizer:
            state["optimizer"] = self.optimizer.state_dict()
        return state

    def train_seconds_now(self) -> float:
        return self.train_seconds + (time.perf_counter() - self._t0)

    def _check_resumable(self, state: dict) -> None:
        path = self.out / LAST
        missing = [k for k in ("model", "optimizer", "iteration", "rng") if k not in state]
        if missing:
            raise UserError(f"{path}: cannot resume, the checkpoint lacks {', '.join(missing)}")
        ours = dict(to_dict(self.cfg.model))
        # a setting newer than the checkpoint: it was trained with the behaviour its default keeps
        theirs = {**to_dict(ModelConfig(name=self.cfg.model.name)), **state["config"].get("model", {})}
        for where_a_file_was in ("pretrained", "axis_estimator"):  # read at a fresh start only; the weights are in the checkpoint
            ours.pop(where_a_file_was, None)
            theirs.pop(where_a_file_was, None)
        diffs = config_differences(ours, theirs, "model.")
        if diffs:
            raise UserError(f"{path}: cannot resume, the model config differs in {', '.join(diffs)}")
        # the checkpoint's dataset config with today's defaults for fields added since (rig.object_radius)
        theirs = to_dict(from_dict(state["config"].get("dataset", {}), DatasetConfig))
        diffs = dataset_differences(to_dict(self.dataset_cfg), theirs, "dataset.")
        if diffs:
            raise UserError(
                f"{path}: cannot resume on {self.root}, it was built with a different config ({', '.join(diffs[:4])})"
            )

    def _check_threshold_unchanged(self, state: dict) -> None:
        """Training on must validate as before: the best checkpoint so far was picked with that threshold."""
        before = state["config"].get("eval", {}).get("threshold")
        now = self.cfg.eval.threshold
        if before != now:
            describe = lambda t: "chosen on validation (eval.threshold=null)" if t is None else f"fixed at {t}"  # noqa: E731
            raise UserError(
                f"{self.out / LAST}: cannot train on, its threshold was {describe(before)} and this config's is "
                f"{describe(now)}; the best checkpoint so far was picked at the old one (set eval.threshold as "
                "the run had it; a finished run can be evaluated at any threshold)"
            )

    def _result(self) -> TrainResult:
        return TrainResult(
            model=self.cfg.model.name,
            iterations=self.iteration,
            train_seconds=self.train_seconds_now() if hasattr(self, "_t0") else self.train_seconds,
            best_val_iou=self.best_val_iou,
            best_iteration=self.best_iteration,
            last_checkpoint=self.out / LAST,
            best_checkpoint=self.out / BEST,
        )

    def _axis_estimator(self) -> dict:
        """The axis estimator a new ``align_axis`` run starts from: ``model.axis_estimator``, or one
        trained into the run folder first (rank 0; the others wait and read it)."""
        path = self.cfg.model.axis_estimator
        if not path:
            path = self.out / AXIS_ESTIMATOR
            if self.ctx.is_main and not path.is_file():
                print(f"model.align_axis without model.axis_estimator: training one first -> {path}")
                summary = train_axis_estimator(self.cfg, self.root, path)
                print(describe(summary))
            barrier(self.ctx)
        record = load_axis_estimator(path)
        trained_for = record["summary"].get("up_axis")
        if trained_for != self.cfg.data.up_axis:
            raise UserError(f"model.axis_estimator: {path} finds the objects' {trained_for} axis, this run's data.up_axis is "
                            f"{self.cfg.data.up_axis}; train one for it (`stereo-occ train-axis`)")
        if record["image_size"] != self.cfg.dataset.rig.image_size:
            raise UserError(
                f"model.axis_estimator: {path} was trained on {record['image_size']} px images, this rig's are "
                f"{self.cfg.dataset.rig.image_size} px"
            )
        return record

    # -- the loop ------------------------------------------------------------------------------------

    def run(self, resume: bool) -> TrainResult:
        main = self.ctx.is_main
        last = self.out / LAST
        state = None
        if last.exists():
            if not resume:
                raise UserError(
                    f"{self.out} already holds a run ({LAST}); pass --resume to continue it or choose another --out"
                )
            state = load_checkpoint(last)
            self._check_resumable(state)
            if int(state["iteration"]) >= self.tc.iterations:
                if main:
                    print(f"{self.out}: already finished ({state['iteration']} iterations); nothing to do")
                self.iteration = int(state["iteration"])
                self.train_seconds = float(state.get("train_seconds", 0.0))
                self.best_val_iou, self.best_iteration = state.get("best_val_iou"), state.get("best_iteration")
                self.best_threshold = state.get("best_threshold")
                self.precision = state.get("precision")
                if main and not (self.out / "summary.json").is_file():
                    # Killed after the final checkpoint but before the run's last writes: finish them.
                    if not (self.out / BEST).is_file():
                        save_checkpoint(self.out / BEST, {k: v for k, v in state.items() if k != "optimizer"})
                    self._write_summary(self.train_seconds)
                return self._result()
            self._check_threshold_unchanged(state)
        elif resume and main:
            print(f"{self.out}: no {LAST} to resume from; starting a new run")
        if main:
            self.out.mkdir(parents=True, exist_ok=True)

        train_set, val_set = open_datasets(self.cfg, self.root)
        self._build(state)
        sampler = ResumableDistributedSampler(
            len(train_set), num_replicas=self.ctx.world_size, rank=self.ctx.rank, seed=self.cfg.data.seed,
            weights=category_weights(_item_categories(train_set), self.cfg.data.category_shares),
        )
        remaining = self.tc.iterations - self.iteration
        self.stream = EpochStream(sampler, start=self.iteration * self.local_batch, length=remaining * self.local_batch)
        loader = DataLoader(
            EpochKeyed(train_set),
            batch_size=self.local_batch,
            sampler=self.stream,
            num_workers=self.cfg.data.num_workers,
            pin_memory=self.ctx.device.type == "cuda",
        )
        self._t0 = time.perf_counter()
        metrics = writer = bar = None
        if main:
            from torch.utils.tensorboard import SummaryWriter

            metrics = MetricsLog(self.out / "metrics.csv", keep_through=self.iteration if state else None)
            writer = SummaryWriter(str(self.out / "tensorboard"), purge_step=self.iteration + 1)
            bar = tqdm(
                total=self.tc.iterations, initial=self.iteration, desc=f"train {self.cfg.model.name}", unit="it"
            )
        try:
            self._loop(loader, val_set, metrics, writer, bar)
        finally:
            if main:
                bar.close()
                writer.close()
                metrics.close()
        if main:
            if val_set is None:  # nothing to choose by: the final weights are the best we have
                save_checkpoint(self.out / BEST, self._state(with_optimizer=False))
            self._write_summary(self.train_seconds_now())
        barrier(self.ctx)
        return self._result()

    def _write_summary(self, train_seconds: float) -> None:
        _write_json(
            self.out / "summary.json",
            {
                "model": self.cfg.model.name,
                "iterations": self.iteration,
                "train_seconds": round(train_seconds, 3),
                "best_val_iou": self.best_val_iou,
                "best_iteration": self.best_iteration,
                "threshold": self.best_threshold,
                "world_size": self.ctx.world_size,
                "device": str(self.ctx.device),
                "precision": self.precision,  # bf16 or fp32: what train.precision chose (None: a run from before the field)
                # what the run was trained with, so an experiment can tell a stale run from its own
                "config": {key: to_dict(getattr(self.cfg, key)) for key in ("model", "train", "data")},
            },
        )

    def _loss_terms(self) -> dict[str, float]:
        """The loss terms this run trains, with their weights (the BCE, "loss", always)."""
        tc = self.tc
        weights = {"loss": 1.0, "distance_loss": tc.distance_weight, "iou_loss": tc.iou_weight}
        return {name: w for name, w in weights.items() if w > 0}

    def _losses(self, batch: dict, logits: Tensor, distance: Tensor | None) -> dict[str, Tensor]:
        """Each term of :meth:`_loss_terms`, unweighted, for one batch."""
        device, tc = self.ctx.device, self.tc
        occ = batch["occupancies"].to(device, non_blocking=True)
        terms = {"loss": F.binary_cross_entropy_with_logits(logits, occ)}
        if distance is not None:
            # L1 on distances clipped at tau (beyond it the prediction is free), in units of tau
            tau = tc.distance_truncation
            target = batch["distances"].to(device, non_blocking=True).clamp(-tau, tau)
            terms["distance_loss"] = (distance.float().clamp(-tau, tau) - target).abs().mean() / tau
        if tc.iou_weight > 0:
            key = "volume_weight" if tc.iou_estimator == "mixture" else "uniform"
            weights = batch[key].to(device, non_blocking=True).to(occ.dtype)
            terms["iou_loss"] = soft_iou_loss(logits, occ, weights, tc.iou_false_positive_weight)
        return terms

    def _set_learning_rate(self) -> None:
        lr = learning_rate(self.tc, self.iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _loop(self, loader: DataLoader, val_set: Dataset | None, metrics, writer, bar) -> None:
        device, main, tc = self.ctx.device, self.ctx.is_main, self.tc
        weights = self._loss_terms()
        window = {name: torch.zeros((), device=device) for name in weights}
        window_steps = 0
        self.model.train()
        for batch in loader:
            left = batch["left"].to(device, non_blocking=True)
            right = batch["right"].to(device, non_blocking=True)
            points = batch["points"].to(device, non_blocking=True)
            cameras = Cameras.from_batch(batch).to(device)
            self._set_learning_rate()
            with autocast(device, self.amp_dtype):
                if tc.distance_weight > 0:
                    logits, distance = self.ddp(left, right, points, cameras, with_distance=True)
                else:
                    logits, distance = self.ddp(left, right, points, cameras), None
            terms = self._losses(batch, logits.float(), distance)
            total = sum(weight * terms[name] for name, weight in weights.items())
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            self.iteration += 1
            for name, value in terms.items():
                window[name] += value.detach()
            window_steps += 1
            it, last = self.iteration, self.iteration == tc.iterations

            if it % tc.log_every == 0 or last:
                means = {name: mean_over_ranks(self.ctx, float(v) / window_steps) for name, v in window.items()}
                for v in window.values():
                    v.zero_()
                window_steps = 0
                mean_loss = means["loss"]  # the occupancy BCE: metrics.csv's loss, comparable across runs
                if main:
                    seconds = self.train_seconds_now()
                    metrics.add(it, seconds, "train", mean_loss, None)
                    for name, value in means.items():
                        writer.add_scalar(f"train/{name}", value, it)
                    writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], it)
                    bar.set_postfix(loss=f"{mean_loss:.4f}")
            if main:
                bar.update(1)

            validate = val_set is not None and (it % tc.val_every == 0 or last)
            save = it % tc.checkpoint_every == 0 or last
            if main and validate:
                self._validate(val_set, metrics, writer, bar)
            if main and save:
                save_checkpoint(self.out / LAST, self._state(with_optimizer=True))
            if validate or save:
                barrier(self.ctx)

    def _validate(self, val_set: Dataset, metrics, writer, bar) -> None:
        it = self.iteration
        thresholds = validation_thresholds(self.cfg.eval)
        scores = evaluate_points(
            self.model,
            val_set,
            thresholds=thresholds,
            device=self.ctx.device,
            batch_size=self.tc.val_batch_size,
            amp_dtype=self.amp_dtype,
        )
        loss = scores.loss
        self.threshold, iou = choose_threshold(thresholds, scores.mean())
        per_category = scores.by_category(self.threshold)
        metrics.add(it, self.train_seconds_now(), "val", loss, iou, self.threshold, per_category)
        for category, value in per_category.items():
            writer.add_scalar(f"val/iou_{category}", value, it)
        writer.add_scalar("val/loss", loss, it)
        writer.add_scalar("val/iou", iou, it)
        writer.add_scalar("val/threshold", self.threshold, it)
        if self.best_val_iou is None or iou > self.best_val_iou:
            self.best_val_iou, self.best_iteration, self.best_threshold = iou, it, self.threshold
            save_checkpoint(self.out / BEST, self._state(with_optimizer=False))
        bar.write(
            f"iteration {it}: val loss {loss:.4f}, IoU {iou:.4f} at threshold {self.threshold:.2f} "
            f"(best {self.best_val_iou:.4f} at {self.best_iteration})"
        )
