#!/usr/bin/env bash
# Download, into .whl/, the wheels a stock JAX-CUDA + PyTorch image (Python 3.12, x86_64,
# no network) lacks to run jaxdark: one command, run on a machine with PyPI access.
#
#   bash benchmarks/gather_wheels.sh [DEST]        # DEST defaults to .whl in the repository
#
# The image has jax, flax, optax, orbax-checkpoint, torch, numpy, scikit-image, opencv and
# tifffile, but not rawpy, grain, tensorflow-datasets, array-record, ml-collections,
# tensorboardX or pytorch-msssim, nor some of their dependencies (listed below, pinned to the
# versions this project runs with). benchmarks/gpu_check.sh installs the result with
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#       --target /tmp/site .whl/*.whl
# Old wheels in DEST are deleted first: two versions of one package stop that install.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=${1:-$ROOT/.whl}
PY=${PYTHON:-python3}
LIMIT_MIB=60

PACKAGES=(
  rawpy==0.28.0 pytorch-msssim==1.0.0 ml-collections==1.1.0 tensorboardX==2.6.5
  grain==0.2.18 array-record==0.8.6 tensorflow-datasets==4.9.10
  # dependencies of those that the image lacks
  portpicker==1.6.0 dm-tree==0.1.10 immutabledict==4.3.1 simple-parsing==0.1.9
  docstring-parser==0.18.0 tensorflow-metadata==1.21.0 googleapis-common-protos==1.76.0
  termcolor==3.3.0 toml==0.10.2
)
SOURCE_ONLY=(promise==2.3)  # pure Python, published as a source archive only: built here

PLATFORMS=()
for p in manylinux1 manylinux2014 manylinux_2_17 manylinux_2_24 manylinux_2_27 \
         manylinux_2_28 manylinux_2_31 manylinux_2_34 manylinux_2_35; do
  PLATFORMS+=(--platform "${p}_x86_64")
done

mkdir -p "$DEST"
rm -f "$DEST"/*.whl
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp "${PLATFORMS[@]}" -d "$DEST" "${PACKAGES[@]}"
"$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-binary=:all: \
  -w "$DEST" "${SOURCE_ONLY[@]}"

ls -l "$DEST"/*.whl
count=$(ls "$DEST"/*.whl | wc -l)
expected=$(( ${#PACKAGES[@]} + ${#SOURCE_ONLY[@]} ))
total=$(du -cb "$DEST"/*.whl | tail -n 1 | cut -f1)
echo "gather_wheels: $count wheels, $(( total / 1048576 )) MiB in $DEST"
if [ "$count" -ne "$expected" ]; then
  echo "gather_wheels: expected $expected wheels, got $count" >&2
  exit 1
fi
if [ "$total" -gt $(( LIMIT_MIB * 1048576 )) ]; then
  echo "gather_wheels: more than $LIMIT_MIB MiB" >&2
  exit 1
fi
