#!/usr/bin/env bash
# rig-stereo at GPU scale (configs/gpu.yaml) inside one time budget, on one CUDA GPU:
#   bash bench/gpu_scale.sh OUT_DIR [BUDGET_SECONDS=540] [EXTRA key=value overrides...]
# BUDGET_SECONDS covers the whole script, dataset included. It needs `python3` with a CUDA build of
# torch and the project importable (`pip install -e .` into that environment); the dataset goes to
# $GPU_SCALE_DATA (default /tmp/gpu-scale-data).
#
# 1. starts building the dataset (all CPU cores but two) in the background;
# 2. meanwhile checks the CUDA path on a 6-object dataset: 20 steps under torchrun (one process, so
#    no process group) in bf16, then --resume to 40 (it stops at once if anything fails or there is
#    no CUDA device, so a broken run costs little GPU time); then the training step of every model
#    at the quick config and of mono and rig-stereo at this one (bench/bench_step.py);
# 3. once the dataset is whole, runs 40 real training steps (loader included), times the last 30
#    and sets train.iterations so that training ends inside the budget (what remains, less 60 s for
#    the validations and the copies);
# 4. trains under torchrun, writing metrics.csv, summary.json, model_best.pt and model_last.pt
#    (resumable) to OUT_DIR/rig-stereo.
# Knobs (environment): GPU_SCALE_SMOKE=0 skips step 2 and the step benchmark; GPU_SCALE_ITERATIONS=N
# skips step 3 and trains N iterations, stopped at the budget if they do not fit (metrics.csv keeps
# every validation so far: how an ablation is compared with the full run at equal iterations).
# Evaluate the checkpoint anywhere afterwards: `stereo-occ dataset --config configs/gpu.yaml --out
# data/gpu --split test` builds only the test objects (docs/training.md, "GPU scale").
#
# On a machine without a package registry, the packages its Python lacks can travel as wheels in
# .whl/ and the GL loader libraries as .deb files in .gl/ (docs/training.md, "GPU scale", says how to
# fetch both); the script installs them when the project's imports fail. Elsewhere, the installed
# stereo-occ is used as it is. Set GPU_SCALE_ALLOW_CPU=1 to try the script on a CPU (tiny overrides).
set -uo pipefail
OUT_DIR=$(realpath -m "${1:?usage: bash bench/gpu_scale.sh OUT_DIR [BUDGET_SECONDS] [overrides...]}")
BUDGET=${2:-540}
if ! [[ $BUDGET =~ ^[0-9]+$ ]]; then
  echo "error: BUDGET_SECONDS must be a whole number of seconds (got '$BUDGET'); overrides come after it" >&2; exit 2
