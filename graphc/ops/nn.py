"""Neural-network ops, built from the primitives (STYLE principle 3): they differentiate
and fuse without rules of their own. Numerically delicate ones subtract the max first."""

from __future__ import annotations

import functools
import math

import numpy as np

from ..errors import DTypeError, GraphcError, ShapeError, user_location
from ..ir.graph import get_default_graph
from ..shapes import normalize_axis
from .array import one_hot, stop_gradient
from .elementwise import (
    abs,
    erf,
    exp,
    expm1,
    greater,
    log,
    log1p,
    maximum,
    minimum,
    sigmoid,
    square,
    tanh,
    where,
)
from .reduce import reduce_max, reduce_mean, reduce_sum
from .registry import OpDef, register
from .sources import convert
from .random import random_uniform, random_uniform_like
from ..ir.node import Tensor
from .array import reshape
from .array import identity
from .array import squeeze


def _class_labels_infer(ins, attrs):
    return [(ins[0].dtype, ins[0].shape)]


def _class_labels_kernel(labels, *logits, depth, caller):
    """The labels, unchanged, if every one is a class index in ``[0, depth)``; without a
    static ``depth``, the classes are the last dimension of the second input (the logits)."""
    if depth is None:
        depth = logits[0].shape[-1] if logits[0].ndim else 0
    bad = (labels < 0) | (labels >= depth)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{caller}: label {labels[where]} at index {list(where)} is outside "
            f"the valid range [0, {depth}) of the {depth} classes"
        )
    return labels


def _class_labels_reference(arrays, attrs):
    """For the registry tests: in-range labels come back unchanged."""
    return np.array(arrays[0])


# TF on CPU (and PyTorch) raise for a label outside [0, classes): without this check
# one_hot gives an all-zero row and the loss is silently 0 for that example
CLASS_LABELS = register(
    OpDef(
        "class_labels",
        _class_labels_infer,
        numpy=_class_labels_kernel,
        kind="other",
        differentiable=False,
        extra={"reference": _class_labels_reference},
        samples=lambda rng: [
            ([rng.integers(0, 3, (4,))], {"depth": 3, "caller": "labels"}),
            (
                [rng.integers(0, 3, (4,)), rng.standard_normal((4, 3))],
                {"depth": None, "caller": "x"},
            ),
        ],
        doc="Its input, after checking that every value is a class index in [0, depth).",
    )
)


def class_labels(labels, depth, what="labels", logits=None):
    """``labels`` checked at run time to lie in ``[0, depth)`` (an OpError naming the
    caller's line otherwise). ``depth`` None: the last dimension of ``logits``, known only
    at run time (logits of unknown rank or class count)."""
    if depth is None:
        return CLASS_LABELS(convert(labels), convert(logits), depth=None, caller=what)
    return CLASS_LABELS(convert(labels), depth=int(depth), caller=what)


def _one_hot_like_infer(ins, attrs):
    idx, like = ins
    if not idx.dtype.is_integer:
        raise TypeError(f"one_hot: indices must be integers, got {idx.dtype}")
    if idx.shape is None or not like.shape:
        return [(like.dtype, None)]
    return [(like.dtype, tuple(idx.shape) + (like.shape[-1],))]


def _one_hot_like_kernel(idx, like):
    """Rows of ``like.shape[-1]`` values in ``like``'s dtype: 1 at each index, 0 elsewhere."""
    return (np.arange(like.shape[-1]) == idx[..., None]).astype(like.dtype)


ONE_HOT_LIKE = register(
    OpDef(
        "one_hot_like",
        _one_hot_like_infer,
        numpy=_one_hot_like_kernel,
        differentiable=False,
        samples=lambda rng: [([np.array([0, 3, 1]), rng.standard_normal((3, 4))], {})],
        extra={
            "reference": lambda arrays, attrs: np.eye(arrays[1].shape[-1])[arrays[0]].astype(
                arrays[1].dtype
            )
        },
        doc="one_hot of its first input, as many classes as its second's last dimension",
    )
)


def one_hot_like(labels, logits):
    """``one_hot(labels, classes, dtype=logits.dtype)`` where ``classes`` is the last
    dimension of ``logits``, static or not (TF accepts logits of unknown class count)."""
    labels, logits = convert(labels), convert(logits)
    depth = logits.shape[-1] if logits.shape else None
    if isinstance(depth, int):
        return one_hot(labels, depth, dtype=logits.dtype)
    return ONE_HOT_LIKE(labels, logits)


