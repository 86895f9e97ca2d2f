"""Reconstruct a mesh from your own stereo pair with a trained checkpoint.

The model learned the study's rig and image format, so the pair is brought as close to that as
can be done honestly, and anything we change is said out loud (an :class:`InputWarning`):

* greyscale images are converted to RGB;
* images with transparency are composited on the training background colour;
* square images of another resolution are resized to the training resolution; other aspect ratios
  are refused (cropping is the user's call: where the object is matters);
* the cameras: without a calibration, the training rig stored in the checkpoint; with one
  (``--calibration``), its K and extrinsics, rescaled with the images. Camera-aware models
  (``rig-stereo``, ``rig-mono``) project every point with them; the study's models take no camera
  input and assume the training rig, so for them a different calibration is only reported. Either
  way a calibration far from the training rig is reported (docs/reconstruct.md).

The mesh is in the rig frame (object centre at the origin, OpenCV-style axes of docs/geometry.md),
decimated to at most ``reconstruct.max_faces`` faces (:func:`~.simplify.simplify_mesh`).

Many pairs: :meth:`Reconstructor.reconstruct_many` (the model is loaded once; a pair with bad input
is reported in its :class:`PairResult` and the others go on), and :func:`reconstruct_folder`, which
writes one mesh per pair with a progress bar (``stereo-occ reconstruct --pairs``).
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence, Union

import numpy as np
import torch
import trimesh
from PIL import Image, UnidentifiedImageError

from ..config import Config, ConfigChanges, EvalConfig, ReconstructConfig
from ..data.rig import StereoRig
from ..errors import UserError
from ..models.cameras import Cameras
from ..training.distributed import autocast
from .calibration import Calibration, differences_from_rig, load_calibration
from .evaluate import decode_probs, default_device, encode_pair, inference_dtype, model_device
from .mise import MESH_SUFFIXES, extract_mesh, save_mesh
from .pairs import Pair, find_pairs
from .simplify import simplify_mesh
from .threshold import resolved

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


@dataclass
class PairResult:
    """What became of one pair in :meth:`Reconstructor.reconstruct_many`.

    ``mesh`` is None when the pair failed; ``error`` then says why (bad input: a missing or unreadable
    image, a size mismatch, nothing occupied, ...). ``warnings`` are the pair's warnings as text
    (converted images, a calibration that differs from the rig, ...), ``seconds`` the time it took.
    """

    name: str
    mesh: trimesh.Trimesh | None
    seconds: float
    error: str | None = None
    raw_faces: int = 0  # faces of the marching-cubes mesh, before simplification
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


class Reconstructor:
    """A trained model ready to turn stereo pairs into meshes (rig frame).

    ``eval_cfg`` (threshold, MISE's coarse grid) and ``reconstruct_cfg`` (``max_faces``, MISE's
    refinements) default to the sections of the checkpoint's config.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        cfg: Config,
        eval_cfg: EvalConfig | None = None,
        reconstruct_cfg: ReconstructConfig | None = None,
    ):
        self.model = model.eval()
        self.cfg = cfg
        # the checkpoint's threshold (chosen on validation) unless eval_cfg fixes one
        self.eval_cfg = resolved(eval_cfg or cfg.eval, cfg.eval.threshold)
        model.set_axis_copies(self.eval_cfg.axis_copies)
        reconstruct_cfg = reconstruct_cfg or cfg.reconstruct
        self.max_faces = reconstruct_cfg.max_faces
        if self.max_faces < 0:
            raise UserError(
                f"reconstruct.max_faces must be 0 (no simplification) or positive (got {self.max_faces})"
            )
        self.mise_steps = reconstruct_cfg.mise_steps
        if self.mise_steps < 0:
            raise UserError(f"reconstruct.mise_steps must be 0 or more (got {self.mise_steps})")
        self.rig = StereoRig.from_config(cfg.dataset.rig)
        padding = cfg.dataset.occupancy.padding
        # Every object of the training data lies in the rig's sphere at any rotation (the build checks it).
        self.object_radius = self.rig.object_radius + padding / 2.0
        # Grid: the box around that sphere (the pose is unknown), eval.mise_resolution cells a side
        # refined reconstruct.mise_steps times: 128^3 over the sphere's box by default.
        self.box = self.object_radius
        self.resolution = self.eval_cfg.mise_resolution
        self.uses_cameras = bool(getattr(model.encoder, "uses_cameras", False))

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        eval_cfg: EvalConfig | None = None,
        device: str | torch.device | None = None,
        reconstruct_cfg: ReconstructConfig | None = None,
        changes: ConfigChanges | None = None,
    ) -> "Reconstructor":
        """``changes`` (a config file and overrides) apply on top of the checkpoint's own eval and
        reconstruct sections; ``eval_cfg`` / ``reconstruct_cfg`` replace them whole."""
        from ..training.checkpoint import load_model

        model, cfg = load_model(path, device=device or default_device())
        if changes is not None:
            changed = changes.apply(cfg)
            eval_cfg, reconstruct_cfg = eval_cfg or changed.eval, reconstruct_cfg or changed.reconstruct
        return cls(model, cfg, eval_cfg, reconstruct_cfg)

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
            consequence = (
                "the model projects with the given cameras, but far from its training rig expect a worse mesh"
                if self.uses_cameras
                else "this model takes no camera input and assumes the training rig, so expect a worse mesh"
            )
            _warn("the calibration differs from the rig the model was trained on (" + "; ".join(differences) + f"); {consequence}")
        return differences

    def cameras(self, calibration: Calibration | None = None) -> Cameras:
        """The cameras at the training resolution: the calibration's (rescaled) or the training rig's."""
        size = self.image_size
        calibration = calibration or Calibration.from_rig(self.rig)
        if tuple(calibration.image_size) != (size, size):
            calibration = calibration.resized(size, size)
        return Cameras.from_arrays(calibration.K, calibration.world_to_cam, size)

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

    def raw_mesh(
        self, left: ImageInput, right: ImageInput, calibration: Calibration | None = None
    ) -> trimesh.Trimesh:
        """The marching-cubes mesh (rig frame), not simplified; empty if nothing is occupied.

        ``calibration`` (for the images as given) replaces the training rig's cameras.
        """
        left, right = open_image(left, "left"), open_image(right, "right")
        if calibration is not None and left.size == right.size:  # a size mismatch is reported by prepare
            self.check_calibration(calibration, *left.size)
        left_arr, right_arr = self.prepare(left, right)
        to_tensor = lambda a: torch.from_numpy(np.array(a)).permute(2, 0, 1).float() / 255.0  # noqa: E731
        with autocast(model_device(self.model), inference_dtype(self.model, self.eval_cfg.precision)):
            code = encode_pair(self.model, to_tensor(left_arr), to_tensor(right_arr), self.cameras(calibration))
            mesh, _ = extract_mesh(
                self.occupancy(code),
                resolution=self.resolution,
                steps=self.mise_steps,
                threshold=self.eval_cfg.threshold,
                box=self.box,
                batch_points=self.eval_cfg.batch_points,
            )
        return mesh

    def reconstruct(
        self,
        left: ImageInput,
        right: ImageInput,
        max_faces: int | None = None,
        calibration: Calibration | None = None,
    ) -> trimesh.Trimesh:
        """The mesh (rig frame) of the object in a stereo pair; may be empty if nothing is occupied.

        Simplified to at most ``max_faces`` faces (default ``reconstruct.max_faces``; 0 = the raw
        marching-cubes mesh), staying closed.
        """
        mesh = self.raw_mesh(left, right, calibration)
        return simplify_mesh(mesh, self.max_faces if max_faces is None else max_faces)

    def _empty_mesh_message(self) -> str:
        return (
            f"no point reached occupancy {self.eval_cfg.threshold} "
            "(is the object centred in both images? try a lower eval.threshold)"
        )

    def reconstruct_many(
        self,
        pairs: Iterable[Pair | tuple[ImageInput, ImageInput]],
        *,
        max_faces: int | None = None,
        calibration: Calibration | None = None,
    ) -> Iterator[PairResult]:
        """Reconstruct pair after pair, yielding a :class:`PairResult` as each one finishes.

        ``pairs`` are :class:`~.pairs.Pair` records (e.g. from :func:`~.pairs.find_pairs`) or
        ``(left, right)`` tuples, named by their position. A pair with bad input (a
        :class:`UserError`, or an :class:`InputWarning` that the warning filters turn into an error)
        fails alone: its result holds the error and the next pair goes on. Warnings are collected
        into each result rather than shown. ``calibration`` is checked against every pair.
        """
        _check_max_faces(max_faces)
        budget = self.max_faces if max_faces is None else max_faces
        for index, pair in enumerate(pairs):
            if isinstance(pair, Pair):
                name, left, right = pair.name, pair.left, pair.right
            else:
                (left, right), name = pair, str(index)
            start = time.perf_counter()
            mesh, error, raw_faces = None, None, 0
            with warnings.catch_warnings(record=True) as caught:
                try:
                    raw = self.raw_mesh(left, right, calibration)
                    raw_faces = len(raw.faces)
                    if raw_faces == 0:
                        raise UserError(self._empty_mesh_message())
                    mesh = simplify_mesh(raw, budget)
                except (UserError, InputWarning) as exc:
                    mesh, error = None, str(exc)
                except Exception as exc:  # noqa: BLE001 - a broken file or library failure: this pair only
                    mesh, error = None, f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
            yield PairResult(
                name=name,
                mesh=mesh,
                seconds=time.perf_counter() - start,
                error=error,
                raw_faces=raw_faces,
                warnings=[str(w.message) for w in caught],
            )


