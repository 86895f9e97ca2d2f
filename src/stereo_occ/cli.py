"""``stereo-occ <verb>``: the one command. Thin: parse, load the config, call the library.

Verbs import their modules lazily so ``stereo-occ --help`` stays instant.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from .errors import UserError

# pyrender needs a headless OpenGL platform; EGL works on Mesa (CPU) and on NVIDIA drivers.
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

EPILOG = """Configs: --config FILE (YAML; see configs/quick.yaml and configs/paper.yaml), then any number
of key=value overrides, e.g.  train.iterations=2000 dataset.rig.image_size=64"""


def _add_config(p: argparse.ArgumentParser, out_help: str) -> None:
    p.add_argument("--config", type=Path, help="YAML config file (default: the study's settings)")
    p.add_argument("--out", type=Path, required=True, help=out_help)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard must look like K/N, e.g. 0/8 (got {text!r})") from None
    if not (n >= 1 and 0 <= k < n):
        raise UserError(f"--shard K/N needs 0 <= K < N (got {text!r})")
    return k, n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stereo-occ",
        description="3D reconstruction of mugs, bowls and bottles from a stereo pair with occupancy networks.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser(
        "dataset",
        help="build a stereo occupancy dataset (shapes, renders, labelled points)",
        description="Build a dataset folder: meshes from the configured source are made watertight and "
        "normalised, labelled occupancy points are sampled, and stereo pairs are rendered at random "
        "rotations. Interrupted builds resume: finished objects are skipped.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config(p, "dataset folder to create or resume")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--shard", help="build only shard K of N (0-based), e.g. 3/8 for a cluster job array")

    p = verbs.add_parser(
        "preview",
        help="draw a grid of stereo pairs with their occupancy points",
        description="Save a PNG grid: for several objects of a dataset, the left and right images with "
        "the object's inside points projected onto them.",
    )
    p.add_argument("dataset", type=Path, help="dataset folder")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    p.add_argument("--objects", type=int, default=6, help="how many objects (default 6)")
    p.add_argument("--split", default="train", choices=["train", "val", "test"])

    p = verbs.add_parser(
        "train",
        help="train an occupancy model on a dataset",
        description="Train one model (mono or stereo) with BCE on sampled points; keeps model_best.pt "
        "(by validation IoU) and model_last.pt in --out. Runs under torchrun for DDP.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config(p, "run folder (checkpoints, logs, TensorBoard)")
    p.add_argument("--dataset", type=Path, required=True, help="dataset folder")
    p.add_argument("--model", help="model name (overrides model.name), e.g. mono or stereo")
    p.add_argument("--resume", action="store_true", help="continue from --out/model_last.pt")

    p = verbs.add_parser(
        "evaluate",
        help="evaluate a checkpoint on a dataset split",
        description="IoU, Chamfer-L1, normal consistency and F-score per category (Occupancy Networks "
        "protocol); writes metrics.json and metrics.csv to --out.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config(p, "folder for metrics and meshes")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])

    p = verbs.add_parser(
        "reconstruct",
        help="mesh from your own stereo pair",
        description="Reconstruct a mesh (PLY, OBJ or GLB by --out's suffix) from a left and a right image "
        "taken with the study's rig, or with the calibration given by --calibration.",
    )
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--left", type=Path, required=True)
    p.add_argument("--right", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="mesh file (.ply, .obj or .glb)")
    p.add_argument("--calibration", type=Path, help="YAML with K and world_to_cam of both cameras")
    p.add_argument("--config", type=Path, help="YAML config whose eval section to use (threshold, MISE)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")

    p = verbs.add_parser(
        "experiment",
        help="the whole study: dataset, mono and stereo, evaluation, report",
        description="Build the dataset if missing, train every model in experiment.models, evaluate them "
        "on the test split and write results.json and report.html to --out. Re-running skips finished "
        "stages.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config(p, "experiment folder")
    p.add_argument("--workers", type=int, default=1, help="dataset build worker processes")
    return parser


def run(args: argparse.Namespace) -> None:
    from .config import load_config

    if args.verb == "dataset":
        from .data.build import build_dataset

        cfg = load_config(args.config, args.overrides)
        summary = build_dataset(cfg, args.out, workers=args.workers, shard=_parse_shard(args.shard))
        if summary.failed:
            sys.exit(1)
    elif args.verb == "preview":
        from .data.preview import save_preview

        save_preview(args.dataset, args.out, n_objects=args.objects, split=args.split)
        print(f"wrote {args.out}")
    elif args.verb == "train":
        from .training.trainer import train

        overrides = list(args.overrides) + ([f"model.name={args.model}"] if args.model else [])
        cfg = load_config(args.config, overrides)
        train(cfg, dataset=args.dataset, out=args.out, resume=args.resume)
    elif args.verb == "evaluate":
        from .evaluation.evaluate import evaluate_checkpoint

        cfg = load_config(args.config, args.overrides)
        evaluate_checkpoint(args.checkpoint, args.dataset, split=args.split, out=args.out, eval_cfg=cfg.eval)
    elif args.verb == "reconstruct":
        from .evaluation.reconstruct import reconstruct_files

        eval_cfg = load_config(args.config, args.overrides).eval if (args.config or args.overrides) else None
        reconstruct_files(
            args.checkpoint, args.left, args.right, args.out, calibration=args.calibration, eval_cfg=eval_cfg
        )
    elif args.verb == "experiment":
        from .experiment import run_experiment

        cfg = load_config(args.config, args.overrides)
        run_experiment(cfg, args.out, workers=args.workers)


def _plain_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    """Warnings meant for users (resized images, skipped folders) print as one plain line."""
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = _plain_warning
    try:
        run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
