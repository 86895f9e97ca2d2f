#!/usr/bin/env bash
# The quick dataset, a development set and a sweep of quick-study variants over seeds, on one CUDA GPU:
#   bash experiments/session18/gpu_sweep.sh OUT_DIR [BUDGET_SECONDS=480] [VARIANTS] [SEEDS] [PARALLEL]
# The two datasets build side by side on the machine's cores, then experiments/session18/sweep.py
# runs the jobs PARALLEL at a time; none starts after BUDGET - 150 s and any still running at
# BUDGET - 25 s is stopped, so the folder holds whatever finished. The wheels in .whl/ and the GL
# loaders in .gl/ are installed first when the project's imports fail (as bench/gpu_scale.sh does).
# SWEEP_TINY=1 shrinks everything to try the script on a CPU in a minute; SWEEP_BIG=1 also builds a
# dataset of 3x the objects for the big* variants; SWEEP_PAIRS=variant:seed,... lists the jobs.
set -uo pipefail
OUT_DIR=$(realpath -m "${1:?usage: gpu_sweep.sh OUT_DIR [BUDGET] [VARIANTS] [SEEDS] [PARALLEL]}")
BUDGET=${2:-480}
VARIANTS=${3:-base,inject,hidden256,pe8,near35,img48,steps1400,mono}
SEEDS=${4:-0,1,2}
PARALLEL=${5:-8}
cd "$(dirname "$0")/../.."
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
mkdir -p "$OUT_DIR"
exec > >(tee -a "$OUT_DIR/sweep.log") 2>&1
source bench/device_env.sh || exit 1  # EGL, the carried .gl/ loaders and .whl/ packages
echo "[$(elapsed) s] $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null) | $(nproc) CPUs"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
CPUS=$(nproc); HALF=$(( CPUS > 4 ? CPUS / 2 : 1 ))
DATA=${SWEEP_DATA:-/tmp/sweep-data}
TINY=()
if [ "${SWEEP_TINY:-0}" = 1 ]; then
  TINY=(dataset.shapes.mug=3 dataset.shapes.bowl=3 dataset.shapes.bottle=3 dataset.render.views_per_object=2
        dataset.occupancy.n_uniform=5000 dataset.occupancy.n_surface=5000)
fi
# the quick dataset, and a development set: 60 other objects (other shape, render and occupancy seeds), all test
python3 -m stereo_occ.cli dataset --config configs/quick.yaml --out "$DATA/quick" --workers $HALF "${TINY[@]}" \
  > "$OUT_DIR/dataset-quick.log" 2>&1 &
Q=$!
DEV=(dataset.shapes.mug=20 dataset.shapes.bowl=20 dataset.shapes.bottle=20 dataset.render.views_per_object=1
     dataset.shapes.seed=1 dataset.render.seed=1 dataset.occupancy.seed=1
     dataset.splits.train=0 dataset.splits.val=0 dataset.splits.test=1)
[ "${SWEEP_TINY:-0}" = 1 ] && DEV=("${DEV[@]}" "${TINY[@]}")
python3 -m stereo_occ.cli dataset --config configs/quick.yaml --out "$DATA/dev" --workers $HALF "${DEV[@]}" \
  > "$OUT_DIR/dataset-dev.log" 2>&1 &
D=$!
BIG_ARGS=()
if [ -n "${SWEEP_BIG:-}" ]; then  # 3x the quick config's objects, other seeds (the big* variants)
  BIG=(dataset.shapes.mug=90 dataset.shapes.bowl=90 dataset.shapes.bottle=90
       dataset.shapes.seed=2 dataset.render.seed=2 dataset.occupancy.seed=2)
  [ "${SWEEP_TINY:-0}" = 1 ] && BIG=("${TINY[@]}" dataset.shapes.seed=2)
  python3 -m stereo_occ.cli dataset --config configs/quick.yaml --out "$DATA/big" --workers $CPUS "${BIG[@]}" \
    > "$OUT_DIR/dataset-big.log" 2>&1 &
  B=$!
  BIG_ARGS=(--big "$DATA/big")
fi
wait $Q || { tail -5 "$OUT_DIR/dataset-quick.log"; exit 1; }
wait $D || { tail -5 "$OUT_DIR/dataset-dev.log"; exit 1; }
[ -n "${SWEEP_BIG:-}" ] && { wait $B || { tail -5 "$OUT_DIR/dataset-big.log"; exit 1; }; }
echo "[$(elapsed) s] datasets built"
EXTRA=()
[ "${SWEEP_TINY:-0}" = 1 ] && EXTRA=(--extra=train.iterations=10 --extra=train.val_every=5 --extra=train.warmup_iterations=2
                                     --extra=train.val_views=1 --extra=eval.n_iou_points=5000)
LEFT=$(( BUDGET - $(elapsed) ))
python3 experiments/session18/sweep.py run --dataset "$DATA/quick" --dev "$DATA/dev" --out "$OUT_DIR/runs" \
  --variants "$VARIANTS" --seeds "$SEEDS" ${SWEEP_PAIRS:+--pairs "$SWEEP_PAIRS"} "${BIG_ARGS[@]}" --parallel "$PARALLEL" --threads 1 "${EXTRA[@]}" \
  --deadline $(( LEFT - 150 > 0 ? LEFT - 150 : 1 )) --hard-deadline $(( LEFT - 25 > 0 ? LEFT - 25 : 1 ))
echo "[$(elapsed) s] sweep over"
cp "$OUT_DIR/runs/sweep.json" "$OUT_DIR/" 2>/dev/null
# every run's metrics.csv (learning curves) and job log, in one archive
tar czf "$OUT_DIR/runs.tgz" -C "$OUT_DIR/runs" $(cd "$OUT_DIR/runs" && ls -d */ | while read d; do
  for f in metrics.csv job.log result.json summary.json; do [ -f "$d$f" ] && echo "$d$f"; done; done)
echo "[$(elapsed) s] done"
