"""Fuzzing (issue #16): random ``.g`` texts and random feeds end in a result or in a
located GraphcError — never another exception, never a hang (each example runs under an
alarm). Seeded by hypothesis's database-free derandomized mode so CI is reproducible."""

import signal
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc as gc
from graphc.frontend import dsl, fmt

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

TIME_BOUND_S = 60  # generous: a loaded CI machine; a hang is what it catches

FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


class _Hang(BaseException):
    pass


def _bounded(fn):
    """Run ``fn`` under an alarm of TIME_BOUND_S (main thread only, where signals arrive)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        return fn()

    def ring(*_):
        raise _Hang(f"took longer than {TIME_BOUND_S} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(TIME_BOUND_S)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _outcome(fn):
    """fn's result, or the GraphcError it raised — which must carry a location."""
    try:
        return _bounded(fn)
    except gc.GraphcError as e:
        assert e.location is not None, f"an error without a location: {e!r}"
        return e


# --- random programs ------------------------------------------------------------------------

DTYPES = ["f32", "f64", "i32", "i64"]
UNARY = [
    "relu",
    "exp",
    "log",
    "sqrt",
    "tanh",
    "sigmoid",
    "abs",
    "neg",
    "square",
    "softmax",
    "transpose",
    "reduce_sum",
    "reduce_mean",
    "reduce_max",
    "argmax",
    "log_softmax",
    "expand_dims",
    "squeeze",
    "identity",
    "floor",
    "sign",
    "cast",
]
BINARY = ["+", "-", "*", "/", "//", "%", "**", "@", "<", "==", ">="]
AXES = [-3, -2, -1, 0, 1, 2, 3, 7]


def _dims():
    return st.lists(st.sampled_from(["2", "3", "1", "0", "N", "?"]), min_size=0, max_size=3)


@st.composite
def expressions(draw, names=("x", "y"), depth=0):
    def sub():
        return expressions(names, depth + 1)

    if depth > 3 or draw(st.integers(0, 3)) == 0:
        return draw(
            st.one_of(
                st.sampled_from(names),
                st.sampled_from(names),
                st.sampled_from(
                    [
                        "0",
                        "1",
                        "2.5",
                        "-1",
                        "1e300",
                        "3",
                        "true",
                        "[1.0, 2.0]",
                        "[[1, 2], [3, 4]]",
                        "nan",
                        "inf",
                        "9999999999999999999999",
                    ]
                ),
            )
        )
    kind = draw(st.integers(0, 3))
    if kind == 0:
        a, b = draw(sub()), draw(sub())
        return f"({a} {draw(st.sampled_from(BINARY))} {b})"
    if kind == 1:
        fn = draw(st.sampled_from(UNARY))
        arg = draw(sub())
        if fn in (
            "reduce_sum",
            "reduce_mean",
            "reduce_max",
            "argmax",
            "softmax",
            "log_softmax",
            "expand_dims",
            "squeeze",
        ):
            return (
                f"{fn}({arg}, {'axis=' if fn != 'expand_dims' else ''}"
                f"{draw(st.sampled_from(AXES))})"
            )
        if fn == "cast":
            return f"cast({arg}, {draw(st.sampled_from(DTYPES))})"
        return f"{fn}({arg})"
    if kind == 2:
        a, b = draw(sub()), draw(sub())
        fn = draw(st.sampled_from(["concat", "stack", "maximum", "where"]))
        if fn in ("concat", "stack"):
            return f"{fn}([{a}, {b}], axis={draw(st.sampled_from(AXES))})"
        if fn == "where":
            return f"where({a} > 0, {a}, {b})"
        return f"{fn}({a}, {b})"
    shape = draw(st.lists(st.sampled_from(["-1", "2", "3", "1", "0", "6"]), min_size=1, max_size=3))
    return f"reshape({draw(sub())}, [{', '.join(shape)}])"


