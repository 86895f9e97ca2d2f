"""What Taubin smoothing of the extracted mesh does to the mesh metrics (the network's IoU does not
move): the same checkpoint evaluated with each extracted mesh smoothed ``N`` times (trimesh's
``filter_taubin``, lambda 0.5, nu 0.53) before any mesh metric is taken.

    python experiments/session31/smoothing.py CKPT --dataset D --out OUT --iterations N
then ``stereo-occ compare OUT BASE`` (BASE: the same checkpoint without it).
"""

from __future__ import annotations

import argparse

import trimesh

import stereo_occ.evaluation.evaluate as evaluate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)  # spawned workers would not see the patch
    args = parser.parse_args()
    extract = evaluate.extract_mesh

    def smoothed(*a, **k):
        mesh, n = extract(*a, **k)
        if len(mesh.faces):
            trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=0.53, iterations=args.iterations)
        return mesh, n

    evaluate.extract_mesh = smoothed  # forked workers inherit it
    evaluate.evaluate_checkpoint(args.checkpoint, args.dataset, out=args.out, workers=args.workers)


if __name__ == "__main__":
    main()
