"""Reading a built dataset: meta, splits, and the torch Dataset of (stereo pair, labelled points).

An item is one view of one object: its left and right images, the cameras, and points drawn from the
object's stored pool, rotated into the rig frame with the view's rotation (``p_rig = R @ p_obj``), so
targets live in the frame the cameras see. No mesh work happens per item: two PNG decodes and a
gather from a memory-mapped float16 array.

Randomness of an item is a function of ``(seed, epoch, index)`` alone: the same item comes back in any
DataLoader worker, after a resume, or on another machine, which is what makes training resumable and
comparable across runs.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
import trimesh
from torch.utils.data import Dataset

from ..config import CATEGORIES, DataConfig, DatasetConfig, from_dict
from ..errors import UserError
from .mixture import mixture_weights, near_surface_density_ratio
from .occupancy import box_half_side
from .splits import SPLITS
from .storage import FORMAT_VERSION, ObjectReader, is_complete

ViewsArg = Union[str, int]


def read_meta(root: str | Path) -> dict:
    """The dataset's ``meta.json``; UserError if it is missing, unreadable or of another format."""
    path = Path(root) / "meta.json"
    if not path.is_file():
        raise UserError(f"{root}: not a dataset folder (no meta.json); build one with `stereo-occ dataset`")
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable ({exc})") from None
    if meta.get("format_version") not in range(1, FORMAT_VERSION + 1):  # older formats lack only files (storage.py)
        raise UserError(f"{path}: dataset format {meta.get('format_version')!r}, this version reads 1 to {FORMAT_VERSION}")
    return meta


