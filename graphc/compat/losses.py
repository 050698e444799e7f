"""``tf.losses`` of TF 1.x: per-example losses reduced to one scalar.

TF's default reduction, ``SUM_BY_NONZERO_WEIGHTS``, is the weighted sum divided by the
number of non-zero weights (broadcast to the losses' shape); with the default
``weights=1.0`` that is the plain mean. Every loss is also added to the ``losses``
collection, which ``get_total_loss`` sums together with the regularization losses."""

from __future__ import annotations

from .. import nn as _gnn
from ..ir.graph import get_default_graph
from ..ir.node import Tensor
from ..ops.array import broadcast_like, cast, stop_gradient
from ..ops.elementwise import abs as _abs
from ..ops.elementwise import add, log, minimum, not_equal, square
from ..ops.reduce import reduce_mean, reduce_sum
from ..ops.sources import convert
from ._support import Namespace, module_getattr
from .scopes import REGULARIZATION_LOSSES

LOSSES = "losses"

Reduction = Namespace(
    "losses.Reduction",
    NONE="none",
    SUM="weighted_sum",
    MEAN="weighted_mean",
    SUM_OVER_BATCH_SIZE="weighted_sum_over_batch_size",
    SUM_BY_NONZERO_WEIGHTS="weighted_sum_by_nonzero_weights",
)


def compute_weighted_loss(
    losses,
    weights=1.0,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
):
    """Weight ``losses`` and reduce them (see the module docstring)."""
    losses = convert(losses)
    scalar_weight = not isinstance(weights, Tensor) and getattr(weights, "ndim", 0) == 0
    w = convert(weights, like=losses)
    weighted = losses * w
    if reduction == Reduction.NONE:
        result = weighted
    elif reduction == Reduction.SUM:
        result = reduce_sum(weighted)
    elif reduction == Reduction.SUM_OVER_BATCH_SIZE or scalar_weight:
        # one weight for all: its count of non-zero entries is the number of losses
        result = reduce_mean(weighted)
    else:
        wb = broadcast_like(w, losses)
        if reduction == Reduction.MEAN:
            denom = reduce_sum(wb)
        else:
            denom = reduce_sum(cast(not_equal(wb, 0), losses.dtype))
        result = reduce_sum(weighted) / denom
    if loss_collection:
        get_default_graph().add_to_collection(loss_collection, result)
    return result


def mean_squared_error(
    labels,
    predictions,
    weights=1.0,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
):
    p = convert(predictions)
    return compute_weighted_loss(
        square(p - convert(labels, like=p)), weights, scope, loss_collection, reduction
    )


def absolute_difference(
    labels,
    predictions,
    weights=1.0,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
):
    p = convert(predictions)
    return compute_weighted_loss(
        _abs(p - convert(labels, like=p)), weights, scope, loss_collection, reduction
    )


def huber_loss(
    labels,
    predictions,
    weights=1.0,
    delta=1.0,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
):
    """Quadratic within ``delta`` of the label, linear beyond."""
    p = convert(predictions)
    err = _abs(p - convert(labels, like=p))
    quad = minimum(err, delta)
    return compute_weighted_loss(
        quad * quad * 0.5 + (err - quad) * delta, weights, scope, loss_collection, reduction
    )


def log_loss(
    labels,
    predictions,
    weights=1.0,
    epsilon=1e-7,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
):
    """Binary cross-entropy of probabilities ``predictions``."""
    p = convert(predictions)
    y = convert(labels, like=p)
    loss = -y * log(p + epsilon) - (1 - y) * log(1 - p + epsilon)
    return compute_weighted_loss(loss, weights, scope, loss_collection, reduction)


def _smooth(labels, smoothing, n):
    return labels * (1 - smoothing) + smoothing / n if smoothing else labels


def softmax_cross_entropy(
    onehot_labels,
    logits,
    weights=1.0,
    label_smoothing=0,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
):
    """Softmax cross-entropy against one-hot (or soft) labels; no gradient flows into the
    labels, as in TF 1.x."""
    logits = convert(logits)
    labels = stop_gradient(convert(onehot_labels, like=logits))
    labels = _smooth(labels, label_smoothing, logits.shape[-1])
    loss = _gnn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits)
    return compute_weighted_loss(loss, weights, scope, loss_collection, reduction)


def sparse_softmax_cross_entropy(
    labels,
    logits,
    weights=1.0,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
):
    loss = _gnn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return compute_weighted_loss(loss, weights, scope, loss_collection, reduction)


def sigmoid_cross_entropy(
    multi_class_labels,
    logits,
    weights=1.0,
    label_smoothing=0,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
):
    logits = convert(logits)
    labels = stop_gradient(convert(multi_class_labels, like=logits))
    if label_smoothing:
        labels = labels * (1 - label_smoothing) + 0.5 * label_smoothing
    loss = _gnn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    return compute_weighted_loss(loss, weights, scope, loss_collection, reduction)


def add_loss(loss, loss_collection=LOSSES):
    if loss_collection:
        get_default_graph().add_to_collection(loss_collection, loss)


def get_losses(scope=None, loss_collection=LOSSES):
    return get_default_graph().get_collection(loss_collection, scope)


def get_regularization_losses(scope=None):
    return get_default_graph().get_collection(REGULARIZATION_LOSSES, scope)


def _sum_all(terms, name):
    if not terms:
        from ..ops.sources import constant

        return constant(0.0, name=name)
    total = terms[0]
    for t in terms[1:]:
        total = add(total, t)
    return total


def get_regularization_loss(scope=None, name="total_regularization_loss"):
    """The sum of the regularizers' losses (0.0 when there are none)."""
    return _sum_all(get_regularization_losses(scope), name)


def get_total_loss(add_regularization_losses=True, name="total_loss", scope=None):
    terms = get_losses(scope)
    if add_regularization_losses:
        terms = terms + get_regularization_losses(scope)
    return _sum_all(terms, name)


__getattr__ = module_getattr("losses")