def _named(fn):
    """A composite builds several nodes; ``name=`` names its result (an identity node, which
    the optimizer removes) so that ``graph.get_tensor_by_name(name)`` finds it, as in TF.
    Without a name its nodes go in a scope named after it (``softmax/exp``), so an error in
    one of them says which call it belongs to."""

    @functools.wraps(fn)
    def wrapper(*args, name=None, **kwargs):
        if name is None:
            with get_default_graph().name_scope(fn.__name__):
                return fn(*args, **kwargs)
        out = fn(*args, **kwargs)
        return identity(out, name=name)

    return wrapper


def relu(features, name=None):
    """max(x, 0)."""
    return maximum(convert(features), 0, name=name)


def relu6(features, name=None):
    """min(max(x, 0), 6)."""
    return minimum(maximum(convert(features), 0), 6, name=name)


def leaky_relu(features, alpha=0.2, name=None):
    """x for x > 0, alpha * x otherwise."""
    x = convert(features)
    return where(greater(x, 0), x, x * alpha, name=name)


def elu(features, name=None):
    """x for x > 0, exp(x) - 1 otherwise."""
    x = convert(features)
    # expm1 of min(x, 0): the unused branch never overflows, so its gradient is never inf * 0
    return where(greater(x, 0), x, expm1(minimum(x, 0)), name=name)


@_named
def selu(features, name=None):
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    x = convert(features)
    return scale * where(greater(x, 0), x, alpha * expm1(minimum(x, 0)))


@_named
def softplus(features, name=None):
    """log(1 + exp(x)), stable for large |x|."""
    x = convert(features)
    return maximum(x, 0) + log1p(exp(-abs(x)))


@_named
def softsign(features, name=None):
    x = convert(features)
    return x / (abs(x) + 1)


@_named
def gelu(features, approximate=False, name=None):
    """x * Phi(x); ``approximate=True`` uses the tanh form."""
    x = convert(features)
    if approximate:
        c = math.sqrt(2 / math.pi)
        return 0.5 * x * (1 + tanh(c * (x + 0.044715 * x * x * x)))
    return 0.5 * x * (1 + erf(x * (1 / math.sqrt(2))))


@_named
def silu(features, name=None):
    x = convert(features)
    return x * sigmoid(x)


swish = silu


@_named
def softmax(logits, axis=-1, name=None):
    """exp(x) / sum(exp(x)) along ``axis``, with the max subtracted first."""
    x = convert(logits)
    e = exp(x - stop_gradient(reduce_max(x, axis=axis, keepdims=True)))
    return e / reduce_sum(e, axis=axis, keepdims=True)


@_named
def log_softmax(logits, axis=-1, name=None):
    """x - logsumexp(x) along ``axis``."""
    x = convert(logits)
    shifted = x - stop_gradient(reduce_max(x, axis=axis, keepdims=True))
    return shifted - log(reduce_sum(exp(shifted), axis=axis, keepdims=True))


@_named
def softmax_cross_entropy_with_logits(labels=None, logits=None, axis=-1, dim=None, name=None):
    """-sum(labels * log_softmax(logits)) along ``axis``: one loss per example.
    Gradients flow into both labels and logits (TF's ``_v2``)."""
    _need(labels, logits, "softmax_cross_entropy_with_logits")
    logits = convert(logits)
    labels = convert(labels, like=logits)
    axis = dim if dim is not None else axis
    return -reduce_sum(labels * log_softmax(logits, axis=axis), axis=axis)


