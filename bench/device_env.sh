# Sourced from the repository root by the scripts that run on a GPU machine without a package
# registry (bench/gpu_scale.sh, experiments/session18/gpu_sweep.sh): headless EGL rendering, the GL
# loader libraries carried as .deb files in .gl/ (unpacked only where there is an NVIDIA driver, so
# trying a script on a CPU leaves / alone), and the packages python3 lacks carried as wheels in
# .whl/, installed to /tmp/site when the project's imports fail (docs/training.md, "GPU scale").
export PYTHONUNBUFFERED=1 PYOPENGL_PLATFORM=egl PYGLET_HEADLESS=1  # pyrender imports pyglet, whose GL module looks for X11 otherwise
if [ -d .gl ] && command -v nvidia-smi >/dev/null; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
nvidia_egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$nvidia_egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$nvidia_egl
if [ -d .whl ] && ! python3 -c "import stereo_occ.cli, trimesh, pyrender, omegaconf, igl, manifold3d" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
  export PYTHONPATH=/tmp/site:$PWD/src
fi
