"""``gc.nn``: the neural-network ops under TensorFlow's names (``gc.nn.relu``,
``gc.nn.softmax_cross_entropy_with_logits(labels=, logits=)``…).

This is a namespace, not a second implementation: every function here is the op from
``graphc.ops`` (the composites of ``ops/nn.py``), except where TF 1.x's signature differs
from graphc's — those few adapters say how below. Later issues append to this module
(conv2d, max_pool, avg_pool, batch_normalization)."""

from __future__ import annotations

from .errors import GraphcError, user_location
from .ops.array import gather, identity, stop_gradient
from .ops.elementwise import maximum, sigmoid, sqrt, tanh
from .ops.nn import (
    bias_add,
    elu,
    gelu,
    l2_loss,
    leaky_relu,
    log_softmax,
    moments,
    relu,
    relu6,
    selu,
    sigmoid_cross_entropy_with_logits,
    silu,
    softmax,
    softplus,
    softsign,
    sparse_softmax_cross_entropy_with_logits,
    swish,
)
from .ops.nn import dropout as _dropout
from .ops.nn import softmax_cross_entropy_with_logits as _softmax_xent
from .ops.reduce import reduce_sum
from .ops.sources import convert

__all__ = [
    "bias_add",
    "dropout",
    "elu",
    "embedding_lookup",
    "gelu",
    "l2_loss",
    "l2_normalize",
    "leaky_relu",
    "log_softmax",
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
]


def softmax_cross_entropy_with_logits_v2(labels=None, logits=None, axis=-1, dim=None, name=None):
    """Cross-entropy between the distribution ``labels`` and ``softmax(logits)`` along
    ``axis``, one loss per example; gradients flow into both labels and logits."""
    return _softmax_xent(labels=labels, logits=logits, axis=axis, dim=dim, name=name)


def softmax_cross_entropy_with_logits(labels=None, logits=None, axis=-1, dim=None, name=None):
    """TF 1.x's original: like ``_v2``, but ``labels`` are treated as constants (no gradient
    flows into them), which is what TF 1.x did."""
    if labels is not None:
        labels = stop_gradient(
            convert(labels, like=convert(logits)) if logits is not None else convert(labels)
        )
    return _softmax_xent(labels=labels, logits=logits, axis=axis, dim=dim, name=name)


def dropout(x, keep_prob=None, noise_shape=None, seed=None, name=None, rate=None, training=True):
    """TF 1.x's ``tf.nn.dropout(x, keep_prob)``; TF 2's ``rate=`` is accepted too (give one).
    Kept elements are scaled by ``1 / keep_prob``; ``training=False`` (or a bool tensor that
    is false) makes it the identity."""
    if (keep_prob is None) == (rate is None):
        raise GraphcError(
            "gc.nn.dropout needs exactly one of keep_prob (TF 1.x) or rate=", user_location()
        )
    if rate is None:
        rate = 1 - keep_prob
    return _dropout(x, rate=rate, training=training, seed=seed, noise_shape=noise_shape, name=name)


def l2_normalize(x, axis=None, epsilon=1e-12, name=None):
    """``x / sqrt(max(sum(x ** 2, axis), epsilon))``."""
    x = convert(x)
    norm2 = reduce_sum(x * x, axis=axis, keepdims=True)
    out = x / sqrt(maximum(norm2, epsilon))
    return out if name is None else identity(out, name=name)


def embedding_lookup(params, ids, name=None):
    """Rows of ``params`` picked by the integer ``ids`` (a gather on axis 0)."""
    return gather(params, ids, axis=0, name=name)


# conv2d, pooling and normalization (issue 7): the ops of ops/conv.py under TF's names.
from .ops.conv import avg_pool, batch_normalization, conv2d, layer_normalization, max_pool  # noqa: E402

__all__ += ["avg_pool", "batch_normalization", "conv2d", "layer_normalization", "max_pool"]
