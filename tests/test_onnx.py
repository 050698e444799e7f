"""gc.onnx: every op with an ONNX counterpart, and the examples' models, run in onnxruntime
and in graphc on the same inputs; ops without one are named by the export error."""

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import graphc as gc
from graphc.onnx import EXPORTERS, NO_ONNX, OnnxExportError
from graphc.ops.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"placeholder", "placeholder_with_default", "const", "variable"}


@pytest.fixture(autouse=True)
def fresh_graph():
    gc.reset_default_graph()
    yield
    gc.reset_default_graph()


def _ort(model, feeds):
    data = model if isinstance(model, (bytes, str)) else model.SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _f32(arrays, attrs):
    """Float samples as float32 (what models use; onnxruntime has every float32 kernel)."""
    arrays = [a.astype(np.float32) if a.dtype == np.float64 else a for a in arrays]
    attrs = dict(attrs)
    if attrs.get("dtype") is gc.float64:
        attrs["dtype"] = gc.float32
    if isinstance(attrs.get("value"), np.ndarray) and attrs["value"].dtype == np.float64:
        attrs["value"] = attrs["value"].astype(np.float32)
    return arrays, attrs


def _cases():
    rng = np.random.default_rng(1234)
    for name in sorted(REGISTRY):
        opdef = REGISTRY[name]
        if opdef.samples is None or name in NO_ONNX:
            continue
        for i, (arrays, attrs) in enumerate(opdef.samples(rng)):
            yield pytest.param(
                opdef, *_f32([np.asarray(a) for a in arrays], attrs), id=f"{name}-{i}"
            )


def test_no_op_is_both_exported_and_listed_as_not_exportable():
    assert not set(EXPORTERS) & set(NO_ONNX)


@pytest.mark.parametrize("opdef, arrays, attrs", list(_cases()))
def test_op_in_onnxruntime_equals_graphc(opdef, arrays, attrs):
    inputs = [
        gc.placeholder(gc.as_dtype(a.dtype), shape=a.shape, name=f"in{k}")
        for k, a in enumerate(arrays)
    ]
    node = opdef.build(inputs, attrs)
    outs = list(node.outputs)
    with gc.Session(optimize=0) as sess:
        want = sess.run(outs, dict(zip(inputs, arrays)))
    got = _ort(gc.onnx.to_model(outs), {f"in{k}": a for k, a in enumerate(arrays)})
    assert len(got) == len(want)
    for w, g in zip(want, got):
        w, g = np.asarray(w), np.asarray(g)
        assert g.shape == w.shape and g.dtype == w.dtype, opdef.name
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize(
    "name",
    sorted(
        n
        for n, op in REGISTRY.items()
        if n not in EXPORTERS and n not in SOURCES and op.samples is not None
    ),
)
def test_ops_without_onnx_equivalent_are_named(name):
    opdef = REGISTRY[name]
    arrays, attrs = opdef.samples(np.random.default_rng(0))[0]
    inputs = [gc.placeholder(gc.as_dtype(np.asarray(a).dtype), shape=np.shape(a)) for a in arrays]
    node = opdef.build(inputs, dict(attrs))
    y = gc.identity(node.outputs[0])
    with pytest.raises(OnnxExportError, match=f"no ONNX equivalent for {name}") as e:
        gc.onnx.to_model(y)
    assert "test_onnx.py" in str(e.value)  # the line that built it


def test_a_training_op_cannot_be_exported_and_the_error_says_why():
    x = gc.placeholder(gc.float32, (None, 2))
    w = gc.Variable(np.ones((2, 1), np.float32), name="w")
    train = gc.train.GradientDescentOptimizer(0.1).minimize(gc.reduce_sum(x @ w))
    with pytest.raises(OnnxExportError, match="training op"):
        gc.onnx.to_model(train)
    u = gc.identity(gc.assign_add(w, np.ones((2, 1), np.float32)))
    with pytest.raises(OnnxExportError, match=r"assign_add.*not its training step"):
        gc.onnx.to_model(u)


def _check_model(path, feeds, want, names):
    model = onnx.load(path)
    onnx.checker.check_model(model)
    got = _ort(str(path), {k: v for k, v in feeds.items()})
    for n, w, g in zip(names, want, got):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, err_msg=n)
    # and back: gc.onnx.load builds a graphc graph computing the same
    graph = gc.onnx.load(path)
    with gc.Session(graph=graph) as sess:
        again = sess.run(names, feeds)
    for n, w, g in zip(names, want, again):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, err_msg=n)
    return model


