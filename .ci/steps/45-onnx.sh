#!/usr/bin/env bash
# ONNX both ways against onnxruntime (tests/onnx/onnx_check.py): softnet's softmax
# regression, an MLP and two CNNs exported, checked by onnx.checker (full_check) and run in
# onnxruntime on 1,000 test images; PyTorch- and TensorFlow-style graphs built with
# onnx.helper imported and compared the same way; unsupported graphs refused by node name.
set -euo pipefail
started=$(date +%s)
source .ci/steps/lib/venv.sh onnx onnxruntime numpy
cargo build --release
BIN="${CARGO_TARGET_DIR:-target}/release/softnet"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
train() { timeout 300 "$BIN" train --data "$MNIST_DIR" -q "$@"; }
train --save "$WORK/softmax.safetensors"
train --hidden 64,32 --epochs 1 --save "$WORK/mlp.safetensors"
# The tutorial's CNN, briefly trained (its test evaluation dominates the time).
train --model cnn --steps 50 --eval-every 50 --save "$WORK/cnn.safetensors"
# Stride-2 SAME (the odd zero after), VALID, a 3x3 pool of stride 2, dropout.
train --arch conv5x5x8s2,conv3x3x8valid,pool3s2,fc32,dropout0.5,fc10 --steps 100 --save "$WORK/cnn2.safetensors"
timeout 300 python tests/onnx/onnx_check.py --softnet "$BIN" --mnist "$MNIST_DIR" --work "$WORK" \
  --export softmax,mlp,cnn,cnn2
echo "45-onnx: $(( $(date +%s) - started )) s"