@st.composite
def programs(draw):
    lines = ["model m {"]
    shared, dtype = draw(_dims()), draw(st.sampled_from(DTYPES))
    for name in ("x", "y"):  # mostly alike, so that more programs get to run
        dims = shared if draw(st.integers(0, 3)) else draw(_dims())
        dt = dtype if draw(st.integers(0, 3)) else draw(st.sampled_from(DTYPES))
        lines.append(f"  input {name} : {dt}[{', '.join(dims)}]")
    names = ["x", "y"]
    if draw(st.booleans()):
        lines.append(
            f"  param a : f32[{', '.join(d if d.isdigit() else '2' for d in shared)}]"
            " = normal(seed=1)"
        )
        names.append("a")
    lines.append(f"  b = {draw(expressions(tuple(names)))}")
    lines.append(f"  out = {draw(expressions(tuple(names + ['b'])))}")
    lines.append("  output out")
    if draw(st.booleans()):
        lines.append(f"  train {draw(st.sampled_from(['out', 'b']))} with sgd(lr=0.1)")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mutate(text, data):
    """Random edits of a program: characters deleted, duplicated or replaced."""
    chars = list(text)
    for _ in range(data.draw(st.integers(0, 4))):
        if not chars:
            break
        i = data.draw(st.integers(0, len(chars) - 1))
        op = data.draw(st.sampled_from(["del", "dup", "sub"]))
        if op == "del":
            del chars[i]
        elif op == "dup":
            chars.insert(i, chars[i])
        else:
            chars[i] = data.draw(st.sampled_from(list('()[]{}=,:+*-/"\\#@ x1\x00\x0b\u2028é`')))
    return "".join(chars)


def _random_feed(t, data):
    shape = []
    for d in t.shape if t.shape is not None else [None] * data.draw(st.integers(0, 2)):
        shape.append(
            d
            if isinstance(d, int) and data.draw(st.integers(0, 5))
            else data.draw(st.integers(0, 3))
        )
    kind = data.draw(st.sampled_from(["match"] * 4 + ["float", "int", "huge", "list", "nan"]))
    if kind == "match":
        return np.ones(shape, t.dtype.np)
    if kind == "float":
        return np.full(shape, 1.5)
    if kind == "int":
        return np.full(shape, 3, np.int64)
    if kind == "huge":
        return np.full(shape, 2**40, np.int64)
    if kind == "nan":
        return np.full(shape, np.nan, np.float32)
    return np.ones(shape).tolist()


def _build_and_run(text, data, optimize):
    graph = dsl.loads(text, graph=gc.Graph())
    inputs = [op.outputs[0] for op in graph.get_operations() if op.type == "placeholder"]
    feeds = {t: _random_feed(t, data) for t in inputs}
    train = [op for op in graph.get_operations() if op.name == "train"]
    with graph.as_default():
        init = gc.global_variables_initializer()
    with gc.Session(graph=graph, optimize=optimize) as sess, np.errstate(all="ignore"):
        sess.run(init)
        fetches = ["out:0"] + train
        return sess.run(fetches, feeds)


@FUZZ
@given(programs(), st.data(), st.sampled_from([0, 1, 2]))
def test_random_programs_and_feeds_end_in_a_result_or_a_located_error(text, data, optimize):
    _outcome(lambda: _build_and_run(text, data, optimize))


@FUZZ
@given(programs(), st.data())
def test_mutated_programs_end_in_a_result_or_a_located_error(text, data):
    text = _mutate(text, data)
    _outcome(lambda: _build_and_run(text, data, 2))
    result = _outcome(lambda: fmt.format_source(text, "m.g"))
    if isinstance(result, str):  # what formats, parses again to the same layout
        assert fmt.format_source(result, "m.g") == result


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_arbitrary_text_ends_in_a_result_or_a_located_error(text):
    _outcome(lambda: dsl.loads(text, graph=gc.Graph()))


@pytest.mark.parametrize("seed", range(3))
def test_random_feeds_to_a_fixed_model(seed):
    rng = np.random.default_rng(seed)
    text = (
        "model m {\n  input x : f32[N, 3]\n  input k : i32[N]\n"
        "  param w : f32[3, 2] = normal(seed=1)\n  h = softmax(x @ w)\n"
        "  out = reduce_sum(h, axis=1) + cast(k // 2, f32)\n  output out\n}\n"
    )
    g = dsl.loads(text, graph=gc.Graph())
    with g.as_default():
        init = gc.global_variables_initializer()
    with gc.Session(graph=g) as sess:
        sess.run(init)
        for _ in range(30):
            n = int(rng.integers(0, 4))
            xs = [
                np.ones((n, 3), np.float32),
                np.ones((n, 4)),
                np.ones(n),
                np.full((n, 3), np.inf, np.float32),
            ]
            ks = [
                np.arange(n, dtype=np.int32),
                np.full(n, 2**40),
                np.ones(n + 1, np.int32),
                np.zeros(n, np.int32),
            ]
            x, k = xs[rng.integers(len(xs))], ks[rng.integers(len(ks))]
            _outcome(lambda x=x, k=k: sess.run("out:0", {"x:0": x, "k:0": k}))
