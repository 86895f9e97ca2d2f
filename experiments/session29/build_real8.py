"""The nine real meshes with 8 views each (the experiment renders 1): more views for a paired comparison.

    python experiments/session29/build_real8.py runs/s29/real8
"""
import sys
from pathlib import Path

from stereo_occ.config import load_config
from stereo_occ.data.build import build_dataset, folder_test_config

if __name__ == "__main__":
    cfg = load_config("configs/quick.yaml")
    build_dataset(folder_test_config(cfg, Path(cfg.experiment.real_meshes), 8), Path(sys.argv[1]), workers=2)
