#!/usr/bin/env bash
# Builds the digit pad in web/: the WebAssembly classifier (web/softnet_web.wasm, from
# web/wasm) and the three models the page offers (web/models/*.safetensors), trained with
# the softnet CLI on MNIST (found as every softnet command finds it: $MNIST_DIR, else
# ./data/mnist, downloaded there if missing). Models already there are kept unless
# --retrain is given. Then `softnet serve-web` serves the page.
#
# Usage: web/build.sh [--retrain]
# Env:   SOFTNET  the softnet binary to train with (default: cargo build --release's)
set -euo pipefail
cd "$(dirname "$0")/.."

retrain=0
case "${1:-}" in
  "") ;;
  --retrain) retrain=1 ;;
  *) echo "usage: $0 [--retrain]" >&2; exit 2 ;;
esac

if command -v rustup >/dev/null 2>&1 \
  && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
# Its own target folder whatever CARGO_TARGET_DIR says: the module's path is known here.
wasm_target=$PWD/web/wasm/target
(cd web/wasm && cargo build --release --target wasm32-unknown-unknown --target-dir "$wasm_target")
cp "$wasm_target/wasm32-unknown-unknown/release/softnet_web.wasm" web/softnet_web.wasm
echo "web/softnet_web.wasm: $(wc -c <web/softnet_web.wasm) bytes"

softnet=${SOFTNET:-}
if [ -z "$softnet" ]; then
  cargo build --release --bin softnet
  softnet=${CARGO_TARGET_DIR:-target}/release/softnet
fi
mkdir -p web/models
train() { # NAME FLAGS...: trains web/models/NAME.safetensors unless it is there
  local name=$1 out=web/models/$1.safetensors
  shift
  if [ "$retrain" = 1 ] || [ ! -s "$out" ]; then
    echo "training $name: softnet train $* --save $out"
    "$softnet" train "$@" --eval-every 0 -q --save "$out.tmp" | tail -1
    mv "$out.tmp" "$out"
  fi
}
# The tutorial's softmax regression (2000 steps), an MLP for two epochs, and the tutorial's
# CNN for 300 updates only (Adam at 1e-3 gets it to about 97% that fast; see README's results
# for the full runs).
train softmax
train mlp --hidden 256 --optimizer momentum --lr 0.05 --epochs 2
train cnn --model cnn --optimizer adam --lr 1e-3 --batch 50 --steps 300
ls -l web/models
