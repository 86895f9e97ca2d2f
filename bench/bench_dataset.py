"""How close the dataset build runs to the raw render rate, what a pair costs on disk, and whether
reading keeps up with training. Everything is measured in one run, on the same meshes, so the printed
ratios hold on any machine (timings themselves vary with load).

    python bench/bench_dataset.py [--objects 3] [--views 10 100] [--size 128] [--profile]

Prints, for 1 worker at ``--size`` px:
* the raw pyrender rate (renders/s, pose change + render only) and its ceiling, 2 renders per pair;
* the whole build (shape + occupancy pool + renders + PNG encode + write) in pairs/s per core at each
  ``--views`` setting, as a ratio of that ceiling, and the per-object fixed cost it implies;
* bytes per stored pair (renders + cameras), and per object for the point pool;
* the loader's rate (items/s, 2048 points, 1 process) against one training step of the stereo model.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np  # noqa: E402

from stereo_occ.config import load_config  # noqa: E402
from stereo_occ.data.build import build_dataset  # noqa: E402
from stereo_occ.data.dataset import StereoOccupancyDataset  # noqa: E402
from stereo_occ.data.render import StereoRenderer  # noqa: E402
from stereo_occ.data.rig import random_rotations  # noqa: E402
from stereo_occ.data.storage import ObjectReader  # noqa: E402
from stereo_occ.shapes import list_shapes  # noqa: E402


def config(n_objects: int, views: int, size: int):
    counts = [n_objects // 3 + (i < n_objects % 3) for i in range(3)]  # mug, bowl, bottle
    return load_config(
        None,
        [
            f"dataset.shapes.mug={counts[0]}",
            f"dataset.shapes.bowl={counts[1]}",
            f"dataset.shapes.bottle={counts[2]}",
            f"dataset.render.views_per_object={views}",
            f"dataset.rig.image_size={size}",
        ],
    )


def raw_render_rate(cfg, meshes, renders_per_mesh: int = 100) -> float:
    """Renders per second of pyrender alone: one uploaded mesh, a new pose per frame."""
    renderer = StereoRenderer(cfg.dataset.rig, cfg.dataset.render)
    rng = np.random.default_rng(0)
    gl = renderer._renderer
    total, frames = 0.0, 0
    for mesh in meshes:
        node = renderer._set_mesh(mesh)
        renderer._draw_lighting(rng)
        gl.render(renderer.scene)  # upload outside the timing
        poses = random_rotations(renders_per_mesh, rng)
        start = time.perf_counter()
        for R in poses:
            pose = np.eye(4)
            pose[:3, :3] = R
            renderer.scene.set_pose(node, pose)
            gl.render(renderer.scene)
        total += time.perf_counter() - start
        frames += renders_per_mesh
    renderer.close()
    return frames / total


def timed_build(cfg, out: Path, profile: bool) -> float:
    start = time.perf_counter()
    if profile:
        prof = cProfile.Profile()
        prof.enable()
    summary = build_dataset(cfg, out, workers=1)
    elapsed = time.perf_counter() - start
    if profile:
        prof.disable()
        print(f"\n--- profile, views_per_object={cfg.dataset.render.views_per_object} ---")
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)
    assert not summary.failed, summary.failed
    return elapsed


def loader_vs_training(root: Path, cfg, batch: int) -> None:
    ds = StereoOccupancyDataset(root, "train", points_per_sample=2048)
    idx = np.random.default_rng(0).permutation(len(ds))[: 4 * batch]
    for first_view in range(0, len(ds), ds.views_per_object):  # open every object's files once
        ds[first_view]
    start = time.perf_counter()
    for i in idx:
        ds[int(i)]
    per_item = (time.perf_counter() - start) / len(idx)
    print(f"loader: {1 / per_item:.0f} items/s in 1 process ({per_item * 1e3:.2f} ms/item, 2048 points)")
    try:
        import torch

        from stereo_occ.models import build_model
    except ImportError as exc:
        print(f"training step: not measured ({exc})")
        return
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.dataset.rig)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    items = [ds[int(i)] for i in idx[:batch]]
    b = {k: torch.stack([it[k] for it in items]) for k in ("left", "right", "points", "occupancies")}
    for step in range(3):
        if step == 1:
            start = time.perf_counter()
        logits = model(b["left"], b["right"], b["points"])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, b["occupancies"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    step_s = (time.perf_counter() - start) / 2
    print(
        f"training step ({cfg.model.name}, batch {batch}, CPU, {torch.get_num_threads()} threads): "
        f"{step_s * 1e3:.0f} ms; loading its batch in 1 process: {per_item * batch * 1e3:.0f} ms "
        f"({per_item * batch / step_s:.2f} of a step)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--views", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--profile", action="store_true", help="cProfile each build")
    args = parser.parse_args()

    base = config(args.objects, args.views[0], args.size)
    meshes = [s.load() for s in list_shapes(base.dataset.shapes)]
    # The ceiling is the faster of two raw measurements, before and after the builds, so a burst of
    # load from other processes during one of them does not flatter the ratio.
    rate = raw_render_rate(base, meshes)

    with tempfile.TemporaryDirectory() as tmp:
        times = {}
        for views in args.views:
            times[views] = timed_build(config(args.objects, views, args.size), Path(tmp) / f"v{views}", args.profile)
        rate = max(rate, raw_render_rate(base, meshes))
        ceiling = rate / 2
        print(f"raw pyrender: {rate:.0f} renders/s at {args.size}x{args.size} -> ceiling {ceiling:.0f} stereo pairs/s")
        for views in args.views:
            pps = args.objects * views / times[views]
            print(
                f"build, views_per_object={views:5d}: {pps:6.1f} pairs/s per core "
                f"= {pps / ceiling:.2f} of the render ceiling ({times[views]:.1f} s for {args.objects} objects)"
            )
        if len(args.views) >= 2:
            v0, v1 = args.views[0], args.views[-1]
            per_pair = (times[v1] - times[v0]) / (args.objects * (v1 - v0))
            fixed = times[v0] / args.objects - v0 * per_pair
            print(
                f"fit: {per_pair * 1e3:.2f} ms per pair (render ceiling {1e3 / ceiling:.2f} ms), "
                f"{fixed:.2f} s fixed per object (shape + occupancy pool of "
                f"{base.dataset.occupancy.n_uniform + base.dataset.occupancy.n_surface} points + write)"
            )
            for views in (100, 1000):
                pps = views / (fixed + views * per_pair)
                print(f"  predicted at views_per_object={views}: {pps / ceiling:.2f} of the ceiling")
        root = Path(tmp) / f"v{args.views[-1]}"
        readers = [ObjectReader(p.parent) for p in sorted(root.glob("*/*/views.npz"))]
        per_pair_bytes = np.mean([r.nbytes_per_view() for r in readers])
        pool_bytes = np.mean(
            [sum((r.folder / f).stat().st_size for f in ("points.npy", "occupancies.npy")) for r in readers]
        )
        print(
            f"disk: {per_pair_bytes / 1024:.1f} KiB per stored pair (2 RGB + 2 depth PNG + cameras); "
            f"{pool_bytes / 1e6:.2f} MB point pool per object"
        )
        loader_vs_training(root, base, args.batch)


if __name__ == "__main__":
    sys.exit(main())