def test_trained_mlp_example_exports_its_weights(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    import mlp_digits

    x, labels, training, loss, accuracy, train = mlp_digits.build()
    X, Y, Xt, Yt, _ = mlp_digits.load_digits_or_synthetic(force_synthetic=True)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        for xb, yb in gc.data.batches(X, Y, batch_size=64, epochs=2):
            sess.run(train, {x: xb, labels: yb, training: True})
        want = sess.run([loss, accuracy], {x: Xt, labels: Yt})
        path = gc.onnx.export(
            {"loss": loss, "accuracy": accuracy}, tmp_path / "mlp.onnx", session=sess
        )
        untrained = gc.onnx.to_model([loss])
    del sys.modules["mlp_digits"]
    model = _check_model(path, {"x": Xt, "labels": Yt}, want, ["loss", "accuracy"])
    assert {i.name for i in model.graph.input} == {"x", "labels"}  # the switch stays off
    trained = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    before = {t.name: onnx.numpy_helper.to_array(t) for t in untrained.graph.initializer}
    kernels = [n for n, v in trained.items() if v.ndim == 2]
    assert kernels and all(not np.array_equal(trained[n], before[n]) for n in kernels)


def test_mlp_classifier_g_through_the_command(tmp_path):
    from graphc.cli import main

    X = np.random.default_rng(0).normal(size=(20, 64)).astype(np.float32)
    Y = np.arange(20) % 10
    out = tmp_path / "mlp.onnx"
    assert (
        main(["compile", str(ROOT / "examples/mlp_classifier.g"), "--emit", "onnx", "-o", str(out)])
        == 0
    )
    graph = gc.load(str(ROOT / "examples/mlp_classifier.g"), graph=gc.Graph())
    with graph.as_default():
        init = gc.variables_initializer(graph.get_collection("variables"))
    with gc.Session(graph=graph) as sess:
        sess.run(init)
        want = sess.run(["probs", "loss", "accuracy"], {"x": X, "labels": Y})
    model = _check_model(out, {"x": X, "labels": Y}, want, ["probs", "loss", "accuracy"])
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 64]  # the symbolic batch dim keeps its name


def test_trained_cnn_with_batch_norm_and_dropout(tmp_path):
    x = gc.placeholder(gc.float32, (None, 12, 12, 1), name="images")
    y = gc.placeholder(gc.int64, (None,), name="labels")
    training = gc.placeholder_with_default(False, (), name="training")
    gc.set_random_seed(3)
    h = gc.layers.conv2d(x, 6, 3, padding="SAME", activation=gc.relu)
    h = gc.max_pool(h, 2, 2, "SAME")
    h = gc.layers.conv2d(h, 8, 3, strides=2, padding="VALID", activation=gc.relu)
    h = gc.avg_pool(h, 2, 1, "SAME")
    h = gc.layers.flatten(h)
    h = gc.layers.batch_norm(h, training=training)
    h = gc.layers.dropout(h, 0.3, training=training)
    logits = gc.layers.dense(h, 10)
    loss = gc.reduce_mean(gc.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    with gc.control_dependencies(gc.get_default_graph().get_collection("update_ops")):
        train = gc.train.MomentumOptimizer(0.05, 0.9).minimize(loss)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 12, 12, 1)).astype(np.float32)
    Y = rng.integers(0, 10, 32)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        for _ in range(5):
            sess.run(train, {x: X, y: Y, training: True})
        want = sess.run([logits, loss], {x: X, y: Y})
        path = gc.onnx.export(
            {"logits": logits, "loss": loss},
            tmp_path / "cnn.onnx",
            session=sess,
            feed_shapes={x: (32, 12, 12, 1), y: (32,)},
        )
    model = _check_model(path, {"images": X, "labels": Y}, want, ["logits", "loss"])
    assert {n.op_type for n in model.graph.node} >= {"Conv", "MaxPool", "AveragePool"}


def test_load_reads_gemm_relu_softmax_from_another_exporter():
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3)).astype(np.float32)  # Gemm's transB: (out, in)
    b = rng.normal(size=(4,)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["z"], transB=1),
        helper.make_node("Relu", ["z"], ["r"]),
        helper.make_node("Softmax", ["r"], ["p"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["batch", 4])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    X = rng.normal(size=(5, 3)).astype(np.float32)
    want = _ort(model, {"x": X})[0]
    g = gc.onnx.load(model.SerializeToString())
    with gc.Session(graph=g) as sess:
        np.testing.assert_allclose(sess.run("p", {"x": X}), want, rtol=1e-5, atol=1e-6)


def test_load_names_the_nodes_it_cannot_build():
    from onnx import TensorProto, helper

    node = helper.make_node("NonMaxSuppression", ["x"], ["y"], name="nms")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(gc.onnx.OnnxImportError, match=r"'nms' \(NonMaxSuppression\)"):
        gc.onnx.load(model)
