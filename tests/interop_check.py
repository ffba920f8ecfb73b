#!/usr/bin/env python3
"""Interop between softnet's model files and Python's safetensors + numpy, both ways.

1. Models softnet wrote (f32 and int8) open with `safetensors.numpy.load_file`; numpy,
   reading the IDX gz files itself, recomputes the 10,000 test predictions; they must equal
   `softnet predict --stdin`'s.
2. Models numpy wrote under the same tensor names (least-squares softmax regression without
   metadata, a random-feature MLP with an architecture) load in softnet: `softnet eval`'s
   accuracy equals numpy's and `softnet predict --stdin` gives numpy's predictions.

A float32 prediction may differ only on a near-tie (the two sums run in different orders);
any other difference, and any difference at all on the int8 model (whose integer arithmetic
numpy reproduces exactly), fails. Exits non-zero on any mismatch.

    python tests/interop_check.py --softnet BIN --mnist DIR --work DIR
"""

import argparse
import gzip
import os
import struct
import subprocess
import sys

import numpy as np
from safetensors.numpy import load_file, save_file


def read_idx(folder, base):
    for name in (base + ".gz", base):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            data = open(path, "rb").read()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            (magic,) = struct.unpack(">I", data[:4])
            ndim = magic & 0xFF
            dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
            return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)
    sys.exit(f"interop: {base} not found in {folder}")


def softnet_predict(binary, model, images):
    out = subprocess.run(
        [binary, "predict", "--stdin", "--model", model],
        input=images.tobytes(),
        capture_output=True,
        check=True,
    )
    lines = out.stdout.decode().splitlines()
    assert len(lines) == len(images), f"{len(lines)} lines for {len(images)} images"
    for i, line in enumerate(lines):
        assert line.split()[0] == str(i), line
    return np.array([int(line.split()[1]) for line in lines])


def softnet_accuracy(binary, model, mnist):
    out = subprocess.run(
        [binary, "eval", "--model", model, "--data", mnist],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for line in out.splitlines():
        if line.startswith("Accuracy: "):
            return line.split()[1]
    sys.exit(f"interop: no accuracy in softnet eval's output:\n{out}")


def f32_logits(params, x):
    """Forward pass in float32, layers in softnet's naming."""
    if "variables/Weight" in params:
        return x @ params["variables/Weight"] + params["variables/Bias"]
    h = x
    k = 1
    while f"layer{k}/weight" in params:
        h = np.maximum(h @ params[f"layer{k}/weight"] + params[f"layer{k}/bias"], 0)
        k += 1
    return h @ params["logits/weight"] + params["logits/bias"]


def compare(name, logits, got, exact=False):
    want = np.argmax(logits, axis=1)
    differ = np.nonzero(want != got)[0]
    top2 = np.sort(logits, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    tolerance = 0.0 if exact else 1e-4
    bad = [i for i in differ if margin[i] > tolerance * max(1.0, abs(top2[i, 1]))]
    print(
        f"interop: {name}: {len(got)} predictions, {len(differ)} differ "
        f"({len(bad)} beyond float rounding)"
    )
    for i in bad[:5]:
        print(f"  image {i}: numpy {want[i]}, softnet {got[i]}, margin {margin[i]:.3g}")
    return not bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--softnet", required=True)
    ap.add_argument("--mnist", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    ok = True

    test_x = read_idx(args.mnist, "t10k-images-idx3-ubyte").reshape(-1, 784)
    test_y = read_idx(args.mnist, "t10k-labels-idx1-ubyte")
    train_x = read_idx(args.mnist, "train-images-idx3-ubyte").reshape(-1, 784)
    train_y = read_idx(args.mnist, "train-labels-idx1-ubyte")
    x = test_x.astype(np.float32) / np.float32(255)

    # 1a. softnet's f32 model, recomputed by numpy.
    path = os.path.join(args.work, "softmax.safetensors")
    params = load_file(path)
    assert params["variables/Weight"].shape == (784, 10), params["variables/Weight"].shape
    assert params["variables/Weight"].dtype == np.float32
    logits = f32_logits(params, x)
    ok &= compare("softnet f32 model", logits, softnet_predict(args.softnet, path, test_x))
    acc = f"{np.mean(np.argmax(logits, axis=1) == test_y):.4f}"
    got = softnet_accuracy(args.softnet, path, args.mnist)
    print(f"interop: softnet f32 model: accuracy numpy {acc}, softnet eval {got}")
    ok &= acc == got

    # 1b. softnet's int8 model: i32 sums of pixel * weight, then the f32 scaling.
    path = os.path.join(args.work, "softmax8.safetensors")
    q = load_file(path)
    w8, scale, bias = q["variables/Weight"], q["variables/Weight_scale"], q["variables/Bias"]
    assert w8.dtype == np.int8 and w8.shape == (784, 10), (w8.dtype, w8.shape)
    assert scale.dtype == np.float32 and np.all(scale > 0)
    acc32 = test_x.astype(np.int64) @ w8.astype(np.int64)
    assert np.abs(acc32).max() < 2**31
    logits8 = acc32.astype(np.float32) * ((np.float32(1) / np.float32(255)) * scale) + bias
    ok &= compare(
        "softnet int8 model", logits8, softnet_predict(args.softnet, path, test_x), exact=True
    )
    # Dequantized weights stay within half a step of the f32 ones.
    step = np.abs(w8.astype(np.float32) * scale - params["variables/Weight"]).max(axis=0)
    ok &= bool(np.all(step <= scale / 2 + 1e-7))

    # 2. Models written by numpy.
    n = 20000
    a = train_x[:n].astype(np.float64) / 255
    onehot = np.eye(10)[train_y[:n]]
    ones = np.ones((n, 1))
    sol = np.linalg.lstsq(np.hstack([a, ones]), onehot, rcond=None)[0]
    lsq = {
        "variables/Weight": sol[:784].astype(np.float32),
        "variables/Bias": sol[784].astype(np.float32),
    }
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, np.sqrt(2 / 784), (784, 64)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 64).astype(np.float32)
    h = np.maximum(a.astype(np.float32) @ w1 + b1, 0).astype(np.float64)
    sol = np.linalg.lstsq(np.hstack([h, ones]), onehot, rcond=None)[0]
    mlp = {
        "layer1/weight": w1,
        "layer1/bias": b1,
        "logits/weight": sol[:64].astype(np.float32),
        "logits/bias": sol[64].astype(np.float32),
    }
    for name, model, metadata in [
        ("numpy least-squares softmax (no metadata)", lsq, None),
        ("numpy random-feature MLP 784-64-10", mlp, {"architecture": "784-64-10"}),
    ]:
        path = os.path.join(args.work, "numpy.safetensors")
        save_file(model, path, metadata=metadata)
        logits = f32_logits(model, x)
        acc = f"{np.mean(np.argmax(logits, axis=1) == test_y):.4f}"
        got = softnet_accuracy(args.softnet, path, args.mnist)
        print(f"interop: {name}: accuracy numpy {acc}, softnet eval {got}")
        ok &= acc == got
        ok &= compare(name, logits, softnet_predict(args.softnet, path, test_x))

    if not ok:
        sys.exit("interop: MISMATCH")
    print("interop: all equal")


if __name__ == "__main__":
    main()
