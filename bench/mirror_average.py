"""Mirror test-time averaging: does asking a trained model about the mirrored pair add anything?

    python bench/mirror_average.py --checkpoint runs/quick-s7/runs/rig-stereo/model_best.pt \
        --dataset runs/quick-s7/dataset [--val-views 4] [--points 100000]

Flipping both images left to right and swapping them shows the mirror image of the scene (the
object reflected across the rig's plane ``x = 0``) to a rig that is the calibrated one reflected: the
flipped right image is what the reflected right camera, now on the left, sees. The cameras that go
with it are exact for any rig: ``world_to_cam' = F world_to_cam M`` with ``M`` the reflection of
the rig frame and ``F`` that of the camera's x axis, and the principal point reflected,
``cx' = W - 1 - cx``. For this project's symmetric rig they are the calibrated cameras themselves, so
the mirrored pair is an ordinary input. The mono twin flips its one image and reflects the scene
across its camera's vertical plane instead, which leaves that camera where it was.

A model that has learned the geometry predicts the reflected object from the mirrored pair about as
well as the object from the original, and averaging the two probabilities (two encodings, twice
the decoding) is the classic flip test-time augmentation. Printed: the IoU of the plain, the
mirrored and the averaged prediction, each at the threshold it does best at on the val split (the
evaluation's rule), on one view of each test object, per category. Reference, same run: the plain
prediction. Measured on 2026-11-27 (docs/training.md, "Session 8"): the three agree to 0.002,
so averaging adds nothing: the network is already close to mirror-symmetric.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from stereo_occ.config import CATEGORIES
from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.evaluation.evaluate import decode_probs, encode_pair
from stereo_occ.evaluation.threshold import THRESHOLDS, choose_threshold, ious_at
from stereo_occ.models.cameras import LEFT, RIGHT, Cameras
from stereo_occ.training.checkpoint import load_model

REFLECT_X = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))
"""Reflection of the x axis (homogeneous): of the rig frame (``M``) and of a camera's (``F``)."""


def mirrored(item: dict, views: int) -> tuple[torch.Tensor, torch.Tensor, Cameras, torch.Tensor]:
    """The mirrored input of a dataset item: left, right, cameras, and the 3x3 reflection ``G``
    taking a rig-frame point to where it is in the mirrored scene."""
    left, right = item["left"].flip(-1), item["right"].flip(-1)
    K, w2c = item["K"].clone(), item["world_to_cam"]
    K[:, 0, 2] = (left.shape[-1] - 1) - K[:, 0, 2]
    if views == 2:  # the reflected right camera becomes the left one
        reflect = REFLECT_X
        w2c = torch.stack([REFLECT_X @ w2c[RIGHT] @ reflect, REFLECT_X @ w2c[LEFT] @ reflect])
        left, right, K = right, left, K[[RIGHT, LEFT]]
    else:  # across the left camera's vertical plane: that camera stays where it is
        reflect = torch.linalg.inv(w2c[LEFT]) @ REFLECT_X @ w2c[LEFT]
        w2c = torch.stack([REFLECT_X @ w2c[v] @ reflect for v in (LEFT, RIGHT)])
    return left, right, Cameras.from_arrays(K, w2c, left.shape[-1]), reflect[:3, :3]


@torch.inference_mode()
def probabilities(model, dataset: StereoOccupancyDataset, points: int, batch_points: int
                  ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
    """Per item: plain and mirrored probabilities on the object's first ``points`` uniform points,
    the labels, the category."""
    views = getattr(model.encoder, "views", 2)
    out = []
    for i in range(len(dataset)):
        item = dataset[i]  # the whole uniform pool, in stored order, in the rig frame
        rig_points, occupied = item["points"][:points], item["occupancies"][:points].numpy() > 0.5
        plain = decode_probs(model, encode_pair(model, item["left"], item["right"], Cameras.from_batch(item)),
                             rig_points, batch_points)
        left, right, cameras, reflect = mirrored(item, views)
        flipped = decode_probs(model, encode_pair(model, left, right, cameras), rig_points @ reflect.T, batch_points)
        out.append((plain, flipped, occupied, dataset.categories[int(item["object_index"])]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--val-views", type=int, default=4, help="views of each val object for the threshold")
    parser.add_argument("--points", type=int, default=100_000, help="uniform points per item (the evaluation's)")
    args = parser.parse_args()

    model, cfg = load_model(args.checkpoint)
    model.eval()
    split = lambda name, views: StereoOccupancyDataset(args.dataset, name, points_per_sample=0,  # noqa: E731
                                                       uniform_only=True, views=views)
    val = probabilities(model, split("val", args.val_views), args.points, cfg.eval.batch_points)
    test = probabilities(model, split("test", "first"), args.points, cfg.eval.batch_points)
    print(f"{args.checkpoint}: {len(val)} val items choose each threshold, {len(test)} test items")
    for name, combine in (("plain", lambda a, b: a), ("mirrored", lambda a, b: b), ("average", lambda a, b: 0.5 * (a + b))):
        threshold, val_iou = choose_threshold(THRESHOLDS, np.mean([ious_at(combine(a, b), o, THRESHOLDS) for a, b, o, _ in val], 0))
        ious = np.array([ious_at(combine(a, b), o, [threshold])[0] for a, b, o, _ in test])
        categories = np.array([c for *_, c in test])
        per_category = "  ".join(f"{c} {ious[categories == c].mean():.3f}" for c in CATEGORIES if (categories == c).any())
        print(f"{name:<9} val {val_iou:.3f} at {threshold:.2f}   test {ious.mean():.3f}   {per_category}")


if __name__ == "__main__":
    main()
