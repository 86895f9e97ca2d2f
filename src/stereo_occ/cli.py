"""``stereo-occ <verb>``: the one command. Thin: parse, load the config, call the library.

Verbs import their modules lazily so ``stereo-occ --help`` stays instant.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import warnings
from pathlib import Path

from .errors import UserError

# data.splits.SPLITS, written out so that parsing the command line (and --help) does not import the
# config machinery; tests/test_build.py checks the two agree.
SPLIT_NAMES = ("train", "val", "test")

# pyrender needs a headless OpenGL platform; EGL works on Mesa (CPU) and on NVIDIA drivers.
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

EPILOG = """Configs: --config FILE (YAML; see configs/quick.yaml and configs/paper.yaml), then any number
of key=value overrides, e.g.  train.iterations=2000 dataset.rig.image_size=64"""


def _add_config(p: argparse.ArgumentParser, out_help: str,
                config_help: str = "YAML config file (default: the study's settings)") -> None:
    p.add_argument("--config", type=Path, help=config_help)
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
        "rotations. Interrupted builds resume: finished objects are skipped. A dataset of an older format "
        "(1, without signed distances) is upgraded in place by running the same command again.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config(p, "dataset folder to create or resume")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--meshes",
        type=Path,
        metavar="FOLDER",
        help="a test-only dataset from your own meshes (FOLDER/mug/*.obj, FOLDER/bowl/..., FOLDER/bottle/...): "
        "every mesh becomes a test object, rendered with the config's rig",
    )
    p.add_argument("--views", type=int, help="stereo pairs per object (default: dataset.render.views_per_object)")
    p.add_argument("--shard", help="build only shard K of N (0-based), e.g. 3/8 for a cluster job array")
    p.add_argument(
        "--split",
        choices=SPLIT_NAMES,
        help="build only this split's objects (e.g. test, to evaluate a checkpoint trained elsewhere); "
        "a later build without --split completes the dataset",
    )

    p = verbs.add_parser(
        "preview",
        help="draw a grid of stereo pairs with their occupancy points",
        description="Save a PNG grid: for several objects of a dataset, the left and right images with "
        "the object's inside points projected onto them.",
    )
    p.add_argument("dataset", type=Path, help="dataset folder")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    p.add_argument("--objects", type=int, default=6, help="how many objects (default 6)")
    p.add_argument("--split", default="train", choices=SPLIT_NAMES)

    p = verbs.add_parser(
        "train",
        help="train an occupancy model on a dataset",
        description="Train one model (the study's mono or stereo, or the camera-aware rig-stereo or rig-mono) "
        "with BCE on sampled points (plus, if asked, a soft-IoU loss, train.iou_weight, and a signed-distance "
        "head, train.distance_weight); keeps model_best.pt (by validation IoU, at the decision threshold "
        "chosen on validation) and model_last.pt in --out. Runs under torchrun for DDP. The model trains as "
        "the config's experiment trains it: the config's experiment.overrides for that model apply (e.g. "
        "configs/quick.yaml's 750 steps along the axis for rig-stereo), then the key=value overrides.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config(p, "run folder (checkpoints, logs, TensorBoard)")
    p.add_argument("--dataset", type=Path, required=True, help="dataset folder")
    p.add_argument("--model", help="model name (overrides model.name): mono, stereo, rig-stereo or rig-mono")
    p.add_argument("--resume", action="store_true", help="continue from --out/model_last.pt")

    p = verbs.add_parser(
        "train-axis",
        help="train the axis estimator that rig models built with model.align_axis lay their volume along",
        description="Train a small network that finds the object's up axis (data.up_axis) in one image, "
        "on every view of the dataset's training split (left and right images, each camera rolled and "
        "mirrored at random; settings in the config's axis section), and write it to --out (one file). "
        "Give it to rig-stereo and rig-mono with model.align_axis=true model.axis_estimator=FILE; "
        "`stereo-occ train` trains one itself when model.axis_estimator is not set. Prints the median "
        "angle per category on the val split.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config(p, "file to write (e.g. runs/axis_estimator.pt)")
    p.add_argument("--dataset", type=Path, required=True, help="dataset folder")

    p = verbs.add_parser(
        "evaluate",
        help="evaluate a checkpoint on a dataset split",
        description="IoU, Chamfer-L1, normal consistency and F-score per category (Occupancy Networks "
        "protocol); writes metrics.json and metrics.csv to --out. The checkpoint's eval section (its "
        "threshold chosen on validation) is used; --config and key=value overrides change it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config(p, "folder for metrics and meshes",
                "YAML config file applied on top of the checkpoint's eval section (default: that section as trained)")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--split", default="test", choices=SPLIT_NAMES)
    p.add_argument("--workers", type=int, default=1, help="evaluate objects in N processes (CPU; default 1)")

    p = verbs.add_parser(
        "reconstruct",
        help="meshes from your own stereo pairs",
        description="Reconstruct a mesh from a left and a right image taken with the study's rig (or the "
        "calibration given by --calibration): one pair with --left/--right (--out is the mesh file; PLY, "
        "OBJ or GLB by its suffix), or many with --pairs (--out is a folder; one <name>.<format> per pair, "
        "the model loaded once). Meshes are simplified to at most reconstruct.max_faces faces (20,000 by "
        "default), staying closed. Prints each mesh written and the time taken.",
        epilog="--pairs SRC: a folder of <name>_left.<ext> and <name>_right.<ext> images (png, jpg, jpeg, "
        "bmp, tif, tiff), or a text file with one 'LEFT RIGHT' pair of paths per line (relative to the text "
        "file; # comments). A pair that fails is reported and the others still run; the exit code is 1 "
        "if any failed. See docs/reconstruct.md.",
    )
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--left", type=Path, help="left image (one pair)")
    p.add_argument("--right", type=Path, help="right image (one pair)")
    p.add_argument("--pairs", type=Path, metavar="SRC", help="folder or list file of pairs (many pairs)")
    p.add_argument(
        "--out", type=Path, required=True, help="mesh file (.ply, .obj or .glb); with --pairs, a folder"
    )
    p.add_argument(
        "--format", type=str.lower, choices=["ply", "obj", "glb"], help="mesh format with --pairs (default ply)"
    )
    p.add_argument(
        "--max-faces", type=int, metavar="N", help="simplify to at most N faces (0: keep the raw mesh); "
        "overrides reconstruct.max_faces"
    )
    p.add_argument("--calibration", type=Path, help="YAML with K and world_to_cam of both cameras")
    p.add_argument(
        "--config", type=Path, help="YAML config whose eval section (threshold, MISE grid) and reconstruct "
        "section (mise_steps, max_faces) apply on top of the checkpoint's (so do key=value overrides)"
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")

    p = verbs.add_parser(
        "compare",
        help="two evaluations of the same test items, metric by metric, with paired intervals",
        description=textwrap.fill(
            "Compare two evaluations of the same test items (metrics.json files written by evaluate or "
            "experiment, or the folders holding them): for each metric, both means, NEW - BASE with its "
            "95% bootstrap interval over objects (paired: the same objects resampled for both, views of an "
            "object averaged first), per category, and whether NEW is better, worse or not significantly "
            "different. Both must hold the same (object, view) items; evaluations of different items are "
            "refused.", 100),
        epilog="e.g.  stereo-occ compare runs/quick/eval/rig-stereo runs/quick/eval/rig-mono\n"
        "      stereo-occ compare runs/new/eval/rig-stereo runs/quick/eval/rig-stereo --metrics iou,chamfer_l1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("new", type=Path, help="evaluation of the model or variant under test")
    p.add_argument("base", type=Path, help="evaluation to compare it with (the baseline)")
    p.add_argument("--metrics", help="comma-separated metric names, e.g. iou,chamfer_l1,iou_lost_surface "
                   "(default: every summary metric both hold)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table (for a README or a note)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the comparison as JSON")

    p = verbs.add_parser(
        "experiment",
        help="the whole study: dataset, every model of experiment.models, evaluation, report",
        description="Build the dataset if missing, train every model in experiment.models, evaluate them "
        "on the test split and write results.json and report.html to --out. Re-running skips finished "
        "stages.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config(p, "experiment folder")
    p.add_argument("--workers", type=int, default=1, help="processes for the dataset build and the evaluation")
    return parser


def train_config(config: Path | None, model: str | None, overrides: list[str]):
    """The config ``stereo-occ train`` runs: the file, then the model's ``experiment.overrides`` in it
    (how the config's experiment trains that model, so one model trained alone is the experiment's),
    then the command line's ``key=value`` overrides, which win."""
    from .config import load_config, model_config, with_overrides

    overrides = list(overrides) + ([f"model.name={model}"] if model else [])
    base = load_config(config, [])
    cfg = with_overrides(base, overrides)
    own = base.experiment.overrides.get(cfg.model.name, [])
    if not own:
        return cfg
    print(f"model {cfg.model.name}: the config's experiment.overrides.{cfg.model.name} apply: {' '.join(own)}")
    return with_overrides(model_config(base, cfg.model.name), overrides)


