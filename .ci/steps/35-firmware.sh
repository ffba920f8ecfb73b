#!/usr/bin/env bash
# The no_std classifier on a Cortex-M4F: trains and quantizes the tutorial's model, builds
# embedded/ (the int8 model and 16 MNIST test images in flash) for thumbv7em-none-eabihf, runs
# it under QEMU's mps2-an386 board and checks that its predictions and confidences are
# `softnet predict --stdin`'s for the same images. Also checks the flash (64 KiB) and RAM
# (16 KiB) budget, that a truncated model fails cleanly on the device, and prints the time
# per prediction in QEMU's instruction-counted virtual time.
set -euo pipefail

# What it needs, installed here: the target's core library, QEMU, binutils' `size`.
rustup target add thumbv7em-none-eabihf >/dev/null
missing=()
command -v qemu-system-arm >/dev/null || missing+=(qemu-system-arm)
command -v size >/dev/null || missing+=(binutils)
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo build --release
BIN="$PWD/${CARGO_TARGET_DIR:-target}/release/softnet"
FW_TARGET="$PWD/embedded/target"
ELF="$FW_TARGET/thumbv7em-none-eabihf/release/softnet-firmware"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The model: the tutorial's softmax regression, quantized to int8.
"$BIN" train --data "$MNIST_DIR" --save "$WORK/softmax.safetensors" -q
"$BIN" quantize --model "$WORK/softmax.safetensors" -o "$WORK/softmax8.safetensors"

# The images: the first 8 of the test set and the 8 the model is least sure of, where a
# difference in arithmetic between the two builds would most likely change the answer. (More
# would not fit: each takes 784 bytes of the 64 KiB.)
N=16
idx() { if [ -f "$MNIST_DIR/$1" ]; then cat "$MNIST_DIR/$1"; else gzip -dc "$MNIST_DIR/$1.gz"; fi; }
idx t10k-images-idx3-ubyte | tail -c +17 >"$WORK/test-images.bin"
idx t10k-labels-idx1-ubyte | tail -c +9 >"$WORK/test-labels.bin"
"$BIN" predict --model "$WORK/softmax8.safetensors" --stdin <"$WORK/test-images.bin" >"$WORK/all.txt"
awk -v first=$((N / 2)) '$1 >= first { split($3, p, ":"); print p[2], $1 }' "$WORK/all.txt" | sort -g >"$WORK/by-confidence.txt"
{ seq 0 $((N / 2 - 1)); head -n $((N / 2)) "$WORK/by-confidence.txt" | cut -d' ' -f2; } >"$WORK/picked.txt"
: >"$WORK/images.bin"
: >"$WORK/labels.bin"
while read -r i; do
  dd if="$WORK/test-images.bin" bs=784 skip="$i" count=1 status=none >>"$WORK/images.bin"
  dd if="$WORK/test-labels.bin" bs=1 skip="$i" count=1 status=none >>"$WORK/labels.bin"
done <"$WORK/picked.txt"
"$BIN" predict --model "$WORK/softmax8.safetensors" --stdin <"$WORK/images.bin" >"$WORK/host.txt"

# The firmware: formatted, lint-free, built with the files above baked in.
fw() {
  (cd embedded && CARGO_TARGET_DIR="$FW_TARGET" SOFTNET_FW_MODEL="$1" \
    SOFTNET_FW_IMAGES="$WORK/images.bin" SOFTNET_FW_LABELS="$WORK/labels.bin" "${@:2}")
}
# Runs the firmware, its output into $1; returns QEMU's status (semihosting's exit code).
run_qemu() {
  local status=0
  timeout 60 qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -icount shift=0 -kernel "$ELF" >"$1" 2>&1 ||
    status=$?
  return "$status"
}
(cd embedded && cargo fmt --check)
fw "$WORK/softmax8.safetensors" cargo clippy --release -- -D warnings
# memory.x declares the budget, not the board's 4 MiB: past 64 KiB of flash or 16 KiB of
# static RAM the link fails ("will not fit in region").
if ! fw "$WORK/softmax8.safetensors" cargo build --release; then
  echo "the firmware did not build; a link error \"will not fit in region 'FLASH' (or 'RAM'): overflowed by N bytes\" means N bytes over that budget"
  exit 1
