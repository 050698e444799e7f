"""``tf.nn`` of TF 1.x: graphc's ``gc.nn`` with TF 1.x's argument names and defaults.

Where the signatures already agree the function is graphc's own; the adapters below exist
only because TF 1.x spells an argument differently (``dim``, ``keep_dims``, ``filter``,
``value``) or defaults it differently (``softmax(axis=None)`` means the last axis)."""

from __future__ import annotations

from .. import nn as _gnn
from ..errors import DTypeError, ShapeError, user_location
from ..ops import conv as _conv
from ..ops.array import cast, concat, pad
from ..ops.elementwise import abs as _abs
from ..ops.elementwise import exp, less, log1p, maximum, sigmoid, tanh
from ..ops.linalg import matmul
from ..ops.nn import (
    bias_add,
    elu,
    l2_loss,
    leaky_relu,
    one_hot_like,
    relu,
    relu6,
    selu,
    sigmoid_cross_entropy_with_logits,
    softplus,
    softsign,
    sparse_softmax_cross_entropy_with_logits,
)
from ..ops.reduce import reduce_sum
from ..ops.sources import convert
from ._support import module_getattr
from .nn_extra import (  # noqa: F401
    conv1d,
    log_uniform_candidate_sampler,
    nce_loss,
    sampled_softmax_loss,
    top_k,
)
from .rnn import (
    bidirectional_dynamic_rnn,
    dynamic_rnn,
    rnn_cell,
    static_bidirectional_rnn,
    static_rnn,
)

dropout = _gnn.dropout  # keep_prob (TF 1.x) or rate=
batch_normalization = _conv.batch_normalization
softmax_cross_entropy_with_logits = _gnn.softmax_cross_entropy_with_logits  # no grad to labels
softmax_cross_entropy_with_logits_v2 = _gnn.softmax_cross_entropy_with_logits_v2
embedding_lookup = _gnn.embedding_lookup
swish = silu = _gnn.silu
gelu = _gnn.gelu

__all__ = [
    "avg_pool",
    "batch_normalization",
    "bias_add",
    "conv2d",
    "conv2d_transpose",
    "crelu",
    "dropout",
    "elu",
    "embedding_lookup",
    "gelu",
    "in_top_k",
    "l2_loss",
    "l2_normalize",
    "leaky_relu",
    "local_response_normalization",
    "log_softmax",
    "lrn",
    "max_pool",
    "moments",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "sigmoid_cross_entropy_with_logits",
    "silu",
    "softmax",
    "softmax_cross_entropy_with_logits",
    "softmax_cross_entropy_with_logits_v2",
    "softplus",
    "softsign",
    "sparse_softmax_cross_entropy_with_logits",
    "swish",
    "tanh",
    "weighted_cross_entropy_with_logits",
    "xw_plus_b",
    "rnn_cell",
    "static_rnn",
    "dynamic_rnn",
    "static_bidirectional_rnn",
    "bidirectional_dynamic_rnn",
    "conv1d",
    "top_k",
    "nce_loss",
    "sampled_softmax_loss",
    "log_uniform_candidate_sampler",
]


def softmax(logits, axis=None, name=None, dim=None):
    """Softmax along ``axis`` (``dim`` in old TF); the last axis by default."""
    axis = _axis(axis, dim)
    return _gnn.softmax(logits, axis=-1 if axis is None else axis, name=name)


def log_softmax(logits, axis=None, name=None, dim=None):
    axis = _axis(axis, dim)
    return _gnn.log_softmax(logits, axis=-1 if axis is None else axis, name=name)


def _axis(axis, dim):
    return dim if axis is None else axis


def moments(x, axes, shift=None, name=None, keep_dims=None, keepdims=None):
    """Mean and variance of ``x`` over ``axes`` (``shift`` is an accuracy hint TF ignores too)."""
    keep = bool(keepdims if keepdims is not None else keep_dims)
    return _gnn.moments(x, axes=axes, keepdims=keep, name=name)


def l2_normalize(x, axis=None, epsilon=1e-12, name=None, dim=None):
    return _gnn.l2_normalize(x, axis=_axis(axis, dim), epsilon=epsilon, name=name)


def conv2d(
    input,
    filter=None,
    strides=None,
    padding=None,
    use_cudnn_on_gpu=True,  # noqa: A002
    data_format="NHWC",
    dilations=(1, 1, 1, 1),
    name=None,
    filters=None,
):
    """``tf.nn.conv2d(x, W, strides=[1, s, s, 1], padding="SAME")``: NHWC input, HWIO filter."""
    w = filter if filter is not None else filters
    if w is None or strides is None or padding is None:
        raise ShapeError("tf.nn.conv2d needs filter, strides and padding", user_location())
    return _conv.conv2d(
        input,
        w,
        strides=strides,
        padding=padding,
        data_format=data_format,
        dilations=dilations,
        name=name,
    )


