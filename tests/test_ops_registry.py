"""Registry-driven op tests (STYLE principle 9).

For every registered op and each of its sample inputs: build the node from placeholders,
check that the static shape and dtype its rule inferred are those the numpy kernel really
returns (also when the inputs' dims are unknown), and compare the kernel's result with an
independent reference written here — per-element Python ``math``, explicit index loops or
nested lists, never the numpy call the kernel itself makes.

An op without samples must be listed in ``NO_SAMPLES`` with the reason and tested
explicitly below; a newly registered op with neither fails ``test_every_op_is_covered``.
An op defined elsewhere may ship its own reference as ``OpDef.extra["reference"]`` (same
signature as the ``REFERENCES`` here); without one its value comparison is skipped, saying so.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import graphc as gc
from graphc.ops.registry import REGISTRY

# --- reference helpers ------------------------------------------------------------------------


def _per_element(fn, out_dtype=None):
    """Apply the Python scalar function ``fn`` element by element (numpy broadcasting)."""

    def ref(arrays, attrs):
        bs = np.broadcast_arrays(*arrays)
        shape = bs[0].shape
        values = [fn(*(b[idx].item() for b in bs)) for idx in np.ndindex(shape)]
        dtype = out_dtype or arrays[-1].dtype
        return np.array(values, dtype=dtype).reshape(shape)

    return ref


def _same(arrays, attrs):
    return arrays[0]


def _reduced(fn):
    """Reduce ``axis`` with the Python function ``fn`` over each row of values."""

    def ref(arrays, attrs):
        (x,), axes, keep = arrays, attrs["axis"], attrs["keepdims"]
        kept = [i for i in range(x.ndim) if i not in axes]
        out_shape = tuple(x.shape[i] for i in kept)
        out = np.empty(out_shape, dtype=x.dtype)
        for o in np.ndindex(out_shape):
            row = []
            for r in np.ndindex(tuple(x.shape[i] for i in axes)):
                full = [0] * x.ndim
                for i, v in zip(kept, o, strict=True):
                    full[i] = v
                for i, v in zip(axes, r, strict=True):
                    full[i] = v
                row.append(x[tuple(full)].item())
            out[o] = fn(row)
        if keep:
            out = out.reshape(tuple(1 if i in axes else d for i, d in enumerate(x.shape)))
        return out

    return ref


def _arg(pick):
    def ref(arrays, attrs):
        (x,), axis = arrays, attrs["axis"]
        moved = np.moveaxis(x, axis, -1)
        out = np.empty(moved.shape[:-1], dtype=attrs["output_type"].np)
        for o in np.ndindex(out.shape):
            row = moved[o].tolist()
            out[o] = pick(range(len(row)), key=row.__getitem__)  # first of ties, as numpy
        return out

    return ref


def _brute_einsum(arrays, attrs):
    """Sum over every assignment of the index letters: the definition of einsum."""
    subs, out = attrs["subscripts"], attrs["output"]
    sizes = {}
    for a, s in zip(arrays, subs, strict=True):
        sizes.update(zip(s, a.shape, strict=True))
    letters = sorted(sizes)
    result = np.zeros(tuple(sizes[c] for c in out), dtype=arrays[0].dtype)
    for values in itertools.product(*(range(sizes[c]) for c in letters)):
        at = dict(zip(letters, values, strict=True))
        term = 1.0
        for a, s in zip(arrays, subs, strict=True):
            term *= a[tuple(at[c] for c in s)]
        result[tuple(at[c] for c in out)] += term
    return result


def _matmul_ref(arrays, attrs):
    a, b = arrays
    if attrs["transpose_a"]:
        a = np.swapaxes(a, -1, -2)
    if attrs["transpose_b"]:
        b = np.swapaxes(b, -1, -2)
    return np.einsum("...ij,...jk->...ik", a, b)


def _flat_fill(values, shape, dtype):
    out = np.empty(shape, dtype=dtype)
    out.flat[:] = list(values)
    return out


def _reshape_ref(arrays, attrs):
    (x,) = arrays
    target = list(attrs["shape"])
    if -1 in target:
        target[target.index(-1)] = x.size // -math.prod(target)
    return _flat_fill(x.flat, tuple(target), x.dtype)


def _transpose_ref(arrays, attrs):
    (x,), perm = arrays, attrs["perm"]
    out = np.empty(tuple(x.shape[p] for p in perm), dtype=x.dtype)
    for i in np.ndindex(x.shape):
        out[tuple(i[p] for p in perm)] = x[i]
    return out


def _concat_ref(arrays, attrs):
    axis = attrs["axis"]
    shape = list(arrays[0].shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    out = np.empty(shape, dtype=arrays[0].dtype)
    offset = 0
    for a in arrays:
        for i in np.ndindex(a.shape):
            j = list(i)
            j[axis] += offset
            out[tuple(j)] = a[i]
        offset += a.shape[axis]
    return out


def _pieces(x, sizes, axis):
    bounds = list(itertools.accumulate(sizes, initial=0))
    return [np.take(x, list(range(lo, hi)), axis=axis) for lo, hi in itertools.pairwise(bounds)]


def _split_ref(arrays, attrs):
    """TF's split: all -1 -> that many equal parts; one -1 -> what the others leave."""
    x, sizes, axis = arrays[0], list(attrs["sizes"]), attrs["axis"] % arrays[0].ndim
    d = x.shape[axis]
    if len(sizes) > 1 and all(s == -1 for s in sizes):
        sizes = [d // len(sizes)] * len(sizes)
    elif -1 in sizes:
        sizes[sizes.index(-1)] = d - sum(s for s in sizes if s != -1)
    return _pieces(x, sizes, axis)


def _index_list(value, key):
    """``value[key]`` on nested Python lists, for ints, slices and None."""
    if not key:
        return value
    k, rest = key[0], key[1:]
    if k is None:
        return [_index_list(value, rest)]
    if isinstance(k, slice):
        return [_index_list(v, rest) for v in value[k]]
    return _index_list(value[k], rest)


def _getitem_ref(arrays, attrs):
    (x,) = arrays
    return np.array(_index_list(x.tolist(), attrs["key"]), dtype=x.dtype)


def _getitem_grad_ref(arrays, attrs):
    g, like = arrays
    positions = np.array(
        _index_list(np.arange(like.size).reshape(like.shape).tolist(), attrs["key"])
    )
    out = np.zeros(like.size, dtype=g.dtype)
    for p, v in zip(positions.flat, g.flat, strict=True):
        out[p] += v
    return out.reshape(like.shape)


def _gather_positions(out_shape, idx, axis):
    """For each output index of a gather: the params index it reads."""
    for o in np.ndindex(out_shape):
        pre, i, post = o[:axis], o[axis : axis + idx.ndim], o[axis + idx.ndim :]
        yield o, pre + (int(idx[i]),) + post


def _gather_ref(arrays, attrs):
    p, idx = arrays
    axis = attrs["axis"]
    out = np.empty(p.shape[:axis] + idx.shape + p.shape[axis + 1 :], dtype=p.dtype)
    for o, src in _gather_positions(out.shape, idx, axis):
        out[o] = p[src]
    return out


def _gather_grad_ref(arrays, attrs):
    g, idx, params = arrays
    out = np.zeros(params.shape, dtype=g.dtype)
    for o, dst in _gather_positions(g.shape, idx, attrs["axis"]):
        out[dst] += g[o]
    return out


def _one_hot_ref(arrays, attrs):
    (idx,) = arrays
    rows = [
        [attrs["on"] if j == i else attrs["off"] for j in range(attrs["depth"])]
        for i in idx.tolist()
    ]
    return np.array(rows, dtype=attrs["dtype"].np)


def _broadcast_index(o, x_shape):
    lead = len(o) - len(x_shape)
    return tuple(0 if d == 1 else i for i, d in zip(o[lead:], x_shape, strict=True))


def _broadcast_ref(target):
    def ref(arrays, attrs):
        x = arrays[0]
        shape = target(arrays, attrs)
        out = np.empty(shape, dtype=x.dtype)
        for o in np.ndindex(shape):
            out[o] = x[_broadcast_index(o, x.shape)]
        return out

    return ref


def _sum_to_like_ref(arrays, attrs):
    g, like = arrays
    out = np.zeros(like.shape, dtype=g.dtype)
    for o in np.ndindex(g.shape):
        out[_broadcast_index(o, like.shape)] += g[o]
    return out


def _tile_ref(arrays, attrs):
    (x,) = arrays
    shape = tuple(d * m for d, m in zip(x.shape, attrs["multiples"], strict=True))
    out = np.empty(shape, dtype=x.dtype)
    for o in np.ndindex(shape):
        out[o] = x[tuple(i % d for i, d in zip(o, x.shape, strict=True))]
    return out


def _tile_grad_ref(arrays, attrs):
    g, x = arrays
    out = np.zeros(x.shape, dtype=g.dtype)
    for o in np.ndindex(g.shape):
        out[tuple(i % d for i, d in zip(o, x.shape, strict=True))] += g[o]
    return out


def _pad_ref(arrays, attrs):
    (x,), p = arrays, attrs["paddings"]
    shape = tuple(d + a + b for d, (a, b) in zip(x.shape, p, strict=True))
    out = np.full(shape, attrs["constant_values"], dtype=x.dtype)
    for i in np.ndindex(x.shape):
        out[tuple(k + a for k, (a, _) in zip(i, p, strict=True))] = x[i]
    return out


def _squeeze_ref(arrays, attrs):
    (x,) = arrays
    return x[tuple(0 if i in attrs["axis"] else slice(None) for i in range(x.ndim))]


def _expand_dims_ref(arrays, attrs):
    (x,) = arrays
    return x[(slice(None),) * attrs["axis"] + (None,)]


def _cast_ref(arrays, attrs):
    (x,) = arrays
    return np.array([attrs["dtype"].np.type(v) for v in x.flat]).reshape(x.shape)


def _sign(a):
    return (a > 0) - (a < 0)


# --- convolution and pooling, by their definition: loops over windows ---------------------------


def _axis_geometry(size, k, stride, padding):
    """TF's rule: output length and cells padded before, for one spatial axis."""
    if padding == "SAME":
        out = -(-size // stride)
        return out, max((out - 1) * stride + k - size, 0) // 2
    return (size - k) // stride + 1, 0


def _windows(hw, ksize, strides, padding):
    """For each output (i, j): the in-bounds cells (di, dj, y, x) of its window."""
    (oh, pt), (ow, pl) = (_axis_geometry(hw[a], ksize[a], strides[a], padding) for a in (0, 1))
    for i, j in itertools.product(range(oh), range(ow)):
        cells = [
            (di, dj, i * strides[0] + di - pt, j * strides[1] + dj - pl)
            for di, dj in itertools.product(range(ksize[0]), range(ksize[1]))
        ]
        yield i, j, [c for c in cells if 0 <= c[2] < hw[0] and 0 <= c[3] < hw[1]]


def _out_hw(hw, ksize, strides, padding):
    return tuple(_axis_geometry(hw[a], ksize[a], strides[a], padding)[0] for a in (0, 1))


def _conv2d_ref(arrays, attrs):
    x, w = arrays
    s, p = attrs["strides"], attrs["padding"]
    out = np.zeros((x.shape[0],) + _out_hw(x.shape[1:3], w.shape[:2], s, p) + (w.shape[3],))
    for i, j, cells in _windows(x.shape[1:3], w.shape[:2], s, p):
        for di, dj, y, xx in cells:
            out[:, i, j, :] += x[:, y, xx, :] @ w[di, dj]
    return out


def _conv2d_backprop_input_ref(arrays, attrs):
    g, w = arrays
    shape = attrs["input_shape"]
    dx = np.zeros((g.shape[0],) + tuple(shape[1:]))
    for i, j, cells in _windows(shape[1:3], w.shape[:2], attrs["strides"], attrs["padding"]):
        for di, dj, y, xx in cells:
            dx[:, y, xx, :] += g[:, i, j, :] @ w[di, dj].T
    return dx


def _conv2d_backprop_filter_ref(arrays, attrs):
    x, g = arrays
    fs = attrs["filter_shape"]
    dw = np.zeros(fs)
    for i, j, cells in _windows(x.shape[1:3], fs[:2], attrs["strides"], attrs["padding"]):
        for di, dj, y, xx in cells:
            dw[di, dj] += x[:, y, xx, :].T @ g[:, i, j, :]
    return dw


def _pool_ref(reduce_window):
    """``reduce_window(values of one window, as a list) -> value`` for each (n, c)."""

    def ref(arrays, attrs):
        x = arrays[0]
        k, s, p = attrs["ksize"], attrs["strides"], attrs["padding"]
        n, _, _, c = x.shape
        out = np.zeros((n,) + _out_hw(x.shape[1:3], k, s, p) + (c,))
        for i, j, cells in _windows(x.shape[1:3], k, s, p):
            for b, ch in itertools.product(range(n), range(c)):
                out[b, i, j, ch] = reduce_window([x[b, y, xx, ch] for _, _, y, xx in cells])
        return out

    return ref


def _winner(x, b, ch, cells):
    """The window cell holding the largest value of x: the first in row-major order on ties."""
    values = [x[b, y, xx, ch] for _, _, y, xx in cells]
    _, _, y, xx = cells[values.index(max(values))]
    return y, xx


def _max_pool_grad_ref(arrays, attrs):
    x, g = arrays
    dx = np.zeros(x.shape)
    for i, j, cells in _windows(x.shape[1:3], attrs["ksize"], attrs["strides"], attrs["padding"]):
        for b, ch in itertools.product(range(x.shape[0]), range(x.shape[3])):
            y, xx = _winner(x, b, ch, cells)
            dx[b, y, xx, ch] += g[b, i, j, ch]
    return dx


def _max_pool_select_ref(arrays, attrs):
    x, d = arrays
    k, s, p = attrs["ksize"], attrs["strides"], attrs["padding"]
    out = np.zeros((x.shape[0],) + _out_hw(x.shape[1:3], k, s, p) + (x.shape[3],))
    for i, j, cells in _windows(x.shape[1:3], k, s, p):
        for b, ch in itertools.product(range(x.shape[0]), range(x.shape[3])):
            out[b, i, j, ch] = d[(b,) + _winner(x, b, ch, cells) + (ch,)]
    return out


def _avg_pool_grad_ref(arrays, attrs):
    (g,), shape = arrays, attrs["input_shape"]
    dx = np.zeros((g.shape[0],) + tuple(shape[1:]))
    for i, j, cells in _windows(shape[1:3], attrs["ksize"], attrs["strides"], attrs["padding"]):
        for _, _, y, xx in cells:
            dx[:, y, xx, :] += g[:, i, j, :] / len(cells)
    return dx


# The reference of every op that has samples: ``(arrays, attrs) -> expected`` (a list for
# ops with several outputs).
REFERENCES = {
    # elementwise unary
    "neg": _per_element(lambda a: -a),
    "abs": _per_element(abs),
    "sign": _per_element(_sign),
    "exp": _per_element(math.exp),
    "log": _per_element(math.log),
    "log1p": _per_element(math.log1p),
    "expm1": _per_element(math.expm1),
    "sqrt": _per_element(math.sqrt),
    "rsqrt": _per_element(lambda a: 1 / math.sqrt(a)),
    "square": _per_element(lambda a: a * a),
    "reciprocal": _per_element(lambda a: 1 / a),
    "sin": _per_element(math.sin),
    "cos": _per_element(math.cos),
    "tanh": _per_element(math.tanh),
    "sigmoid": _per_element(lambda a: 1 / (1 + math.exp(-a))),
    "erf": _per_element(math.erf),
    "floor": _per_element(math.floor),
    "ceil": _per_element(math.ceil),
    "round": _per_element(round),  # Python rounds half to even, as the op promises
    "logical_not": _per_element(lambda a: not a),
    "is_nan": _per_element(math.isnan, bool),
    "is_finite": _per_element(math.isfinite, bool),
    # elementwise binary
    "add": _per_element(lambda a, b: a + b),
    "subtract": _per_element(lambda a, b: a - b),
    "multiply": _per_element(lambda a, b: a * b),
    "divide": _per_element(lambda a, b: a / b),
    "floordiv": _per_element(lambda a, b: a // b),
    "mod": _per_element(lambda a, b: a % b),
    "pow": _per_element(lambda a, b: a**b),
    "maximum": _per_element(max),
    "minimum": _per_element(min),
    "equal": _per_element(lambda a, b: a == b, bool),
    "not_equal": _per_element(lambda a, b: a != b, bool),
    "less": _per_element(lambda a, b: a < b, bool),
    "less_equal": _per_element(lambda a, b: a <= b, bool),
    "greater": _per_element(lambda a, b: a > b, bool),
    "greater_equal": _per_element(lambda a, b: a >= b, bool),
    "logical_and": _per_element(lambda a, b: a and b),
    "logical_or": _per_element(lambda a, b: a or b),
    "logical_xor": _per_element(lambda a, b: a != b),
    "where": _per_element(lambda c, a, b: a if c else b),
    "cast": _cast_ref,
    "identity": _same,
    "stop_gradient": _same,
    "placeholder_with_default": _same,
    "print": _same,
    "check_numerics": _same,
    # reductions
    "reduce_sum": _reduced(math.fsum),
    "reduce_mean": _reduced(lambda r: math.fsum(r) / len(r)),
    "reduce_max": _reduced(max),
    "reduce_min": _reduced(min),
    "reduce_prod": _reduced(math.prod),
    "reduce_any": _reduced(any),
    "reduce_all": _reduced(all),
    "argmax": _arg(max),
    "argmin": _arg(min),
    "sum_to_like": _sum_to_like_ref,
    # linear algebra
    "matmul": _matmul_ref,
    "einsum": _brute_einsum,
    # shapes and layout
    "const": lambda arrays, attrs: attrs["value"],
    "fill": lambda arrays, attrs: _flat_fill(
        [attrs["value"]] * math.prod(attrs["shape"]), attrs["shape"], attrs["dtype"].np
    ),
    "fill_like": lambda arrays, attrs: _flat_fill(
        [attrs["value"]] * arrays[0].size, arrays[0].shape, attrs["dtype"].np
    ),
    "reshape": _reshape_ref,
    "reshape_like": lambda arrays, attrs: _flat_fill(
        arrays[0].flat, arrays[1].shape, arrays[0].dtype
    ),
    "transpose": _transpose_ref,
    "expand_dims": _expand_dims_ref,
    "squeeze": _squeeze_ref,
    "concat": _concat_ref,
    "split": _split_ref,
    "split_like": lambda arrays, attrs: _pieces(
        arrays[0], [a.shape[attrs["axis"]] for a in arrays[1:]], attrs["axis"]
    ),
    "getitem": _getitem_ref,
    "getitem_grad": _getitem_grad_ref,
    "gather": _gather_ref,
    "gather_grad": _gather_grad_ref,
    "one_hot": _one_hot_ref,
    "broadcast_to": _broadcast_ref(
        lambda arrays, attrs: np.broadcast_shapes(arrays[0].shape, attrs["shape"])
    ),
    "broadcast_like": _broadcast_ref(
        lambda arrays, attrs: np.broadcast_shapes(arrays[0].shape, arrays[1].shape)
    ),
    "tile": _tile_ref,
    "tile_grad": _tile_grad_ref,
    "pad": _pad_ref,
    "shape": lambda arrays, attrs: np.array(list(arrays[0].shape), dtype=attrs["dtype"].np),
    "size": lambda arrays, attrs: np.array(math.prod(arrays[0].shape), dtype=attrs["dtype"].np),
    # convolution and pooling (NHWC, HWIO; TF's SAME/VALID geometry)
    "conv2d": _conv2d_ref,
    "conv2d_backprop_input": _conv2d_backprop_input_ref,
    "conv2d_backprop_filter": _conv2d_backprop_filter_ref,
    "max_pool": _pool_ref(max),
    "max_pool_grad": _max_pool_grad_ref,
    "max_pool_select": _max_pool_select_ref,
    "avg_pool": _pool_ref(lambda values: math.fsum(values) / len(values)),
    "avg_pool_grad": _avg_pool_grad_ref,
}


# --- random ops: the reference is a statement about the distribution -------------------------


def _check_normal(value, attrs, truncated=False):
    n = value.size
    mean, std = attrs["mean"], attrs["stddev"]
    z = (value.astype(np.float64) - mean) / std
    # truncation at two standard deviations leaves a variance of about 0.774
    want_var = 0.7737413 if truncated else 1.0
    assert abs(z.mean()) < 5 * math.sqrt(want_var / n)
    assert abs(z.var() - want_var) < 5 * math.sqrt(2 / n)
    if truncated:
        assert np.abs(z).max() <= 2.0 + 1e-6


def _check_uniform(value, attrs):
    lo, hi = attrs["minval"], attrs["maxval"]
    assert value.min() >= lo and value.max() < hi
    if attrs["dtype"].is_integer:
        assert set(np.unique(value).tolist()) == set(range(lo, hi))
    else:
        u = (value.astype(np.float64) - lo) / (hi - lo)
        assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12 / value.size)


def _check_permutation(value, attrs):
    assert sorted(value.tolist()) == list(range(attrs["n"]))


RANDOM_CHECKS = {
    "random_normal": _check_normal,
    "truncated_normal": lambda v, a: _check_normal(v, a, truncated=True),
    "random_uniform": _check_uniform,
    "random_permutation": _check_permutation,
}

# Ops without samples: they read or write session state, so a sample array cannot describe
# them. Each has its own test below.
NO_SAMPLES = {
    "placeholder": "only ever fed, never computed: test_placeholder_is_fed",
    "variable": "its value lives in the session: test_variable_and_assignments",
    "assign": "writes a variable: test_variable_and_assignments",
    "assign_add": "updates a variable in place: test_variable_and_assignments",
    "assign_sub": "updates a variable in place: test_variable_and_assignments",
    "no_op": "has no output, only control edges: test_no_op_and_group_run_their_inputs",
    "custom_gradient": "wraps a user's function and grad_fn: test_custom_gradient_op",
    "cond": "runs traced sub-graphs (Functions), not arrays: tests/test_control.py",
    "while_loop": "runs traced sub-graphs (Functions), not arrays: tests/test_control.py",
    "scan": "runs traced sub-graphs (Functions), not arrays: tests/test_control.py",
}


# Ops whose static shape is the ``shape`` attribute the user declared, not the input's.
DECLARED_SHAPE = {"placeholder_with_default"}


def _cases():
    rng = np.random.default_rng(1234)
    for name in sorted(REGISTRY):
        opdef = REGISTRY[name]
        if opdef.samples is None:
            continue
        for i, (arrays, attrs) in enumerate(opdef.samples(rng)):
            arrays = [np.asarray(a) for a in arrays]
            yield pytest.param(opdef, arrays, attrs, id=f"{name}-{i}")


CASES = list(_cases())


# --- the generic checks -----------------------------------------------------------------------


def test_every_op_is_covered():
    """A new op needs samples and a reference here, or a stated reason in NO_SAMPLES."""
    for name, opdef in REGISTRY.items():
        if opdef.extra.get("user"):  # registered by a user with gc.register_op
            continue
        if opdef.samples is None:
            assert name in NO_SAMPLES, f"op {name!r} has no samples and no reason in NO_SAMPLES"
        else:
            assert name not in NO_SAMPLES, f"op {name!r} now has samples: drop it from NO_SAMPLES"


def _build(opdef, arrays, attrs, shapes):
    inputs = [
        gc.placeholder(gc.as_dtype(a.dtype), shape=s) for a, s in zip(arrays, shapes, strict=True)
    ]
    node = opdef.build(inputs, dict(attrs))
    return inputs, node


def _run(node, inputs, arrays):
    with gc.Session(graph=node.graph, optimize=0) as sess:
        return sess.run(list(node.outputs), dict(zip(inputs, arrays, strict=True)))


@pytest.mark.parametrize("opdef, arrays, attrs", CASES)
def test_rule_and_kernel_match_reference(opdef, arrays, attrs):
    inputs, node = _build(opdef, arrays, attrs, [a.shape for a in arrays])
    results = [np.asarray(r) for r in _run(node, inputs, arrays)]
    for t, r in zip(node.outputs, results, strict=True):
        static = tuple(t.shape)
        if opdef.name in DECLARED_SHAPE:  # the node's own shape attr may leave dims open
            static = tuple(
                d if d is not None else n for d, n in zip(attrs["shape"], r.shape, strict=True)
            )
        assert static == r.shape, f"{opdef.name}: rule says {t.shape}, kernel gave {r.shape}"
        assert t.dtype.np == r.dtype, f"{opdef.name}: rule says {t.dtype}, kernel gave {r.dtype}"
    if opdef.name in RANDOM_CHECKS:
        RANDOM_CHECKS[opdef.name](results[0], attrs)
        return
    reference = REFERENCES.get(opdef.name) or opdef.extra.get("reference")
    if reference is None:
        pytest.skip(f"{opdef.name} has no independent reference (REFERENCES or extra['reference'])")
    expected = reference(arrays, attrs)
    expected = expected if isinstance(expected, list) else [expected]
    assert len(expected) == len(results)
    for want, got in zip(expected, results, strict=True):
        want = np.asarray(want)
        assert want.shape == got.shape
        if got.dtype.kind == "f":
            tol = 1e-6 if got.dtype == np.float32 else 1e-12
            np.testing.assert_allclose(got, want.astype(got.dtype), rtol=tol, atol=tol)
        else:
            np.testing.assert_array_equal(got, want.astype(got.dtype))


@pytest.mark.parametrize("opdef, arrays, attrs", [c for c in CASES if c.values[1]])
def test_rule_with_unknown_dims_agrees_with_kernel(opdef, arrays, attrs):
    """With every input dim unknown the rule must still build the node, and each dim it does
    claim to know must be the real one. A rule may instead refuse, but only with a ShapeError
    that explains what it needs static (conv2d needs the image size, for instance)."""
    shapes = [(None,) * a.ndim for a in arrays]
    try:
        inputs, node = _build(opdef, arrays, attrs, shapes)
    except gc.ShapeError as e:
        assert "static" in str(e) or "known" in str(e), str(e)
        return
    results = _run(node, inputs, arrays)
    for t, r in zip(node.outputs, results, strict=True):
        r = np.asarray(r)
        assert t.shape is None or len(t.shape) == r.ndim
        if t.shape is not None:
            for claimed, real in zip(t.shape, r.shape, strict=True):
                assert claimed is None or claimed == real, f"{opdef.name}: {t.shape} vs {r.shape}"


def test_random_samples_are_reproducible():
    """Each random op's samples give the same numbers in two fresh sessions."""
    for name in RANDOM_CHECKS:
        for arrays, attrs in REGISTRY[name].samples(np.random.default_rng(0)):
            arrays = [np.asarray(a) for a in arrays]
            inputs, node = _build(REGISTRY[name], arrays, attrs, [a.shape for a in arrays])
            first, second = _run(node, inputs, arrays), _run(node, inputs, arrays)
            np.testing.assert_array_equal(first[0], second[0])


# --- ops without samples ----------------------------------------------------------------------


def test_placeholder_is_fed():
    x = gc.placeholder(gc.int16, shape=(2, None), name="x")
    assert x.dtype is gc.int16 and tuple(x.shape) == (2, None)
    fed = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int16)
    with gc.Session() as sess:
        np.testing.assert_array_equal(sess.run(x, {x: fed}), fed)
        with pytest.raises(gc.FeedError, match="'x'"):
            sess.run(x + 1)


def test_variable_and_assignments():
    v = gc.Variable(np.array([1.0, 2.0, 3.0]), name="v")
    assert v.op.op is REGISTRY["variable"] and tuple(v.shape) == (3,) and v.dtype is gc.float64
    set_to = gc.assign(v, [10.0, 20.0, 30.0])
    add = gc.assign_add(v, [1.0, 1.0, 1.0])
    sub = gc.assign_sub(v, [0.5, 0.5, 0.5])
    for t in (set_to, add, sub):
        assert t.dtype is v.dtype and tuple(t.shape) == (3,)
    with gc.Session() as sess:
        sess.run(v.initializer)
        np.testing.assert_array_equal(sess.run(v), [1, 2, 3])
        np.testing.assert_array_equal(sess.run(set_to), [10, 20, 30])
        np.testing.assert_array_equal(sess.run(add), [11, 21, 31])
        np.testing.assert_array_equal(sess.run(sub), [10.5, 20.5, 30.5])
        np.testing.assert_array_equal(sess.run(v), [10.5, 20.5, 30.5])


def test_no_op_and_group_run_their_inputs():
    v = gc.Variable(0, name="count")
    step = gc.group(v.assign_add(1), gc.no_op())
    assert step.outputs == () and step.op is REGISTRY["no_op"]
    with gc.Session() as sess:
        sess.run(v.initializer)
        assert sess.run(step) is None
        sess.run(step)
        assert sess.run(v) == 2


def test_custom_gradient_op():
    if not hasattr(gc, "custom_gradient"):
        pytest.skip("gc.custom_gradient is not in this build")

    @gc.custom_gradient
    def scaled_identity(x):
        return gc.identity(x), lambda dy: dy * 3.0

    x = gc.placeholder(gc.float64, shape=(3,))
    y = scaled_identity(x)
    (g,) = gc.gradients(gc.reduce_sum(y * y), [x])
    values = np.array([1.0, -2.0, 0.5])
    with gc.Session(optimize=0) as sess:  # the kernels, as everywhere in this file
        got_y, got_g = sess.run([y, g], {x: values})
    np.testing.assert_array_equal(got_y, values)
    np.testing.assert_allclose(got_g, 3.0 * 2.0 * values)  # grad_fn's rule, not identity's
