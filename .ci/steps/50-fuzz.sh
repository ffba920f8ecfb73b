#!/usr/bin/env bash
# Fuzzing: every parser that reads outside input (IDX raw and gz, model files, the no_std
# zero-copy model parser, checkpoints, PNG input, .npy, TensorBoard event files) runs under
# libFuzzer + AddressSanitizer for FUZZ_SECONDS each (default 25), seeded from real files.
# Any crash fails the step; the crashing input is left in fuzz/artifacts/<target>/ to become
# a regression test.
# cargo-fuzz needs nightly-only flags (-Zsanitizer): RUSTC_BOOTSTRAP=1 lets stable pass them.
set -euo pipefail
seconds="${FUZZ_SECONDS:-25}"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# Seeds: small real files.
cargo build --release
bin="${CARGO_TARGET_DIR:-target}/release/softnet"
corpus=fuzz/corpus
for t in idx_images idx_labels model_file model_ref checkpoint png_input npy event_file; do
  mkdir -p "$corpus/$t"
done
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$bin" train --steps 10 -q --save "$corpus/model_file/softmax.safetensors" >/dev/null
"$bin" train --steps 10 -q --hidden 8 --save "$corpus/model_file/mlp.safetensors" >/dev/null
# The zero-copy parser: the same files, an int8 one and a small CNN.
cp "$corpus"/model_file/*.safetensors "$corpus/model_ref/"
"$bin" quantize --model "$corpus/model_file/mlp.safetensors" -o "$corpus/model_ref/mlp-int8.safetensors" >/dev/null
"$bin" train --steps 5 -q --arch conv3x3x2,pool2,conv3x3x4s2,fc10 --save "$corpus/model_ref/cnn.safetensors" >/dev/null
"$bin" train --steps 10 -q --optimizer momentum --checkpoint-dir "$tmp/ckpt" --checkpoint-every 10 >/dev/null
cp "$tmp"/ckpt/ckpt-*.safetensors "$corpus/checkpoint/"
cp tests/fixtures/drawn/*.png "$corpus/png_input/" 2>/dev/null || true
find ../shared/reference -name '*.npy' -size -64k -exec cp -f --no-preserve=mode {} "$corpus/npy/" \; 2>/dev/null || true
python3 - "$MNIST_DIR" "$corpus" <<'PY'
import gzip, struct, sys, os
src, out = sys.argv[1], sys.argv[2]
def head(name, header, item, n):
    with gzip.open(os.path.join(src, name)) as f:
        data = f.read(header + item * n)
    # The header's count says n, so the head is a valid file of its own.
    return data[:4] + struct.pack(">I", n) + data[8:]
for target, name, header, item in [("idx_images", "train-images-idx3-ubyte.gz", 16, 784),
                                   ("idx_labels", "train-labels-idx1-ubyte.gz", 8, 1)]:
    for n in (1, 3):
        raw = head(name, header, item, n)
        open(f"{out}/{target}/head{n}", "wb").write(raw)
        open(f"{out}/{target}/head{n}.gz", "wb").write(gzip.compress(raw))
# A TFRecord file of two records, framed as softnet's event writer frames them.
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF
def record(payload):
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", masked(length)) + payload + struct.pack("<I", masked(payload))
open(f"{out}/event_file/two_records", "wb").write(record(b"\x09\x00\x00\x00\x00\x00\x00\xf0\x3f\x1a\x0dbrain.Event:2") + record(b"hello"))
PY

cargo fuzz build --release -s address --fuzz-dir fuzz
status=0
printf '%-12s %12s %8s %8s %8s\n' target execs cov ft corpus
for t in idx_images idx_labels model_file model_ref checkpoint png_input npy event_file; do
  log="$tmp/$t.log"
  if ! cargo fuzz run --release -s address --fuzz-dir fuzz "$t" "$corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=131072 -print_final_stats=1 >"$log" 2>&1; then
    echo "FUZZ CRASH in $t:"; tail -40 "$log"; status=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo '?')
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo '?')
  corp=$(grep -o 'corp: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo '?')
  printf '%-12s %12s %8s %8s %8s\n' "$t" "$execs" "$cov" "$ft" "$corp"
done
exit $status
