#!/usr/bin/env bash
# Every SIMD path, then a generic build against a native one.
#
# (a) The kernels pick their instruction level at run time; SOFTNET_SIMD forces one. The
#     library's tests (every kernel's property tests, which also loop over all levels in one
#     process), the integration tests of the kernels, training and inference, and the
#     zero-allocation tests run once per level this CPU runs. The test binaries are built
#     once: only the environment changes between rounds.
# (b) A second build with `-C target-cpu=native` beside the generic one, and both builds'
#     `softnet bench` figures side by side, interleaved A B A B A B after an untimed warm-up
#     of each (the first run pays for cold caches), as the median of the rounds' ratios. For
#     information only: timings never decide pass or fail.
set -euo pipefail
target="${CARGO_TARGET_DIR:-target}"
cargo build --release
softnet="$target/release/softnet"
"$softnet" --version
detected=$(env -u SOFTNET_SIMD "$softnet" --version | sed -n 's/^simd: \([a-z0-9]*\) .*/\1/p')
case "$detected" in
  avx512) levels="portable avx2 avx512" ;;
  avx2) levels="portable avx2" ;;
  *) levels="portable" ;;
esac
if command -v objdump >/dev/null; then
  # A closure or helper left out of a kernel's inlining is compiled without its level's
  # target features and calls each intrinsic out of line: none may remain in softnet.
  out_of_line=$(objdump -d --no-show-raw-insn -C "$softnet" |
    awk '/^[0-9a-f]+ </ {name = $0; next} /call.*core_arch/ && name ~ /softnet::/ {print name}' |
    sort -u)
  if [ -n "$out_of_line" ]; then
    echo "these functions call SIMD intrinsics out of line:" >&2
    echo "$out_of_line" >&2
    exit 1
  fi
fi
for level in $levels; do
  echo "--- SOFTNET_SIMD=$level"
  export SOFTNET_SIMD=$level
  cargo test --release --lib -q
  cargo test --release -q --test it -- kernels training infer
  cargo test --release -q --test zero_alloc --test infer_alloc
done
unset SOFTNET_SIMD

echo "--- generic build against native build (softnet bench --repeats 5, A B A B A B)"
native_dir="${SOFTNET_NATIVE_TARGET_DIR:-$target/native}"
RUSTFLAGS="-C target-cpu=native" cargo build --release --bin softnet --target-dir "$native_dir"
native="$native_dir/release/softnet"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$softnet" bench --repeats 1 --no-cnn >/dev/null
"$native" bench --repeats 1 --no-cnn >/dev/null
for round in 1 2 3; do
  "$softnet" bench --repeats 5 --json >"$tmp/generic-$round.json"
  "$native" bench --repeats 5 --json >"$tmp/native-$round.json"
done
python3 - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
load = lambda kind: [json.load(open(f"{d}/{kind}-{r}.json")) for r in (1, 2, 3)]
generic, native = load("generic"), load("native")
print(f"simd: generic {generic[0]['simd_detail']}, native {native[0]['simd_detail']}")
# Per-round ratios: each round's two runs share the machine's load of the moment.
# Above 1: the generic build is slower (for rates, `_per_s`, the ratio is inverted).
print(f"{'measurement':<22} {'generic (3 rounds)':>24} {'native (3 rounds)':>24} {'slowdown':>15}")
for key, value in generic[0].items():
    if not key.endswith(("_s", "_us", "_ms")) or value is None:
        continue
    g = [r[key] for r in generic]
    n = [r[key] for r in native]
    rate = key.endswith("_per_s")
    ratios = sorted((b / a if rate else a / b) for a, b in zip(g, n) if a and b)
    ratio = ratios[len(ratios) // 2] if ratios else float("nan")
    fmt = lambda v: " ".join(f"{x:.4g}" for x in v)
    print(f"{key:<22} {fmt(g):>24} {fmt(n):>24} {ratio:>14.2f}x")
PY
