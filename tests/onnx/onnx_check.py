"""ONNX both ways, checked against onnxruntime on the first 1,000 MNIST test images.

Export: each softnet model given with --export is written with `softnet export --onnx`,
passes onnx.checker.check_model(full_check=True), and onnxruntime's logits (and
probabilities) agree with softnet's (`softnet predict --stdin --logits`) within 1e-5, with
the same argmax everywhere, at batch sizes 1,000 and 1.

Import: graphs built here with onnx.helper as PyTorch exports them (NCHW Conv, Gemm with
transB = 1, Flatten or Reshape, a final Softmax or LogSoftmax) and as TensorFlow's converters do (NHWC input
transposed for Conv, MatMul + Add), with seeded random weights, go through `softnet import`;
the imported model's logits agree with onnxruntime's on the original graph within 1e-5, same
argmax. Graphs softnet cannot represent (Sigmoid, a grouped Conv, a dilated Conv, a Conv
with pads that are not SAME or VALID) must make `softnet import` fail, naming the node.

Prints the largest differences; exits non-zero on any failure.
"""

import argparse
import gzip
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

IMAGES = 1000
TOLERANCE = 1e-5

failures = []


def fail(message):
    print(f"FAIL: {message}")
    failures.append(message)


def test_images(mnist):
    path = os.path.join(mnist, "t10k-images-idx3-ubyte.gz")
    if os.path.exists(path):
        data = gzip.open(path).read()
    else:
        data = open(os.path.join(mnist, "t10k-images-idx3-ubyte"), "rb").read()
    return np.frombuffer(data[16 : 16 + IMAGES * 784], dtype=np.uint8).reshape(IMAGES, 784)


def softnet_logits(softnet, model, raw):
    """softnet's class and logits for each image, from `predict --stdin --logits`."""
    out = subprocess.run(
        [softnet, "predict", "--model", model, "--stdin", "--logits"],
        input=raw.tobytes(),
        capture_output=True,
        check=True,
    ).stdout.decode()
    rows = [line.split() for line in out.splitlines()]
    assert len(rows) == len(raw), f"{len(rows)} lines for {len(raw)} images"
    classes = np.array([int(r[1]) for r in rows])
    logits = np.array([[float(v) for v in r[2:]] for r in rows], dtype=np.float32)
    return classes, logits


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def compare(what, ours, theirs, classes=None, exact=None):
    """Passes when the two agree within TOLERANCE with the same argmax. With `exact` (the
    graph in float64), also prints how far each runtime is from it."""
    diff = float(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)).max())
    same = bool((ours.argmax(1) == theirs.argmax(1)).all())
    if classes is not None:
        same = same and bool((classes == theirs.argmax(1)).all())
    ok = diff <= TOLERANCE
    line = f"  {what:<46} max |diff| {diff:.3g}"
    if exact is not None:
        e_ours = float(np.abs(ours - exact).max())
        e_theirs = float(np.abs(theirs - exact).max())
        line += f" (to f64: softnet {e_ours:.3g}, onnxruntime {e_theirs:.3g})"
    ok = ok and same
    print(f"{line}, argmax {'same' if same else 'DIFFERS'}: {'ok' if ok else 'FAIL'}")
    if not ok:
        fail(f"{what}: max |diff| {diff:.3g}, argmax {'same' if same else 'differs'}")
    return diff


def exact_logits(model, x, output):
    """The graph evaluated in float64 by numpy, for the ops these graphs use: the exact
    values both runtimes round."""
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    values = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in values.items()}
    values[model.graph.input[0].name] = x.astype(np.float64)
    for n in model.graph.node:
        a = {at.name: helper.get_attribute_value(at) for at in n.attribute}
        i = [values.get(name) for name in n.input]
        op = n.op_type
        if op == "Constant":
            y = numpy_helper.to_array(a["value"])
        elif op == "Reshape":
            shape = [x.shape[k] if d == 0 else d for k, d in enumerate(i[1])]
            y = i[0].reshape(shape)
        elif op == "Transpose":
            y = i[0].transpose(a["perm"])
        elif op == "Flatten":
            y = i[0].reshape(len(i[0]), -1)
        elif op == "Relu":
            y = np.maximum(i[0], 0)
        elif op == "Gemm":
            w = i[1].T if a.get("transB", 0) else i[1]
            y = i[0] @ w + (i[2] if len(i) > 2 else 0)
        elif op == "MatMul":
            y = i[0] @ i[1]
        elif op == "Add":
            y = i[0] + i[1]
        elif op == "Softmax":
            y = softmax(i[0])
        elif op == "LogSoftmax":
            y = np.log(softmax(i[0]))
        elif op in ("Conv", "MaxPool"):
            y = window_op(op, i, a)
        else:
            raise ValueError(f"no float64 reference for {op}")
        values[n.output[0]] = y
    return values[output]


