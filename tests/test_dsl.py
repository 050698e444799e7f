"""The .g language: grammar coverage, names, error positions, round trip through to_text,
symbolic dims at run time, loading and training from Python, and a property test."""

import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.frontend.fmt import format_source

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

TWO_LAYER = """
# two_layer.g
model two_layer {
  input  x  : f32[N, 8]
  input  y  : f32[N, 2]
  param  w1 : f32[8, 4] = normal(stddev=0.1, seed=1)
  param  w2 : f32[4, 2] = normal(stddev=0.1, seed=2)

  h    = relu(x @ w1)
  pred = h @ w2
  loss = reduce_sum((pred - y) ** 2)

  output pred, loss
  train loss with sgd(lr=0.01)
}
"""

# Every statement and expression form of the grammar, in one file.
COVERAGE = """
const K = 2 * 3 - 1        # folds to the Python number 5
const SCALE = -0.5
fn dense(x, w, b) = x @ w + b
fn twice(t) = t * 2

model first {
  input x : f32[N, 5]
  output x
}

model everything {
  input  x    : f32[N, K]
  input  idx  : i32[N]
  input  keep : f32 = 1.0
  input  any  : f64[*]
  input  free : f32[?, 3]
  param  w    : f32[K, 3] = uniform(minval=-1, maxval=1, seed=7)
  param  b    : f32[3]    = 0.25
  param  c    : f32[2]    = [1.5, -2.0]
  param  t    : i64[]     = fill(value=3) frozen
  param  z    : f32[3]

  lin   = dense(x, w, b)
  act   = sigmoid(twice(lin)) * keep
  p     = -lin ** 2 + lin // 2.0 % 3.0 - lin / 4.0
  cmp   = cast(lin >= 0.0, f32) + cast(lin != b, f32) + cast(lin < 1, f32)
  eqs   = cast(lin == lin, f32) + cast(lin <= lin, f32) + cast(lin > 0, f32)
  sl    = x[:, 1:4:2]
  last  = x[..., -1]
  grown = x[:, None, 0]
  s1, s2 = split(x[:, :4], 2, axis=1)
  both  = op.add(s1, s2)
  red   = reduce_mean(act, axis=[0, 1], keepdims=true)
  arg   = argmax(lin, axis=1, output_type=i32)
  oh    = one_hot(idx, depth=3)
  msg   = print(red, message="red is \\"quoted\\"")
  ordered = identity(red) after [msg]
  loss  = reduce_sum(p * SCALE) + reduce_sum(cmp + eqs) + reduce_sum(oh)
          + reduce_sum(c) + reduce_sum(z)
  output lin, act, loss, sl, last, grown, both, arg
  train loss with momentum(lr=0.01, momentum=0.9)
}
"""


def _ops(graph):
    return {op.name: op for op in graph.get_operations()}


# --- grammar and names --------------------------------------------------------------------


def test_spec_example_builds_named_nodes_and_symbolic_inputs():
    g = gc.loads(TWO_LAYER, filename="two_layer.g")
    x = g.get_tensor_by_name("x")
    assert x.op.type == "placeholder" and tuple(x.shape) == ("N", 8) and x.dtype is gc.float32
    assert g.get_tensor_by_name("w1").op.type == "variable"
    assert g.get_tensor_by_name("loss").op.type == "reduce_sum"
    assert g.get_tensor_by_name("h").op.type == "maximum"  # relu's outer op carries the name
    assert g.get_operation_by_name("train").type == "no_op"
    assert g.get_tensor_by_name("h/matmul").op.type == "matmul"  # inner ops: NAME/op
    loc = g.get_tensor_by_name("pred").op.location
    assert (loc.file, loc.line, loc.col) == ("two_layer.g", 10, 12)  # the operator