def read_split(root: str | Path, split: str) -> list[str]:
    """Object ids of ``split`` (train, val or test), in file order."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
    path = Path(root) / "splits" / f"{split}.txt"
    if not path.is_file():
        raise UserError(f"{path}: split file missing")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def dataset_config(root: str | Path) -> DatasetConfig:
    """The :class:`DatasetConfig` the dataset at ``root`` was built with."""
    return from_dict(read_meta(root)["config"], DatasetConfig)


class StereoOccupancyDataset(Dataset):
    """Items ``i -> (object i // V, view i % V)`` of one split; see the module docstring.

    ``views``: ``"all"`` every stored view, ``"first"`` only view 0 (one item per object, e.g. for
    evaluation), or an int ``k`` for the first ``k`` views. ``uniform_only`` draws only from the
    uniform part of the pool (what IoU is measured on); with ``points_per_sample <= 0`` it returns the
    whole uniform pool in stored order.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        points_per_sample: int = 2048,
        near_surface_share: float = 0.5,
        seed: int = 0,
        views: ViewsArg = "all",
        load_depth: bool = False,
        load_distances: bool = False,
        uniform_only: bool = False,
        volume_weights: bool = False,
    ):
        self.root = Path(root)
        self.meta = read_meta(self.root)
        self.split = split
        ids = read_split(self.root, split)
        present = [i for i in ids if is_complete(self.root / i)]
        if len(present) < len(ids):
            warnings.warn(
                f"{self.root}: {len(ids) - len(present)} of {len(ids)} {split} objects are not built "
                "(failed or still building); using the others",
                stacklevel=2,
            )
        if not present:
            raise UserError(f"{self.root}: no built objects in split {split!r}")
        if not 0.0 <= near_surface_share <= 1.0:
            raise UserError(f"near_surface_share must be in [0, 1] (got {near_surface_share})")
        if points_per_sample <= 0 and not uniform_only:
            raise UserError(f"points_per_sample must be positive (got {points_per_sample})")
        self.object_ids: list[str] = present
        self.objects: list[ObjectReader] = [ObjectReader(self.root / i) for i in present]
        self.categories: list[str] = [self.meta["objects"].get(i) or o.category for i, o in zip(present, self.objects)]
        for category in self.categories:
            if category not in CATEGORIES:
                raise UserError(f"{self.root}: unknown category {category!r} in meta.json")
        stored = min(o.n_views for o in self.objects)
        if views == "all":
            self.views_per_object = stored
        elif views == "first":
            self.views_per_object = 1
        elif isinstance(views, int) and not isinstance(views, bool) and 1 <= views <= stored:
            self.views_per_object = views
        else:
            raise UserError(f"views must be 'all', 'first' or an int in 1..{stored} (got {views!r})")
        self.points_per_sample = points_per_sample
        self.near_surface_share = near_surface_share
        self.seed = seed
        self.load_depth = load_depth
        self.load_distances = load_distances
        self.uniform_only = uniform_only
        self.volume_weights = volume_weights
        self._weights: dict[int, np.ndarray] = {}  # per object, computed on first use (data/mixture.py)
        self.epoch = 0

    @classmethod
    def from_config(cls, root: str | Path, split: str, data_cfg: DataConfig, **kw) -> "StereoOccupancyDataset":
        args = dict(
            points_per_sample=data_cfg.points_per_sample,
            near_surface_share=data_cfg.near_surface_share,
            seed=data_cfg.seed,
            load_depth=data_cfg.load_depth,
        )
        args.update(kw)
        return cls(root, split, **args)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws items use (call it in every worker's copy, or before
        creating the DataLoader iterator)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.objects) * self.views_per_object

    def item_categories(self) -> list[str]:
        """The category of each item, in item order (what a category-weighted sampler needs)."""
        return [c for c in self.categories for _ in range(self.views_per_object)]

    # Readers hold memory maps: ship only folders to DataLoader workers and reopen there.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["objects"] = [str(o.folder) for o in self.objects]
        state["_weights"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        state["objects"] = [ObjectReader(f) for f in state["objects"]]
        self.__dict__.update(state)

    def _draw_points(self, obj: ObjectReader, rng: np.random.Generator) -> np.ndarray:
        """Indices into the object's pool (sorted: sequential reads from the memory maps)."""
        n_uniform = obj.n_uniform
        n_total = len(obj.points())
        if self.uniform_only:
            if self.points_per_sample <= 0:
                idx = np.arange(n_uniform)
            else:
                idx = np.sort(rng.integers(0, n_uniform, self.points_per_sample))
        else:
            n_near = int(round(self.points_per_sample * self.near_surface_share))
            if n_total == n_uniform:  # no near-surface pool stored
                n_near = 0
            if n_uniform == 0:
                n_near = self.points_per_sample
            idx = np.concatenate(
                [
                    rng.integers(0, n_uniform, self.points_per_sample - n_near),
                    rng.integers(n_uniform, n_total, n_near),
                ]
            )
            idx.sort()
        return idx

    def _pool_weights(self, object_index: int) -> np.ndarray:
        """The importance weight of each pool point of an object (data/mixture.py), cached."""
        weights = self._weights.get(object_index)
        if weights is None:
            obj = self.objects[object_index]
            ratio = obj.near_density()
            if ratio is None:  # built before format 3: fresh samples of the stored mesh, as many as the pool's
                occupancy = from_dict(self.meta["config"], DatasetConfig).occupancy  # meta.json, read once at init
                seed = int(np.random.default_rng([self.seed, object_index]).integers(2**31))
                surface, _ = trimesh.sample.sample_surface(obj.mesh(), max(occupancy.n_surface, 1), seed=seed)
                ratio = near_surface_density_ratio(np.asarray(obj.points(), dtype=np.float64), surface,
                                                   occupancy.surface_sigma, box_half_side(occupancy))
            weights = mixture_weights(np.asarray(ratio, dtype=np.float32), self.near_surface_share)
            self._weights[object_index] = weights
        return weights

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(i)
        object_index, view = divmod(int(i), self.views_per_object)
        obj = self.objects[object_index]
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        rotation, K, world_to_cam = obj.cameras(view)
        idx = self._draw_points(obj, rng)
        points, occ = np.asarray(obj.points()[idx], dtype=np.float32), obj.occupancies()[idx]
        points_rig = points @ rotation.astype(np.float32).T
        item = {
            "left": _image_tensor(obj.image(view, 0)),
            "right": _image_tensor(obj.image(view, 1)),
            "points": torch.from_numpy(np.ascontiguousarray(points_rig, dtype=np.float32)),
            "occupancies": torch.from_numpy(occ.astype(np.float32)),
            "uniform": torch.from_numpy(idx < obj.n_uniform),  # drawn from the uniform part (what IoU measures)
            "category": torch.tensor(CATEGORIES.index(self.categories[object_index]), dtype=torch.int64),
            "rotation": torch.from_numpy(np.array(rotation, dtype=np.float32)),
            "K": torch.from_numpy(np.array(K, dtype=np.float32)),
            "world_to_cam": torch.from_numpy(np.array(world_to_cam, dtype=np.float32)),
            "object_index": torch.tensor(object_index, dtype=torch.int64),
            "view": torch.tensor(view, dtype=torch.int64),
        }
        if self.volume_weights:
            item["volume_weight"] = torch.from_numpy(self._pool_weights(object_index)[idx])
        if self.load_distances:  # signed distances to the surface, object units (the rotation keeps them)
            item["distances"] = torch.from_numpy(np.asarray(obj.distances()[idx], dtype=np.float32))
        if self.load_depth:
            item["depth"] = torch.from_numpy(np.stack([obj.depth(view, 0), obj.depth(view, 1)]))
        return item


def _image_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1].

    Converted in numpy: torch would run this small op on its intra-op thread pool, which in the main
    process (num_workers=0) cost 3-5x more CPU than the conversion itself on a busy machine.
    """
    chw = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
    chw /= np.float32(255.0)
    return torch.from_numpy(chw)