def describe_mesh(mesh: trimesh.Trimesh, raw_faces: int, *notes: str) -> str:
    """``4,812 vertices, 9,620 faces[, notes][; simplified from 31,200 faces]``."""
    text = ", ".join((f"{len(mesh.vertices):,} vertices", f"{len(mesh.faces):,} faces") + notes)
    if raw_faces > len(mesh.faces):
        text += f"; simplified from {raw_faces:,} faces"
    return text


def _check_max_faces(max_faces: int | None) -> None:
    if max_faces is not None and max_faces < 0:
        raise UserError(f"--max-faces must be 0 (no simplification) or positive (got {max_faces})")


def _check_suffix(out: Path) -> None:
    if out.suffix.lower() not in MESH_SUFFIXES:
        raise UserError(f"{out}: unsupported mesh format {out.suffix or '(none)'!r}; use .ply, .obj or .glb")


def reconstruct_files(
    checkpoint: str | Path,
    left: str | Path,
    right: str | Path,
    out: str | Path,
    calibration: str | Path | None = None,
    *,
    changes: ConfigChanges | None = None,
    max_faces: int | None = None,
    started: float | None = None,
) -> Path:
    """Read a stereo pair, reconstruct, and write the mesh to ``out`` (.ply, .obj or .glb).

    Prints what it wrote and the time since ``started`` (a ``time.perf_counter()`` value; default:
    when this function was called), with the model load and the reconstruction on their own.
    """
    started = time.perf_counter() if started is None else started
    out = Path(out)
    _check_suffix(out)
    _check_max_faces(max_faces)
    left_img, right_img = open_image(left, "left"), open_image(right, "right")
    cal = load_calibration(calibration) if calibration is not None else None
    t_load = time.perf_counter()
    reconstructor = Reconstructor.from_checkpoint(checkpoint, changes=changes)
    t_work = time.perf_counter()
    raw = reconstructor.raw_mesh(left_img, right_img, cal)
    if len(raw.faces) == 0:
        raise UserError(f"{reconstructor._empty_mesh_message()}: nothing written to {out}")
    mesh = simplify_mesh(raw, reconstructor.max_faces if max_faces is None else max_faces)
    t_done = time.perf_counter()
    save_mesh(mesh, out)
    print(
        f"wrote {out} ({describe_mesh(mesh, len(raw.faces), 'rig frame')}) in {time.perf_counter() - started:.2f} s "
        f"(model load {t_work - t_load:.2f} s, reconstruction {t_done - t_work:.2f} s)"
    )
    return out


