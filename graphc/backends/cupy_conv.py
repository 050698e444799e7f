"""The cupy backend's lowerings of convolution and pooling, keyed by OpDef (the signature of
``cupy_lowerings``: ``fn(xp, node, out, *inputs, **attrs)``).

They are the numpy kernels' algorithms (``graphc/ops/conv.py``) written once against the
array module ``xp``, so that cupy runs them on the device and numpy, standing in for cupy in
the tests, runs the very same code:
  * a convolution is im2col: ``as_strided`` gives every window of the (padded) input as a
    view, one copy lays the patches out as a matrix, and one matmul (cuBLAS through cupy)
    contracts it with the filter; the filter gradient reuses the same matrix;
  * input gradients and pooling gradients scatter with one strided ``+=`` per window tap
    (``kh * kw`` device kernels), never per pixel;
  * max pooling picks each window's first largest cell (a NaN wins, as ``np.argmax``) with
    a running comparison over the taps, so no host round trip decides anything.
Nothing here synchronises with the host. These lowerings allocate (padding, patches), so a
plan that holds one runs eagerly rather than as a CUDA Graph (``ALLOCATION_FREE`` is empty).
"""

from __future__ import annotations

import numpy as np

from ..ops.conv import (
    AVG_POOL,
    AVG_POOL_GRAD,
    CONV2D,
    CONV2D_BACKPROP_FILTER,
    CONV2D_BACKPROP_INPUT,
    MAX_POOL,
    MAX_POOL_GRAD,
    MAX_POOL_SELECT,
    _geometry,
)

# im2col holds every input cell kh * kw times: beyond this many patch elements a
# convolution works through the batch in slices (256 MiB of float32 patches at most).
PATCH_BUDGET = 1 << 26


def _batch_slices(n, patch_elements_per_example):
    step = max(1, PATCH_BUDGET // max(patch_elements_per_example, 1))
    return [slice(b, min(b + step, n)) for b in range(0, n, step)]


def _pad(xp, x, pads, value=0.0):
    (pt, pb), (pl, pr) = pads
    if not (pt or pb or pl or pr):
        return x
    return xp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=value)


def _windows(xp, padded, ksize, strides, out_hw):
    """Every window of ``padded`` (NHWC) as a strided view of shape (N, oh, ow, kh, kw, C):
    the filter's (h, w, in) order, so a reshape gives im2col's patch matrix."""
    n, _, _, c = padded.shape
    s0, s1, s2, s3 = padded.strides
    (sh, sw), (oh, ow), (kh, kw) = strides, out_hw, ksize
    return xp.lib.stride_tricks.as_strided(
        padded, (n, oh, ow, kh, kw, c), (s0, s1 * sh, s2 * sw, s1, s2, s3)
    )


def _padded_windows(xp, x, ksize, strides, padding, fill):
    out_hw, pads = _geometry(x.shape[1:3], ksize, strides, padding)
    return _windows(xp, _pad(xp, x, pads, fill), ksize, strides, out_hw), out_hw


def _tap(i, j, strides, out_hw):
    """The index of padded-input cells that filter tap (i, j) touches, one per output."""
    (sh, sw), (oh, ow) = strides, out_hw
    return (slice(None), slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw))


def _scatter_taps(xp, per_tap, input_shape, ksize, strides, padding, dtype):
    """Sum ``per_tap(i, j)`` (an (N, oh, ow, C) array) into the input cells each tap read,
    then crop the padding: the adjoint of taking windows."""
    n, h, w, c = input_shape
    out_hw, ((pt, pb), (pl, pr)) = _geometry((h, w), ksize, strides, padding)
    dxp = xp.zeros((n, h + pt + pb, w + pl + pr, c), dtype)
    for i in range(ksize[0]):
        for j in range(ksize[1]):
            dxp[_tap(i, j, strides, out_hw)] += per_tap(i, j)
    return dxp[:, pt : pt + h, pl : pl + w]


def _result(xp, out, shape, dtype):
    """The planned output buffer when there is one, else a new device array."""
    return out if out is not None else xp.empty(shape, dtype)


# --- conv2d and its two adjoints --------------------------------------------------------------


def _conv2d(xp, node, out, x, w, strides, padding):
    kh, kw, c, o = w.shape
    (oh, ow), pads = _geometry(x.shape[1:3], (kh, kw), strides, padding)
    result = _result(xp, out, (x.shape[0], oh, ow, o), xp.result_type(x, w))
    w2 = w.reshape(-1, o)
    for b in _batch_slices(x.shape[0], oh * ow * kh * kw * c):
        wins = _windows(xp, _pad(xp, x[b], pads), (kh, kw), strides, (oh, ow))
        cols = wins.reshape(-1, kh * kw * c)  # the one copy: the patch matrix
        xp.matmul(cols, w2, out=result[b].reshape(-1, o))
    return result


def _conv2d_backprop_input(xp, node, out, g, w, input_shape, strides, padding):
    kh, kw, c, o = w.shape
    n, oh, ow = g.shape[:3]
    dx = _result(xp, out, (n,) + tuple(input_shape[1:]), xp.result_type(g, w))
    w2t = w.reshape(-1, o).T
    for b in _batch_slices(n, oh * ow * kh * kw * c):
        taps = xp.matmul(g[b].reshape(-1, o), w2t).reshape((-1, oh, ow, kh, kw, c))
        dx[b] = _scatter_taps(
            xp,
            lambda i, j, t=taps: t[:, :, :, i, j],
            dx[b].shape,
            (kh, kw),
            strides,
            padding,
            dx.dtype,
        )
    return dx


