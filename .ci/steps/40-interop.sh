#!/usr/bin/env bash
# Interop with Python's safetensors + numpy, both ways (tests/interop_check.py): softnet's
# f32 and int8 files recomputed by numpy, numpy-written files evaluated by softnet.
set -euo pipefail
source .ci/steps/lib/venv.sh safetensors numpy
cargo build --release
BIN="${CARGO_TARGET_DIR:-target}/release/softnet"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$BIN" train --data "$MNIST_DIR" --save "$WORK/softmax.safetensors" -q
"$BIN" quantize --model "$WORK/softmax.safetensors" -o "$WORK/softmax8.safetensors"
python tests/interop_check.py --softnet "$BIN" --mnist "$MNIST_DIR" --work "$WORK"