def test_grammar_coverage_builds_and_runs():
    g = gc.loads(COVERAGE, model="everything", filename="cov.g")
    names = _ops(g)
    for n in (
        "x",
        "idx",
        "keep",
        "any",
        "free",
        "w",
        "b",
        "c",
        "t",
        "z",
        "lin",
        "act",
        "p",
        "sl",
        "last",
        "grown",
        "s1",
        "s2",
        "both",
        "red",
        "arg",
        "oh",
        "msg",
        "ordered",
        "loss",
    ):
        assert n in names, n
    assert g.get_tensor_by_name("keep").op.type == "placeholder_with_default"
    assert g.get_tensor_by_name("any").shape is None
    assert tuple(g.get_tensor_by_name("free").shape) == (None, 3)
    assert tuple(g.get_tensor_by_name("x").shape) == ("N", 5)  # K = 5 was folded
    assert [v.op.name for v in g.get_collection("trainable_variables")] == ["w", "b", "c", "z"]
    assert names["ordered"].control_inputs == (names["msg"],)
    assert tuple(g.get_tensor_by_name("sl").shape) == ("N", 2)
    assert tuple(g.get_tensor_by_name("grown").shape) == ("N", 1)
    x = np.arange(15, dtype=np.float32).reshape(3, 5)
    idx = np.array([0, 2, 1], np.int32)
    with gc.Session(graph=g) as sess:
        sess.run(g.get_collection("variables")[0].initializer)
        for v in g.get_collection("variables"):
            sess.run(v.initializer)
        sl, last, both, t, c = sess.run(["sl", "last", "both", "t", "c"], {"x": x, "idx": idx})
        np.testing.assert_array_equal(sl, x[:, 1:4:2])
        np.testing.assert_array_equal(last, x[..., -1])
        np.testing.assert_array_equal(both, x[:, :2] + x[:, 2:4])
        assert t == 3 and t.dtype == np.int64
        np.testing.assert_array_equal(c, [1.5, -2.0])
        before = sess.run("loss", {"x": x, "idx": idx})
        sess.run("train", {"x": x, "idx": idx})
        assert sess.run("loss", {"x": x, "idx": idx}) != before