def max_pool(
    value=None, ksize=None, strides=None, padding=None, data_format="NHWC", name=None, input=None
):  # noqa: A002
    return _conv.max_pool(
        value if value is not None else input,
        ksize,
        strides,
        padding,
        data_format=data_format,
        name=name,
    )


def avg_pool(
    value=None, ksize=None, strides=None, padding=None, data_format="NHWC", name=None, input=None
):  # noqa: A002
    return _conv.avg_pool(
        value if value is not None else input,
        ksize,
        strides,
        padding,
        data_format=data_format,
        name=name,
    )


def conv2d_transpose(
    value,
    filter=None,
    output_shape=None,
    strides=None,
    padding="SAME",  # noqa: A002
    data_format="NHWC",
    name=None,
    input=None,
    filters=None,
    dilations=None,
):
    """The gradient of conv2d with respect to its input, as a layer: ``filter`` is
    ``(h, w, out_channels, in_channels)`` and ``output_shape`` the static NHWC result
    (its batch entry is ignored: the batch comes from ``value``)."""
    x = convert(value if value is not None else input)
    w = convert(filter if filter is not None else filters)
    if output_shape is None or any(not isinstance(d, int) for d in list(output_shape)[1:]):
        raise ShapeError(
            f"conv2d_transpose needs a static output_shape [batch, h, w, c]; got {output_shape!r}",
            user_location(),
        )
    _conv._nhwc(data_format, "conv2d_transpose")
    shape = (x.shape[0],) + tuple(int(d) for d in list(output_shape)[1:])
    return _conv.CONV2D_BACKPROP_INPUT(
        x,
        w,
        name=name,
        input_shape=shape,
        strides=_conv._pair(strides, "strides"),
        padding=_conv._padding(padding),
    )


def in_top_k(predictions, targets, k, name=None):
    """True where the target class is among the ``k`` largest predictions (ties count in its
    favour, as TF: only strictly larger scores push it out)."""
    p, t = convert(predictions), convert(targets)
    if not t.dtype.is_integer:
        raise DTypeError(f"in_top_k: targets must be integer classes, got {t.describe()}")
    target_score = reduce_sum(p * one_hot_like(t, p), axis=-1, keepdims=True)
    above = reduce_sum(cast(p > target_score, "int32"), axis=-1)
    return less(above, int(k), name=name)


def xw_plus_b(x, weights, biases, name=None):
    return bias_add(matmul(x, weights), biases, name=name)


def weighted_cross_entropy_with_logits(
    labels=None, logits=None, pos_weight=None, name=None, targets=None
):
    """Sigmoid cross-entropy where positive labels weigh ``pos_weight`` times as much."""
    z = convert(labels if labels is not None else targets)
    x = convert(logits)
    q = pos_weight
    log_weight = (q - 1) * z + 1
    return (1 - z) * x + log_weight * (log1p(exp(-_abs(x))) + maximum(-x, 0))


def local_response_normalization(
    input,
    depth_radius=5,
    bias=1.0,
    alpha=1.0,
    beta=0.5,  # noqa: A002
    name=None,
):
    """``x / (bias + alpha * sum of x**2 over depth_radius channels either side) ** beta``,
    over the last (channel) axis of NHWC ``input``; built from slices, so it differentiates."""
    x = convert(input)
    channels = x.shape[-1]
    if not isinstance(channels, int):
        raise ShapeError(f"lrn needs a static channel count, got {x.describe()}", user_location())
    r = int(depth_radius)
    padded = pad(x * x, [(0, 0)] * (len(x.shape) - 1) + [(r, r)])
    window = padded[..., 0:channels]
    for k in range(1, 2 * r + 1):
        window = window + padded[..., k : k + channels]
    return x / (window * alpha + bias) ** beta


lrn = local_response_normalization


def crelu(features, axis=-1, name=None):
    """``concat([relu(x), relu(-x)])`` along ``axis``."""
    x = convert(features)
    return concat([relu(x), relu(-x)], axis=axis, name=name)


def zero_fraction(value, name=None):
    """The fraction of zeros in ``value`` (a float32 scalar)."""
    from .math_extra import zero_fraction as _zero_fraction

    return _zero_fraction(value, name=name)


__getattr__ = module_getattr("nn")
