#!/bin/sh
# The wheels the GPU machine lacks (grain, array_record, ml_collections, portpicker, bm25s), into
# bench/gpu_wheels/ (ignored by git), which the device tool's `carry` sends with the working tree:
#   sh bench/gpu_wheels.sh                                 # here, with network access
#   run(command="sh bench/gpu_wheels.sh install && PYTHONPATH=$PWD python bench/gpu_train_embed.py
#       --parts jax", carry=["bench/gpu_wheels"])          # there, with none (bench/README.md)
# Their own dependencies are not downloaded: the rest of what they need (numpy, absl-py, protobuf,
# ...) comes with jax and torch, which the GPU machine has; `install` says what is still missing.
# array_record and grain are built per Python version: GPU_PYTHON=3.12 fetches that version's wheels
# (the default is this interpreter's; the device tool's README or `python3 -V` there says which).
set -eu
cd "$(dirname "$0")/.."
WHEELS=bench/gpu_wheels
PACKAGES="grain array_record ml_collections portpicker bm25s"
PYTHON=${PYTHON:-python3}
if [ "${1:-}" = install ]; then
    "$PYTHON" -m pip install --no-index --find-links "$WHEELS" --no-deps $PACKAGES
    "$PYTHON" -m pip check || true
else
    TARGET=""
    if [ -n "${GPU_PYTHON:-}" ]; then
        TARGET="--python-version $GPU_PYTHON --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64"
    fi
    # shellcheck disable=SC2086
    "$PYTHON" -m pip download --no-deps --only-binary=:all: $TARGET -d "$WHEELS" $PACKAGES
    du -sh "$WHEELS"
fi
