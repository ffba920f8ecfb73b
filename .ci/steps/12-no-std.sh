#!/usr/bin/env bash
# no_std: without default features the crate is `#![no_std]`, depends on nothing, and builds
# for a Cortex-M4F (thumbv7em-none-eabihf, where no `std` exists to link by mistake) and for
# WebAssembly without WASI (wasm32-unknown-unknown), with clippy clean on both.
set -euo pipefail
rustup target add thumbv7em-none-eabihf wasm32-unknown-unknown
deps=$(cargo tree --no-default-features -e normal --prefix none | sort -u | grep -vc '^softnet ' || true)
if [ "$deps" != 0 ]; then
  echo "the no_std build pulls $deps dependencies:"
  cargo tree --no-default-features -e normal
  exit 1
fi
for target in thumbv7em-none-eabihf wasm32-unknown-unknown; do
  cargo build --release --no-default-features --target "$target"
  cargo clippy --no-default-features --target "$target" -- -D warnings
  lib="${CARGO_TARGET_DIR:-target}/$target/release/libsoftnet.rlib"
  echo "no_std $target: $(stat -c %s "$lib") bytes of rlib"
done
