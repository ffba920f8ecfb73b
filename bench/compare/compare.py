#!/usr/bin/env python3
"""The reference run in numpy (and JAX when installed), against `softnet bench --json`.

Same data (the IDX files), same batches (sequential), same model and updates: 2000 SGD steps
of batch 100 on softmax regression with 20 test evaluations, training alone, inference, and one
epoch of the 784-256-10 MLP. Prints each time (median of --repeats) and the ratio other/softnet.

    python3 bench/compare/compare.py --data ../shared/data/mnist [--softnet target/release/softnet]
"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time


def read_idx(path):
    import numpy as np

    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def numpy_suite(x, y, tx, ty, repeats):
    import numpy as np

    onehot = np.eye(10, dtype=np.float32)[y]

    def reference(evals):
        w = np.zeros((784, 10), np.float32)
        b = np.zeros(10, np.float32)
        for s in range(2000):
            i = (100 * s) % 60000
            xb, yb = x[i : i + 100], onehot[i : i + 100]
            z = xb @ w + b
            z -= z.max(1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(1, keepdims=True)
            d = (p - yb) / 100.0
            w -= 0.1 * (xb.T @ d)
            b -= 0.1 * d.sum(0)
            if evals and (s + 1) % 100 == 0:
                lt = tx @ w + b
                (lt.argmax(1) == ty).mean()
        return w

    def mlp_epoch():
        rng = np.random.default_rng(0)
        w1 = (rng.standard_normal((784, 256)) * np.sqrt(2 / 784)).astype(np.float32)
        w2 = (rng.standard_normal((256, 10)) * np.sqrt(2 / 256)).astype(np.float32)
        b1 = np.zeros(256, np.float32)
        b2 = np.zeros(10, np.float32)
        for s in range(600):
            i = 100 * s
            xb, yb = x[i : i + 100], onehot[i : i + 100]
            h = np.maximum(xb @ w1 + b1, 0)
            z = h @ w2 + b2
            z -= z.max(1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(1, keepdims=True)
            d = (p - yb) / 100.0
            dh = (d @ w2.T) * (h > 0)
            w2 -= 0.1 * (h.T @ d)
            b2 -= 0.1 * d.sum(0)
            w1 -= 0.1 * (xb.T @ dh)
            b1 -= 0.1 * dh.sum(0)

    w = reference(False)
    one = tx[:1]
    return {
        "reference_run_s": median_time(lambda: reference(True), repeats),
        "train_only_s": median_time(lambda: reference(False), repeats),
        "infer_1_us": 1e6 * median_time(lambda: [one @ w for _ in range(1000)], repeats) / 1000,
        "infer_10k_ms": 1e3 * median_time(lambda: (tx @ w).argmax(1), repeats),
        "mlp_epoch_s": median_time(mlp_epoch, max(1, repeats // 2)),
    }


def jax_suite(x, y, tx, ty, repeats):
    import jax
    import jax.numpy as jnp

    xs = jnp.asarray(x.reshape(600, 100, 784))
    ys = jax.nn.one_hot(jnp.asarray(y.reshape(600, 100)), 10)

    def step(carry, s):
        w, b = carry
        xb, yb = xs[s % 600], ys[s % 600]
        g = jax.grad(lambda wb: -jnp.mean(jnp.sum(yb * jax.nn.log_softmax(xb @ wb[0] + wb[1]), 1)))((w, b))
        return (w - 0.1 * g[0], b - 0.1 * g[1]), None

    @jax.jit
    def train():
        init = (jnp.zeros((784, 10)), jnp.zeros(10))
        return jax.lax.scan(step, init, jnp.arange(2000))[0]

    def mlp_loss(params, xb, yb):
        w1, b1, w2, b2 = params
        h = jax.nn.relu(xb @ w1 + b1)
        return -jnp.mean(jnp.sum(yb * jax.nn.log_softmax(h @ w2 + b2), 1))

    def mlp_step(params, s):
        g = jax.grad(mlp_loss)(params, xs[s % 600], ys[s % 600])
        return tuple(p - 0.1 * gp for p, gp in zip(params, g)), None

    key1, key2 = jax.random.split(jax.random.PRNGKey(0))
    mlp_init = (
        jax.random.normal(key1, (784, 256)) * (2.0 / 784) ** 0.5,
        jnp.zeros(256),
        jax.random.normal(key2, (256, 10)) * (2.0 / 256) ** 0.5,
        jnp.zeros(10),
    )

    @jax.jit
    def mlp_epoch():
        return jax.lax.scan(mlp_step, mlp_init, jnp.arange(600))[0]

    train()[0].block_until_ready()
    mlp_epoch()[0].block_until_ready()
    w, b = train()
    txj = jnp.asarray(tx)
    infer = jax.jit(lambda t: jnp.argmax(t @ w + b, 1))
    infer(txj).block_until_ready()
    one = txj[:1]
    infer(one).block_until_ready()
    return {
        "train_only_s": median_time(lambda: train()[0].block_until_ready(), repeats),
        "infer_1_us": 1e6 * median_time(lambda: infer(one).block_until_ready(), repeats * 20),
        "infer_10k_ms": 1e3 * median_time(lambda: infer(txj).block_until_ready(), repeats),
        "mlp_epoch_s": median_time(lambda: mlp_epoch()[0].block_until_ready(), max(1, repeats // 2)),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("MNIST_DIR", "data/mnist"))
    ap.add_argument("--softnet", default="target/release/softnet")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    softnet = json.loads(
        subprocess.run(
            [args.softnet, "bench", "--json", "--data", args.data, "--repeats", str(args.repeats)],
            check=True, capture_output=True, text=True,
        ).stdout
    )
    x = (read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz")).reshape(-1, 784) / 255).astype("float32")
    y = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
    tx = (read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz")).reshape(-1, 784) / 255).astype("float32")
    ty = read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz"))

    suites = {"numpy": numpy_suite(x, y, tx, ty, args.repeats)}
    try:
        suites["jax"] = jax_suite(x, y, tx, ty, args.repeats)
    except ImportError:
        print("(jax not installed: pip install jax to compare with it)", file=sys.stderr)

    keys = ["reference_run_s", "train_only_s", "infer_1_us", "infer_10k_ms", "mlp_epoch_s"]
    print(f"{'measurement':<18}{'softnet':>12}" + "".join(f"{n:>12}{'ratio':>8}" for n in suites))
    for k in keys:
        line = f"{k:<18}{softnet.get(k) or float('nan'):>12.4g}"
        for other in suites.values():
            v = other.get(k)
            if v is None or not softnet.get(k):
                line += f"{'-':>12}{'-':>8}"
            else:
                line += f"{v:>12.4g}{v / softnet[k]:>7.1f}x"
        print(line)
    print("(ratio = other / softnet: above 1 means softnet is faster)")
    if softnet.get("fma_peak_gflops"):
        # The host's load moves this from minute to minute: read the times against it.
        print(
            f"machine's f32 FMA ceiling during softnet's run: {softnet['fma_peak_gflops']:.0f} GFLOP/s "
            f"on {softnet['threads']} thread(s), {softnet['fma_peak_1t_gflops']:.0f} on one"
        )


if __name__ == "__main__":
    main()