fi
shift $(( $# >= 2 ? 2 : 1 ))
cd "$(dirname "$0")/.."  # the repository root: configs/, bench/, .whl/ and .gl/ are read from there
EXTRA=("$@")
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_scale.log"
exec > >(tee -a "$LOG") 2>&1
source bench/device_env.sh || exit 1  # EGL, the carried .gl/ loaders and .whl/ packages
PY=python3
quiet() {  # run a command, show its last lines without progress bars, keep its exit status
  local tmp; tmp=$(mktemp); "$@" > "$tmp" 2>&1; local rc=$?
  tr '\r' '\n' < "$tmp" | grep -v "[0-9]<[0-9?]\|^ *$" | tail -${TAIL:-8}; rm -f "$tmp"; return $rc
}
CLI=($PY -m stereo_occ.cli)
TRAIN=($PY -m torch.distributed.run --standalone --nproc_per_node 1 -m stereo_occ.cli train)
DATA=${GPU_SCALE_DATA:-/tmp/gpu-scale-data}
CPUS=$(nproc)
echo "[$(elapsed) s] $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null) | $CPUS CPUs"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"

# 1. the dataset, in the background
( start=$(date +%s)
  "${CLI[@]}" dataset --config configs/gpu.yaml --out "$DATA" --workers $(( CPUS > 4 ? CPUS - 2 : 2 )) "${EXTRA[@]}" > "$OUT_DIR/dataset.log" 2>&1
  rc=$?; echo "dataset rc=$rc seconds=$(( $(date +%s) - start ))" >> "$OUT_DIR/dataset.log"; exit $rc ) &
DATASET_PID=$!

# 2. the CUDA path: DDP under torchrun, bf16, a checkpoint and an exact resume
SMOKE=/tmp/gpu-scale-smoke
SMOKE_ON=${GPU_SCALE_SMOKE:-1}
fail() {
  echo "[$(elapsed) s] FAILED: $1"; kill "$DATASET_PID" 2>/dev/null; pkill -f "stereo_occ.cli dataset" 2>/dev/null
  ls /usr/local/nvidia/share/glvnd/egl_vendor.d/ 2>&1; ldconfig -p | grep -i "libEGL" | head -3; exit 1
}
if [ "$SMOKE_ON" = 1 ]; then
rm -rf "$SMOKE"
quiet "${CLI[@]}" dataset --config configs/gpu.yaml --out "$SMOKE/data" --workers 2 "${EXTRA[@]}" \
  dataset.shapes.mug=2 dataset.shapes.bowl=2 dataset.shapes.bottle=2 dataset.render.views_per_object=4 \
  dataset.splits.train=0.5 dataset.splits.val=0.5 dataset.splits.test=0.0 || fail "small dataset"
SMOKE_ARGS=(--config configs/gpu.yaml --dataset "$SMOKE/data" --out "$SMOKE/run" "${EXTRA[@]}"
  train.val_every=20 train.checkpoint_every=20 train.log_every=10 data.num_workers=2)
quiet "${TRAIN[@]}" "${SMOKE_ARGS[@]}" train.iterations=20 || fail "CUDA training"
quiet "${TRAIN[@]}" "${SMOKE_ARGS[@]}" train.iterations=40 --resume || fail "CUDA resume"
$PY - "$SMOKE/run" <<'EOF' || fail "smoke summary"
import json, os, sys
s = json.load(open(f"{sys.argv[1]}/summary.json"))
assert s["iterations"] == 40, s
on_cuda = s["device"].startswith("cuda") and s["precision"] == "bf16"
assert on_cuda or os.environ.get("GPU_SCALE_ALLOW_CPU") == "1", f"not trained on CUDA in bf16: {s['device']}, {s['precision']}"
print(f"smoke passed: {s['iterations']} iterations (20, then resumed to 40) on {s['device']} in {s['precision']}")
EOF
quiet "${CLI[@]}" dataset --config configs/quick.yaml --out "$SMOKE/data64" --workers 2 \
  dataset.shapes.mug=2 dataset.shapes.bowl=2 dataset.shapes.bottle=2 dataset.render.views_per_object=4 \
  dataset.splits.train=1.0 dataset.splits.val=0.0 dataset.splits.test=0.0 || fail "64 px dataset"
fi
echo "[$(elapsed) s] smoke done; waiting for the dataset"
wait "$DATASET_PID" || fail "dataset (see dataset.log)"
tail -2 "$OUT_DIR/dataset.log"
echo "[$(elapsed) s] dataset built"

# the step of every model on this device, at the quick config (64 px) and at this one (128 px)
if [ "$SMOKE_ON" = 1 ]; then
TAIL=8 quiet $PY bench/bench_step.py --dataset "$SMOKE/data64" --config configs/quick.yaml \
  --json "$OUT_DIR/step_quick.json" || echo "(step benchmark at the quick config failed; going on)"
TAIL=5 quiet $PY bench/bench_step.py --dataset "$SMOKE/data" --config configs/gpu.yaml --models mono,rig-stereo \
  --json "$OUT_DIR/step_gpu.json" "${EXTRA[@]}" || echo "(step benchmark at this config failed; going on)"
echo "[$(elapsed) s] step times measured"
fi

# 3. the step time of the run on the real dataset, loader included
if [ -n "${GPU_SCALE_ITERATIONS:-}" ]; then
ITERS=$GPU_SCALE_ITERATIONS
VAL_EVERY=${GPU_SCALE_VAL_EVERY:-400}
echo "[$(elapsed) s] train.iterations=$ITERS (fixed), validation every $VAL_EVERY, stopped at the budget"
else
PROBE=/tmp/gpu-scale-probe
rm -rf "$PROBE"
quiet "${TRAIN[@]}" --config configs/gpu.yaml --dataset "$DATA" --out "$PROBE" "${EXTRA[@]}" \
  train.iterations=40 train.log_every=10 train.val_every=1000 train.checkpoint_every=1000 || fail "probe"
STEP=$($PY -c "
import csv, sys
rows = [r for r in csv.DictReader(open('$PROBE/metrics.csv')) if r['split'] == 'train']
t = {int(r['iteration']): float(r['seconds']) for r in rows}
print((t[40] - t[10]) / 30)") || fail "reading the probe's step time"
ITERS=$($PY -c "print(max(100, int(($BUDGET - $(elapsed) - 60) / $STEP) // 50 * 50))")
VAL_EVERY=$(( ITERS / 8 / 50 * 50 > 50 ? ITERS / 8 / 50 * 50 : 50 ))
echo "[$(elapsed) s] step $STEP s per step (loader included) -> train.iterations=$ITERS, validation every $VAL_EVERY"
fi

# 4. the run
RUN="$OUT_DIR/rig-stereo"
TAIL=30 quiet timeout -k 30 $(( BUDGET - $(elapsed) > 10 ? BUDGET - $(elapsed) : 10 )) "${TRAIN[@]}" --config configs/gpu.yaml --dataset "$DATA" --out "$RUN" "${EXTRA[@]}" \
  train.iterations=$ITERS train.val_every=$VAL_EVERY train.checkpoint_every=$VAL_EVERY
rc=$?
[ $rc = 124 ] && echo "[$(elapsed) s] stopped at the budget"
[ $rc = 0 ] || [ $rc = 124 ] || fail "training"
echo "[$(elapsed) s] done"
grep ",val," "$RUN/metrics.csv"
if [ -f "$RUN/summary.json" ]; then head -9 "$RUN/summary.json"; fi
