"""Convolution, pooling and normalization (NHWC images, HWIO filters, as TensorFlow).

Rules shared by every op here:
  * ``strides`` is ``(stride_h, stride_w)`` and ``padding`` is ``"SAME"`` or ``"VALID"``.
    SAME gives ``ceil(size / stride)`` outputs and pads ``total = max((out - 1) * stride +
    k - size, 0)`` cells, ``total // 2`` before and the rest after (TF's convention, so an
    odd pad lands at the bottom/right).
  * The spatial dims and channels must be static (the batch may be ``None``): gradients
    need them to rebuild the input's shape.
  * Kernels are im2col: ``sliding_window_view`` gives every window as a strided view, one
    copy lays the patches out as a matrix, and a single BLAS matmul contracts it with the
    filter (the filter gradient reuses the same matrix). Input gradients and pooling
    gradients scatter with one strided ``+=`` per window tap (``kh * kw``), never per pixel.
    These are the reference kernels: with a C++ compiler the numpy executor runs compiled
    direct convolutions and pooling in their place (``backends/conv_cpu.py``).

Each linear op comes with its adjoint, so gradients of gradients stay in this file:
conv2d <-> conv2d_backprop_input / conv2d_backprop_filter, avg_pool <-> avg_pool_grad,
max_pool_grad <-> max_pool_select (both route values through the argmax of each window).
batch_normalization and layer_normalization are composites of primitives (STYLE 3)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import DTypeError, ShapeError
from .elementwise import rsqrt
from .nn import moments
from .registry import OpDef, register
from .sources import convert

# --- geometry ---------------------------------------------------------------------------------


def _out_and_pads(size, k, stride, padding):
    """Output length and (before, after) padding of one spatial axis."""
    if padding == "SAME":
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        return out, (total // 2, total - total // 2)
    return (size - k) // stride + 1, (0, 0)


def _geometry(hw, ksize, strides, padding):
    (oh, ph), (ow, pw) = (_out_and_pads(hw[i], ksize[i], strides[i], padding) for i in (0, 1))
    return (oh, ow), (ph, pw)


def _pad(x, pads, value=0.0):
    (pt, pb), (pl, pr) = pads
    if not (pt or pb or pl or pr):
        return x
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=value)


def _windows(xp, ksize, strides, out_hw):
    """Every window of padded ``xp`` as a view of shape (N, oh, ow, C, kh, kw)."""
    (sh, sw), (oh, ow) = strides, out_hw
    return sliding_window_view(xp, ksize, axis=(1, 2))[:, ::sh, ::sw][:, :oh, :ow]


def _tap(i, j, strides, out_hw):
    """The index of padded-input cells that filter tap (i, j) touches, one per output."""
    (sh, sw), (oh, ow) = strides, out_hw
    return (slice(None), slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw))


def _scatter_taps(per_tap, input_shape, ksize, strides, padding, dtype):
    """Sum ``per_tap(i, j)`` (an (N, oh, ow, C) array) into the input cells each tap read,
    then crop the padding: the adjoint of taking windows."""
    n, h, w, c = input_shape
    out_hw, ((pt, pb), (pl, pr)) = _geometry((h, w), ksize, strides, padding)
    dxp = np.zeros((n, h + pt + pb, w + pl + pr, c), dtype)
    for i in range(ksize[0]):
        for j in range(ksize[1]):
            dxp[_tap(i, j, strides, out_hw)] += per_tap(i, j)
    return dxp[:, pt : pt + h, pl : pl + w]


# --- shape rules ------------------------------------------------------------------------------


def _static_image(t, what):
    """(H, W, C) of an NHWC tensor, all static; all ``None`` when its rank is unknown
    (the plan resolves them from the fed shape)."""
    if t.shape is None:
        return (None, None, None)
    if len(t.shape) != 4:
        raise ShapeError(
            f"{what} needs a 4-d NHWC tensor (batch, height, width, channels), got {t.describe()}"
        )
    hwc = t.shape[1:]
    if not all(isinstance(d, int) for d in hwc):
        raise ShapeError(
            f"{what} needs static height, width and channels (the batch may be "
            f"None), got {t.describe()}; reshape to a known image size first"
        )
    return hwc


def _check_float(what, *ts):
    for t in ts:
        if not t.dtype.is_floating:
            raise DTypeError(f"{what} needs floating tensors, got {t.describe()}")
        if t.dtype is not ts[0].dtype:
            raise DTypeError(f"{what} got mixed dtypes: {ts[0].describe()} and {t.describe()}")


def _pooled_shape(n, hw, c, ksize, strides, padding, what):
    if hw[0] is None:
        return (None, None, None, c)
    (oh, ow), _ = _geometry(hw, ksize, strides, padding)
    if oh < 1 or ow < 1:
        raise ShapeError(
            f"{what}: a {ksize[0]}x{ksize[1]} window with {padding} padding does "
            f"not fit a {hw[0]}x{hw[1]} image"
        )
    return (n, oh, ow, c)


def _conv_infer(ins, attrs):
    x, w = ins
    _check_float("conv2d", x, w)
    h, wd, c = _static_image(x, "conv2d")
    if w.shape is None:  # unknown rank: the plan resolves the shape from the feeds
        return [(x.dtype, (None,) * 4)]
    if x.shape is None and len(w.shape) == 4:
        return [(x.dtype, (None, None, None, w.shape[3]))]
    if w.shape is None or len(w.shape) != 4 or not all(isinstance(d, int) for d in w.shape):
        raise ValueError(
            f"the filter must be a static 4-d (height, width, in_channels, "
            f"out_channels) tensor, got {w.describe()}"
        )
    kh, kw, ci, co = w.shape
    if c is not None and ci != c:
        raise ValueError(f"the input has {c} channels but the filter {w.describe()} expects {ci}")
    return [
        (
            x.dtype,
            _pooled_shape(
                x.shape[0], (h, wd), co, (kh, kw), attrs["strides"], attrs["padding"], "conv2d"
            ),
        )
    ]


def _backprop_input_infer(ins, attrs):
    g, w = ins
    _check_float("conv2d_backprop_input", g, w)
    shape = tuple(attrs["input_shape"])
    if g.shape is None or w.shape is None:
        return [(g.dtype, (None,) + shape[1:])]
    if len(g.shape) != 4 or len(w.shape) != 4:
        raise ValueError(f"needs a 4-d gradient and filter, got {g.describe()} and {w.describe()}")
    if all(isinstance(d, int) for d in tuple(w.shape) + shape[1:]):
        (oh, ow), _ = _geometry(shape[1:3], w.shape[:2], attrs["strides"], attrs["padding"])
        want = (oh, ow, w.shape[3])
        if (
            any(isinstance(a, int) and a != b for a, b in zip(g.shape[1:], want, strict=True))
            or w.shape[2] != shape[3]
        ):
            raise ValueError(
                f"a {attrs['padding']} convolution with strides "
                f"{attrs['strides']} and filter {tuple(w.shape)} maps "
                f"{shape[1:]} to {want}, which {g.describe()} is not"
            )
    return [(g.dtype, (g.shape[0],) + shape[1:])]


def _backprop_filter_infer(ins, attrs):
    x, g = ins
    _check_float("conv2d_backprop_filter", x, g)
    return [(x.dtype, tuple(attrs["filter_shape"]))]


def _pool_infer(ins, attrs):
    x = ins[0]
    _check_float("pool", *ins)
    h, w, c = _static_image(x, "pooling")
    n = None if x.shape is None else x.shape[0]
    return [
        (
            x.dtype,
            _pooled_shape(
                n, (h, w), c, attrs["ksize"], attrs["strides"], attrs["padding"], "pooling"
            ),
        )
    ]


def _like_input_infer(ins, attrs):
    """The shape of the op's input ``x`` (max_pool_grad)."""
    _check_float("max_pool_grad", *ins)
    return [(ins[0].dtype, ins[0].shape)]