fi
status=0
run_qemu "$WORK/device.txt" || status=$?
cat "$WORK/device.txt"
if [ "$status" -ne 0 ]; then
  case "$status" in
    124) echo "the firmware did not finish in 60 s" ;;
    1) echo "the firmware reported a failure" ;;
    *) echo "QEMU stopped with status $status: a lockup (a fault with no usable stack) means the stack outgrew the 16 KiB of RAM" ;;
  esac
  exit 1
fi

# Same classes, same confidences (both printed to 4 decimals; one unit apart is rounding).
awk '/^prediction / { print $2, $3, $4 }' "$WORK/device.txt" >"$WORK/device-pred.txt"
awk '{ split($3, p, ":"); print $1, $2, int(p[2] * 10000 + 0.5) }' "$WORK/host.txt" >"$WORK/host-pred.txt"
[ "$(wc -l <"$WORK/device-pred.txt")" -eq "$N" ] || { echo "firmware printed $(wc -l <"$WORK/device-pred.txt") predictions, not $N"; exit 1; }
paste -d' ' "$WORK/device-pred.txt" "$WORK/host-pred.txt" | awk '
  $1 != $4 || $2 != $5 || ($3 - $6) > 1 || ($6 - $3) > 1 {
    printf "image %d: firmware says %d (%.4f), softnet predict %d (%.4f)\n", $1, $2, $3 / 1e4, $5, $6 / 1e4
    bad++
  }
  END { if (bad) exit 1 }'
echo "firmware predictions equal softnet predict's on all $N images (test images $(paste -sd, "$WORK/picked.txt"))"

# Budget: flash holds code, constants and the initial values of .data; RAM holds .data, .bss
# and the stack.
read -r text data bss _ < <(size -B "$ELF" | tail -n 1)
stack=$(awk '/^stack peak/ { print $3 }' "$WORK/device.txt")
flash=$((text + data))
ram=$((data + bss + stack))
rodata=$(size -A "$ELF" | awk '$1 == ".rodata" { print $2 }')
echo "flash: $flash bytes of 65536 (code $((text - rodata)), constants $rodata: model $(wc -c <"$WORK/softmax8.safetensors") + images $(wc -c <"$WORK/images.bin"))"
echo "ram: $ram bytes of 16384 (data $data, bss $bss, stack peak $stack)"
[ "$flash" -le 65536 ] || { echo "flash over budget"; exit 1; }
[ "$ram" -le 16384 ] || { echo "RAM over budget"; exit 1; }
# With -icount shift=0 QEMU advances its virtual clock 1 ns per guest instruction, and SysTick
# runs at 25 MHz of that clock: 40 instructions a tick. Instructions, not cycles: QEMU does not
# model the Cortex-M4's pipeline, wait states or memory timing.
awk '/^timing/ { printf "time per prediction: %.1f SysTick ticks = about %d instructions (QEMU -icount)\n", $4 / $2, $4 * 40 / $2 }' "$WORK/device.txt"

# A truncated model must be refused by the parser on the device: an error line and status 1,
# not a fault or a hang.
head -c 4000 "$WORK/softmax8.safetensors" >"$WORK/truncated.safetensors"
fw "$WORK/truncated.safetensors" cargo build --release
status=0
run_qemu "$WORK/truncated.txt" || status=$?
cat "$WORK/truncated.txt"
if [ "$status" -ne 1 ] || ! grep -q '^error: model: ' "$WORK/truncated.txt"; then
  echo "a truncated model gave status $status, not 1 with a model error"
  exit 1
fi
echo "firmware: all checks passed"
