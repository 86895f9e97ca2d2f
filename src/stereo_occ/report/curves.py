"""Learning curves of several runs side by side, as a PNG (the figures in docs/training.md).

    python -m stereo_occ.report.curves rig-stereo=runs/quick/runs/rig-stereo stereo=runs/quick/runs/stereo \
        --out docs/images/curves.png

Each argument is ``NAME=RUN`` (a training run folder, or its ``metrics.csv``). The same 2x2 figure as
the experiment report: training loss and validation IoU against iterations and against seconds.
With ``--per-category``: validation IoU of the mean and of each category against training minutes.
With ``--until N``: only the first N iterations of every run (a long run beside a variant's first steps).
With ``--against iterations`` (``--per-category``): against iterations instead of minutes, for runs
whose minutes another job on the machine stretched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError
from ..files import write_atomic
from .figures import category_curves_png, read_training_log, training_curves_png


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stereo_occ.report.curves", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="NAME=RUN", help="a name and a run folder (or its metrics.csv)")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--per-category", action="store_true", help="validation IoU per category against minutes")
    parser.add_argument("--until", type=int, metavar="N", help="only the first N iterations of every run")
    parser.add_argument("--against", choices=("minutes", "iterations"), default="minutes",
                        help="with --per-category: the x axis (default: training minutes)")
    args = parser.parse_args(argv)
    try:
        logs = {}
        for item in args.runs:
            name, sep, path = item.partition("=")
            if not sep or not name:
                raise UserError(f"{item!r}: expected NAME=RUN, e.g. stereo=runs/quick/runs/stereo")
            csv = Path(path) / "metrics.csv" if Path(path).is_dir() else Path(path)
            logs[name] = read_training_log(csv, until=args.until)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if args.per_category:
            write_atomic(args.out, category_curves_png(logs, against=args.against))
        else:
            write_atomic(args.out, training_curves_png(logs))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
