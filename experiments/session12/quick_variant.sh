#!/bin/bash
# Session 12: one variant of the quick config's rig-stereo, trained on the quick dataset, then its test split.
#   experiments/session12/quick_variant.sh NAME ITERATIONS [overrides...]
# DATA (default runs/quick/dataset: the README's first command builds it) and OUT (default runs/v).
# The baseline is the same command with no override; compare with
#   stereo-occ compare $OUT/NAME/eval $OUT/BASELINE/eval
set -e
DATA=${DATA:-runs/quick/dataset}; OUT=${OUT:-runs/v}
name=$1; its=$2; shift 2
OV="train.iterations=$its train.lr=0.001 train.lr_schedule=cosine train.warmup_iterations=30 model.n_blocks=4 train.iou_weight=3"
mkdir -p $OUT
stereo-occ train --config configs/quick.yaml --dataset $DATA --out $OUT/$name --model rig-stereo $OV "$@" > $OUT/$name.log 2>&1
stereo-occ evaluate --config configs/quick.yaml --checkpoint $OUT/$name/model_best.pt --dataset $DATA --out $OUT/$name/eval --workers 2 > $OUT/$name.eval.log 2>&1
