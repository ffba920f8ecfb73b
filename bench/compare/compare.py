#!/usr/bin/env python3
"""softnet against numpy, JAX and TensorFlow on the same workloads, as ratios.

Dense (the tutorial's softmax regression; the MLP 784-256-10): 2000 SGD steps of batch 100 with
20 test evaluations, the steps alone, one image, the 10,000 test images, one MLP epoch.
CNN (the tutorial's "Deep MNIST" network): Adam steps of 50 images with dropout 0.5 (images a
second, the median of steps timed one by one), one image, the 10,000 test images.

Each framework runs in a process of its own; TensorFlow in graph mode (tf.compat.v1, a
Session fed by feed_dict, as the tutorials) with its default oneDNN settings; JAX with each
workload jit-compiled. The ratio is other / softnet for a time and softnet / other for a rate:
above 1 means softnet is faster. The first run makes a virtualenv (target/compare-venv, about
2 GB) with the packages of requirements.txt beside this file.

    python3 bench/compare/compare.py --data ../shared/data/mnist            # the full run
    python3 bench/compare/compare.py --data ../shared/data/mnist --quick    # a smoke test
"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_VENV = ROOT / "target" / "compare-venv"
SUITES = ("numpy", "jax", "tensorflow")

# The keys of `softnet bench --json` every suite reports (those it can), in table order.
KEYS = [
    ("reference_run_s", "reference run (2000 steps of 100 + 20 test evaluations)", "s"),
    ("train_only_s", "2000 training steps alone", "s"),
    ("infer_1_us", "one image, 784-10", "us"),
    ("infer_10k_ms", "10,000 test images, 784-10", "ms"),
    ("mlp_epoch_s", "one epoch of 784-256-10 (600 steps of 100)", "s"),
    ("cnn_train_images_per_s", "CNN training, Adam steps of 50 (images/s)", "1/s"),
    ("cnn_infer_1_us", "CNN, one image", "us"),
    ("cnn_infer_10k_ms", "CNN, 10,000 test images", "ms"),
    ("cnn8_infer_1_us", "int8 CNN, one image (others: their f32 row)", "us"),
    ("cnn8_infer_10k_ms", "int8 CNN, 10,000 test images (others: their f32 row)", "ms"),
]
# softnet's int8 rows: the frameworks run the f32 model, and their cells and ratios are these.
AGAINST = {"cnn8_infer_1_us": "cnn_infer_1_us", "cnn8_infer_10k_ms": "cnn_infer_10k_ms"}


def ensure_venv(venv):
    """Re-runs this script inside `venv`, made and filled from requirements.txt if needed."""
    if Path(sys.prefix).resolve() == venv.resolve():
        return
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"making the virtualenv {venv} (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # Quick when everything is there already.
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-r", str(HERE / "requirements.txt")],
        check=True,
    )
    os.execv(str(python), [str(python), str(Path(__file__).resolve())] + sys.argv[1:])


def read_idx(path):
    import numpy as np

    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def load_mnist(folder):
    """(train images, train labels, test images, test labels): images [n, 784] in [0, 1]."""
    def find(stem):
        for name in (stem + ".gz", stem):
            if os.path.exists(os.path.join(folder, name)):
                return os.path.join(folder, name)
        raise SystemExit(f"no {stem}(.gz) in {folder}: pass --data DIR")

    x = (read_idx(find("train-images-idx3-ubyte")).reshape(-1, 784) / 255).astype("float32")
    y = read_idx(find("train-labels-idx1-ubyte")).astype("int64")
    tx = (read_idx(find("t10k-images-idx3-ubyte")).reshape(-1, 784) / 255).astype("float32")
    ty = read_idx(find("t10k-labels-idx1-ubyte")).astype("int64")
    return x, y, tx, ty


def times(fn, repeats):
    """Seconds of each of `repeats` calls of `fn`."""
    out = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def median_time(fn, repeats):
    return statistics.median(times(fn, repeats))


class Plan:
    """How much to measure: the full run, or `--quick` (a smoke test of every path)."""

    def __init__(self, repeats, quick):
        self.quick = quick
        self.repeats = 1 if quick else repeats
        # CNN steps: untimed, then timed one by one (as `softnet bench`).
        self.cnn_warm_up = 1 if quick else 3
        self.cnn_steps = 2 if quick else 3 * max(5, repeats)
        self.cnn_10k_repeats = 1 if quick else min(repeats, 5)
        self.one_image_calls = 5 if quick else 200
        self.mlp = not quick


# ---------------------------------------------------------------------------------------
# numpy (dense only)


def numpy_suite(data, plan):
    import numpy as np

    x, y, tx, ty = data
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
    calls = plan.one_image_calls
    out = {
        "reference_run_s": median_time(lambda: reference(True), plan.repeats),
        "train_only_s": median_time(lambda: reference(False), plan.repeats),
        "infer_1_us": 1e6 * median_time(lambda: [one @ w for _ in range(calls)], plan.repeats) / calls,
        "infer_10k_ms": 1e3 * median_time(lambda: (tx @ w).argmax(1), plan.repeats),
    }
    if plan.mlp:
        out["mlp_epoch_s"] = median_time(mlp_epoch, max(1, plan.repeats // 2))
    return out


# ---------------------------------------------------------------------------------------
# JAX


def jax_suite(data, plan):
    import jax
    import jax.numpy as jnp
    from jax import lax

    x, y, tx, ty = data
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
    w, b = train()
    txj = jnp.asarray(tx)
    infer = jax.jit(lambda t: jnp.argmax(t @ w + b, 1))
    infer(txj).block_until_ready()
    one = txj[:1]
    infer(one).block_until_ready()
    out = {
        "train_only_s": median_time(lambda: train()[0].block_until_ready(), plan.repeats),
        "infer_1_us": 1e6 * median_time(lambda: infer(one).block_until_ready(), plan.repeats * 20),
        "infer_10k_ms": 1e3 * median_time(lambda: infer(txj).block_until_ready(), plan.repeats),
    }
    if plan.mlp:
        mlp_epoch()[0].block_until_ready()
        out["mlp_epoch_s"] = median_time(lambda: mlp_epoch()[0].block_until_ready(), max(1, plan.repeats // 2))

    # The tutorial's CNN: NHWC activations, HWIO filters, SAME convolutions, 2x2 pooling.
    def conv(h, w, b):
        dims = ("NHWC", "HWIO", "NHWC")
        return jax.nn.relu(lax.conv_general_dilated(h, w, (1, 1), "SAME", dimension_numbers=dims) + b)

    def pool(h):
        return lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    def cnn_logits(p, images, key=None):
        h = pool(conv(images.reshape(-1, 28, 28, 1), p["w1"], p["b1"]))
        h = pool(conv(h, p["w2"], p["b2"]))
        h = jax.nn.relu(h.reshape(h.shape[0], -1) @ p["w3"] + p["b3"])
        if key is not None:
            keep = jax.random.bernoulli(key, 0.5, h.shape)
            h = jnp.where(keep, h / 0.5, 0.0)
        return h @ p["w4"] + p["b4"]

    shapes = {"w1": (5, 5, 1, 32), "w2": (5, 5, 32, 64), "w3": (3136, 1024), "w4": (1024, 10)}
    keys = jax.random.split(jax.random.PRNGKey(1), 4)
    params = {}
    for k, (name, shape) in zip(keys, shapes.items()):
        params[name] = 0.1 * jax.random.truncated_normal(k, -2.0, 2.0, shape)
        params["b" + name[1:]] = jnp.full(shape[-1], 0.1)

    def cnn_loss(p, images, labels, key):
        logits = cnn_logits(p, images, key)
        return -jnp.mean(jnp.sum(jax.nn.one_hot(labels, 10) * jax.nn.log_softmax(logits), 1))

    @jax.jit
    def cnn_step(p, m, v, t, images, labels, key):
        # Adam (Kingma & Ba) at 1e-4, as tf.train.AdamOptimizer: bias correction in the rate.
        g = jax.grad(cnn_loss)(p, images, labels, key)
        m = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
        rate = 1e-4 * jnp.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        p = jax.tree_util.tree_map(lambda p, m, v: p - rate * m / (jnp.sqrt(v) + 1e-8), p, m, v)
        return p, m, v

    images = jnp.asarray(x.reshape(-1, 50, 784))
    labels = jnp.asarray(y.reshape(-1, 50))
    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)
    state = [params, m, v]
    batches = images.shape[0]
    dropout_key = jax.random.PRNGKey(2)

    def one_step(s):
        k = jax.random.fold_in(dropout_key, s)
        p, m, v = cnn_step(*state, s + 1.0, images[s % batches], labels[s % batches], k)
        p["w1"].block_until_ready()
        state[:] = [p, m, v]

    for s in range(plan.cnn_warm_up):
        one_step(s)
    step_times = [
        t for s in range(plan.cnn_steps) for t in times(lambda: one_step(plan.cnn_warm_up + s), 1)
    ]
    out["cnn_train_images_per_s"] = 50.0 / statistics.median(step_times)

    trained = state[0]
    forward = jax.jit(lambda images: jnp.argmax(cnn_logits(trained, images), 1))
    forward(txj).block_until_ready()
    forward(one).block_until_ready()
    calls = plan.one_image_calls
    out["cnn_infer_1_us"] = 1e6 * median_time(lambda: forward(one).block_until_ready(), calls)
    out["cnn_infer_10k_ms"] = 1e3 * median_time(lambda: forward(txj).block_until_ready(), plan.cnn_10k_repeats)
    return out


# ---------------------------------------------------------------------------------------
# TensorFlow, graph mode: what the tutorials' users run


def tensorflow_suite(data, plan):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quiet; oneDNN stays as it defaults
    import numpy as np
    import tensorflow as tf

    v1 = tf.compat.v1
    v1.disable_eager_execution()
    x, y, tx, ty = data
    onehot = np.eye(10, dtype=np.float32)[y]
    test_onehot = np.eye(10, dtype=np.float32)[ty]
    out = {}

    # The tutorial's softmax regression (W and b from zeros, SGD at 0.1, batches of 100).
    graph = tf.Graph()
    with graph.as_default():
        xp = v1.placeholder(tf.float32, [None, 784])
        yp = v1.placeholder(tf.float32, [None, 10])
        w = tf.Variable(tf.zeros([784, 10]))
        b = tf.Variable(tf.zeros([10]))
        logits = tf.matmul(xp, w) + b
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=yp, logits=logits))
        train_step = v1.train.GradientDescentOptimizer(0.1).minimize(loss)
        correct = tf.equal(tf.argmax(logits, 1), tf.argmax(yp, 1))
        accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))
        predict = tf.argmax(logits, 1)
        init = v1.global_variables_initializer()
    sess = v1.Session(graph=graph)

    def reference(evals):
        sess.run(init)
        for s in range(2000):
            i = (100 * s) % 60000
            sess.run(train_step, feed_dict={xp: x[i : i + 100], yp: onehot[i : i + 100]})
            if evals and (s + 1) % 100 == 0:
                sess.run(accuracy, feed_dict={xp: tx, yp: test_onehot})

    reference(False)
    out["reference_run_s"] = median_time(lambda: reference(True), plan.repeats)
    out["train_only_s"] = median_time(lambda: reference(False), plan.repeats)
    one = tx[:1]
    calls = plan.one_image_calls
    sess.run(predict, feed_dict={xp: one})
    out["infer_1_us"] = 1e6 * median_time(lambda: sess.run(predict, feed_dict={xp: one}), calls)
    sess.run(predict, feed_dict={xp: tx})
    out["infer_10k_ms"] = 1e3 * median_time(lambda: sess.run(predict, feed_dict={xp: tx}), plan.repeats)
    sess.close()

    if plan.mlp:
        graph = tf.Graph()
        with graph.as_default():
            xp = v1.placeholder(tf.float32, [None, 784])
            yp = v1.placeholder(tf.float32, [None, 10])
            he = v1.initializers.he_normal(seed=0)
            w1 = tf.Variable(he([784, 256]))
            w2 = tf.Variable(he([256, 10]))
            b1 = tf.Variable(tf.zeros([256]))
            b2 = tf.Variable(tf.zeros([10]))
            h = tf.nn.relu(tf.matmul(xp, w1) + b1)
            logits = tf.matmul(h, w2) + b2
            loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=yp, logits=logits))
            train_step = v1.train.GradientDescentOptimizer(0.1).minimize(loss)
            init = v1.global_variables_initializer()
        sess = v1.Session(graph=graph)

        def mlp_epoch():
            sess.run(init)
            for s in range(600):
                i = 100 * s
                sess.run(train_step, feed_dict={xp: x[i : i + 100], yp: onehot[i : i + 100]})

        mlp_epoch()
        out["mlp_epoch_s"] = median_time(mlp_epoch, max(1, plan.repeats // 2))
        sess.close()

    # "Deep MNIST for experts": the same graph, variables and optimiser as the tutorial.
    graph = tf.Graph()
    with graph.as_default():
        xp = v1.placeholder(tf.float32, [None, 784])
        yp = v1.placeholder(tf.float32, [None, 10])
        keep_prob = v1.placeholder(tf.float32)

        def weight(shape):
            return tf.Variable(v1.truncated_normal(shape, stddev=0.1))

        def bias(shape):
            return tf.Variable(tf.constant(0.1, shape=shape))

        def conv_pool(h, w, b):
            h = tf.nn.relu(tf.nn.conv2d(h, w, strides=[1, 1, 1, 1], padding="SAME") + b)
            return tf.nn.max_pool2d(h, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")

        h = conv_pool(tf.reshape(xp, [-1, 28, 28, 1]), weight([5, 5, 1, 32]), bias([32]))
        h = conv_pool(h, weight([5, 5, 32, 64]), bias([64]))
        h = tf.nn.relu(tf.matmul(tf.reshape(h, [-1, 7 * 7 * 64]), weight([3136, 1024])) + bias([1024]))
        h = tf.nn.dropout(h, rate=1 - keep_prob)
        logits = tf.matmul(h, weight([1024, 10])) + bias([10])
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=yp, logits=logits))
        train_step = v1.train.AdamOptimizer(1e-4).minimize(loss)
        predict = tf.argmax(logits, 1)
        init = v1.global_variables_initializer()
    sess = v1.Session(graph=graph)
    sess.run(init)

    def cnn_step(s):
        i = (50 * s) % 60000
        sess.run(train_step, feed_dict={xp: x[i : i + 50], yp: onehot[i : i + 50], keep_prob: 0.5})

    for s in range(plan.cnn_warm_up):
        cnn_step(s)
    step_times = [
        t for s in range(plan.cnn_steps) for t in times(lambda: cnn_step(plan.cnn_warm_up + s), 1)
    ]
    out["cnn_train_images_per_s"] = 50.0 / statistics.median(step_times)
    sess.run(predict, feed_dict={xp: one, keep_prob: 1.0})
    out["cnn_infer_1_us"] = 1e6 * median_time(
        lambda: sess.run(predict, feed_dict={xp: one, keep_prob: 1.0}), calls
    )
    sess.run(predict, feed_dict={xp: tx, keep_prob: 1.0})
    out["cnn_infer_10k_ms"] = 1e3 * median_time(
        lambda: sess.run(predict, feed_dict={xp: tx, keep_prob: 1.0}), plan.cnn_10k_repeats
    )
    sess.close()
    return out


def versions(suite):
    import importlib.metadata as md

    package = {"numpy": "numpy", "jax": "jax", "tensorflow": "tensorflow-cpu"}[suite]
    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return md.version("tensorflow") if suite == "tensorflow" else "?"


def run_suite(suite, args):
    """The suite's measurements, from a process of its own (its threads and memory alone)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--suite", suite, "--data", args.data,
               "--repeats", str(args.repeats), "--no-venv"]
    if args.quick:
        command.append("--quick")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        print(f"({suite} failed, left out:\n{tail})", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def ratio(key, softnet, other):
    """Above 1: softnet is faster (other's time over softnet's, or softnet's rate over other's)."""
    if softnet is None or other is None or softnet <= 0 or other <= 0:
        return None
    return softnet / other if key.endswith("_per_s") else other / softnet


def fmt(value, unit):
    """`value` in `unit` (s, ms, us or 1/s) with three significant digits, in the unit that
    keeps it between 1 and 1000 where it can."""
    if value is None:
        return "-"
    if unit == "1/s":
        return f"{value:,.0f}/s"
    seconds = value * {"s": 1.0, "ms": 1e-3, "us": 1e-6}[unit]
    scale, name = next((s, n) for limit, s, n in ((1e-3, 1e6, "µs"), (1.0, 1e3, "ms"), (float("inf"), 1.0, "s"))
                       if seconds < limit)
    v = seconds * scale
    return f"{v:.0f} {name}" if v >= 100 else f"{v:.3g} {name}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("MNIST_DIR", "data/mnist"), help="the MNIST folder")
    ap.add_argument("--softnet", default=str(ROOT / "target" / "release" / "softnet"))
    ap.add_argument("--repeats", type=int, default=7, help="repeats of each measurement (medians)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke test: every workload once, few steps; the numbers mean nothing")
    ap.add_argument("--suites", default=",".join(SUITES), help="which of numpy,jax,tensorflow")
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="the virtualenv to make and use")
    ap.add_argument("--no-venv", action="store_true", help="use this Python's packages as they are")
    ap.add_argument("--suite", choices=SUITES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.no_venv:
        ensure_venv(args.venv)
    plan = Plan(args.repeats, args.quick)

    if args.suite:
        run = {"numpy": numpy_suite, "jax": jax_suite, "tensorflow": tensorflow_suite}[args.suite]
        result = run(load_mnist(args.data), plan)
        result["version"] = versions(args.suite)
        print(json.dumps(result))
        return

    softnet_flags = ["--repeats", str(plan.repeats)] + (["--no-mlp"] if args.quick else [])
    print(f"softnet bench --json {' '.join(softnet_flags)} ...", file=sys.stderr)
    softnet = json.loads(
        subprocess.run(
            [args.softnet, "bench", "--json", "--data", args.data] + softnet_flags,
            check=True, capture_output=True, text=True,
        ).stdout
    )
    suites = {}
    for suite in [s.strip() for s in args.suites.split(",") if s.strip()]:
        if suite not in SUITES:
            raise SystemExit(f"unknown suite {suite!r}: choose from {', '.join(SUITES)}")
        print(f"{suite} ...", file=sys.stderr)
        result = run_suite(suite, args)
        if result is not None:
            suites[suite] = result

    names = {"numpy": "numpy", "jax": "JAX", "tensorflow": "TensorFlow"}
    print(f"\n{'measurement':<24}{'softnet':>12}" + "".join(f"{names[n]:>12}{'ratio':>8}" for n in suites))
    for key, _, unit in KEYS:
        line = f"{key:<24}{fmt(softnet.get(key), unit):>12}"
        theirs = AGAINST.get(key, key)
        for other in suites.values():
            r = ratio(key, softnet.get(key), other.get(theirs))
            line += f"{fmt(other.get(theirs), unit):>12}" + (f"{r:>7.1f}x" if r else f"{'-':>8}")
        print(line)
    print("(ratio above 1: softnet is faster)")
    if softnet.get("fma_peak_gflops"):
        # The host's load moves this from minute to minute: read the times against it.
        print(
            f"machine's f32 FMA ceiling during softnet's run: {softnet['fma_peak_gflops']:.0f} GFLOP/s "
            f"on {softnet['threads']} thread(s), {softnet['fma_peak_1t_gflops']:.0f} on one"
        )
    for key, name in (("cnn_train", "CNN training"), ("cnn_infer_1", "CNN one image (1 thread)"),
                      ("cnn_infer_10k", "CNN 10,000 images")):
        if softnet.get(f"{key}_gflops"):
            print(f"softnet {name}: {softnet[f'{key}_gflops']:.1f} GFLOP/s dense-equivalent, "
                  f"{100 * softnet[f'{key}_ceiling_share']:.0f}% of the ceiling")

    # The same, as the Markdown table docs/performance.md and the README take.
    print("\n| measurement | softnet | " + " | ".join(f"{names[n]} {suites[n]['version']} | ratio" for n in suites) + " |")
    print("|---|---|" + "---|---|" * len(suites))
    for key, label, unit in KEYS:
        if softnet.get(key) is None and not any(key in s for s in suites.values()):
            continue
        cells = [label, fmt(softnet.get(key), unit)]
        theirs = AGAINST.get(key, key)
        for other in suites.values():
            r = ratio(key, softnet.get(key), other.get(theirs))
            cells += [fmt(other.get(theirs), unit), f"{r:.1f}x" if r else "-"]
        print("| " + " | ".join(cells) + " |")
    if args.quick:
        print("\n(--quick: every path ran once with few steps; these numbers are not measurements)")


if __name__ == "__main__":
    main()
