"""Where the ridges on the twins' meshes come from: one test pair decoded along a line through the
object (fp32 and bf16), and its mesh at 128^3 in each precision, rendered side by side.

    python experiments/session31/ripples.py CKPT --dataset D [--object 1] --out OUT.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.evaluation.evaluate import decode_probs, encode_pair, occupancy_query
from stereo_occ.evaluation.mise import extract_mesh, to_logits
from stereo_occ.models.cameras import Cameras
from stereo_occ.report.figures import MeshRenderer, png_bytes
from stereo_occ.training.checkpoint import load_model
from stereo_occ.training.distributed import autocast


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--object", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    model, cfg = load_model(args.checkpoint)
    model.eval()
    model.set_axis_copies(8)
    data = StereoOccupancyDataset(args.dataset, "test", views="first")
    item = data[args.object]
    cameras = Cameras.from_batch(item)
    rotation = item["rotation"].numpy().astype(np.float64)
    threshold = cfg.eval.threshold
    line = np.zeros((400, 3), dtype=np.float32)
    line[:, 2] = np.linspace(-0.6, 0.6, 400)
    images = []
    with torch.no_grad():
        for dtype in (None, torch.bfloat16):
            with autocast(torch.device("cpu"), dtype):
                code = encode_pair(model, item["left"], item["right"], cameras)
                logits = to_logits(decode_probs(model, code, line, 8192))
                mesh, _ = extract_mesh(occupancy_query(model, code, 8192, rotation=rotation), resolution=32,
                                       steps=2, threshold=threshold, box=0.55, batch_points=8192)
            name = "bf16" if dtype else "fp32"
            steps = np.abs(np.diff(logits))
            print(f"{name}: logits along rig z from -0.6 to 0.6 (every 10th):", np.round(logits[::10], 1).tolist())
            print(f"{name}: largest jump between neighbours 0.003 apart: {steps.max():.2f}; faces {len(mesh.faces)}")
            mesh.vertices = mesh.vertices @ rotation.T
            with MeshRenderer(384) as renderer:
                K = item["K"][0].numpy().copy()
                K[:2] *= 384 / cfg.dataset.rig.image_size
                images.append(renderer.render(mesh, K, item["world_to_cam"][0].numpy()))
    args.out.write_bytes(png_bytes(np.concatenate(images, 1)))


if __name__ == "__main__":
    main()