def test_operator_precedence_matches_python():
    g = gc.loads(
        "model m { input a : f64[3]\n"
        " r1 = -a ** 2\n r2 = a - a * 2.0 ** 2.0\n r3 = (a - a) * 2.0\n"
        " r4 = a + a // 2.0 % 3.0\n output r1 }"
    )
    a = np.array([1.5, -2.0, 3.0])
    with gc.Session(graph=g) as sess:
        r1, r2, r3, r4 = sess.run(["r1", "r2", "r3", "r4"], {"a": a})
    np.testing.assert_allclose(r1, -(a**2))
    np.testing.assert_allclose(r2, a - a * 2.0**2.0)
    np.testing.assert_allclose(r3, (a - a) * 2.0)
    np.testing.assert_allclose(r4, a + a // 2.0 % 3.0)


def test_several_models_and_model_choice():
    g = gc.loads(COVERAGE, filename="cov.g")  # the first model by default
    assert g.get_collection("graphc.model_name") == ["first"]
    with pytest.raises(gc.NotFoundError, match="no model named 'evrything'.*everything"):
        gc.loads(COVERAGE, model="evrything")


def test_user_fn_in_model_and_keyword_call():
    g = gc.loads("model m { input x : f32[2]\n fn sq(v) = v * v\n y = sq(v=x)\n output y }")
    with gc.Session(graph=g) as sess:
        np.testing.assert_allclose(sess.run("y", {"x": [3.0, -1.0]}), [9.0, 1.0])


# --- errors: position, message, caret -----------------------------------------------------


def _error(src, cls=gc.GraphcError):
    with pytest.raises(cls) as info:
        gc.loads(src, filename="bad.g")
    return info.value


@pytest.mark.parametrize(
    "src, line, col, words",
    [
        ("model m {\n  input x f32[3]\n}", 2, 11, "expected ':'"),
        ("model m {\n  input x : f32[3]\n  y = relu(x\n  z = y\n}", 4, 3, "')' is missing"),
        ("model m {\n  input x : f32[3]\n  y = x +\n}", 4, 1, "expression is missing"),
        ("model m {\n  y = 1 $ 2\n}", 2, 9, "unexpected character '$'"),
        ("model m {\n  input x : f32[3]\n  train x sgd(lr=1)\n}", 3, 11, "`train` needs"),
        ("model m {\n  input x : f32[3]\n  y = x", 3, 8, "'}' is missing"),
    ],
)
def test_syntax_errors_name_line_and_column(src, line, col, words):
    e = _error(src, gc.GSyntaxError)
    assert (e.location.line, e.location.col) == (line, col)
    assert words in e.message
    text = str(e)
    assert text.startswith(f"bad.g:{line}:{col}: syntax error")
    src_line, caret = text.splitlines()[-2:]
    assert src_line.strip() == src.splitlines()[line - 1].strip() or line > len(src.splitlines())
    assert caret.index("^") - 4 == col - 1


def test_unknown_name_suggests_close_ones():
    e = _error("model m {\n  input weights : f32[3]\n  y = weigths * 2.0\n}", gc.NotFoundError)
    assert (e.location.line, e.location.col) == (3, 7)
    assert "unknown name 'weigths'" in str(e) and "did you mean weights" in str(e)
    e = _error("model m {\n  input x : f32[3]\n  y = rellu(x)\n}", gc.NotFoundError)
    assert "did you mean relu" in str(e)


def test_arity_and_keyword_mistakes():
    e = _error("model m {\n  input x : f32[3]\n  y = reduce_sum(x, axs=0)\n}")
    assert (e.location.line, e.location.col) == (3, 7)
    assert "unexpected keyword argument 'axs'" in str(e) and "input_tensor" in str(e)
    e = _error("model m {\n  input x : f32[3]\n  y = relu(x, x, x)\n}")
    assert "relu()" in str(e) and "too many positional" in str(e)
    e = _error("fn f(a, b) = a + b\nmodel m {\n  input x : f32[3]\n  y = f(x)\n}")
    assert "f() takes (a, b)" in str(e) and e.location.line == 4
    e = _error("model m {\n  input x : f32[3]\n  param w : f32[3] = normal(stdev=1.0)\n}")
    assert "stdev" in str(e) and e.location.line == 3


def test_shape_and_dtype_errors_point_at_the_operator():
    e = _error(
        "model m {\n  input x : f32[N, 3]\n  param w : f32[4, 2] = zeros()\n  y = x @ w\n}",
        gc.ShapeError,
    )
    assert (e.location.file, e.location.line, e.location.col) == ("bad.g", 4, 9)
    assert "matmul" in str(e) and "y = x @ w" in str(e)
    e = _error("model m {\n  input x : f32[3]\n  input i : i32[3]\n  y = x + i\n}", gc.DTypeError)
    assert (e.location.line, e.location.col) == (4, 9) and "int32" in str(e)


def test_declaration_errors():
    assert "static shape" in str(_error("model m { param w : f32[N] = zeros() }"))
    assert "did you mean f32" in str(_error("model m { input x : f33[2] }", gc.DTypeError))
    e = _error("model m { input x : f32[2]\n x = x + 1.0 }")
    assert "already defined" in str(e) and e.location.line == 2
    e = _error("model m { param w : f32[2] = [1.0, 2.0, 3.0] }")
    assert "param w" in str(e) or "3 elements" in str(e)
    e = _error("fn f(x) = f(x)\nmodel m { input x : f32[2]\n y = f(x) }")
    assert "recursive" in str(e)


def test_run_time_errors_carry_the_g_location():
    g = gc.loads(
        "model m {\n  input x : f32[N, 2]\n  input y : f32[N, 2]\n  s = x + y\n}", filename="rt.g"
    )
    with gc.Session(graph=g) as sess, pytest.raises(gc.ShapeError) as info:
        sess.run("s", {"x": np.ones((3, 2)), "y": np.ones((4, 2))})
    assert "'N'" in str(info.value) and "rt.g:3:3" in str(info.value)


# --- symbolic dims, load + train from Python ----------------------------------------------


def test_symbolic_dims_are_enforced_at_run_time(tmp_path):
    path = tmp_path / "two_layer.g"
    path.write_text(TWO_LAYER)
    g = gc.load(path)
    rng = np.random.default_rng(0)
    with gc.Session(graph=g) as sess:
        sess.run(gc.global_variables_initializer())
        ok = sess.run("loss", {"x": rng.normal(size=(5, 8)), "y": rng.normal(size=(5, 2))})
        assert np.isfinite(ok)
        with pytest.raises(gc.ShapeError, match="dimension 'N' is 5 .* but 4"):
            sess.run("loss", {"x": rng.normal(size=(5, 8)), "y": rng.normal(size=(4, 2))})


def test_load_and_train_from_python(tmp_path):
    path = tmp_path / "lin.g"
    path.write_text((EXAMPLES / "linear_regression.g").read_text())
    g = gc.load(str(path))
    assert g is gc.get_default_graph()  # an empty default graph is loaded into
    x = np.linspace(0, 1, 17, dtype=np.float32)[:, None]
    y = 3 * x + 1
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        first = sess.run("loss", {"x": x, "y": y})
        for _ in range(300):
            _, loss = sess.run([g.get_operation_by_name("train"), "loss"], {"x": x, "y": y})
        w, b = sess.run(["w", "b"])
    assert loss < first * 1e-3
    np.testing.assert_allclose([w[0, 0], b[0]], [3.0, 1.0], atol=0.05)


def test_second_load_gets_its_own_graph():
    g1 = gc.loads(TWO_LAYER)
    g2 = gc.loads(TWO_LAYER)
    assert g1 is not g2 and g2.get_tensor_by_name("loss").op.name == "loss"


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.g")))
def test_examples_build(name):
    g = gc.load(EXAMPLES / name, graph=gc.Graph())
    assert g.get_operation_by_name("train").type == "no_op"


# --- round trip ---------------------------------------------------------------------------


def _values(graph, feeds, names):
    with gc.Session(graph=graph) as sess:
        for v in graph.get_collection("variables"):
            sess.run(v.initializer)
        for _ in range(2):
            sess.run("train", feeds)
        return sess.run(names, feeds)


@pytest.mark.parametrize(
    "src, model",
    [(TWO_LAYER, None), (COVERAGE, "everything")]
    + [((EXAMPLES / n).read_text(), None) for n in ("linear_regression.g", "mlp_classifier.g")],
)
def test_round_trip_is_a_fixed_point_and_computes_the_same(src, model):
    g1 = gc.loads(src, model=model, graph=gc.Graph())
    t1 = g1.to_text()
    g2 = gc.loads(t1, graph=gc.Graph())
    t2 = g2.to_text()
    assert t1 == t2
    assert gc.loads(t2, graph=gc.Graph()).to_text() == t2
    assert len(g1) == len(g2)
    inputs = [op.outputs[0] for op in g1.get_operations() if op.type == "placeholder"]
    rng = np.random.default_rng(1)
    feeds = {}
    for t in inputs:
        shape = tuple(4 if not isinstance(d, int) else d for d in (t.shape or (3,)))
        if t.dtype.is_integer:
            feeds[t.op.name] = rng.integers(0, 2, size=shape).astype(t.dtype.np)
        else:
            feeds[t.op.name] = rng.normal(size=shape).astype(t.dtype.np)
    names = [t.op.name for t in g1.get_collection("graphc.outputs")]
    for a, b in zip(_values(g1, feeds, names), _values(g2, feeds, names), strict=True):
        np.testing.assert_array_equal(a, b)


def test_python_built_graph_prints_and_reloads_with_the_same_values():
    x = gc.placeholder(gc.float32, shape=(None, 4), name="x")
    labels = gc.placeholder(gc.int64, shape=(None,), name="labels")
    with gc.name_scope("dense"):
        w = gc.Variable(gc.random_normal((4, 3), stddev=0.1, seed=3), name="w")
        b = gc.Variable(np.zeros(3, np.float32), name="b")
        logits = gc.matmul(x, w) + b
    loss = gc.reduce_mean(gc.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    sliced = logits[:, 1:] * 2.0 - 1
    train = gc.train.AdamOptimizer(0.01).minimize(loss)
    init = gc.global_variables_initializer()
    g = gc.get_default_graph()
    text = g.to_text()
    assert "`dense/w`" in text and "op.sum_to_like(" in text and "model main {" in text
    g2 = gc.loads(text, graph=gc.Graph())
    assert g2.to_text() == text
    feeds = {
        "x:0": np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32),
        "labels:0": np.arange(6) % 3,
    }

    def run(graph):
        with gc.Session(graph=graph) as sess:
            sess.run(graph.get_operation_by_name(init.name))
            for _ in range(3):
                sess.run(graph.get_operation_by_name(train.name), feeds)
            return sess.run(
                [graph.get_tensor_by_name(loss.name), graph.get_tensor_by_name(sliced.name)], feeds
            )

    for a, c in zip(run(g), run(g2), strict=True):
        np.testing.assert_array_equal(a, c)


def test_printer_escapes_strings_and_quotes_names():
    x = gc.placeholder(gc.float32, shape=(2,), name="in-put")
    y = gc.print(x, message='say "hi"\nand \\ bye', name="shout")
    g = gc.get_default_graph()
    text = g.to_text()
    assert "input `in-put` : f32[2]" in text
    g2 = gc.loads(text, graph=gc.Graph())
    assert g2.get_operation_by_name(y.op.name).attrs["message"] == 'say "hi"\nand \\ bye'


# --- property: random well-formed programs compile or fail with a located error -----------

_NAMES = st.sampled_from(["a", "b", "c"])
_UNARY = st.sampled_from(
    ["relu", "exp", "tanh", "sigmoid", "neg", "square", "reduce_sum", "softmax", "sqrt", "log"]
)
_BINARY = st.sampled_from(["+", "-", "*", "/", "//", "%", "@", "**", "<", ">="])


@st.composite
def _expr(draw, depth=0):
    choice = draw(st.integers(0, 5 if depth < 3 else 1))
    if choice == 5:
        return f"-{draw(_expr(depth + 1))}"
    if choice == 0:
        return draw(_NAMES)
    if choice == 1:
        return repr(draw(st.floats(-3, 3, allow_nan=False).map(lambda f: round(f, 2))))
    if choice == 2:
        return f"{draw(_UNARY)}({draw(_expr(depth + 1))})"
    if choice == 3:
        return f"({draw(_expr(depth + 1))} {draw(_BINARY)} {draw(_expr(depth + 1))})"
    return f"{draw(_expr(depth + 1))}[{draw(st.sampled_from([':', '0', '1:', '..., 0']))}]"


@st.composite
def _program(draw):
    dims = draw(st.lists(st.sampled_from(["2", "3", "N"]), min_size=1, max_size=2))
    dtype = draw(st.sampled_from(["f32", "f64", "i32"]))
    lines = [
        f"  input a : {dtype}[{', '.join(dims)}]",
        f"  param b : f32[{', '.join(d if d != 'N' else '2' for d in dims)}] = normal(seed=1)",
        "  c = a",
    ]
    for i in range(draw(st.integers(1, 3))):
        lines.append(f"  v{i} = {draw(_expr())}")
    return "model p {\n" + "\n".join(lines) + "\n}\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_program())
def test_random_programs_compile_or_fail_with_a_located_error(src):
    try:
        g = gc.loads(src, filename="prop.g", graph=gc.Graph())
    except gc.GraphcError as e:
        assert e.location is not None and e.location.file == "prop.g"
        assert 1 <= e.location.line <= src.count("\n")
        assert e.location.col is not None and e.location.col >= 1
        return
    assert gc.loads(g.to_text(), graph=gc.Graph()).to_text() == g.to_text()
    # `graphc fmt` keeps the meaning: the formatted file builds the same graph
    formatted = format_source(src)
    assert format_source(formatted) == formatted
    assert gc.loads(formatted, filename="prop.g", graph=gc.Graph()).to_text() == g.to_text()
    values = [g.get_tensor_by_name(n) for n in ("v0", "v1", "v2") if n in _names(g)]
    plan = gc.compile(
        [v for v in values if isinstance(v, gc.Tensor)] or ["c"],
        feed_shapes={"a": tuple(2 if d == "N" else d for d in g.get_tensor_by_name("a").shape)},
        graph=g,
    )
    assert plan.peak_bytes >= 0


def _names(graph):
    return {op.name for op in graph.get_operations()}


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=string.printable, max_size=60))
def test_arbitrary_text_never_escapes_as_a_python_error(junk):
    try:
        gc.loads(
            "model m {\n  input x : f32[3]\n" + junk + "\n}", filename="junk.g", graph=gc.Graph()
        )
    except gc.GraphcError as e:
        assert e.location is not None and e.location.file == "junk.g"


