"""Render a PNG gallery of procedural shapes, so a person can judge their variety at a glance.

Usage: PYOPENGL_PLATFORM=egl python bench/gallery_procedural.py --out gallery.png [--per-category 12]

One row per style; each tile is one object seen from slightly above, its handle (mugs) to the side.
Also prints how long generation took and the face counts, the numbers the generator promises.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np  # noqa: E402
import pyrender  # noqa: E402
import trimesh  # noqa: E402
from PIL import Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

from stereo_occ.shapes.procedural import STYLES, generate  # noqa: E402


def look_at(eye: np.ndarray, target: np.ndarray, up=np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """Camera-to-world pose for pyrender (camera looks down its -z)."""
    back = eye - target
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, np.cross(back, right), back, eye
    return pose


def render_tile(mesh: trimesh.Trimesh, renderer: pyrender.OffscreenRenderer) -> np.ndarray:
    mesh = mesh.copy()
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    mesh.apply_scale(1.0 / mesh.extents.max())
    material = pyrender.MetallicRoughnessMaterial(baseColorFactor=(0.75, 0.6, 0.45, 1.0), roughnessFactor=0.6)
    scene = pyrender.Scene(ambient_light=(0.3, 0.3, 0.3), bg_color=(1.0, 1.0, 1.0))
    scene.add(pyrender.Mesh.from_trimesh(mesh, material=material, smooth=False))
    eye = np.array([0.5, -2.0, 1.0])
    pose = look_at(eye, np.zeros(3))
    scene.add(pyrender.PerspectiveCamera(yfov=np.pi / 5), pose=pose)
    scene.add(pyrender.DirectionalLight(intensity=4.0), pose=pose)
    color, _ = renderer.render(scene)
    return color


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gallery_procedural.png")
    parser.add_argument("--per-style", type=int, default=6, help="objects per style row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tile", type=int, default=160)
    args = parser.parse_args()

    renderer = pyrender.OffscreenRenderer(args.tile, args.tile)
    rows, seconds, faces = [], 0.0, []
    jobs = [(c, s, k) for c, styles in STYLES.items()
            for s in range(len(styles)) for k in range(args.per_style)]
    tiles: dict[tuple[str, int], list[np.ndarray]] = {}
    for category, style, k in tqdm(jobs, desc="render"):
        index = style + k * len(STYLES[category])
        start = time.perf_counter()
        mesh = generate(category, index, args.seed)
        seconds += time.perf_counter() - start
        faces.append(len(mesh.faces))
        tiles.setdefault((category, style), []).append(render_tile(mesh, renderer))
    for key in tiles:
        rows.append(np.concatenate(tiles[key], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(args.out)
    renderer.delete()
    print(f"{len(faces)} objects, {seconds / len(faces) * 1000:.1f} ms each, "
          f"faces min {min(faces)} median {int(np.median(faces))} max {max(faces)}; wrote {args.out}")


if __name__ == "__main__":
    main()