def _conv2d_backprop_filter(xp, node, out, x, g, filter_shape, strides, padding):
    kh, kw, c, o = filter_shape
    n, oh, ow = g.shape[:3]
    _, pads = _geometry(x.shape[1:3], (kh, kw), strides, padding)
    dw = xp.zeros((kh * kw * c, o), xp.result_type(x, g))
    for b in _batch_slices(n, oh * ow * kh * kw * c):
        cols = _windows(xp, _pad(xp, x[b], pads), (kh, kw), strides, (oh, ow))
        dw += xp.matmul(cols.reshape(-1, kh * kw * c).T, g[b].reshape(-1, o))
    return dw.reshape(filter_shape)


# --- max_pool ---------------------------------------------------------------------------------


def _max_pool(xp, node, out, x, ksize, strides, padding):
    # padded cells are -inf, so they never win a window (TF ignores them too)
    wins, _ = _padded_windows(xp, x, ksize, strides, padding, -float("inf"))
    return xp.max(wins, axis=(3, 4), out=out) if out is not None else xp.max(wins, axis=(3, 4))


def _argmax_taps(xp, x, ksize, strides, padding):
    """For each window, the flat index ``i * kw + j`` of its largest cell (the first on ties,
    as TF; the first NaN, as ``np.argmax``), shape (N, oh, ow, C): a running maximum over the
    ``kh * kw`` taps, all on the device."""
    wins, _ = _padded_windows(xp, x, ksize, strides, padding, -float("inf"))
    kh, kw = ksize
    best = wins[:, :, :, 0, 0].copy()
    arg = xp.zeros(best.shape, np.int32)
    for t in range(1, kh * kw):
        v = wins[:, :, :, t // kw, t % kw]
        # strictly larger (the first of equal cells keeps the window), or the first NaN
        take = (v > best) | (xp.isnan(v) & ~xp.isnan(best))
        arg = xp.where(take, np.int32(t), arg)
        xp.maximum(best, v, out=best)  # a NaN stays: later cells never take it over
    return arg


def _max_pool_grad(xp, node, out, x, g, ksize, strides, padding):
    arg = _argmax_taps(xp, x, ksize, strides, padding)
    kw = ksize[1]
    return _scatter_taps(
        xp,
        lambda i, j: xp.where(arg == i * kw + j, g, 0),
        x.shape,
        ksize,
        strides,
        padding,
        g.dtype,
    )


def _max_pool_select(xp, node, out, x, d, ksize, strides, padding):
    arg = _argmax_taps(xp, x, ksize, strides, padding)
    wins, _ = _padded_windows(xp, d, ksize, strides, padding, 0)
    kw = ksize[1]
    result = xp.zeros(arg.shape, d.dtype)
    for t in range(ksize[0] * kw):  # one term is the window's pick, the others exact zeros
        result += xp.where(arg == t, wins[:, :, :, t // kw, t % kw], 0)
    return result


# --- avg_pool ---------------------------------------------------------------------------------


def _window_counts(xp, hw, ksize, strides, padding):
    """How many real (unpadded) cells each window covers, shape (oh, ow), float64: SAME
    windows at the edges average fewer cells, as in TF. Computed on the device per axis."""
    out_hw, pads = _geometry(hw, ksize, strides, padding)
    per_axis = []
    for a in (0, 1):
        start = xp.arange(out_hw[a], dtype=xp.float64) * strides[a] - pads[a][0]
        per_axis.append(xp.minimum(start + ksize[a], hw[a]) - xp.maximum(start, 0))
    return per_axis[0][:, None] * per_axis[1][None, :]


def _avg_pool(xp, node, out, x, ksize, strides, padding):
    wins, _ = _padded_windows(xp, x, ksize, strides, padding, 0)
    counts = _window_counts(xp, x.shape[1:3], ksize, strides, padding)
    return (wins.sum(axis=(3, 4)) / counts[None, :, :, None]).astype(x.dtype, copy=False)


def _avg_pool_grad(xp, node, out, g, input_shape, ksize, strides, padding):
    shape = (g.shape[0],) + tuple(input_shape[1:])
    counts = _window_counts(xp, shape[1:3], ksize, strides, padding)
    share = (g / counts[None, :, :, None]).astype(g.dtype, copy=False)
    return _scatter_taps(xp, lambda i, j: share, shape, ksize, strides, padding, g.dtype)


LOWERINGS = {
    CONV2D: _conv2d,
    CONV2D_BACKPROP_INPUT: _conv2d_backprop_input,
    CONV2D_BACKPROP_FILTER: _conv2d_backprop_filter,
    MAX_POOL: _max_pool,
    MAX_POOL_GRAD: _max_pool_grad,
    MAX_POOL_SELECT: _max_pool_select,
    AVG_POOL: _avg_pool,
    AVG_POOL_GRAD: _avg_pool_grad,
}
