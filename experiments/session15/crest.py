"""Would a decision rule that keeps the crest of a faint ridge recover thin walls?

Session 14's slices show the walls of bowls and mugs as a ridge of probability in the right place whose
top stays under the threshold. This measures, on a trained checkpoint's val and test items (first view),
the volumetric IoU of

    occupied = p >= t_high  or  (p >= t_low  and  x is within delta/2 of the ridge's crest)

where "on the crest" means p(x) is at least p at x +- delta along the gradient of p (a local maximum
along the line across the wall), against the plain rule p >= t, per category.

    python experiments/session15/crest.py --checkpoint RUN/model_best.pt --dataset DATA --out crest.json
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
import torch

from stereo_occ.config import CATEGORIES
from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.evaluation.evaluate import ObjectTruth
from stereo_occ.evaluation.metrics import iou
from stereo_occ.models.cameras import Cameras
from stereo_occ.training.checkpoint import load_model

DELTAS = (0.01, 0.02, 0.03, 0.04, 0.06)
T_LOW = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
T_HIGH = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9, 1.01)


def probs_and_normals(model, code, points: torch.Tensor, chunk: int = 20000) -> tuple[torch.Tensor, torch.Tensor]:
    ps, ns = [], []
    for start in range(0, len(points), chunk):
        x = points[start : start + chunk].clone().requires_grad_(True)
        p = torch.sigmoid(model.decode(x[None], code)[0].float())
        (g,) = torch.autograd.grad(p.sum(), x)
        ps.append(p.detach())
        ns.append(g / g.norm(dim=1, keepdim=True).clamp_min(1e-8))
    return torch.cat(ps), torch.cat(ns)


@torch.no_grad()
def probs_at(model, code, points: torch.Tensor, chunk: int = 50000) -> torch.Tensor:
    return torch.cat([torch.sigmoid(model.decode(points[s : s + chunk][None], code)[0].float())
                      for s in range(0, len(points), chunk)])


def item_table(model, item, truth) -> dict:
    rotation = item["rotation"].numpy().astype(np.float64)
    points = torch.as_tensor(truth.points @ rotation.T, dtype=torch.float32)
    with torch.no_grad():  # not inference mode: the decoder is differentiated below
        code = model.encode(item["left"][None], item["right"][None], Cameras.from_batch(item))
    p, n = probs_and_normals(model, code, points)
    crest = {}
    for delta in DELTAS:
        plus, minus = probs_at(model, code, points + delta * n), probs_at(model, code, points - delta * n)
        crest[delta] = ((p >= plus) & (p >= minus)).numpy()
    p = p.numpy()
    out = {"plain": {t: iou(p >= t, truth.occupied) for t in T_HIGH[:-1]}, "crest": {}}
    for delta, t_low, t_high in itertools.product(DELTAS, T_LOW, T_HIGH):
        if t_low < t_high:
            pred = (p >= t_high) | ((p >= t_low) & crest[delta])
            out["crest"][(delta, t_low, t_high)] = iou(pred, truth.occupied)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--splits", nargs="+", default=["val", "test"])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.manual_seed(0)
    model, cfg = load_model(args.checkpoint, device="cpu")
    results = {}
    for split in args.splits:
        data = StereoOccupancyDataset(args.dataset, split, points_per_sample=1, uniform_only=True, views="first")
        rows = []
        for index in range(len(data.objects)):
            truth = ObjectTruth.from_object(data.objects[index], cfg.eval, seed=index)
            table = item_table(model, data[index], truth)
            rows.append((data.categories[index], table))
            print(split, data.object_ids[index], f"plain@0.6 {table['plain'][0.6]:.3f}", flush=True)
        results[split] = rows

    def mean_by_category(rows, key, rule):
        per = {c: np.mean([t[rule][key] for cat, t in rows if cat == c]) for c in CATEGORIES}
        return float(np.mean(list(per.values()))), per

    summary = {}
    for split, rows in results.items():
        plain = {t: mean_by_category(rows, t, "plain") for t in T_HIGH[:-1]}
        crest = {k: mean_by_category(rows, k, "crest") for k in rows[0][1]["crest"]}
        best_plain = max(plain, key=lambda t: plain[t][0])
        best_crest = sorted(crest, key=lambda k: -crest[k][0])[:10]
        summary[split] = {"plain": plain, "crest": crest}
        print(f"\n{split}: plain best t={best_plain}: {plain[best_plain][0]:.3f} {plain[best_plain][1]}")
        print(f"{split}: plain t=0.6: {plain[0.6][0]:.3f} {plain[0.6][1]}")
        for k in best_crest:
            print(f"{split}: crest {k}: {crest[k][0]:.3f} " + " ".join(f"{c} {v:.3f}" for c, v in crest[k][1].items()))
    if "val" in summary and "test" in summary:
        k = max(summary["val"]["crest"], key=lambda k: summary["val"]["crest"][k][0])
        t = max(summary["val"]["plain"], key=lambda t: summary["val"]["plain"][t][0])
        print(f"\nchosen on val: crest {k} -> test {summary['test']['crest'][k][0]:.3f} {summary['test']['crest'][k][1]}")
        print(f"chosen on val: plain {t} -> test {summary['test']['plain'][t][0]:.3f} {summary['test']['plain'][t][1]}")
    with open(args.out, "w") as f:
        json.dump({s: {r: {str(k): v for k, v in d.items()} for r, d in summ.items()} for s, summ in summary.items()}, f)


if __name__ == "__main__":
    main()
