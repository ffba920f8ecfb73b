#!/usr/bin/env python3
"""Checks a softnet TensorBoard log with the real TensorBoard (the `tensorboard` pip package).

Usage: python tests/tensorboard_check.py LOGDIR [--expect-accuracy-file F] [--no-server]

LOGDIR is what `softnet train --logdir LOGDIR` wrote: the runs LOGDIR/train and LOGDIR/test.

1. Loads both runs with TensorBoard's own EventAccumulator (keeping every event) and checks
   that each carries every summary, as the tutorial's one merged summary op run for both
   writers does:
   - `loss/cross_entropy` and `evaluation/accuracy` in both runs, at the same steps;
   - for every parameter P (tags `P/summaries/histogram`; `variables/Weight` and
     `variables/Bias` for softmax regression), in both runs: scalars
     `P/summaries/{mean,stddev,max,min}` and the histogram at those steps, bucket counts
     summing to the element count (from the graph's shapes), min/max/mean consistent with the
     scalars, and the same values in both runs (both see the same weights);
   - `logits/logits_histogram` in both runs at those steps (a training batch in train, the
     test set in test);
   - the first weight's images `W/images/image/<k>` decode as 28x28 greyscale PNGs
     (10 of them for softmax regression);
   - the graph in the train run: scopes input, variables or layer<k>, logits, loss, train,
     evaluation, and the edges image+Weight -> logits/MatMul, Bias -> logits/add,
     logits and label -> loss and evaluation, train updates -> every variable.
2. With --expect-accuracy-file F (lines `STEP ACCURACY`, as `softnet train` printed them;
   `#` comments and blank lines ignored; a trailing `%` means percent): the test run's
   accuracies equal them, to the printed precision (or float32 precision).
3. Starts `tensorboard --logdir LOGDIR --host 127.0.0.1 --port <free port>`, waits for
   /data/runs to list both runs, checks the scalar tags and the test accuracy series over HTTP
   (plus a histogram, an image and the graph), and always stops the server.

Exits 0 when every check passes, 1 otherwise (2 for bad usage).
"""

import argparse
import json
import math
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

SCALARS = ("loss/cross_entropy", "evaluation/accuracy")
STATS = ("mean", "stddev", "max", "min")
F32_EPS = 2.0**-23


class Checker:
    """Collects check results instead of stopping at the first failure."""

    def __init__(self):
        self.failures = []
        self.passed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"ok    {what}")
        else:
            self.failures.append(f"{what}{': ' + detail if detail else ''}")
            print(f"FAIL  {what}{': ' + detail if detail else ''}")
        return ok


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def close_f32(a, b, rel=4 * F32_EPS, abs_tol=1e-6):
    return math.isclose(f32(a), f32(b), rel_tol=rel, abs_tol=abs_tol)


# ---------------------------------------------------------------------------------------------
# PNG decoding without Pillow (not a TensorBoard dependency): chunks, CRCs, inflate, unfilter.


