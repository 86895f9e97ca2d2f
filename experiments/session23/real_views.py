"""The real-mesh folder built as a test-only dataset with more views per object than the experiment's.

The experiment renders each of the nine real meshes once (``experiment.real_views_per_object``), so
two models are ranked on nine images; this builds the same folder dataset (the quick config's rig,
rendering and occupancy sampling) with ``--views`` views each, for ``stereo-occ evaluate ...
eval.views_per_object=N``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stereo_occ.config import load_config
from stereo_occ.data.build import build_dataset, folder_test_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/quick.yaml")
    parser.add_argument("--folder", help="the real meshes (default: the config's experiment.real_meshes)")
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cfg = load_config(args.config)
    real = folder_test_config(cfg, Path(args.folder or cfg.experiment.real_meshes), args.views)
    build_dataset(real, args.out, workers=args.workers)


if __name__ == "__main__":  # the build's worker processes import this file again
    main()
