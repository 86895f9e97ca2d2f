#!/bin/bash
# Session 17: 150 steps each of rig-stereo and rig-mono (the quick config's settings of session 16),
# one after the other with two threads, then side by side with one thread each; prints both walls.
#   DATA=runs/quick/dataset OUT=runs/s17 bash experiments/session17/side_by_side_150.sh
DATA=${DATA:-runs/quick/dataset}; OUT=${OUT:-runs/s17}
OV="train.iterations=150 train.val_every=1000 train.checkpoint_every=1000 train.lr=0.001 train.lr_schedule=cosine train.warmup_iterations=30 model.n_blocks=4 train.iou_weight=3 train.iou_estimator=mixture"
t0=$(date +%s.%N)
for m in rig-stereo rig-mono; do stereo-occ train --config configs/quick.yaml --dataset $DATA --out $OUT/seq-$m --model $m $OV > $OUT/seq-$m.log 2>&1; done
t1=$(date +%s.%N)
for m in rig-stereo rig-mono; do OMP_NUM_THREADS=1 stereo-occ train --config configs/quick.yaml --dataset $DATA --out $OUT/par-$m --model $m $OV > $OUT/par-$m.log 2>&1 & done
wait
t2=$(date +%s.%N)
echo "one after the other $(echo "$t1-$t0" | bc) s, side by side $(echo "$t2-$t1" | bc) s (training seconds in each run's summary.json)"
