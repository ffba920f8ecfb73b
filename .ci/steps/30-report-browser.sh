#!/usr/bin/env bash
# Browser check of `softnet report`: trains the tutorial's model with the CLI, writes the
# report, opens it in headless Chromium (tests/report_browser_check.sh: every image decoded,
# the printed numbers present in the page) and keeps a screenshot in target/ci-artifacts/.
# Also runs the other picture subcommands once, so a broken one fails CI.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

cargo build --release --bin softnet
target_dir=${CARGO_TARGET_DIR:-target}
bin=$target_dir/release/softnet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
art=$target_dir/ci-artifacts/report
mkdir -p "$art"

"$bin" train --data "$MNIST_DIR" --save "$tmp/m.safetensors" -q | tee "$tmp/train.txt"
"$bin" report --model "$tmp/m.safetensors" --data "$MNIST_DIR" -o "$tmp/report.html" | tee "$tmp/report.txt"

# The numbers the CLI printed must appear in the page, formatted as the page shows them.
acc=$(awk '/^Accuracy:/ {printf "%.2f%%", $2 * 100}' "$tmp/report.txt")
ece=$(awk '/^ECE:/ {print $2}' "$tmp/report.txt")
train_acc=$(awk '/^Accuracy:/ {printf "%.2f%%", $2 * 100}' "$tmp/train.txt")
[ -n "$acc" ] && [ -n "$ece" ] || { echo "FAIL: no accuracy or ECE in the report's output" >&2; exit 1; }
[ "$acc" = "$train_acc" ] || { echo "FAIL: report accuracy $acc differs from training's $train_acc" >&2; exit 1; }

bash tests/report_browser_check.sh "$tmp/report.html" "$art" \
  "$acc" "$ece" "784-10" "Confusion matrix" "Most confidently wrong"
cp "$tmp/report.html" "$art/report.html"

# The other pictures: each must be a PNG.
"$bin" show --data "$MNIST_DIR" -o "$art/digits.png" >/dev/null
"$bin" weights --model "$tmp/m.safetensors" -o "$art/weights.png" >/dev/null
"$bin" fool --model "$tmp/m.safetensors" --data "$MNIST_DIR" --target 7 -o "$art/fooled.png" >"$tmp/fool.txt"
head -1 "$tmp/fool.txt"
"$bin" fool --model "$tmp/m.safetensors" --data "$MNIST_DIR" --method fgsm --eps 0.1 -o "$art/fgsm.png" >"$tmp/fgsm.txt"
head -2 "$tmp/fgsm.txt"
"$bin" calibration --model "$tmp/m.safetensors" --data "$MNIST_DIR" --temperature fit -o "$art/calibration.png" >"$tmp/cal.txt"
head -3 "$tmp/cal.txt"
for f in digits weights fooled fgsm calibration; do
  head -c 8 "$art/$f.png" | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a" \
    || { echo "FAIL: $art/$f.png is not a PNG" >&2; exit 1; }
done
echo "ok: pictures and report in $art"
