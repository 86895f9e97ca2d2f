"""Typed configuration: dataclasses, YAML files and ``key=value`` overrides.

Every section is a dataclass, so a typo in a YAML key or an override is an error that names the key,
and code reads ``cfg.train.lr`` rather than ``cfg["train"]["lr"]``. The defaults are the study's
settings (``configs/paper.yaml`` spells them out), except the decision threshold (chosen on validation
unless fixed) and the loader processes (2; the paper config has 8 for a GPU machine);
``configs/quick.yaml`` shrinks them for 2 CPU cores.

Load with :func:`load_config`, turn back into plain data (for ``meta.json`` and checkpoints) with
:func:`to_dict`, and rebuild from that plain data with :func:`from_dict`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import UserError

CATEGORIES: tuple[str, ...] = ("mug", "bowl", "bottle")
"""The object categories, in the order used for category indices everywhere."""

SHAPENET_SYNSETS: dict[str, str] = {"mug": "03797390", "bowl": "02880940", "bottle": "02876657"}


@dataclass
class ShapesConfig:
    """Where the meshes come from."""

    source: str = "procedural"  # procedural | shapenet | folder
    root: Optional[str] = None  # ShapeNetCore root, or a folder with one sub-folder per category
    categories: List[str] = field(default_factory=lambda: list(CATEGORIES))
    # Procedural: how many of each category to generate (the study's counts).
    # Importers: the most to take per category (0 = all of them).
    mug: int = 114
    bowl: int = 174
    bottle: int = 352
    seed: int = 0
    # Repair of meshes that are not closed (ShapeNet): octree leaves of the Manifold algorithm
    # (higher = thinner offset, slower) and how far simplification may then move the surface
    # (object units). Closed meshes are never resampled. See docs/shapes.md.
    watertight_resolution: int = 20_000
    simplify_tolerance: float = 0.001

    def count(self, category: str) -> int:
        return int(getattr(self, category))


@dataclass
class RigConfig:
    """The study's toed-in stereo rig (see docs/geometry.md).

    Lengths are in rig units: the cameras stand ``camera_distance`` from the object centre and the
    object's longest side is ``object_size``. Targets live in object units (longest side 1), so the
    stored camera matrices place the cameras at ``camera_distance / object_size`` object units.
    """

    camera_distance: float = 1.0
    half_angle: float = math.pi / 16  # each camera's angle from the centre line, radians
    object_size: float = 0.5  # longest side of the object in rig units
    image_size: int = 128  # square images, pixels
    fov_deg: float = 60.0  # vertical (= horizontal) field of view
    # Radius (object units) of the sphere every object of the dataset lies in, at any rotation. The
    # field of view is checked against it, the build refuses an object that reaches beyond it, and
    # the camera-aware models' volume spans its cube. The default, the unit cube's circumsphere,
    # holds any normalised object; mugs, bowls and bottles reach 0.50-0.77 (docs/geometry.md).
    object_radius: float = math.sqrt(3.0) / 2.0


PATTERNS = ("none", "blotches")
"""The printed patterns a dataset's objects can carry (dataset.render.pattern; data/pattern.py)."""


