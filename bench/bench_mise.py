"""MISE vs dense evaluation: network queries and time per mesh, measured in one run, as ratios.

    python bench/bench_mise.py [--resolution 32] [--steps 2] [--device cpu|cuda] [--repeats 1]

Three occupancy functions, each extracted with MISE (coarse grid + ``steps`` refinements) and with
a dense grid of the same final resolution (128^3 cells, 129^3 points by default):

* ``sphere``: an analytic ball (query cost ~0: measures MISE's own bookkeeping and the query count);
* ``decoder``: the study's decoder (``build_model``, default sizes, untrained) on a random stereo
  pair's code: real query cost, but the untrained network's surface;
* ``decoder+sphere``: the decoder is run on every queried point (real cost) but the answer is the
  ball's, so the query count is that of an object-like surface.

The ratio columns are dense / MISE (higher is better for MISE). The last column says whether the
two meshes are identical (MISE found every surface cell) or, if not, their Chamfer-L1.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from stereo_occ.config import Config
from stereo_occ.evaluation.evaluate import decode_probs, encode_pair
from stereo_occ.evaluation.metrics import surface_metrics
from stereo_occ.evaluation.mise import extract_mesh, extract_mesh_dense
from stereo_occ.models import build_model

RADIUS = 0.35


def sphere(points: np.ndarray) -> np.ndarray:
    return (np.linalg.norm(points, axis=1) <= RADIUS).astype(np.float32)


def timed(fn, repeats: int):
    best, result = float("inf"), None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=32, help="MISE coarse resolution (default 32)")
    parser.add_argument("--steps", type=int, default=2, help="MISE refinement steps (default 2)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=1, help="best of N timings (default 1)")
    parser.add_argument("--batch-points", type=int, default=100_000)
    args = parser.parse_args()

    cfg = Config()
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.dataset.rig).to(args.device).eval()
    size = cfg.dataset.rig.image_size
    pair = torch.rand(2, 3, size, size)
    code = encode_pair(model, pair[0], pair[1])

    def decoder(points: np.ndarray) -> np.ndarray:
        return decode_probs(model, code, points, args.batch_points)

    def decoder_sphere(points: np.ndarray) -> np.ndarray:
        decoder(points)  # pay the network's cost, answer with the ball
        return sphere(points)

    fine = args.resolution * 2**args.steps
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, MISE {args.resolution}^3 + {args.steps} "
          f"steps vs dense {fine}^3 ({(fine + 1) ** 3} points)")
    header = (
        f"{'function':<16}{'MISE q':>10}{'dense q':>10}{'q ratio':>9}{'MISE s':>9}{'dense s':>9}{'t ratio':>9}"
        f"{'faces':>9}  MISE vs dense mesh"
    )
    print(header)
    print("-" * len(header))
    for name, query in (("sphere", sphere), ("decoder", decoder), ("decoder+sphere", decoder_sphere)):
        t_mise, (mesh_mise, q_mise) = timed(
            lambda: extract_mesh(query, resolution=args.resolution, steps=args.steps, threshold=0.2,
                                 batch_points=args.batch_points), args.repeats)
        t_dense, (mesh_dense, q_dense) = timed(
            lambda: extract_mesh_dense(query, resolution=fine, threshold=0.2, batch_points=args.batch_points),
            args.repeats)
        same = len(mesh_mise.faces) == len(mesh_dense.faces) and np.allclose(
            np.sort(mesh_mise.vertices, axis=0), np.sort(mesh_dense.vertices, axis=0), atol=1e-7
        )
        if same:
            compare = "identical"
        elif len(mesh_mise.faces) and len(mesh_dense.faces):
            compare = f"CD {surface_metrics(mesh_mise, mesh_dense, n_points=100_000, tau=0.011).chamfer_l1:.1e}"
        else:
            compare = "one empty"
        print(f"{name:<16}{q_mise:>10}{q_dense:>10}{q_dense / q_mise:>9.1f}{t_mise:>9.2f}{t_dense:>9.2f}"
              f"{t_dense / t_mise:>9.1f}{len(mesh_mise.faces):>9}  {compare}")


if __name__ == "__main__":
    main()
