#!/usr/bin/env bash
# The TensorBoard logs of `softnet train --logdir`, read by the real TensorBoard: both the
# train and the test run carry every summary (loss, accuracy, each parameter's statistics and
# histogram, the logits histogram), checked through its event loader with steps, histograms,
# images and the graph; the printed test accuracies against the logged ones; and a live server
# queried over HTTP (tests/tensorboard_check.py). Runs the tutorial's softmax regression and a
# small MLP.
set -euo pipefail
source .ci/steps/lib/venv.sh tensorboard
cargo build --release
softnet="${CARGO_TARGET_DIR:-target}/release/softnet"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Trains with --logdir DIR/run, keeps the printed `step: N, test_accuracy: A, test_loss: L`
# lines as `N A` (the check's accuracy file), and runs the check on DIR/run.
check_run() {
  local name=$1
  shift
  local dir="$tmp/$name"
  mkdir -p "$dir"
  echo "--- softnet train --logdir $dir/run $*"
  "$softnet" train --logdir "$dir/run" "$@" >"$dir/stdout"
  cat "$dir/stdout"
  sed -n 's/^step: \([0-9]*\), test_accuracy: \([0-9.]*\), test_loss: .*/\1 \2/p' \
    "$dir/stdout" >"$dir/accuracy.txt"
  if [ ! -s "$dir/accuracy.txt" ]; then
    echo "no 'step: N, test_accuracy: A' lines in the output of softnet train" >&2
    return 1
  fi
  python tests/tensorboard_check.py "$dir/run" --expect-accuracy-file "$dir/accuracy.txt"
}

check_run softmax --eval-every 100
check_run mlp --hidden 64 --steps 300 --eval-every 100