def _avg_pool_grad_infer(ins, attrs):
    g = ins[0]
    _check_float("avg_pool_grad", g)
    return [(g.dtype, (None if g.shape is None else g.shape[0],) + tuple(attrs["input_shape"][1:]))]


# --- conv2d and its two adjoints --------------------------------------------------------------


def _im2col(x, ksize, strides, padding):
    """The patches of ``x`` as a (N * oh * ow, kh * kw * C) matrix, one row per output cell,
    in the filter's (h, w, in) order: the single copy a convolution makes."""
    out_hw, pads = _geometry(x.shape[1:3], ksize, strides, padding)
    wins = _windows(_pad(x, pads), ksize, strides, out_hw)  # (N, oh, ow, C, kh, kw)
    cols = wins.transpose(0, 1, 2, 4, 5, 3).reshape(-1, ksize[0] * ksize[1] * x.shape[3])
    return cols, out_hw


# im2col holds every input cell kh * kw times. Beyond this many elements the kernels work
# through the batch in slices, so that evaluating a CNN on 10,000 images at once takes
# megabytes of patches rather than gigabytes (and each slice stays closer to the cache).
_PATCH_BUDGET = 1 << 22


def _batch_slices(n, patch_elements_per_example):
    step = max(1, _PATCH_BUDGET // max(patch_elements_per_example, 1))
    return [slice(b, min(b + step, n)) for b in range(0, n, step)]


def _written(result, out):
    """``result``, or ``out`` holding it (the kernels take ``out=``: the plan gives them a
    buffer of the arena rather than a new array per call)."""
    if out is None:
        return result
    out[...] = result
    return out


def _conv2d(x, w, strides, padding, out=None):
    kh, kw, c, o = w.shape
    (oh, ow), _ = _geometry(x.shape[1:3], (kh, kw), strides, padding)
    dst = out
    if out is None or not out.flags.c_contiguous:  # matmul writes through a reshaped view
        dst = np.empty((x.shape[0], oh, ow, o), np.result_type(x, w))
    w2 = w.reshape(-1, o)
    for b in _batch_slices(x.shape[0], oh * ow * kh * kw * c):
        cols, _ = _im2col(x[b], (kh, kw), strides, padding)
        np.matmul(cols, w2, out=dst[b].reshape(-1, o))  # one BLAS matmul
    return dst if dst is out else _written(dst, out)


def _conv2d_backprop_input(g, w, input_shape, strides, padding, out=None):
    kh, kw, c, o = w.shape
    n, oh, ow = g.shape[:3]
    dx = np.empty((n,) + tuple(input_shape[1:]), np.result_type(g, w)) if out is None else out
    w2t = w.reshape(-1, o).T
    for b in _batch_slices(n, oh * ow * kh * kw * c):
        taps = (g[b].reshape(-1, o) @ w2t).reshape((-1, oh, ow, kh, kw, c))
        dx[b] = _scatter_taps(
            lambda i, j, t=taps: t[:, :, :, i, j], dx[b].shape, (kh, kw), strides, padding, dx.dtype
        )
    return dx


def _conv2d_backprop_filter(x, g, filter_shape, strides, padding, out=None):
    kh, kw, c, o = filter_shape
    n, oh, ow = g.shape[:3]
    dw = np.zeros((kh * kw * c, o), np.result_type(x, g))
    for b in _batch_slices(n, oh * ow * kh * kw * c):
        cols, _ = _im2col(x[b], (kh, kw), strides, padding)
        dw += cols.T @ g[b].reshape(-1, o)
    return _written(dw.reshape(filter_shape), out)


def _conv_attrs(op):
    return {"strides": op.attrs["strides"], "padding": op.attrs["padding"]}


def _conv_grad(op, g):
    x, w = op.inputs
    return [
        CONV2D_BACKPROP_INPUT(g, w, input_shape=x.shape, **_conv_attrs(op)),
        CONV2D_BACKPROP_FILTER(x, g, filter_shape=w.shape, **_conv_attrs(op)),
    ]


def _backprop_input_grad(op, gx):
    # dx = A(w)^T g is linear in g and in w: <gx, A(w)^T g> = <A(w) gx, g>
    g, w = op.inputs
    return [
        CONV2D(gx, w, **_conv_attrs(op)),
        CONV2D_BACKPROP_FILTER(gx, g, filter_shape=w.shape, **_conv_attrs(op)),
    ]


def _backprop_filter_grad(op, gw):
    # dw = sum x * g is bilinear: <gw, dw(x, g)> = <conv2d(x, gw), g>
    x, g = op.inputs
    return [
        CONV2D_BACKPROP_INPUT(g, gw, input_shape=x.shape, **_conv_attrs(op)),
        CONV2D(x, gw, **_conv_attrs(op)),
    ]


def _conv_cases():
    # (input NHWC, filter HWIO, strides, padding): stride 1, odd stride with asymmetric SAME
    # padding, and VALID with a remainder row the windows never reach
    return [
        ((2, 5, 5, 3), (3, 3, 3, 4), (1, 1), "SAME"),
        ((2, 6, 6, 2), (3, 3, 2, 3), (2, 2), "SAME"),
        ((1, 7, 6, 2), (3, 2, 2, 3), (2, 1), "VALID"),
    ]


def _conv_samples(rng):
    return [
        ([rng.standard_normal(xs), rng.standard_normal(ws)], {"strides": s, "padding": p})
        for xs, ws, s, p in _conv_cases()
    ]


def _out_shape(xs, ws, s, p):
    (oh, ow), _ = _geometry(xs[1:3], ws[:2], s, p)
    return (xs[0], oh, ow, ws[3])


def _backprop_input_samples(rng):
    return [
        (
            [rng.standard_normal(_out_shape(xs, ws, s, p)), rng.standard_normal(ws)],
            {"input_shape": xs, "strides": s, "padding": p},
        )
        for xs, ws, s, p in _conv_cases()
    ]


def _backprop_filter_samples(rng):
    return [
        (
            [rng.standard_normal(xs), rng.standard_normal(_out_shape(xs, ws, s, p))],
            {"filter_shape": ws, "strides": s, "padding": p},
        )
        for xs, ws, s, p in _conv_cases()
    ]


CONV2D = register(
    OpDef(
        "conv2d",
        _conv_infer,
        numpy=_conv2d,
        grad=_conv_grad,
        kind="matmul",
        samples=_conv_samples,
        doc="2-d convolution (cross-correlation, as TF), NHWC x HWIO.",
    )
)
CONV2D_BACKPROP_INPUT = register(
    OpDef(
        "conv2d_backprop_input",
        _backprop_input_infer,
        numpy=_conv2d_backprop_input,
        grad=_backprop_input_grad,
        kind="matmul",
        samples=_backprop_input_samples,
        doc="The gradient of conv2d with respect to its input (a transposed convolution).",
    )
)
CONV2D_BACKPROP_FILTER = register(
    OpDef(
        "conv2d_backprop_filter",
        _backprop_filter_infer,
        numpy=_conv2d_backprop_filter,
        grad=_backprop_filter_grad,
        kind="matmul",
        samples=_backprop_filter_samples,
        doc="The gradient of conv2d with respect to its filter.",
    )
)


# --- max_pool ---------------------------------------------------------------------------------


def _padded_windows(x, ksize, strides, padding, fill):
    out_hw, pads = _geometry(x.shape[1:3], ksize, strides, padding)
    return _windows(_pad(x, pads, fill), ksize, strides, out_hw), out_hw


def _max_pool(x, ksize, strides, padding, out=None):
    # padded cells are -inf, so they never win a window (TF ignores them too)
    wins, _ = _padded_windows(x, ksize, strides, padding, -np.inf)
    return wins.max(axis=(4, 5), out=out)


def _argmax_taps(x, ksize, strides, padding):
    """For each window, the flat index ``i * kw + j`` of its largest cell (the first on ties,
    as TF), shape (N, oh, ow, C)."""
    wins, out_hw = _padded_windows(x, ksize, strides, padding, -np.inf)
    kh, kw = ksize
    if np.isnan(x).any():  # np.argmax's rule: the first NaN wins
        return wins.reshape(wins.shape[:4] + (-1,)).argmax(axis=-1), out_hw
    # a running max over the taps: kh * kw elementwise passes over (N, oh, ow, C) arrays,
    # much faster than argmax along a short axis of a copied window array
    # (arithmetic on the mask, not np.copyto(where=...), which is several times slower)
    best = wins[..., 0, 0].copy()
    arg = np.zeros(best.shape, np.min_scalar_type(kh * kw))
    for t in range(1, kh * kw):
        v = wins[..., t // kw, t % kw]
        take = v > best  # strictly: the first of equal cells keeps the window
        arg ^= (arg ^ t) * take  # arg = t where take
        np.maximum(best, v, out=best)
    return arg, out_hw


def _max_pool_grad(x, g, ksize, strides, padding, out=None):
    arg, _ = _argmax_taps(x, ksize, strides, padding)
    kw = ksize[1]
    finite = np.isfinite(g).all()

    def pick(i, j):
        # g * mask equals np.where(mask, g, 0) when g is finite, and is several times faster
        won = arg == i * kw + j
        return g * won if finite else np.where(won, g, 0)

    return _written(_scatter_taps(pick, x.shape, ksize, strides, padding, g.dtype), out)


def _max_pool_select(x, d, ksize, strides, padding):
    arg, _ = _argmax_taps(x, ksize, strides, padding)
    wins, _ = _padded_windows(d, ksize, strides, padding, 0)
    if not np.isfinite(d).all():
        flat = wins.reshape(wins.shape[:4] + (-1,))
        return np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    # finite d: a sum of masked taps (all but one term zero) is exact and several times
    # faster than take_along_axis over a copy of the windows
    kw = ksize[1]
    out = np.zeros(arg.shape, d.dtype)
    for t in range(ksize[0] * kw):
        out += wins[..., t // kw, t % kw] * (arg == t)
    return out


def _pool_attrs(op):
    return {k: op.attrs[k] for k in ("ksize", "strides", "padding")}


def _pool_cases():
    # (input NHWC, ksize, strides, padding): overlapping windows, SAME with padding at the
    # edges, and VALID
    return [
        ((2, 5, 5, 3), (3, 3), (2, 2), "SAME"),
        ((1, 6, 4, 2), (2, 2), (2, 2), "VALID"),
        ((1, 4, 5, 2), (2, 3), (1, 1), "SAME"),
    ]


def _pool_samples(rng):
    return [
        ([rng.standard_normal(xs)], {"ksize": k, "strides": s, "padding": p})
        for xs, k, s, p in _pool_cases()
    ]


def _pooled(xs, k, s, p):
    (oh, ow), _ = _geometry(xs[1:3], k, s, p)
    return (xs[0], oh, ow, xs[3])


def _max_pool_grad_samples(rng):
    return [
        (
            [rng.standard_normal(xs), rng.standard_normal(_pooled(xs, k, s, p))],
            {"ksize": k, "strides": s, "padding": p},
        )
        for xs, k, s, p in _pool_cases()
    ]


def _max_pool_select_samples(rng):
    return [
        (
            [rng.standard_normal(xs), rng.standard_normal(xs)],
            {"ksize": k, "strides": s, "padding": p},
        )
        for xs, k, s, p in _pool_cases()
    ]


def _max_pool_select_infer(ins, attrs):
    _check_float("max_pool_select", *ins)
    return _pool_infer(ins[:1], attrs)


# Where x is held fixed, max_pool_grad (scatter g to each window's argmax) and
# max_pool_select (gather d from each window's argmax) are adjoint linear maps of their
# second input; x only picks the cells, so it gets no gradient (it is piecewise constant).
MAX_POOL = register(
    OpDef(
        "max_pool",
        _pool_infer,
        numpy=_max_pool,
        kind="other",
        samples=_pool_samples,
        grad=lambda op, g: [MAX_POOL_GRAD(op.inputs[0], g, **_pool_attrs(op))],
        doc="The largest value of each window; padded cells never win.",
    )
)
MAX_POOL_GRAD = register(
    OpDef(
        "max_pool_grad",
        _like_input_infer,
        numpy=_max_pool_grad,
        kind="other",
        samples=_max_pool_grad_samples,
        grad=lambda op, gx: [None, MAX_POOL_SELECT(op.inputs[0], gx, **_pool_attrs(op))],
        doc="Each window's gradient, routed to the cell of x that won it.",
    )
)
MAX_POOL_SELECT = register(
    OpDef(
        "max_pool_select",
        _max_pool_select_infer,
        numpy=_max_pool_select,
        kind="other",
        samples=_max_pool_select_samples,
        grad=lambda op, g: [None, MAX_POOL_GRAD(op.inputs[0], g, **_pool_attrs(op))],
        doc="For each window of x, the value of d at the cell where x is largest.",
    )
)


# --- avg_pool ---------------------------------------------------------------------------------


def _window_counts(hw, ksize, strides, padding):
    """How many real (unpadded) cells each window covers, shape (oh, ow): SAME windows at
    the edges average fewer cells, as in TF."""
    ones = np.ones((1,) + tuple(hw) + (1,))
    wins, _ = _padded_windows(ones, ksize, strides, padding, 0)
    return wins.sum(axis=(4, 5))[0, :, :, 0]


def _avg_pool(x, ksize, strides, padding):
    wins, _ = _padded_windows(x, ksize, strides, padding, 0)
    counts = _window_counts(x.shape[1:3], ksize, strides, padding)
    return (wins.sum(axis=(4, 5)) / counts[None, :, :, None]).astype(x.dtype, copy=False)


def _avg_pool_grad(g, input_shape, ksize, strides, padding):
    shape = (g.shape[0],) + tuple(input_shape[1:])
    counts = _window_counts(shape[1:3], ksize, strides, padding)
    share = (g / counts[None, :, :, None]).astype(g.dtype, copy=False)
    return _scatter_taps(lambda i, j: share, shape, ksize, strides, padding, g.dtype)


def _avg_pool_grad_samples(rng):
    return [
        (
            [rng.standard_normal(_pooled(xs, k, s, p))],
            {"input_shape": xs, "ksize": k, "strides": s, "padding": p},
        )
        for xs, k, s, p in _pool_cases()
    ]


AVG_POOL = register(
    OpDef(
        "avg_pool",
        _pool_infer,
        numpy=_avg_pool,
        kind="other",
        samples=_pool_samples,
        grad=lambda op, g: [AVG_POOL_GRAD(g, input_shape=op.inputs[0].shape, **_pool_attrs(op))],
        doc="The mean of each window's real (unpadded) cells.",
    )
)
AVG_POOL_GRAD = register(
    OpDef(
        "avg_pool_grad",
        _avg_pool_grad_infer,
        numpy=_avg_pool_grad,
        kind="other",
        samples=_avg_pool_grad_samples,
        grad=lambda op, gx: [AVG_POOL(gx, **_pool_attrs(op))],
        doc="Each window's gradient, shared equally among the cells it averaged.",
    )
)


# --- the functions users call -----------------------------------------------------------------


def _pair(v, what, rank4_ok=True):
    """TF accepts an int, a pair, or the NHWC 4-list ``[1, h, w, 1]`` for ksize/strides."""
    if isinstance(v, (int, np.integer)):
        return (int(v), int(v))
    v = [int(a) for a in v]
    if len(v) == 4 and rank4_ok:
        if v[0] != 1 or v[3] != 1:
            raise ShapeError(
                f"{what} {v}: only spatial windows/strides are supported "
                "(the batch and channel entries must be 1)"
            )
        return (v[1], v[2])
    if len(v) == 2:
        return tuple(v)
    if len(v) == 1:
        return (v[0], v[0])
    raise ShapeError(f"{what} must be an int, a pair or [1, h, w, 1], got {v}")


def _padding(padding):
    p = str(padding).upper()
    if p not in ("SAME", "VALID"):
        raise ShapeError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    return p


def _nhwc(data_format, what):
    if data_format not in (None, "NHWC", "channels_last"):
        raise ShapeError(f"{what}: only data_format='NHWC' is supported, got {data_format!r}")


def conv2d(
    input,
    filters,
    strides=1,
    padding="VALID",
    data_format="NHWC",
    dilations=1,  # noqa: A002
    name=None,
):
    """2-d convolution of NHWC ``input`` with HWIO ``filters``. ``strides`` is an int, a
    pair or TF's ``[1, sh, sw, 1]``; ``padding`` is ``"SAME"`` or ``"VALID"``; dilations
    other than 1 are not supported."""
    _nhwc(data_format, "conv2d")
    if _pair(dilations, "dilations") != (1, 1):
        raise ShapeError(f"conv2d: dilations other than 1 are not supported, got {dilations}")
    x, w = convert(input), convert(filters)
    return CONV2D(x, w, name=name, strides=_pair(strides, "strides"), padding=_padding(padding))


def _pool_fn(opdef, doc):
    def pool(input, ksize, strides, padding, data_format="NHWC", name=None):  # noqa: A002
        _nhwc(data_format, opdef.name)
        return opdef(
            convert(input),
            name=name,
            ksize=_pair(ksize, "ksize"),
            strides=_pair(strides, "strides"),
            padding=_padding(padding),
        )

    pool.__name__ = pool.__qualname__ = opdef.name
    pool.__doc__ = doc
    return pool


max_pool = _pool_fn(
    MAX_POOL,
    "Max pooling of NHWC ``input`` over ``ksize`` windows (an int, a pair or ``[1, h, w, 1]``).",
)
avg_pool = _pool_fn(
    AVG_POOL,
    "Average pooling of NHWC ``input``; SAME windows at the edges average only their real cells.",
)


def batch_normalization(x, mean, variance, offset, scale, variance_epsilon, name=None):
    """``(x - mean) / sqrt(variance + eps) * scale + offset`` (TF's formula: ``offset`` and
    ``scale`` may be None). The statistics are inputs: compute them with ``gc.moments``."""
    x = convert(x)
    inv = rsqrt(convert(variance, like=x) + variance_epsilon)
    if scale is not None:
        inv = inv * convert(scale, like=x)
    shift = -convert(mean, like=x) * inv
    if offset is not None:
        shift = shift + convert(offset, like=x)
    return x * inv + shift


def layer_normalization(x, scale=None, offset=None, axis=-1, epsilon=1e-5, name=None):
    """Normalize each example over ``axis`` (default the last) to mean 0 and variance 1,
    then apply ``scale`` and ``offset`` (broadcast over the normalized axes)."""
    x = convert(x)
    mean, variance = moments(x, axes=axis, keepdims=True)
    return batch_normalization(x, mean, variance, offset, scale, epsilon, name=name)


__all__ = ["conv2d", "max_pool", "avg_pool", "batch_normalization", "layer_normalization"]
