"""Build a dataset folder: shapes -> labelled point pools -> stereo renders -> object folders.

The build is resumable and reproducible by design:

* ``meta.json`` and ``splits/`` are written first (atomically), from the cheap list of shapes, so a
  half-built dataset already says what it will contain; a folder built with another config is
  refused rather than mixed.
* Each object is written to ``<id>.partial`` and renamed when whole (storage.write_object), so an
  object folder under its final name is always complete and finished objects are skipped on resume.
* A complete object folder of an older format (1: no ``distances.npy``) is upgraded in place, from
  its stored mesh and points, instead of being rebuilt.
* All randomness of an object is seeded from ``(seed, object_id)`` only, so the same config gives the
  same point pools and renders whatever the number of workers, the sharding or the interruptions.
* One broken mesh does not stop the build: its error is recorded and reported at the end.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..config import Config, DatasetConfig, SplitConfig, dataset_differences, from_dict, to_dict
from ..errors import UserError
from ..files import write_atomic
from . import storage
from .occupancy import DISTANCE_CAP, label_points, sample_points
from .pattern import draw_pattern
from .render import LIGHTING_FIELDS, StereoRenderer
from .rig import StereoRig, random_rotations
from .splits import SPLITS, assign_splits



@dataclass
class BuildSummary:
    built: int = 0
    skipped: int = 0
    upgraded: int = 0  # format-1 folders given their signed distances
    failed: list[tuple[str, str]] = field(default_factory=list)  # (object_id, one-line message)

    def report(self) -> str:
        upgraded = f", upgraded {self.upgraded} (distances added)" if self.upgraded else ""
        lines = [f"built {self.built}, skipped {self.skipped} (already complete){upgraded}, failed {len(self.failed)}"]
        lines += [f"  failed {object_id}: {message}" for object_id, message in self.failed]
        return "\n".join(lines)


def object_rng(seed: int, object_id: str, purpose: str) -> np.random.Generator:
    """A generator that depends only on ``(seed, object_id, purpose)``: same numbers in any process."""
    digest = hashlib.sha256(f"{purpose}:{object_id}".encode()).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words]))


def folder_test_config(cfg: Config, folder: str | Path, views_per_object: int | None = None) -> Config:
    """``cfg`` with every mesh of ``folder`` (``<folder>/<category>/...``) as a test object.

    The rig, rendering, occupancy sampling and seeds stay those of ``cfg``, so the objects are seen
    exactly as the training data was; only the shape source, the counts (all meshes) and the splits
    (all test) change. The categories are those with a sub-folder in ``folder``.
    """
    from ..config import CATEGORIES

    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"mesh folder not found: {root}")
    categories = [c for c in CATEGORIES if (root / c).is_dir()]
    if not categories:
        raise UserError(f"{root}: no category sub-folder ({', '.join(CATEGORIES)}); put meshes in {root}/mug/ etc.")
    shapes = replace(cfg.dataset.shapes, source="folder", root=str(root.resolve()), categories=categories)
    for category in CATEGORIES:
        setattr(shapes, category, 0)  # every mesh of the folder
    render = cfg.dataset.render
    if views_per_object is not None:
        if views_per_object < 1:
            raise UserError(f"views per object must be at least 1 (got {views_per_object})")
        render = replace(render, views_per_object=views_per_object)
    dataset = replace(
        cfg.dataset, shapes=shapes, render=render, splits=SplitConfig(train=0.0, val=0.0, test=1.0)
    )
    return replace(cfg, dataset=dataset)


def _list_sources(cfg: DatasetConfig) -> list:
    from ..shapes import list_shapes  # imported here: shapes may pull heavy optional importers

    return list_shapes(cfg.shapes)


def _write_meta(cfg: DatasetConfig, out: Path, objects: dict[str, str]) -> dict[str, list[str]]:
    """Write meta.json and the split files, or refuse if ``out`` holds a dataset of another config.

    Returns the object ids of each split."""
    config = to_dict(cfg)
    meta_path = out / "meta.json"
    if meta_path.exists():
        try:
            old = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            raise UserError(f"{meta_path}: unreadable; remove it or choose another --out") from None
        stored = _stored_config(old.get("config"))
        differs = dataset_differences(stored, config) if stored is not None else []
        if stored is None or differs:
            detail = f" ({', '.join(differs[:6])}{', ...' if len(differs) > 6 else ''} differ)" if differs else ""
            raise UserError(
                f"{out} already holds a dataset built with a different config{detail}; "
                "choose another --out or delete it"
            )
    splits = assign_splits(objects, cfg.splits)
    meta = {
        "format_version": storage.FORMAT_VERSION,
        "config": config,
        "categories": sorted(set(objects.values()), key=list(cfg.shapes.categories).index),
        "objects": objects,
        "split_sizes": {s: len(v) for s, v in splits.items()},
        "lighting_fields": list(LIGHTING_FIELDS),
        "depth_scale": storage.DEPTH_SCALE,
        "distance_cap": DISTANCE_CAP,
    }
    (out / "splits").mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        write_atomic(out / "splits" / f"{split}.txt", "".join(f"{i}\n" for i in splits[split]))
    write_atomic(meta_path, json.dumps(meta, indent=1))
    return splits


def _stored_config(config: object) -> dict | None:
    """A stored dataset config with today's defaults filled in (a field added since, at its default,
    leaves the config the same); None if it is not one."""
    if not isinstance(config, dict):
        return None
    try:
        return to_dict(from_dict(config, DatasetConfig))
    except UserError:
        return None


def build_object(source, cfg: DatasetConfig, out: Path, renderer: StereoRenderer, density: bool = True) -> None:
    """Load, label, render and write one object (atomically) to ``out/<object_id>``; ``density``:
    with its pool's near-surface density (what training's importance weights need)."""
    mesh = source.load()
    if len(mesh.faces) == 0:
        raise UserError(f"{source.origin}: empty mesh")
    renderer.rig.check_object(np.asarray(mesh.vertices), source.origin)
    points, occ, distances, near_density = sample_points(
        mesh, cfg.occupancy, object_rng(cfg.occupancy.seed, source.object_id, "points"), density=density
    )
    # the object's printed pattern (dataset.render.pattern; None: plain), from a stream of its own so
    # that the views' rotations and lighting are those of the plain dataset
    pattern = draw_pattern(cfg.render, object_rng(cfg.render.seed, source.object_id, "pattern"))
    rng = object_rng(cfg.render.seed, source.object_id, "views")
    n_views = cfg.render.views_per_object
    rotations = random_rotations(n_views, rng)
    pngs: list[bytes] = []
    lighting = []
    for rotation in rotations:
        left, right, left_depth, right_depth, light = renderer.render(mesh, rotation, rng, pattern)
        pngs += [
            storage.encode_png(left),
            storage.encode_png(right),
            storage.encode_depth(left_depth),
            storage.encode_depth(right_depth),
        ]
        lighting.append(light)
    rig = renderer.rig
    views = storage.Views(
        rotations=rotations,
        K=np.broadcast_to(rig.K, (n_views, 2, 3, 3)),
        world_to_cam=np.broadcast_to(rig.world_to_cam, (n_views, 2, 4, 4)),
        lighting=np.stack(lighting) if lighting else np.zeros((0, len(LIGHTING_FIELDS))),
        pngs=pngs,
    )
    info = {
        "object_id": source.object_id,
        "category": source.category,
        "source": source.source,
        "origin": source.origin,
        "n_uniform": cfg.occupancy.n_uniform,
        "n_surface": cfg.occupancy.n_surface,
        "inside_share_uniform": float(occ[: cfg.occupancy.n_uniform].mean()) if cfg.occupancy.n_uniform else 0.0,
    }
    storage.write_object(
        out / source.object_id, info=info, mesh=mesh, points=points, occupancies=occ, distances=distances,
        near_density=near_density, views=views,
    )


def add_distances(folder: Path) -> None:
    """Give a complete format-1 object folder its ``distances.npy``, from its stored mesh and points.

    The stored labels stay authoritative: the distance's sign is taken from them.
    """
    reader = storage.ObjectReader(folder)
    points = np.asarray(reader.points(), dtype=np.float32)
    _, distances = label_points(reader.mesh(), points)
    distances = np.where(reader.occupancies(), -np.abs(distances), np.abs(distances))
    storage.write_distances(folder, distances)


# -- worker plumbing: one renderer per process --------------------------------------------------------
_worker_state: dict = {}


def _worker_init(cfg: DatasetConfig, out: Path, train: frozenset[str]) -> None:
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    _worker_state.update(cfg=cfg, out=out, train=train, renderer=StereoRenderer(cfg.rig, cfg.render))


def _safe_build(source) -> tuple[str, str, str | None]:
    """Build (or upgrade) one object in a worker: ``(object_id, "built" | "upgraded" | "failed", error line)``."""
    try:
        folder = _worker_state["out"] / source.object_id
        if storage.is_complete(folder):
            add_distances(folder)
            return source.object_id, "upgraded", None
        build_object(source, _worker_state["cfg"], _worker_state["out"], _worker_state["renderer"],
                     density=source.object_id in _worker_state["train"])
        return source.object_id, "built", None
    except UserError as exc:
        return source.object_id, "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - a broken mesh can fail anywhere; keep building the rest
        first = (str(exc).splitlines() or [""])[0]
        return source.object_id, "failed", f"{source.origin}: {type(exc).__name__}: {first}"


def build_dataset(
    cfg: Config, out: Path, workers: int = 1, shard: tuple[int, int] | None = None, split: str | None = None
) -> BuildSummary:
    """Build (or resume) the dataset ``cfg.dataset`` describes into ``out``; see the module docstring.

    ``shard=(k, n)`` builds only every n-th object starting at k of the sorted object list (for job
    arrays writing into one folder); ``split`` builds only the objects of that split (to evaluate a
    checkpoint trained elsewhere, the test split is enough). meta.json and splits always describe
    the whole dataset, and a later build without them completes it.
    """
    dcfg = cfg.dataset
    out = Path(out)
    if workers < 1:
        raise UserError(f"--workers must be at least 1 (got {workers})")
    if shard is not None and not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
        raise UserError(f"shard K/N needs 0 <= K < N (got {shard[0]}/{shard[1]})")
    if split is not None and split not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)} (got {split!r})")
    if out.exists() and not out.is_dir():
        raise UserError(f"dataset output {out} exists and is not a folder")
    StereoRig.from_config(dcfg.rig)  # a rig that cannot see the object is an error before anything is written
    sources = sorted(_list_sources(dcfg), key=lambda s: s.object_id)
    if not sources:
        raise UserError("no shapes to build: check dataset.shapes (counts, categories, root)")
    out.mkdir(parents=True, exist_ok=True)
    splits = _write_meta(dcfg, out, {s.object_id: s.category for s in sources})

    mine = sources if shard is None else sources[shard[0] :: shard[1]]
    if split is not None:
        wanted = set(splits[split])
        mine = [s for s in mine if s.object_id in wanted]
    train = frozenset(splits["train"])  # the objects whose densities training reads
    summary = BuildSummary()
    todo = []
    for source in mine:
        folder = out / source.object_id
        stale = folder.with_name(folder.name + storage.TMP_SUFFIX)
        if stale.exists():  # left by a killed build; only this shard touches this object
            shutil.rmtree(stale)
        if storage.is_complete(folder) and storage.has_distances(folder):
            summary.skipped += 1
        else:
            todo.append(source)

    bar = tqdm(total=len(todo), desc="objects", unit="obj", disable=not todo)
    try:
        if workers == 1 or len(todo) <= 1:
            _worker_init(dcfg, out, train)
            try:
                results = map(_safe_build, todo)
                _collect(results, summary, bar)
            finally:
                _worker_state.pop("renderer").close()
        else:
            # spawn: EGL contexts and forked OpenGL state do not mix.
            ctx = mp.get_context("spawn")
            with ctx.Pool(min(workers, len(todo)), initializer=_worker_init, initargs=(dcfg, out, train)) as pool:
                _collect(pool.imap_unordered(_safe_build, todo), summary, bar)
    finally:
        bar.close()
    summary.failed.sort()
    print(summary.report(), file=sys.stderr)
    return summary


def _collect(results, summary: BuildSummary, bar: tqdm) -> None:
    for object_id, outcome, error in results:
        if outcome == "built":
            summary.built += 1
        elif outcome == "upgraded":
            summary.upgraded += 1
        else:
            summary.failed.append((object_id, error))
        bar.update(1)
