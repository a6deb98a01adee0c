#!/usr/bin/env bash
# The GPU table in one run, on a lent device machine (JAX and PyTorch, no
# TensorFlow, no network). From the repository root:
#
#   bash benchmarks/device_run.sh prepare        # here, online: wheels into .device/
#   run(command="bash benchmarks/device_run.sh run", carry=[".device"], timeout_s=600)
#
# `run` writes $OUT/gpu.json and $OUT/gpu.md (OUT defaults to benchmarks/results).
# SHAPES, LAYERS, REPEATS and BUDGET_S override the defaults (the CPU test of
# this script uses tiny ones); POLICY=mixed_float16 times every layer under
# that Keras policy and torch.nn.LSTM under torch.autocast (default float32).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=.device/wheels

case "${1:-run}" in
prepare)
  mkdir -p "$WHEELS"
  # Keras and what it needs beyond numpy, JAX and PyTorch; the versions this
  # checkout is tested with.
  python -m pip download --quiet --only-binary=:all: --dest "$WHEELS" \
    "keras==$(python -c 'import keras; print(keras.__version__)')" absl-py rich namex h5py optree ml-dtypes
  ls "$WHEELS"
  ;;
run)
  OUT="${OUT:-benchmarks/results}"
  mkdir -p "$OUT"
  if ! python -c "import keras" 2>/dev/null; then
    python -m pip install --quiet --no-index --find-links "$WHEELS" keras
  fi
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  python -c "import jax; print('jax devices:', jax.devices())" || true
  python -c "import torch; print('torch cuda:', torch.cuda.is_available())" || true
  SHAPES="${SHAPES:-64x100x256x512,32x100x128x256,128x50x256x512}"
  LAYERS="${LAYERS:-PeepholeLSTM,CoupledLSTM,UntiedLSTM,DepthGatedLSTM,DepthGatedLSTM(num_layers=2),GridLSTM,keras.LSTM,torch.LSTM}"
  # Leaves a minute of the device's 10-minute call for the transfer back.
  timeout "${BUDGET_S:-540}" python -m benchmarks.rnn --backend jax,torch \
    --shapes "$SHAPES" --layers "$LAYERS" --repeats "${REPEATS:-5}" --memory none \
    --policy "${POLICY:-float32}" \
    --json "$OUT/gpu.json" | tee "$OUT/gpu.md"
  ;;
*)
  echo "usage: bash benchmarks/device_run.sh prepare|run" >&2
  exit 2
  ;;
esac