def reconstruct_folder(
    checkpoint: str | Path,
    pairs: str | Path | Sequence[Pair],
    out: str | Path,
    *,
    fmt: str = "ply",
    calibration: str | Path | None = None,
    changes: ConfigChanges | None = None,
    max_faces: int | None = None,
    started: float | None = None,
) -> list[PairResult]:
    """Reconstruct every pair (a folder or list file for :func:`~.pairs.find_pairs`, or the pairs) and
    write ``out/<name>.<fmt>`` for each, loading the model once.

    Shows a progress bar, prints one line per pair and a summary; a pair that fails is reported and
    the others go on. Returns the results (meshes dropped once written): check ``result.ok``.
    """
    from tqdm.auto import tqdm

    started = time.perf_counter() if started is None else started
    _check_max_faces(max_faces)
    fmt = fmt.lower().lstrip(".")
    if f".{fmt}" not in MESH_SUFFIXES:
        raise UserError(f"unsupported mesh format {fmt!r}; use ply, obj or glb")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; with --pairs it is the folder the meshes go to")
    pair_list = find_pairs(pairs) if isinstance(pairs, (str, Path)) else list(pairs)
    cal = load_calibration(calibration) if calibration is not None else None
    t_load = time.perf_counter()
    reconstructor = Reconstructor.from_checkpoint(checkpoint, changes=changes)
    load_seconds = time.perf_counter() - t_load
    out.mkdir(parents=True, exist_ok=True)

    results: list[PairResult] = []
    with tqdm(total=len(pair_list), desc="reconstruct", unit="pair", dynamic_ncols=True) as bar:
        for result in reconstructor.reconstruct_many(pair_list, max_faces=max_faces, calibration=cal):
            for message in result.warnings:
                bar.write(f"warning: {result.name}: {message}", file=sys.stderr)
            if result.mesh is not None:
                t_save = time.perf_counter()
                path = save_mesh(result.mesh, out / f"{result.name}.{fmt}")
                result.seconds += time.perf_counter() - t_save
                bar.write(f"wrote {path} ({describe_mesh(result.mesh, result.raw_faces)}) in {result.seconds:.2f} s")
                result.mesh = None  # written: do not hold every mesh in memory
            else:
                bar.write(f"failed: {result.name}: {result.error}", file=sys.stderr)
            results.append(result)
            bar.update()
    print(_summary(results, out, time.perf_counter() - started, load_seconds))
    return results


def _summary(results: list[PairResult], out: Path, total: float, load_seconds: float) -> str:
    written = [r for r in results if r.ok]
    failed = [r.name for r in results if not r.ok]
    times = f"model load {load_seconds:.2f} s"
    if results:
        times += f", first pair {results[0].seconds:.2f} s"
    later = [r.seconds for r in results[1:] if r.ok]
    if later:
        times += f", then {sum(later) / len(later):.2f} s per pair"
    noun = "mesh" if len(written) == 1 else "meshes"
    line = f"wrote {len(written)} {noun} to {out} in {total:.2f} s ({times})"
    if failed:
        line += f"; {len(failed)} of {len(results)} pairs failed: {', '.join(failed)}"
    return line