@dataclass
class RenderConfig:
    """How each stereo pair is rendered; lighting and material are drawn per pair."""

    views_per_object: int = 1000
    light_intensity: List[float] = field(default_factory=lambda: [2.0, 6.0])  # directional, min/max
    ambient: List[float] = field(default_factory=lambda: [0.2, 0.5])
    hue: List[float] = field(default_factory=lambda: [0.0, 1.0])
    saturation: List[float] = field(default_factory=lambda: [0.0, 0.8])
    value: List[float] = field(default_factory=lambda: [0.35, 0.95])
    metallic: List[float] = field(default_factory=lambda: [0.0, 0.3])
    roughness: List[float] = field(default_factory=lambda: [0.3, 0.9])
    background: List[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    # A printed pattern on every object for the pair to match ("none": one plain material, the
    # study's renders; "blotches": soft light and dark blotches fixed to the surface, printed on each
    # rendered pixel; data/pattern.py), its wavelengths in object units and how much it darkens the
    # material (each drawn per object).
    pattern: str = "none"
    pattern_wavelength: List[float] = field(default_factory=lambda: [0.08, 0.3])
    pattern_contrast: List[float] = field(default_factory=lambda: [0.4, 0.8])
    seed: int = 0


@dataclass
class OccupancyConfig:
    """The per-object pool of labelled points (object frame)."""

    n_uniform: int = 100_000  # uniform in the padded box
    n_surface: int = 100_000  # surface samples plus Gaussian noise
    surface_sigma: float = 0.01  # std of the noise, object units
    padding: float = 0.1  # box is [-(0.5 + padding/2), 0.5 + padding/2]^3
    seed: int = 0  # with the object id, seeds each object's pool (independent of workers/shards)


@dataclass
class SplitConfig:
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1
    seed: int = 0


@dataclass
class DatasetConfig:
    """Everything that decides what a dataset folder contains (stored in meta.json)."""

    shapes: ShapesConfig = field(default_factory=ShapesConfig)
    rig: RigConfig = field(default_factory=RigConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    occupancy: OccupancyConfig = field(default_factory=OccupancyConfig)
    splits: SplitConfig = field(default_factory=SplitConfig)


@dataclass
class DataConfig:
    """How samples are drawn from a built dataset."""

    points_per_sample: int = 2048
    near_surface_share: float = 0.5  # of the drawn points, the share from the near-surface pool
    load_depth: bool = False
    num_workers: int = 2
    seed: int = 0
    # Share of the training samples each category gets, e.g. {mug: 1, bowl: 1, bottle: 1} to balance
    # an unbalanced dataset (relative weights, every category of the training split named). Empty:
    # each item equally often, one permutation per epoch. On the balanced quick dataset, moving
    # samples from bottles to mugs and bowls traded bottles for bowls (docs/training.md, "Session 19").
    category_shares: Dict[str, float] = field(default_factory=dict)
    # The objects' axis in their own frame (x, y or z), what the axis estimator learns to find
    # (model.align_axis): +z for the procedural shapes; imported meshes keep their file's axes (ShapeNet: y).
    up_axis: str = "z"
    # The axis of the objects' own frame that a mug's handle points along (+x for the procedural
    # mugs, shapes/procedural.py); "" where it is not known (imported meshes). Set, the axis estimator
    # also learns where a mug's handle points (model.align_handle; docs/training.md, "Session 24").
    handle_axis: str = ""


@dataclass
class ModelConfig:
    """Which model, and its sizes. Encoder-specific fields are ignored by other encoders."""

    name: str = "stereo"  # a key of stereo_occ.models.MODELS
    code_dim: int = 512
    hidden_dim: int = 256
    n_blocks: int = 5
    pretrained: Optional[str] = None  # local torchvision-format ResNet-18 state dict (mono, stereo)
    # Stereo cost volume half-range, pixels at rig.image_size; 0 = derived from the rig geometry
    # (max |disparity| over the padded box: 16.3 px for the default rig; docs/models.md).
    max_disparity: int = 0
    feature_dim: int = 32  # stereo feature channels
    correlation_groups: int = 8  # stereo group-wise correlation groups (feature_dim % groups == 0)
    # Camera-aware models (rig-stereo, rig-mono; models/rig_volume.py); the decoder uses hidden_dim
    # and n_blocks.
    image_channels: int = 32  # first stage of the image features (the merged map has twice as many)
    volume_channels: int = 16
    volume_resolution: int = 16  # voxels per side of the rig-frame volume over the object's sphere
    fine_channels: int = 0  # first-stage (full or 1/space_to_depth resolution) features per query point (0 = none)
    space_to_depth: int = 1  # fold k x k pixel blocks into channels first: 128 px input at the cost of 64 px
    positional_frequencies: int = 6  # octaves of the decoder's sin/cos encoding of the point (0: the coordinates only)
    # A second decoder output, the point's signed distance to the surface (object units), trained
    # beside the occupancy when train.distance_weight > 0 (rig models only; docs/training.md).
    distance_head: bool = False
    # Lay the volume and the decoder's positions out in a frame along the object's axis, estimated from
    # the images by a separate network trained first and frozen (rig models; models/axis_estimator.py,
    # docs/training.md "Session 20").
    align_axis: bool = False
    # The trained axis estimator (`stereo-occ train-axis`) loaded when such a model starts training;
    # null: `stereo-occ train` trains one into the run folder first. The checkpoint keeps its weights.
    axis_estimator: Optional[str] = None
    # With align_axis: the decoder also reads the point's position in the rig frame (where it is
    # relative to the cameras), beside its position in the axis frame. Development IoU +0.014
    # [+0.001, +0.026] over the axis frame alone, bowls +0.042 (docs/training.md, "Session 22").
    rig_positions: bool = False
    # rig-stereo: every point's (and voxel centre's) features also carry its depth in front of the
    # left camera relative to the object's centre, as the mono twin's always do. The comparison of
    # the two views says where a surface is, not which side of it faces the cameras; without a
    # depth the 3D U-Net can read that side only from where a voxel lies in the grid, which along the
    # object's axis turns with the object: development IoU +0.016 [+0.005, +0.029] there, nothing in
    # the rig frame (docs/training.md, "Session 23"). It changes nothing for rig-mono.
    stereo_depth: bool = False
    # rig-stereo: planes of a classical plane sweep of the raw pair (models/plane_sweep.py; 0: none).
    # Each point and voxel centre also reads where it lies against each view's swept surface and
    # how well the pair matched there: depth the pair holds from the first step, with nothing to learn.
    sweep_planes: int = 0
    # rig-stereo with sweep_planes: the swept surface placed between planes, at the vertex of the
    # parabola through the best plane's cost and its two neighbours' (session 33: 59% of the printed
    # test pixels within a wall's thickness instead of 55% at 32 planes; the IoU the same). Off by
    # default: the sweep of session 32's checkpoints, which have no such setting.
    sweep_refine: bool = False
    # With align_axis: the frame's first axis is the estimator's second answer instead of the rig's x
    # axis, turned about the object's axis: where a mug's handle points, and the side facing the
    # cameras for a bowl or a bottle (an estimator trained with data.handle_axis; docs/training.md,
    # "Session 24"). The whole pose of a mug, not only its axis: session 19's oracle of it put
    # mugs at 0.367 development IoU against 0.273 with the true axis alone.
    align_handle: bool = False


@dataclass
class TrainConfig:
    iterations: int = 40_000
    batch_size: int = 64
    lr: float = 1e-4
    val_every: int = 4_000
    checkpoint_every: int = 1_000
    log_every: int = 50
    val_objects: int = 0  # 0 = the whole val split
    precision: str = "auto"  # auto (bf16 on CUDA; on AVX512-BF16/AMX CPUs for the camera-aware models; else fp32) | fp32 | bf16
    seed: int = 0
    val_points: int = 10_000  # uniform points per val object for the validation IoU (fixed draw)
    val_views: int = 1  # views of each val object (its first N): more views, a steadier choice of best checkpoint and threshold
    val_batch_size: int = 16  # objects per validation forward pass
    train_objects: int = 0  # 0 = the whole train split; N = its first N objects (overfitting checks)
    train_views: int = 0  # 0 = every stored view; N = the first N views of each object
    lr_schedule: str = "constant"  # constant (the study) | cosine (decay to 0 over `iterations`)
    warmup_iterations: int = 0  # linear warm-up from lr / warmup_iterations
    # Weight of the signed-distance loss beside the occupancy BCE (0 = none; needs model.distance_head
    # and a dataset with distances): L1 between the predicted and the true distance, both clipped at
    # distance_truncation object units and divided by it.
    distance_weight: float = 0.0
    distance_truncation: float = 0.1
    # Weight of a soft-IoU loss beside the BCE (0 = none): one minus the soft IoU of each sample's
    # uniform points (an estimate of its volumetric IoU), averaged over the batch. Every object then
    # counts alike, as in the mean IoU, however little of the box it fills (docs/training.md).
    iou_weight: float = 0.0
    # Above 1: false positives cost more in that loss (a Tversky index, TP / (TP + a FP + FN)), against
    # the plain soft IoU's pull towards over-filling thin shells.
    iou_false_positive_weight: float = 1.0
    # Which points estimate the soft IoU's volume: "uniform" (the uniform points alone) or "mixture"
    # (all of them, each weighted by the inverse density of the mixture that drew it: the same volume
    # from twice the points and hundreds inside a thin wall; data/mixture.py, docs/training.md "Session 16")
    iou_estimator: str = "uniform"


@dataclass
class EvalConfig:
    # Occupied where probability >= threshold. None (the default): the threshold chosen on the
    # validation split during training and stored in the checkpoint (evaluation/threshold.py).
    threshold: Optional[float] = None
    n_iou_points: int = 100_000
    n_surface_points: int = 100_000
    fscore_tau: float = 0.011  # 1% of the padded box side (1.1)
    mise_resolution: int = 32
    mise_steps: int = 2
    # Points per decoder call. On a CPU a few thousand keep the activations in cache (8,192 decoded
    # 2x faster per point than 100,000; bench/bench_extraction.py); on a GPU raise it.
    batch_points: int = 8192
    views_per_object: int = 1  # test views per object
    max_objects: int = 0  # 0 = the whole split
    # The network's arithmetic when evaluating and reconstructing: auto (what train.precision=auto
    # picks for the model: bf16 for the camera-aware models on a CPU with native bf16 and on CUDA,
    # where they also validate in bf16, so the threshold was chosen on bf16 outputs; decoding 1.6x
    # faster) | fp32 | bf16. Probabilities move by at most about 0.006 (docs/evaluation.md).
    precision: str = "auto"
    # Models along the object's axis (model.align_axis): each image's axis and handle averaged over
    # this many turned and mirrored copies of it (1, 2, 4 or 8; models/axis_estimator.py,
    # image_copies), in validation, evaluation and reconstruct; training shows the estimator one.
    # With 8 the quick test split's mugs were upside down in 12% of views instead of 22%
    # (docs/training.md, "Session 29").
    axis_copies: int = 8


AXIS_COPIES = (1, 2, 4, 8)
"""How many copies of an image the axis estimator may average over (``eval.axis_copies``): the image,
its mirror, its quarter turns, both (models/axis_estimator.py, ``image_copies``)."""


@dataclass
class ReconstructConfig:
    """What ``stereo-occ reconstruct`` writes (threshold and coarse grid follow the eval section)."""

    # Quadric decimation down to at most this many faces where the surface is smooth
    # (0 = keep the marching-cubes mesh as it is).
    max_faces: int = 20_000
    # MISE refinements of the eval.mise_resolution grid for meshes (2: 128^3 by default). Separate
    # from eval.mise_steps, so that a config that evaluates on a coarse grid to save time (the quick
    # config: 64^3) still hands its users fine meshes.
    mise_steps: int = 2


@dataclass
class ExperimentConfig:
    models: List[str] = field(default_factory=lambda: ["mono", "stereo"])
    # Per-model config overrides (key=value, as on the command line) on top of the rest of the
    # config, e.g. {mono: ["train.iterations=400"]}: each model trains with its own budget and lr.
    overrides: Dict[str, List[str]] = field(default_factory=dict)
    figure_objects: int = 1  # per category, in the report figure
    # A folder of real meshes (<folder>/<category>/*.obj ...), every one a test object, rendered
    # through the same rig and evaluated with every model; "" = none. Relative paths are taken from
    # the current directory; a folder that does not exist is reported in the results, not an error.
    real_meshes: str = "../shared/real-meshes"
    real_views_per_object: int = 4
    # Procedural objects built for the axis estimator alone (D/axis-dataset), per category, e.g.
    # {mug: 200}: the main dataset's rig and rendering, another shape seed (none of them is a test
    # object), every one in the training split, with axis_views views each and only a token pool of
    # occupancy labels. 18 training mugs are too few for the estimator to learn which end of a mug is
    # its top (docs/training.md, "Session 27"); images are cheap. Only built where a model aligns
    # its volume with the axis (model.align_axis); {} = none.
    axis_objects: Dict[str, int] = field(default_factory=dict)
    axis_views: int = 8
    # Confidence intervals: bootstrap resamples over test objects (stratified by category), 95%.
    bootstrap_samples: int = 2000
    bootstrap_seed: int = 0


@dataclass
class AxisConfig:
    """The axis estimator's training (`stereo-occ train-axis`, training/axis.py): every view of the
    training split, one image at a time, rolled and mirrored. 2,000 steps take about 3.5 minutes on 2
    CPU cores in bf16 and, as a classifier over 1,000 directions, put one view's answer about 4 degrees
    off for bowls on the development set, 7 for bottles and 13 for a mug's line (its top it finds less
    often; docs/training.md, "Session 25")."""

    steps: int = 2000
    batch_size: int = 64
    lr: float = 0.002
    # steps over which the learning rate rises linearly (0: the full rate from the first step). At the
    # full rate a few Adam steps make the convolutions' output the same for every image; a yes/no probe
    # of a mug's end then stayed at chance with 230 mugs, and 300 steps took it to 81%. In the quick
    # study (18 training mugs) 300 steps gave rig-stereo +0.003 (n.s.) and its mugs -0.033, so 0 stays
    # the default until the estimator learns from more mugs (docs/training.md, "Session 27")
    warmup_steps: int = 0
    # constant, or cosine: the rate decays to 0 over axis.steps (after the warm-up)
    lr_schedule: str = "constant"
    # the convolutions' normalisation: batch (since session 28) or group (before). With GroupNorm the
    # trunk's output became the same for every image early on, and a probe of which end of a mug the
    # camera sees stayed at 54%; BatchNorm: 66%, 84% with 216 more mugs (docs/training.md, "Session 27")
    norm: str = "batch"
    # batches of training images over which BatchNorm's statistics are measured afresh once training
    # ends (0: keep the running averages of training, which lag behind the weights: an estimator so
    # kept answered 80-100 degrees off on val, 4-11 with them measured; docs/training.md, "Session 28")
    precise_bn_batches: int = 50
    seed: int = 0
    # auto: bf16 on CPUs that compute it natively (1.8x faster steps) and on GPUs; fp32 otherwise
    precision: str = "auto"
    views_per_object: int = 16  # the first N views of each training object (0: all); memory grows with it
    # more dataset folders whose training objects the estimator also learns from (rendered with the
    # same rig and image size): 18 training mugs are too few to learn which end of a mug is its top
    # (docs/training.md, "Session 27"), and images are cheap to render
    extra_datasets: List[str] = field(default_factory=list)
    # a regression's loss (axis.bins=0): 1 - cos^2 (the line) + sign_weight * (1 - cos) (which end is the top); training/axis.py.
    # Under 2 the wrong end is a local minimum (some bottles stay upside down); 3 has no such trap,
    # but no occupancy run gained from it (docs/training.md, "Session 24")
    sign_weight: float = 0.5
    # the estimator chooses among this many directions on the sphere (a classifier, trained on soft
    # labels of spread 1/sqrt(kappa) radians); 0: it regresses a vector, with the loss above (sessions
    # 20-24, which never fitted a mug's axis; docs/training.md, "Session 25")
    bins: int = 1000
    kappa: float = 40.0
    # with data.handle_axis: the weight of the handle's answer in the loss (a mug's handle; the
    # direction towards the camera for the other objects)
    handle_weight: float = 1.0


@dataclass
class Config:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    reconstruct: ReconstructConfig = field(default_factory=ReconstructConfig)
    axis: AxisConfig = field(default_factory=AxisConfig)


def _merge(base: DictConfig, other: Any, what: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except TypeError:  # e.g. a YAML file whose top level is a list
        raise UserError(f"{what}: expected a mapping of config sections (dataset:, train:, ...)") from None
    except OmegaConfBaseException as exc:  # unknown key, wrong type, ...
        key = getattr(exc, "full_key", None) or ""
        msg = str(exc).splitlines()[0]
        raise UserError(f"{what}: bad config key {key!r}: {msg}") from None


def _merge_file(cfg: DictConfig, path: Path, chain: tuple[Path, ...] = ()) -> DictConfig:
    """``cfg`` with the YAML file at ``path`` merged in, after the file its ``base:`` names, if any.

    ``base: quick.yaml`` (a path relative to the file) makes a config a variant of another: it
    gives only what differs (a list, such as one model's ``experiment.overrides``, is replaced whole).
    """
    if not path.is_file():
        named = f" (named by base: in {chain[-1]})" if chain else ""
        raise UserError(f"config file not found: {path}{named}")
    if path.resolve() in chain:
        raise UserError(f"{path}: its base: chain comes back to itself ({' -> '.join(str(p) for p in (*chain, path))})")
    try:
        loaded = OmegaConf.load(path)
    except Exception as exc:  # noqa: BLE001 - YAML errors come in many types
        raise UserError(f"{path}: not a valid YAML file ({str(exc).splitlines()[0]})") from None
    if isinstance(loaded, DictConfig) and "base" in loaded:
        base = loaded.pop("base")
        if not isinstance(base, str):
            raise UserError(f"{path}: base: must name another config file (got {base!r})")
        cfg = _merge_file(cfg, path.parent / base, (*chain, path.resolve()))
    return _merge(cfg, loaded, str(path))


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (), base: Config | None = None) -> Config:
    """The defaults (or ``base``), then the YAML file at ``path`` (after the file its ``base:`` key
    names), then ``key=value`` overrides, as a typed Config."""
    cfg = OmegaConf.structured(base if base is not None else Config)
    if path is not None:
        cfg = _merge_file(cfg, Path(path))
    config: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    validate(config)
    return with_overrides(config, overrides)


def validate(cfg: Config) -> None:
    """Checks that types alone cannot express."""
    for c in cfg.dataset.shapes.categories:
        if c not in CATEGORIES:
            raise UserError(f"unknown category {c!r} (known: {', '.join(CATEGORIES)})")
    if cfg.dataset.shapes.source not in ("procedural", "shapenet", "folder"):
        raise UserError(
            f"unknown shape source {cfg.dataset.shapes.source!r} (known: procedural, shapenet, folder)"
        )
    render = cfg.dataset.render
    if render.pattern not in PATTERNS:
        raise UserError(f"dataset.render.pattern must be one of {', '.join(PATTERNS)} (got {render.pattern!r})")
    if len(render.pattern_wavelength) != 2 or not 0 < render.pattern_wavelength[0] <= render.pattern_wavelength[1]:
        raise UserError(f"dataset.render.pattern_wavelength must be [shortest, longest], both > 0 (got {render.pattern_wavelength})")
    if len(render.pattern_contrast) != 2 or not 0 <= render.pattern_contrast[0] <= render.pattern_contrast[1] <= 1:
        raise UserError(f"dataset.render.pattern_contrast must be [low, high] within [0, 1] (got {render.pattern_contrast})")
    s = cfg.dataset.splits
    if abs(s.train + s.val + s.test - 1.0) > 1e-6:
        raise UserError(f"dataset.splits must add up to 1 (got {s.train + s.val + s.test})")
    positive = {
        "model.image_channels": cfg.model.image_channels,
        "model.volume_channels": cfg.model.volume_channels,
        "model.volume_resolution": cfg.model.volume_resolution,
        "model.hidden_dim": cfg.model.hidden_dim,
        "eval.views_per_object": cfg.eval.views_per_object,
        "experiment.real_views_per_object": cfg.experiment.real_views_per_object,
        "experiment.bootstrap_samples": cfg.experiment.bootstrap_samples,
    }
    for key, value in positive.items():
        if value < 1:
            raise UserError(f"{key} must be at least 1 (got {value})")
    if cfg.eval.threshold is not None and not 0.0 < cfg.eval.threshold < 1.0:
        raise UserError(f"eval.threshold must be in (0, 1), or null to use the one chosen on validation (got {cfg.eval.threshold})")
    if not 0 <= cfg.reconstruct.mise_steps <= 5:
        raise UserError(
            f"reconstruct.mise_steps must be 0 to 5 (a {cfg.eval.mise_resolution}^3 grid refined that often; "
            f"got {cfg.reconstruct.mise_steps})"
        )
    if cfg.reconstruct.max_faces < 0:
        raise UserError(f"reconstruct.max_faces must be 0 (no simplification) or positive (got {cfg.reconstruct.max_faces})")
    if cfg.model.fine_channels < 0:
        raise UserError(f"model.fine_channels must be 0 (none) or positive (got {cfg.model.fine_channels})")
    if cfg.model.sweep_planes < 0 or cfg.model.sweep_planes == 1:
        raise UserError(f"model.sweep_planes must be 0 (none) or at least 2 (got {cfg.model.sweep_planes})")
    if cfg.model.sweep_refine and cfg.model.sweep_planes < 3:
        raise UserError(f"model.sweep_refine places the surface between the best plane's neighbours: "
                        f"it needs model.sweep_planes of at least 3 (got {cfg.model.sweep_planes})")
    if cfg.model.sweep_planes and cfg.model.name != "rig-stereo":
        raise UserError(f"model.sweep_planes matches the two views of rig-stereo; {cfg.model.name} cannot use it "
                        "(set it for rig-stereo alone, in experiment.overrides)")
    if cfg.model.space_to_depth < 1:
        raise UserError(f"model.space_to_depth must be 1 (none) or more (got {cfg.model.space_to_depth})")
    for name in ("steps", "batch_size"):
        if getattr(cfg.axis, name) < 1:
            raise UserError(f"axis.{name} must be positive (got {getattr(cfg.axis, name)})")
    if not cfg.axis.lr > 0:
        raise UserError(f"axis.lr must be positive (got {cfg.axis.lr})")
    if cfg.axis.views_per_object < 0:
        raise UserError(f"axis.views_per_object must be 0 (all) or more (got {cfg.axis.views_per_object})")
    if not cfg.axis.sign_weight >= 0:
        raise UserError(f"axis.sign_weight must be 0 or more (got {cfg.axis.sign_weight})")
    if cfg.axis.precision not in ("auto", "fp32", "bf16"):
        raise UserError(f"axis.precision must be auto, fp32 or bf16 (got {cfg.axis.precision!r})")
    if cfg.data.up_axis not in ("x", "y", "z"):
        raise UserError(f"data.up_axis must be x, y or z (got {cfg.data.up_axis!r})")
    if cfg.data.handle_axis not in ("", "x", "y", "z") or cfg.data.handle_axis == cfg.data.up_axis:
        raise UserError(f"data.handle_axis must be x, y or z other than data.up_axis ({cfg.data.up_axis}), "
                        f"or empty (got {cfg.data.handle_axis!r})")
    bad = {k: v for k, v in cfg.experiment.axis_objects.items() if k not in CATEGORIES or v < 0}
    if bad:
        raise UserError(f"experiment.axis_objects: counts per category ({', '.join(CATEGORIES)}), 0 or more (got {bad})")
    if cfg.experiment.axis_views < 1:
        raise UserError(f"experiment.axis_views must be positive (got {cfg.experiment.axis_views})")
    if cfg.axis.lr_schedule not in ("constant", "cosine"):
        raise UserError(f"axis.lr_schedule must be constant or cosine (got {cfg.axis.lr_schedule!r})")
    if cfg.axis.precise_bn_batches < 0:
        raise UserError(f"axis.precise_bn_batches must be 0 or more (got {cfg.axis.precise_bn_batches})")
    if cfg.axis.norm not in ("batch", "group"):
        raise UserError(f"axis.norm must be batch or group (got {cfg.axis.norm!r})")
    if cfg.axis.warmup_steps < 0:
        raise UserError(f"axis.warmup_steps must be 0 or more (got {cfg.axis.warmup_steps})")
    if cfg.axis.bins < 0 or 0 < cfg.axis.bins < 20:
        raise UserError(f"axis.bins must be 0 (a regression) or 20 or more directions (got {cfg.axis.bins})")
    if not cfg.axis.kappa > 0:
        raise UserError(f"axis.kappa must be positive (got {cfg.axis.kappa})")
    if not cfg.axis.handle_weight >= 0:
        raise UserError(f"axis.handle_weight must be 0 or more (got {cfg.axis.handle_weight})")
    if cfg.eval.axis_copies not in AXIS_COPIES:
        raise UserError(f"eval.axis_copies must be {', '.join(map(str, AXIS_COPIES[:-1]))} or {AXIS_COPIES[-1]} "
                        f"(got {cfg.eval.axis_copies})")
    if cfg.model.align_handle and not cfg.model.align_axis:
        raise UserError("model.align_handle turns the axis frame towards the handle: it needs model.align_axis=true")
    for category, share in cfg.data.category_shares.items():
        if category not in CATEGORIES:
            raise UserError(f"data.category_shares: unknown category {category!r} (known: {', '.join(CATEGORIES)})")
        if not share > 0:
            raise UserError(f"data.category_shares.{category} must be positive (got {share})")
    if cfg.train.val_views < 1:
        raise UserError(f"train.val_views must be at least 1 (got {cfg.train.val_views})")
    if cfg.train.iou_estimator not in ("uniform", "mixture"):
        raise UserError(f"train.iou_estimator must be uniform or mixture (got {cfg.train.iou_estimator!r})")
    if cfg.train.lr_schedule not in ("constant", "cosine"):
        raise UserError(f"train.lr_schedule must be constant or cosine (got {cfg.train.lr_schedule!r})")
    for section in ("train", "eval"):
        precision = getattr(cfg, section).precision
        if precision not in ("auto", "fp32", "bf16"):
            raise UserError(f"{section}.precision must be auto, fp32 or bf16 (got {precision!r})")


def with_overrides(cfg: Config, overrides: Sequence[str], what: str = "override") -> Config:
    """``cfg`` with ``key=value`` overrides applied (the same rules as on the command line)."""
    if not overrides:
        return cfg
    for item in overrides:
        if "=" not in item:
            raise UserError(f"{what}: {item!r} is not of the form key=value")
    try:
        dot = OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as exc:
        raise UserError(f"{what}: {str(exc).splitlines()[0]}") from None
    merged: Config = OmegaConf.to_object(_merge(OmegaConf.structured(cfg), dot, what))  # type: ignore[assignment]
    validate(merged)
    return merged


PER_MODEL_SECTIONS = ("model.", "train.", "data.")
"""What ``experiment.overrides`` may change: how a model is built and trained, not the data or the
evaluation (those must be the same for every model, or the comparison means nothing)."""

PER_MODEL_EVAL_KEYS = ("eval.precision", "eval.batch_points", "eval.axis_copies")
"""The evaluation settings a model may have of its own: how its network is run, not what is measured
(the study's fp32 models decode 1.3x faster in bf16 with the same test IoU to 0.001: configs/quick.yaml)."""


def model_config(cfg: Config, name: str) -> Config:
    """The config one model of an experiment trains with: ``model.name`` set, its overrides applied."""
    for item in cfg.experiment.overrides.get(name, []):
        key = item.split("=", 1)[0].strip()
        if not (key.startswith(PER_MODEL_SECTIONS) or key in PER_MODEL_EVAL_KEYS) or key == "model.name":
            raise UserError(
                f"experiment.overrides.{name}: {key!r} cannot differ between models "
                f"(allowed: model.*, train.*, data.*, {', '.join(PER_MODEL_EVAL_KEYS)}; not model.name)"
            )
    named = with_overrides(cfg, [f"model.name={name}"])
    return with_overrides(named, cfg.experiment.overrides.get(name, []), f"experiment.overrides.{name}")


def to_dict(cfg: Any) -> dict:
    """Plain nested dict of a config (or config section), for JSON and checkpoints."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def config_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys (``prefix`` first) whose values differ between two :func:`to_dict` trees."""
    diffs = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            diffs += config_differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            diffs.append(f"{prefix}{k}")
    return diffs


def dataset_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys in which two dataset configs (:func:`to_dict` trees of :class:`DatasetConfig`) would
    build different data: :func:`config_differences`, less the print's settings
    (``render.pattern_*``) where neither dataset has a print, since they change no pixel there."""
    diffs = config_differences(a, b, prefix)
    if all(config.get("render", {}).get("pattern", "none") == "none" for config in (a, b)):
        diffs = [key for key in diffs if not key.startswith(f"{prefix}render.pattern_")]
    return diffs


# Settings an earlier version stored and this one no longer has; checkpoints that hold them still load.
# train.axis_weight: the loss of session 19's axis head, replaced by a separate estimator in session 20.
RETIRED: dict[str, tuple[str, ...]] = {"train": ("axis_weight",)}


def from_dict(data: dict, section: type = Config) -> Any:
    """Rebuild a typed config (or a section, e.g. ``DatasetConfig``) from :func:`to_dict` output.

    Keys unknown to this version are an error, except settings it retired (:data:`RETIRED`), which are
    dropped; keys missing take today's defaults.
    """
    if section is Config and isinstance(data, dict):
        data = {part: ({k: v for k, v in values.items() if k not in RETIRED.get(part, ())} if isinstance(values, dict) else values)
                for part, values in data.items()}
    merged = _merge(OmegaConf.structured(section), data, "stored config")
    return OmegaConf.to_object(merged)


@dataclass(frozen=True)
class ConfigChanges:
    """A YAML config file and ``key=value`` overrides, applied on top of a checkpoint's own config.

    What ``evaluate`` and ``reconstruct`` do with ``--config`` and overrides: they use the eval (and
    reconstruct) sections of the result, so ``reconstruct.mise_steps=3`` changes the refinement and
    keeps the checkpoint's threshold and grid.
    """

    path: Path | None = None
    overrides: tuple[str, ...] = ()

    def apply(self, cfg: Config) -> Config:
        return load_config(self.path, self.overrides, base=cfg)