def window_op(op, i, a):
    # 100 images at a time keeps the patches small (the tutorial's second conv: 100 MB).
    return np.concatenate([window_op_chunk(op, [i[0][k : k + 100], *i[1:]], a) for k in range(0, len(i[0]), 100)])


def window_op_chunk(op, i, a):
    x = i[0]
    n, c, h, w = x.shape
    k = a["kernel_shape"][0]
    s = a.get("strides", [1, 1])[0]
    pads = a.get("pads", [0, 0, 0, 0])
    if a.get("auto_pad", b"NOTSET") == b"SAME_UPPER":
        total = [max((-(-d // s) - 1) * s + k - d, 0) for d in (h, w)]
        pads = [total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2]
    x = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh, ow = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
    patches = np.empty((n, c, k, k, oh, ow))
    for dy in range(k):
        for dx in range(k):
            patches[:, :, dy, dx] = x[:, :, dy : dy + s * oh : s, dx : dx + s * ow : s]
    if op == "MaxPool":
        return patches.max(axis=(2, 3))
    y = np.tensordot(patches, i[1], axes=([1, 2, 3], [1, 2, 3])).transpose(0, 3, 1, 2)
    return y + (i[2][None, :, None, None] if len(i) > 2 else 0)


def check_export(softnet, work, name, raw, pixels):
    model_path = os.path.join(work, f"{name}.safetensors")
    onnx_path = os.path.join(work, f"{name}.onnx")
    subprocess.run(
        [softnet, "export", "--model", model_path, "--onnx", onnx_path, "--probabilities"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    m = onnx.load(onnx_path)
    onnx.checker.check_model(m, full_check=True)
    names = [n.name for n in m.graph.node]
    if len(set(names)) != len(names) or "" in names:
        fail(f"{name}: node names are not unique: {names}")
    if "/ 255" not in m.doc_string and "divided by 255" not in m.doc_string:
        fail(f"{name}: the doc string does not say pixels / 255")
    batch = m.graph.input[0].type.tensor_type.shape.dim[0]
    if not batch.dim_param:
        fail(f"{name}: the batch dimension is not dynamic")
    classes, ours = softnet_logits(softnet, model_path, raw)
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    logits, probabilities = sess.run(["logits", "probabilities"], {"pixels": pixels})
    print(f"{name}: opset {m.opset_import[0].version}, {len(m.graph.node)} nodes ({', '.join(sorted(set(n.op_type for n in m.graph.node)))})")
    exact = exact_logits(m, pixels, "logits")
    worst = compare(f"{name} logits, batch {IMAGES}", ours, logits, classes, exact)
    compare(f"{name} probabilities vs softmax(softnet logits)", softmax(ours), probabilities)
    one = np.concatenate([sess.run(["logits"], {"pixels": pixels[i : i + 1]})[0] for i in range(0, IMAGES, 50)])
    compare(f"{name} logits, batch 1 (every 50th image)", ours[::50], one, exact=exact[::50])
    return worst


# Graphs made here, as other frameworks export them.

rng = np.random.default_rng(24)


def weight(*shape, fan_in):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def bias(n):
    return (rng.standard_normal(n) * 0.1).astype(np.float32)


class Graph:
    def __init__(self, input_shape):
        self.nodes, self.inits, self.current = [], [], "input"
        self.input = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch"] + input_shape)
        self.count = 0

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op, *inputs, name=None, **attrs):
        self.count += 1
        name = name or f"/{op}_{self.count}"
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node(op, [self.current, *inputs], [out], name=name, **attrs))
        self.current = out
        return out

    def model(self, logits, outputs):
        values = {"logits": logits, "probs": self.current}
        out = [helper.make_tensor_value_info(values[o], TensorProto.FLOAT, ["batch", 10]) for o in outputs]
        graph = helper.make_graph(self.nodes, "g", [self.input], out, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="onnx_check")
        m.ir_version = 8
        return m


def pytorch_mlp():
    """nn.Sequential(Flatten, Linear(784, 64), ReLU, Linear(64, 10)) + log_softmax (as
    PyTorch's MNIST example ends), NCHW input."""
    g = Graph([1, 28, 28])
    g.op("Flatten", axis=1)
    g.op("Gemm", g.const("fc1.weight", weight(64, 784, fan_in=784)), g.const("fc1.bias", bias(64)), transB=1)
    g.op("Relu")
    logits = g.op("Gemm", g.const("fc2.weight", weight(10, 64, fan_in=64)), g.const("fc2.bias", bias(10)), transB=1)
    g.op("LogSoftmax", axis=1)
    return g, logits


def pytorch_cnn():
    """Conv(1, 8, 5, padding=2), ReLU, MaxPool(2), Conv(8, 16, 3, padding=1), ReLU, MaxPool(2),
    Flatten (c, h, w order), Linear(784, 32), ReLU, Linear(32, 10), softmax."""
    g = Graph([1, 28, 28])
    g.op("Conv", g.const("conv1.weight", weight(8, 1, 5, 5, fan_in=25)), g.const("conv1.bias", bias(8)),
         kernel_shape=[5, 5], pads=[2, 2, 2, 2], strides=[1, 1], dilations=[1, 1], group=1)
    g.op("Relu")
    g.op("MaxPool", kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0], ceil_mode=0)
    g.op("Conv", g.const("conv2.weight", weight(16, 8, 3, 3, fan_in=72)), g.const("conv2.bias", bias(16)),
         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    g.op("Relu")
    g.op("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    g.op("Flatten", axis=1)
    g.op("Gemm", g.const("fc1.weight", weight(32, 784, fan_in=784)), g.const("fc1.bias", bias(32)), transB=1)
    g.op("Relu")
    logits = g.op("Gemm", g.const("fc2.weight", weight(10, 32, fan_in=32)), g.const("fc2.bias", bias(10)), transB=1)
    g.op("Softmax", axis=1)
    return g, logits


def pytorch_cnn_view():
    """x.view(-1, 1, 28, 28) from flat pixels (a Constant node), a stride-2 SAME conv with the
    odd zero after (pads [1, 1, 2, 2]), a VALID conv without bias, x.view(x.size(0), -1)
    as Reshape [0, -1], Gemm without transB."""
    g = Graph([784])
    g.nodes.append(helper.make_node("Constant", [], ["view_shape"], name="/Constant",
                                    value=numpy_helper.from_array(np.array([-1, 1, 28, 28], dtype=np.int64))))
    g.op("Reshape", "view_shape")
    g.op("Conv", g.const("c1.w", weight(6, 1, 5, 5, fan_in=25)), g.const("c1.b", bias(6)),
         kernel_shape=[5, 5], pads=[1, 1, 2, 2], strides=[2, 2])
    g.op("Relu")
    g.op("Conv", g.const("c2.w", weight(12, 6, 3, 3, fan_in=54)), kernel_shape=[3, 3], strides=[1, 1])
    g.op("Relu")
    g.op("MaxPool", kernel_shape=[3, 3], strides=[2, 2])
    g.op("Reshape", g.const("flat", np.array([0, -1], dtype=np.int64)))
    g.op("Gemm", g.const("fc.w", weight(300, 10, fan_in=300)), g.const("fc.b", bias(10)))
    logits = g.current
    g.op("Softmax", axis=-1)
    return g, logits


def tensorflow_mlp():
    """Keras Dense layers as tf2onnx writes them: MatMul + Add."""
    g = Graph([784])
    g.op("MatMul", g.const("dense/kernel", weight(784, 48, fan_in=784)))
    g.op("Add", g.const("dense/bias", bias(48)))
    g.op("Relu")
    g.op("MatMul", g.const("dense_1/kernel", weight(48, 10, fan_in=48)))
    logits = g.op("Add", g.const("dense_1/bias", bias(10)))
    g.op("Softmax", axis=-1)
    return g, logits


def tensorflow_cnn():
    """NHWC input transposed to NCHW for Conv (auto_pad SAME_UPPER), back to NHWC before a
    Reshape [-1, 784], then MatMul + Add: softnet's own layout."""
    g = Graph([28, 28, 1])
    g.op("Transpose", perm=[0, 3, 1, 2])
    g.op("Conv", g.const("conv2d/kernel", weight(8, 1, 5, 5, fan_in=25)), g.const("conv2d/bias", bias(8)),
         kernel_shape=[5, 5], auto_pad="SAME_UPPER", strides=[1, 1])
    g.op("Relu")
    g.op("MaxPool", kernel_shape=[2, 2], strides=[2, 2], auto_pad="VALID")
    g.op("Conv", g.const("conv2d_1/kernel", weight(16, 8, 3, 3, fan_in=72)), g.const("conv2d_1/bias", bias(16)),
         kernel_shape=[3, 3], auto_pad="SAME_UPPER", strides=[2, 2])
    g.op("Relu")
    g.op("Transpose", perm=[0, 2, 3, 1])
    g.op("Reshape", g.const("flatten/shape", np.array([-1, 784], dtype=np.int64)))
    g.op("MatMul", g.const("dense/kernel", weight(784, 10, fan_in=784)))
    logits = g.op("Add", g.const("dense/bias", bias(10)))
    g.op("Softmax", axis=-1)
    return g, logits


def unsupported(kind):
    """Valid ONNX graphs softnet must refuse: (graph, the node the error must name)."""
    g = Graph([1, 28, 28])
    if kind == "sigmoid":
        g.op("Flatten", axis=1)
        g.op("Gemm", g.const("w", weight(16, 784, fan_in=784)), g.const("b", bias(16)), transB=1)
        g.op("Sigmoid", name="act_sigmoid")
        node = "act_sigmoid"
    else:
        g.op("Conv", g.const("w0", weight(4, 1, 3, 3, fan_in=9)), kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        if kind == "group":
            g.op("Conv", g.const("w1", weight(8, 2, 3, 3, fan_in=18)), kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                 group=2, name="conv_grouped")
            node = "conv_grouped"
        elif kind == "dilation":
            g.op("Conv", g.const("w1", weight(8, 4, 3, 3, fan_in=36)), kernel_shape=[3, 3], pads=[2, 2, 2, 2],
                 dilations=[2, 2], name="conv_dilated")
            node = "conv_dilated"
        else:  # pads that are neither SAME nor VALID
            g.op("Conv", g.const("w1", weight(8, 4, 3, 3, fan_in=36)), kernel_shape=[3, 3], pads=[2, 2, 2, 2],
                 name="conv_padded")
            node = "conv_padded"
        g.op("Flatten", axis=1)
    features = {"sigmoid": 16, "group": 8 * 28 * 28, "dilation": 8 * 28 * 28, "pads": 8 * 30 * 30}[kind]
    g.op("Gemm", g.const("w9", weight(10, features, fan_in=features)), transB=1)
    return g.model(g.current, ["logits"]), node


def check_import(softnet, work, name, build, raw, pixels):
    g, logits = build()
    shape = [d.dim_value for d in g.input.type.tensor_type.shape.dim[1:]]
    to_import = g.model(logits, ["probs"])
    onnx.checker.check_model(to_import, full_check=True)
    path = os.path.join(work, f"{name}.onnx")
    onnx.save(to_import, path)
    # onnxruntime runs the same graph with the logits as a second output.
    sess = ort.InferenceSession(g.model(logits, ["logits", "probs"]).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    x = pixels.reshape([IMAGES] + shape)
    theirs = sess.run(None, {"input": x})[0]
    exact = exact_logits(to_import, x, logits)
    out = os.path.join(work, f"{name}.safetensors")
    r = subprocess.run([softnet, "import", path, "-o", out], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"{name}: softnet import failed: {r.stderr.strip()}")
        return float("nan")
    print(f"{name}: {r.stdout.strip()}".replace("\n", "\n    "))
    classes, ours = softnet_logits(softnet, out, raw)
    return compare(f"{name} logits", ours, theirs, classes, exact)


def check_refusal(softnet, work, kind):
    m, node = unsupported(kind)
    onnx.checker.check_model(m, full_check=True)
    path = os.path.join(work, f"refuse_{kind}.onnx")
    onnx.save(m, path)
    r = subprocess.run([softnet, "import", path, "-o", os.path.join(work, "refused.safetensors")],
                       capture_output=True, text=True)
    message = r.stderr.strip()
    ok = r.returncode == 1 and f'"{node}"' in message and "panick" not in message
    print(f"  refuses {kind:<9} exit {r.returncode}: {message}")
    if not ok:
        fail(f"{kind}: expected exit 1 naming {node!r}, got exit {r.returncode}: {message}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--softnet", required=True)
    ap.add_argument("--mnist", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--export", default="", help="comma-separated model names in --work (NAME.safetensors)")
    args = ap.parse_args()
    raw = test_images(args.mnist)
    pixels = raw.astype(np.float32) / np.float32(255)
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, {IMAGES} test images")

    export_worst = 0.0
    for name in filter(None, args.export.split(",")):
        export_worst = max(export_worst, check_export(args.softnet, args.work, name, raw, pixels))

    import_worst = 0.0
    for name, build in [("pytorch_mlp", pytorch_mlp), ("pytorch_cnn", pytorch_cnn),
                        ("pytorch_cnn_view", pytorch_cnn_view), ("tensorflow_mlp", tensorflow_mlp),
                        ("tensorflow_cnn", tensorflow_cnn)]:
        import_worst = max(import_worst, check_import(args.softnet, args.work, name, build, raw, pixels))

    print("refusals:")
    for kind in ["sigmoid", "group", "dilation", "pads"]:
        check_refusal(args.softnet, args.work, kind)

    print(f"largest logit difference: export {export_worst:.3g}, import {import_worst:.3g} (tolerance {TOLERANCE})")
    if failures:
        print(f"{len(failures)} failed")
        sys.exit(1)
    print("all ONNX checks passed")


if __name__ == "__main__":
    main()