def _checkpoint_changes(args: argparse.Namespace):
    """``--config`` and ``key=value`` overrides to apply on top of a checkpoint's config (None: none given)."""
    from .config import ConfigChanges

    return ConfigChanges(args.config, tuple(args.overrides)) if (args.config or args.overrides) else None


def run(args: argparse.Namespace) -> None:
    from .config import load_config

    if args.verb == "dataset":
        from .data.build import build_dataset

        cfg = load_config(args.config, args.overrides)
        if args.meshes is not None:
            from .data.build import folder_test_config

            cfg = folder_test_config(cfg, args.meshes, args.views)
        elif args.views is not None:
            cfg = load_config(args.config, [*args.overrides, f"dataset.render.views_per_object={args.views}"])
        summary = build_dataset(cfg, args.out, workers=args.workers, shard=_parse_shard(args.shard), split=args.split)
        if summary.failed:
            sys.exit(1)
    elif args.verb == "preview":
        from .data.preview import save_preview

        save_preview(args.dataset, args.out, n_objects=args.objects, split=args.split)
        print(f"wrote {args.out}")
    elif args.verb == "train":
        from .training.trainer import train

        cfg = train_config(args.config, args.model, args.overrides)
        train(cfg, dataset=args.dataset, out=args.out, resume=args.resume)
    elif args.verb == "train-axis":
        from .training.axis import describe, train_axis_estimator

        summary = train_axis_estimator(load_config(args.config, args.overrides), args.dataset, args.out)
        print(f"wrote {args.out}; {describe(summary)}")
    elif args.verb == "evaluate":
        from .evaluation.evaluate import evaluate_checkpoint

        from .training.checkpoint import saved_config

        changes = _checkpoint_changes(args)  # on top of the checkpoint's own eval section, not the defaults
        eval_cfg = changes.apply(saved_config(args.checkpoint)).eval if changes else None
        evaluate_checkpoint(
            args.checkpoint, args.dataset, split=args.split, out=args.out, eval_cfg=eval_cfg, workers=args.workers
        )
    elif args.verb == "reconstruct":
        import gc
        import time

        started = time.perf_counter()  # the timing line counts the imports below
        if args.pairs is not None and (args.left is not None or args.right is not None):
            raise UserError("give either --pairs or --left and --right, not both")
        if args.pairs is None and (args.left is None or args.right is None):
            if args.left is None and args.right is None:
                raise UserError("give --left and --right (one pair) or --pairs (a folder or list of pairs)")
            raise UserError("--left needs --right" if args.right is None else "--right needs --left")
        if args.pairs is None and args.format is not None:
            raise UserError("--format is for --pairs; for one pair the suffix of --out chooses the format")
        from .evaluation.reconstruct import reconstruct_files, reconstruct_folder

        settings = dict(
            calibration=args.calibration,
            changes=_checkpoint_changes(args),
            max_faces=args.max_faces,
            started=started,
        )

        # What is imported by now lives until the process ends: keep the garbage collector (and its
        # collection at exit) from walking torch's objects again; that saves about 0.4 s per command.
        gc.freeze()
        if args.pairs is None:
            reconstruct_files(args.checkpoint, args.left, args.right, args.out, **settings)
        else:
            results = reconstruct_folder(args.checkpoint, args.pairs, args.out, fmt=args.format or "ply", **settings)
            if not all(r.ok for r in results):
                sys.exit(1)
    elif args.verb == "compare":
        from .files import write_atomic
        from .report.compare import Evaluation, as_json, compare, format_comparison

        new, base = Evaluation.load(args.new), Evaluation.load(args.base)
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
        comparison = compare(new, base, metrics)
        print(format_comparison(comparison, markdown=args.markdown))
        if args.json is not None:
            import json

            write_atomic(args.json, json.dumps(as_json(comparison), indent=1))
            print(f"wrote {args.json}")
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
    except BrokenPipeError:
        # the reader went away (`stereo-occ compare A B | head`): stop quietly, as Unix tools do, and
        # keep Python from complaining again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


if __name__ == "__main__":
    main()