@_named
def sparse_softmax_cross_entropy_with_logits(labels=None, logits=None, name=None):
    """Cross-entropy against integer class ``labels`` (shape ``logits.shape[:-1]``)."""
    _need(labels, logits, "sparse_softmax_cross_entropy_with_logits")
    logits, labels = convert(logits), convert(labels)
    if not labels.dtype.is_integer:
        raise DTypeError(
            f"sparse_softmax_cross_entropy_with_logits: labels must be integer "
            f"class indices, got {labels.describe()}"
        )
    depth = logits.shape[-1] if logits.shape else None
    if (
        labels.shape is not None
        and logits.shape is not None
        and len(labels.shape) != len(logits.shape) - 1
    ):
        raise ShapeError(
            f"labels {labels.describe()} should have rank {len(logits.shape) - 1} "
            f"(logits {logits.describe()} without the class axis)"
        )
    if isinstance(depth, int):
        labels = class_labels(labels, depth, "sparse_softmax_cross_entropy_with_logits")
        onehot = stop_gradient(one_hot(labels, depth, dtype=logits.dtype))
    else:  # the class count comes with the feeds (logits of unknown rank or last dim)
        labels = class_labels(
            labels, None, "sparse_softmax_cross_entropy_with_logits", logits=logits
        )
        onehot = stop_gradient(one_hot_like(labels, logits))
    return -reduce_sum(onehot * log_softmax(logits), axis=-1)


@_named
def sigmoid_cross_entropy_with_logits(labels=None, logits=None, name=None):
    """max(x, 0) - x * z + log(1 + exp(-|x|)), per element."""
    _need(labels, logits, "sigmoid_cross_entropy_with_logits")
    x = convert(logits)
    z = convert(labels, like=x)
    return maximum(x, 0) - x * z + log1p(exp(-abs(x)))


@_named
def l2_loss(t, name=None):
    """sum(t ** 2) / 2."""
    return reduce_sum(square(convert(t))) * 0.5


@_named
def bias_add(value, bias, data_format=None, name=None):
    """value + bias along the last axis (NHWC)."""
    value, bias = convert(value), convert(bias)
    if bias.shape is not None and len(bias.shape) != 1:
        raise ShapeError(f"bias_add: bias must be a vector, got {bias.describe()}")
    if data_format == "NCHW":
        bias = reshape(bias, (-1,) + (1,) * (len(value.shape) - 2))
    return value + bias


@_named
def dropout(x, rate=0.5, training=True, seed=None, noise_shape=None, name=None):
    """Zero each element with probability ``rate`` and scale the rest by 1 / (1 - rate)
    while ``training`` (a bool or a bool tensor); the identity otherwise."""
    x = convert(x)
    if isinstance(rate, (int, float, np.number)) and not (0 <= rate < 1):
        raise GraphcError(
            f"dropout: rate must be in [0, 1), got {rate!r} (it is the fraction "
            "of elements dropped; keep_prob = 1 - rate)",
            user_location(),
        )
    if isinstance(training, bool) and not training:
        return x
    if isinstance(rate, (int, float)) and rate == 0:
        return x
    rate, training = _scalar(rate), _scalar(training)
    keep = 1 - rate
    if noise_shape is None:
        u = random_uniform_like(x, seed=seed, dtype=x.dtype)
    else:  # one draw per noise element, broadcast over x (e.g. drop whole channels)
        u = random_uniform(noise_shape, seed=seed, dtype=x.dtype)
    dropped = where(u >= rate, x / keep, 0)
    if isinstance(training, bool):
        return dropped
    return where(convert(training), dropped, x)


def _scalar(t):
    """A rate or switch fed through a shapeless placeholder (``tf.placeholder(tf.float32)``)
    is a scalar, as TF requires: say so, so that dropout's result keeps x's static shape."""
    return reshape(t, ()) if isinstance(t, Tensor) and t.shape is None else t


def moments(x, axes, keepdims=False, name=None):
    """Mean and variance over ``axes``."""
    x = convert(x)
    mean = reduce_mean(x, axis=axes, keepdims=True)
    var = reduce_mean(square(x - stop_gradient(mean)), axis=axes, keepdims=True)
    if not keepdims and x.shape is None:  # unknown rank: the axes as given, resolved later
        axes = list(axes) if isinstance(axes, (list, tuple)) else [axes]
        return squeeze(mean, axes), squeeze(var, axes)
    if not keepdims:
        axes = [
            normalize_axis(a, len(x.shape))
            for a in (axes if isinstance(axes, (list, tuple)) else [axes])
        ]
        mean, var = squeeze(mean, axes), squeeze(var, axes)
    return mean, var


def _need(labels, logits, what):
    if labels is None or logits is None:
        raise DTypeError(f"{what} needs both labels= and logits= (as keyword arguments)")


def mse(predictions, labels):
    return reduce_mean(square(convert(predictions) - convert(labels)))
