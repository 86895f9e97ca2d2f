"""Reconstruct a mesh from your own stereo pair with a trained checkpoint.

The model learned the study's rig and image format, so the pair is brought as close to that as
can be done honestly, and anything we change is said out loud (an :class:`InputWarning`):

* greyscale images are converted to RGB;
* images with transparency are composited on the training background colour;
* square images of another resolution are resized to the training resolution; other aspect ratios
  are refused (cropping is the user's call: where the object is matters);
* a calibration that differs from the training rig is reported, but cannot be used: the models
  take no camera input yet (docs/reconstruct.md).

The mesh is in the rig frame (object centre at the origin, OpenCV-style axes of docs/geometry.md).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
import trimesh
from PIL import Image, UnidentifiedImageError

from ..config import Config, EvalConfig
from ..data.rig import StereoRig
from ..errors import UserError
from .calibration import Calibration, differences_from_rig, load_calibration
from .evaluate import decode_probs, default_device, encode_pair
from .mise import MESH_SUFFIXES, extract_mesh, save_mesh

ImageInput = Union[str, Path, np.ndarray, Image.Image]

GREY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "F")


class InputWarning(UserWarning):
    """An input was adapted to what the model was trained on (converted, composited, resized)."""


def _warn(message: str) -> None:
    warnings.warn(message, InputWarning, stacklevel=3)


def open_image(image: ImageInput, name: str) -> Image.Image:
    """A PIL image from a path, a uint8 array (HxW, HxWx3, HxWx4) or a PIL image."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise UserError(f"{name} image not found: {path}")
        try:
            with Image.open(path) as img:
                img.load()
                return img
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"{path}: not a readable image ({exc.__class__.__name__})") from None
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise UserError(f"{name} image: expected uint8 pixels, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise UserError(f"{name} image: expected an HxW, HxWx3 or HxWx4 array, got shape {array.shape}")
    return Image.fromarray(array)


def to_rgb(image: Image.Image, name: str, background: tuple[int, int, int]) -> Image.Image:
    """RGB version of ``image``: grey converted, transparency composited on ``background``."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        _warn(f"{name} image has transparency; composited on the training background colour {background}")
        canvas = Image.new("RGBA", rgba.size, background + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if image.mode in GREY_MODES:
        _warn(f"{name} image is greyscale; converted to RGB (the model was trained on colour images)")
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit / float grey: scale to 8 bits
            array = np.asarray(image, dtype=np.float64)
            top = 65535.0 if image.mode.startswith("I") and array.max() > 255 else 255.0
            image = Image.fromarray(np.clip(array / top * 255.0, 0, 255).astype(np.uint8))
        return image.convert("RGB")
    return image.convert("RGB")


class Reconstructor:
    """A trained model ready to turn stereo pairs into meshes (rig frame)."""

    def __init__(self, model: torch.nn.Module, cfg: Config, eval_cfg: EvalConfig | None = None):
        self.model = model.eval()
        self.cfg = cfg
        self.eval_cfg = eval_cfg or cfg.eval
        self.rig = StereoRig.from_config(cfg.dataset.rig)
        padding = cfg.dataset.occupancy.padding
        # The normalised object lies inside the unit cube, hence inside its circumsphere at any rotation.
        self.object_radius = math.sqrt(3.0) / 2.0 + padding / 2.0
        # Grid: the box around that sphere, at the cell size evaluation uses on the padded box.
        self.box = self.object_radius
        self.resolution = math.ceil(self.eval_cfg.mise_resolution * self.box / (0.5 + padding / 2.0))

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, eval_cfg: EvalConfig | None = None, device: str | torch.device | None = None
    ) -> "Reconstructor":
        from ..training.checkpoint import load_model

        model, cfg = load_model(path, device=device or default_device())
        return cls(model, cfg, eval_cfg)

    @property
    def image_size(self) -> int:
        return self.rig.image_size

    @property
    def background(self) -> tuple[int, int, int]:
        rgb = self.cfg.dataset.render.background
        return tuple(int(round(255 * float(np.clip(c, 0.0, 1.0)))) for c in rgb)  # type: ignore[return-value]

    def prepare(self, left: ImageInput, right: ImageInput) -> tuple[np.ndarray, np.ndarray]:
        """The pair as uint8 (S, S, 3) arrays at the training resolution S (see the module doc)."""
        images = [
            to_rgb(open_image(img, name), name, self.background) for img, name in ((left, "left"), (right, "right"))
        ]
        if images[0].size != images[1].size:
            (wl, hl), (wr, hr) = images[0].size, images[1].size
            raise UserError(f"left and right images differ in size: {wl}x{hl} vs {wr}x{hr}")
        width, height = images[0].size
        size = self.image_size
        if (width, height) != (size, size):
            if width != height:
                raise UserError(
                    f"images are {width}x{height} but the model was trained on square {size}x{size} images; "
                    "crop both to a square centred on the object (same crop in both) first"
                )
            _warn(f"images are {width}x{height}; resized to the training resolution {size}x{size}")
            # Shrinking averages the pixels each training pixel covers (what a coarser sensor sees);
            # enlarging interpolates.
            resample = Image.Resampling.BOX if width > size else Image.Resampling.BICUBIC
            images = [img.resize((size, size), resample) for img in images]
        return np.asarray(images[0]), np.asarray(images[1])

    def check_calibration(self, calibration: Calibration, width: int, height: int) -> list[str]:
        """Differences from the training rig (warned); UserError if it is for another image size."""
        if tuple(calibration.image_size) != (width, height):
            w, h = calibration.image_size
            raise UserError(f"the calibration is for {w}x{h} images but the images are {width}x{height}")
        differences = differences_from_rig(calibration, self.rig)
        if differences:
            _warn(
                "the calibration differs from the rig the model was trained on ("
                + "; ".join(differences)
                + "); the model takes no camera input and assumes the training rig, so expect a worse mesh"
            )
        return differences

    def occupancy(self, code: torch.Tensor):
        """The network as a MISE query; zero outside the sphere any object must lie in."""
        radius = self.object_radius
        batch = self.eval_cfg.batch_points

        def query(points: np.ndarray) -> np.ndarray:
            probs = np.zeros(len(points), dtype=np.float32)
            near = np.einsum("ij,ij->i", points, points) <= radius * radius
            if near.any():
                probs[near] = decode_probs(self.model, code, points[near], batch)
            return probs

        return query

    def reconstruct(self, left: ImageInput, right: ImageInput) -> trimesh.Trimesh:
        """The mesh (rig frame) of the object in a stereo pair; may be empty if nothing is occupied."""
        left_arr, right_arr = self.prepare(left, right)
        to_tensor = lambda a: torch.from_numpy(np.array(a)).permute(2, 0, 1).float() / 255.0  # noqa: E731
        code = encode_pair(self.model, to_tensor(left_arr), to_tensor(right_arr))
        mesh, _ = extract_mesh(
            self.occupancy(code),
            resolution=self.resolution,
            steps=self.eval_cfg.mise_steps,
            threshold=self.eval_cfg.threshold,
            box=self.box,
            batch_points=self.eval_cfg.batch_points,
        )
        return mesh


def reconstruct_files(
    checkpoint: str | Path,
    left: str | Path,
    right: str | Path,
    out: str | Path,
    calibration: str | Path | None = None,
    eval_cfg: EvalConfig | None = None,
) -> Path:
    """Read a stereo pair, reconstruct, and write the mesh to ``out`` (.ply, .obj or .glb)."""
    out = Path(out)
    if out.suffix.lower() not in MESH_SUFFIXES:
        raise UserError(f"{out}: unsupported mesh format {out.suffix or '(none)'!r}; use .ply, .obj or .glb")
    left_img, right_img = open_image(left, "left"), open_image(right, "right")
    cal = load_calibration(calibration) if calibration is not None else None
    reconstructor = Reconstructor.from_checkpoint(checkpoint, eval_cfg)
    if cal is not None and left_img.size == right_img.size:  # a size mismatch is reported below
        reconstructor.check_calibration(cal, *left_img.size)
    mesh = reconstructor.reconstruct(left_img, right_img)
    if len(mesh.faces) == 0:
        raise UserError(
            f"no point reached occupancy {reconstructor.eval_cfg.threshold}: nothing to write to {out} "
            "(is the object centred in both images? try a lower eval.threshold)"
        )
    save_mesh(mesh, out)
    print(f"wrote {out} ({len(mesh.vertices)} vertices, {len(mesh.faces)} faces, rig frame)")
    return out