def decode_png(data):
    """Returns (width, height, channels, pixel rows) or raises ValueError."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("no PNG signature")
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise ValueError(f"bad CRC in chunk {kind!r}")
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    if ihdr is None:
        raise ValueError("no IHDR")
    width, height, depth, color, _, _, interlace = ihdr
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace != 0:
        raise ValueError(f"unsupported PNG depth {depth} color {color} interlace {interlace}")
    raw = zlib.decompress(idat)
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise ValueError(f"{len(raw)} bytes of image data for {width}x{height}x{channels}")
    rows, prev = [], bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
            elif ftype != 0:
                raise ValueError(f"bad filter type {ftype}")
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows


# ---------------------------------------------------------------------------------------------
# Event files through TensorBoard's own loader.


def load_run(path):
    from tensorboard.backend.event_processing import event_accumulator as ea

    guidance = {ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.IMAGES: 0, ea.COMPRESSED_HISTOGRAMS: 0}
    acc = ea.EventAccumulator(path, size_guidance=guidance)
    acc.Reload()
    return acc


def graph_shape(node):
    """First output shape of a GraphDef node from its `_output_shapes` attr, or None."""
    if "_output_shapes" not in node.attr:
        return None
    shapes = node.attr["_output_shapes"].list.shape
    if not shapes:
        return None
    return [d.size for d in shapes[0].dim]


def check_logs(c, logdir):
    """Returns (train accumulator, test accumulator, steps) or None if the runs are unreadable."""
    runs = {}
    for name in ("train", "test"):
        path = os.path.join(logdir, name)
        files = sorted(f for f in os.listdir(path) if "tfevents" in f) if os.path.isdir(path) else []
        if not c.check(bool(files), f"run {name} has an event file", path):
            continue
        runs[name] = load_run(path)
    if len(runs) < 2:
        return None
    train, test = runs["train"], runs["test"]
    tags = {name: acc.Tags() for name, acc in runs.items()}

    # Evaluation scalars, the steps everything else is checked against.
    steps = None
    for name, acc in runs.items():
        for tag in SCALARS:
            if not c.check(tag in tags[name]["scalars"], f"{name}: scalar {tag}"):
                continue
            s = [e.step for e in acc.Scalars(tag)]
            if steps is None:
                steps = s
                c.check(len(s) > 0 and s == sorted(set(s)), f"{name}: {tag} steps increase", str(s))
            else:
                c.check(s == steps, f"{name}: {tag} at the evaluation steps", f"{s} != {steps}")
    if not steps:
        return None
    print(f"      evaluation steps: {steps[:5]}{' ...' if len(steps) > 5 else ''} ({len(steps)})")
    for acc_tag in ("evaluation/accuracy",):
        for name, acc in runs.items():
            vals = [e.value for e in acc.Scalars(acc_tag)]
            c.check(all(0.0 <= v <= 1.0 for v in vals), f"{name}: accuracies within [0, 1]")

    # Graph: scopes and edges.
    graph = None
    c.check(tags["train"]["graph"], "train: has a graph")
    if tags["train"]["graph"]:
        graph = train.Graph()
        check_graph(c, graph)

    # Parameters: scalars and histograms, in both runs.
    params = sorted(
        t[: -len("/summaries/histogram")]
        for t in tags["train"]["histograms"]
        if t.endswith("/summaries/histogram")
    )
    c.check(len(params) > 0, "train: parameter histograms present", str(params))
    if graph is not None and any(n.name == "variables/Weight" for n in graph.node):
        for p in ("variables/Weight", "variables/Bias"):
            c.check(p in params, f"train: softmax parameter {p} logged")
    shapes = {n.name: graph_shape(n) for n in graph.node} if graph is not None else {}
    logged = {}
    for name, acc in runs.items():
        logged[name] = check_params(c, name, acc, tags[name], params, shapes, steps)
    c.check(
        logged["train"] == logged["test"],
        "train and test: the same parameter statistics at every step",
    )

    # Logits histograms: the training batch's in train, the test set's in test.
    tag = "logits/logits_histogram"
    for name, acc in runs.items():
        if c.check(tag in tags[name]["histograms"], f"{name}: histogram {tag}"):
            hist = acc.Histograms(tag)
            c.check([h.step for h in hist] == steps, f"{name}: {tag} at the evaluation steps")
            c.check(
                all(sum(h.histogram_value.bucket) == h.histogram_value.num > 0 for h in hist),
                f"{name}: {tag} bucket counts sum to num",
            )
    if tag in tags["train"]["histograms"] and tag in tags["test"]["histograms"]:
        batch = {h.histogram_value.num for h in train.Histograms(tag)[1:]}
        whole = {h.histogram_value.num for h in test.Histograms(tag)}
        c.check(
            len(whole) == 1 and all(n < min(whole) for n in batch),
            "logits: a batch's in train, the whole test set's in test",
            f"train {sorted(batch)}, test {sorted(whole)}",
        )

    # Images of the first weight's columns.
    images = sorted(t for t in tags["train"]["images"] if re.search(r"/images/image/\d+$", t))
    first_weight = next((p for p in params if p in ("variables/Weight", "layer1/weight")), None)
    if first_weight is not None:
        mine = [t for t in images if t.startswith(first_weight + "/images/image/")]
        want = 10 if first_weight == "variables/Weight" else 1
        c.check(len(mine) >= want, f"train: {len(mine)} weight images under {first_weight}/images", f"want >= {want}")
    c.check(len(images) > 0, "train: weight images present")
    bad = []
    for t in images:
        for ev in train.Images(t):
            try:
                w, h, ch, rows = decode_png(ev.encoded_image_string)
            except (ValueError, zlib.error) as e:
                bad.append(f"{t} step {ev.step}: {e}")
                continue
            if (w, h, ch) != (28, 28, 1) or (ev.width, ev.height) != (28, 28):
                bad.append(f"{t}: {w}x{h}x{ch} (proto {ev.width}x{ev.height})")
            lo, hi = min(min(r) for r in rows), max(max(r) for r in rows)
            if not ((lo, hi) == (0, 255) or lo == hi):
                bad.append(f"{t}: pixels span {lo}..{hi}, not scaled to 0..255")
    c.check(not bad and images, f"train: {len(images)} images decode as 28x28 greyscale PNG", "; ".join(bad[:3]))
    return train, test, steps


def check_params(c, name, acc, tags, params, shapes, steps):
    """Checks every parameter's scalars and histogram in one run; returns what was logged,
    {(param, stat, step): value}, to compare the runs."""
    logged = {}
    for p in params:
        count = None
        if shapes.get(p) is not None:
            count = math.prod(shapes[p])
        stats = {}
        for stat in STATS:
            tag = f"{p}/summaries/{stat}"
            if c.check(tag in tags["scalars"], f"{name}: scalar {tag}"):
                ev = acc.Scalars(tag)
                c.check([e.step for e in ev] == steps, f"{name}: {tag} at the evaluation steps")
                stats[stat] = {e.step: e.value for e in ev}
                logged.update({(p, stat, e.step): e.value for e in ev})
        tag = f"{p}/summaries/histogram"
        if not c.check(tag in tags["histograms"], f"{name}: histogram {tag}"):
            continue
        hist = acc.Histograms(tag)
        c.check([h.step for h in hist] == steps, f"{name}: {p} histogram at the evaluation steps")
        bad = []
        for h in hist:
            v = h.histogram_value
            logged[(p, "histogram", h.step)] = (tuple(v.bucket_limit), tuple(v.bucket))
            total = sum(v.bucket)
            expect = count if count is not None else v.num
            if total != expect or v.num != expect:
                bad.append(f"step {h.step}: buckets sum {total}, num {v.num}, elements {expect}")
            if len(v.bucket) != len(v.bucket_limit) or list(v.bucket_limit) != sorted(v.bucket_limit):
                bad.append(f"step {h.step}: bucket limits not increasing / not parallel")
            if v.min > v.max:
                bad.append(f"step {h.step}: min {v.min} > max {v.max}")
            if len(stats) == 4 and h.step in stats["min"]:
                if not (close_f32(stats["min"][h.step], v.min) and close_f32(stats["max"][h.step], v.max)):
                    bad.append(f"step {h.step}: histogram min/max differ from the scalars")
                if v.num > 0 and not close_f32(stats["mean"][h.step], v.sum / v.num, rel=1e-4, abs_tol=1e-6):
                    bad.append(f"step {h.step}: mean {stats['mean'][h.step]} != sum/num {v.sum / v.num}")
                var = max(v.sum_squares / v.num - (v.sum / v.num) ** 2, 0.0) if v.num else 0.0
                if not math.isclose(stats["stddev"][h.step], math.sqrt(var), rel_tol=1e-3, abs_tol=1e-5):
                    bad.append(f"step {h.step}: stddev {stats['stddev'][h.step]} != {math.sqrt(var)}")
        what = f"{count} elements" if count is not None else "num"
        c.check(not bad, f"{name}: {p} histogram counts sum to {what}, stats agree", "; ".join(bad[:3]))
    return logged


def check_graph(c, graph):
    nodes = {n.name: n for n in graph.node}
    c.check(len(nodes) == len(graph.node), "graph: node names unique")
    missing = sorted(
        f"{n.name} <- {i}"
        for n in graph.node
        for i in n.input
        if i.lstrip("^").split(":")[0] not in nodes
    )
    c.check(not missing, "graph: every input names a node", ", ".join(missing[:5]))
    scopes = {n.name.split("/")[0] for n in graph.node}
    softmax = "variables/Weight" in nodes
    want = {"input", "logits", "loss", "train", "evaluation"} | ({"variables"} if softmax else {"layer1"} if "layer1/weight" in nodes else set())
    c.check(want <= scopes, "graph: scopes " + ", ".join(sorted(want)), f"missing {sorted(want - scopes)}")
    for name in ("input/image", "input/label", "logits/MatMul", "logits/add"):
        c.check(name in nodes, f"graph: node {name}")

    def inputs(name):
        return {i.lstrip("^").split(":")[0] for i in nodes[name].input} if name in nodes else set()

    def edge(src, dst):
        return c.check(src in inputs(dst), f"graph: edge {src} -> {dst}", f"inputs {sorted(inputs(dst))}")

    if softmax:
        edge("input/image", "logits/MatMul")
        edge("variables/Weight", "logits/MatMul")
        edge("variables/Bias", "logits/add")
        variables = ["variables/Weight", "variables/Bias"]
    else:
        layers = sorted({m.group(1) for n in nodes for m in [re.match(r"(layer\d+)/weight$", n)] if m},
                        key=lambda s: int(s[5:]))
        c.check(len(layers) > 0, "graph: hidden layers layer<k>/weight", str(layers))
        prev = "input/image"
        for scope in layers + ["logits"]:
            edge(prev, f"{scope}/MatMul")
            edge(f"{scope}/weight", f"{scope}/MatMul")
            edge(f"{scope}/bias", f"{scope}/add")
            prev = f"{scope}/Relu"
        variables = [f"{s}/{k}" for s in layers + ["logits"] for k in ("weight", "bias")]
    for scope in ("loss", "evaluation"):
        reads = set().union(*(inputs(n) for n in nodes if n.startswith(scope + "/")))
        c.check("logits/add" in reads, f"graph: {scope} reads logits/add")
        c.check("input/label" in reads, f"graph: {scope} reads input/label")
    for v in variables:
        writers = [n for n in nodes if n.startswith("train/") and v in inputs(n)]
        c.check(bool(writers), f"graph: train updates {v}")


def check_accuracy_file(c, path, test, steps):
    expected = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2:
                c.check(False, f"{path}:{lineno} has `STEP ACCURACY`", line)
                return
            step_s, acc_s = parts
            scale = 1.0
            if acc_s.endswith("%"):
                acc_s, scale = acc_s[:-1], 0.01
            decimals = len(acc_s.split(".")[1]) if "." in acc_s and "e" not in acc_s.lower() else None
            expected.append((int(step_s), float(acc_s) * scale, decimals, scale))
    logged = {e.step: e.value for e in test.Scalars("evaluation/accuracy")}
    c.check(
        [s for s, *_ in expected] == steps,
        f"accuracy file steps equal the logged steps ({len(expected)})",
        f"{[s for s, *_ in expected]} != {steps}",
    )
    bad = []
    for step, want, decimals, scale in expected:
        got = logged.get(step)
        if got is None:
            bad.append(f"step {step}: not logged")
            continue
        # The printed number is the logged f32 rounded to `decimals` places (if it is shorter
        # than float32's round-trip form); otherwise the two agree to float32 precision.
        tol = max(4 * F32_EPS * abs(want), 1e-7)
        if decimals is not None:
            tol = max(tol, 0.5 * 10.0 ** (-decimals) * scale * (1 + 1e-6))
        if abs(got - want) > tol:
            bad.append(f"step {step}: logged {got!r}, printed {want!r}")
    c.check(not bad, "test accuracies equal the printed ones", "; ".join(bad[:3]))


# ---------------------------------------------------------------------------------------------
# The real server.


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode())


def tensorboard_command():
    exe = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    if os.path.exists(exe):
        return [exe]
    return [sys.executable, "-m", "tensorboard.main"]


def check_server(c, logdir, test, steps, timeout=90):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = tensorboard_command() + ["--logdir", logdir, "--host", "127.0.0.1", "--port", str(port)]
    print(f"      starting: {' '.join(cmd)}")
    log = tempfile.TemporaryFile()
    # Own process group, so stopping it also stops the data server it may spawn.
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        runs = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                runs = http_json(base + "/data/runs", timeout=5)
                if {"train", "test"} <= set(runs):
                    break
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                pass
            time.sleep(0.5)
        if not c.check(runs is not None and {"train", "test"} <= set(runs), "server: /data/runs lists train and test", f"got {runs}, exit {proc.poll()}"):
            log.seek(0)
            print(log.read().decode(errors="replace")[-3000:])
            return
        # Runs appear before all their events are loaded: poll until the series is complete.
        want = [(e.step, e.value) for e in test.Scalars("evaluation/accuracy")]
        series, tags = None, None
        while time.monotonic() < deadline:
            try:
                tags = http_json(base + "/data/plugin/scalars/tags")
                q = urllib.parse.urlencode({"run": "test", "tag": "evaluation/accuracy"})
                series = http_json(f"{base}/data/plugin/scalars/scalars?{q}")
                if [s[1] for s in series] == steps and all(
                    t in tags.get(r, {}) for r in ("train", "test") for t in SCALARS
                ):
                    break
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                pass
            time.sleep(0.5)
        for r in ("train", "test"):
            for t in SCALARS:
                c.check(tags is not None and t in tags.get(r, {}), f"server: scalar tag {r}/{t}")
        got = [(s[1], s[2]) for s in series] if series else []
        c.check(
            len(got) == len(want) and all(a == b and close_f32(x, y) for (a, x), (b, y) in zip(got, want)),
            f"server: test evaluation/accuracy series ({len(got)} points) equals the event file",
            f"{got[:3]} vs {want[:3]}",
        )
        # The other dashboards answer too.
        for run in ("train", "test"):
            try:
                q = urllib.parse.urlencode({"run": run, "tag": "logits/logits_histogram"})
                hist = http_json(f"{base}/data/plugin/histograms/histograms?{q}")
                c.check(len(hist) == len(steps), f"server: {run} logits histogram ({len(hist)} steps)")
            except (urllib.error.URLError, OSError, ValueError) as e:
                c.check(False, f"server: {run} logits histogram", str(e))
        try:
            q = urllib.parse.urlencode({"run": "train", "conceptual": "false"})
            with urllib.request.urlopen(f"{base}/data/plugin/graphs/graph?{q}", timeout=10) as r:
                pbtxt = r.read().decode()
            c.check('name: "logits/MatMul"' in pbtxt, "server: graph served as pbtxt with logits/MatMul")
        except (urllib.error.URLError, OSError) as e:
            c.check(False, "server: graph", str(e))
    finally:
        stop(proc)
        log.close()
        c.check(proc.poll() is not None, "server: stopped")


def stop(proc):
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("logdir")
    ap.add_argument("--expect-accuracy-file", metavar="F")
    ap.add_argument("--no-server", action="store_true", help="skip starting tensorboard")
    args = ap.parse_args()
    if not os.path.isdir(args.logdir):
        print(f"no such log folder: {args.logdir}", file=sys.stderr)
        return 2
    c = Checker()
    try:
        loaded = check_logs(c, args.logdir)
        if loaded is not None:
            _, test, steps = loaded
            if args.expect_accuracy_file:
                check_accuracy_file(c, args.expect_accuracy_file, test, steps)
            if not args.no_server:
                check_server(c, args.logdir, test, steps)
        elif args.expect_accuracy_file or not args.no_server:
            c.check(False, "event files loaded, so the remaining checks could run")
    except Exception as e:  # a crash in a check is a failure, reported as such
        import traceback

        traceback.print_exc()
        c.check(False, "checks ran without an exception", repr(e))
    print()
    if c.failures:
        print(f"tensorboard_check: FAILED {len(c.failures)} of {len(c.failures) + c.passed} checks on {args.logdir}:")
        for f in c.failures:
            print(f"  - {f}")
        return 1
    print(f"tensorboard_check: all {c.passed} checks passed on {args.logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
