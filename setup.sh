#!/usr/bin/env bash
# Installs everything stereo-occ needs into ./.venv (idempotent: fast when already done).
#   torch first, pinned to the CPU build (a newer torch would pull several GB of CUDA packages),
#   then the package with its test extras; Debian's Chromium for the report's browser test.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian chromium + chromium-driver (report browser test)"
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
      || echo "setup: could not install chromium; the browser test of the report will be skipped"
  else
    echo "setup: chromium/chromedriver not found; the browser test of the report will be skipped"
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
python -m pip install -q -e ".[test]"
echo "setup: done ($(python -c 'import torch; print("torch", torch.__version__)'))"