def test_full_slice_keeps_a_symbolic_dim():
    """Regression (ops/array.py): x[:, 1:] kept N as None, losing the run-time check."""
    x = gc.placeholder(gc.float32, shape=("N", 4))
    assert tuple(x[:, 1:].shape) == ("N", 3)
    assert tuple(x[::2].shape) == (None, 4)


def test_bare_initializer_and_positional_learning_rate():
    g = gc.loads(
        "model m {\n  input x : f32[N, 2]\n  param w : f32[2, 1] = ones\n"
        "  loss = reduce_sum(x @ w)\n  train loss with adam(0.01, beta1=0.8)\n}"
    )
    assert "train loss with adam(lr=0.01, beta1=0.8)" in g.to_text()
    with gc.Session(graph=g) as sess:
        sess.run(gc.global_variables_initializer())
        np.testing.assert_array_equal(sess.run("w"), [[1.0], [1.0]])
    with pytest.raises(gc.GraphcError, match="only the learning rate"):
        gc.loads(
            "model m { input x : f32[2]\n loss = reduce_sum(x)\n train loss with sgd(0.1, 0.2) }",
            graph=gc.Graph(),
        )


def test_layers_graph_with_a_graph_seed_round_trips_to_the_same_training():
    gc.set_random_seed(1)  # initializers without their own seed derive one from it
    x = gc.placeholder(gc.float32, (None, 6, 6, 1), name="x")
    labels = gc.placeholder(gc.int64, (None,), name="labels")
    training = gc.placeholder_with_default(False, (), name="training")
    h = gc.layers.flatten(gc.layers.conv2d(x, 2, 3, activation=gc.relu))
    h = gc.layers.dropout(
        gc.layers.dense(h, 8, activation=gc.relu), rate=0.5, training=training, seed=3
    )
    logits = gc.layers.dense(h, 3)
    loss = gc.reduce_mean(
        gc.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )
    train = gc.train.MomentumOptimizer(0.1, 0.9).minimize(loss)
    init = gc.global_variables_initializer()
    g = gc.get_default_graph()
    text = g.to_text()
    assert "random_seed 1" in text
    g2 = gc.loads(text, graph=gc.Graph())
    assert g2.to_text() == text and len(g2) == len(g)
    feeds = {
        "x:0": np.random.default_rng(0).normal(size=(4, 6, 6, 1)).astype(np.float32),
        "labels:0": np.arange(4) % 3,
        "training:0": True,
    }

    def run(graph):
        with gc.Session(graph=graph) as sess:
            sess.run(graph.get_operation_by_name(init.name))
            for _ in range(3):
                sess.run(graph.get_operation_by_name(train.name), feeds)
            return sess.run(graph.get_tensor_by_name(loss.name), feeds)

    assert run(g) == run(g2)
