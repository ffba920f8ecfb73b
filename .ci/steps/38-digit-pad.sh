#!/usr/bin/env bash
# The digit pad (web/) in a browser: builds the WebAssembly classifier and trains the three
# models (web/build.sh), serves the page with `softnet serve-web`, draws the drawn digits of
# tests/fixtures/drawn/ as mouse and touch strokes in headless Chromium (web/test/check.cjs,
# playwright-core from npm driving the system's chromium), and checks what the page shows
# against `softnet predict` on PNGs of the same canvases (web/test/compare.py) and against the
# library at full precision (tests/it/preprocess.rs, digit_pad_matches_the_library).
# Screenshots, the canvases and the results stay in target/ci-artifacts/digit-pad/.
set -euo pipefail
cd "$(dirname "$0")/../.."

export DEBIAN_FRONTEND=noninteractive
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

target_dir=${CARGO_TARGET_DIR:-target}
bin=$PWD/$target_dir/release/softnet
case "$target_dir" in /*) bin=$target_dir/release/softnet ;; esac
art=$target_dir/ci-artifacts/digit-pad
rm -rf "$art"
mkdir -p "$art"
tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# playwright-core (the driver only; it downloads no browser) while the rest builds.
(npm install --prefix "$tmp/node" --no-audit --no-fund --loglevel=error playwright-core@1.65.2 \
  >"$tmp/npm.log" 2>&1) &
npm_pid=$!

cargo build --release --bin softnet
SOFTNET=$bin web/build.sh --retrain

wait "$npm_pid" || { cat "$tmp/npm.log" >&2; echo "FAIL: npm install playwright-core" >&2; exit 1; }

"$bin" serve-web --port 0 --dir web >"$tmp/serve.log" 2>&1 &
server_pid=$!
url=
for _ in $(seq 100); do
  url=$(sed -n 's/^serving .* at \(http:[^ ]*\) .*/\1/p' "$tmp/serve.log")
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$url" ] || { cat "$tmp/serve.log" >&2; echo "FAIL: softnet serve-web did not start" >&2; exit 1; }
echo "softnet serve-web: $url"
if command -v curl >/dev/null 2>&1; then
  # Nothing outside web/ is served.
  code=$(curl -s -o /dev/null -w '%{http_code}' --path-as-is "${url}../Cargo.toml" || true)
  [ "$code" = 404 ] || { echo "FAIL: ${url}../Cargo.toml answered $code, not 404" >&2; exit 1; }
fi

NODE_PATH=$tmp/node/node_modules node web/test/check.cjs "$url" "$art"

for m in softmax mlp cnn; do
  "$bin" predict --model "web/models/$m.safetensors" "$art"/png/*.png >"$art/predict-$m.txt"
done
python3 web/test/compare.py "$art"

SOFTNET_DIGIT_PAD_RESULTS=$PWD/$art/results.json SOFTNET_DIGIT_PAD_MODELS=$PWD/web/models \
  cargo test --release --test it -- --ignored --exact preprocess::digit_pad_matches_the_library
echo "ok: digit pad checked; screenshots in $art"
