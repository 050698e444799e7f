"""``tf.contrib.seq2seq``: ``sequence_loss`` (the weighted cross-entropy of a sequence of
logits, averaged as TF averages it) and the decoding loop (``TrainingHelper``,
``GreedyEmbeddingHelper``, ``BasicDecoder``, ``dynamic_decode``: seq2seq_decode.py)."""

from __future__ import annotations

from ...errors import ShapeError, user_location
from ...ops.array import reshape
from ...ops.nn import sparse_softmax_cross_entropy_with_logits
from ...ops.reduce import reduce_sum
from ...ops.sources import convert
from .._support import module_getattr
from .seq2seq_decode import (  # noqa: F401 - the decoding loop (its own module)
    BasicDecoder,
    BasicDecoderOutput,
    GreedyEmbeddingHelper,
    Helper,
    TrainingHelper,
    dynamic_decode,
)


def sequence_loss(
    logits,
    targets,
    weights,
    average_across_timesteps=True,
    average_across_batch=True,
    sum_over_timesteps=False,
    sum_over_batch=False,
    softmax_loss_function=None,
    name=None,
):
    """``logits`` (batch, time, classes), integer ``targets`` and float ``weights``
    (batch, time): the cross-entropy of each step times its weight, summed and divided by
    the summed weights over the averaged axes (a scalar when averaging over both)."""
    logits, targets, weights = convert(logits), convert(targets), convert(weights)
    if logits.shape is None or len(logits.shape) != 3:
        raise ShapeError(
            f"sequence_loss needs logits of shape (batch, time, classes), got {logits.describe()}",
            user_location(),
        )
    if (average_across_timesteps and sum_over_timesteps) or (
        average_across_batch and sum_over_batch
    ):
        raise ShapeError(
            "sequence_loss: average_across_* and sum_over_* exclude each other", user_location()
        )
    classes = logits.shape[-1]
    flat_logits = reshape(logits, [-1, classes])
    flat_targets = reshape(targets, [-1])
    if softmax_loss_function is None:
        xent = sparse_softmax_cross_entropy_with_logits(labels=flat_targets, logits=flat_logits)
    else:
        xent = softmax_loss_function(labels=flat_targets, logits=flat_logits)
    xent = xent * reshape(weights, [-1])
    if average_across_timesteps and average_across_batch:
        return reduce_sum(xent) / (reduce_sum(weights) + 1e-12)
    if sum_over_timesteps and sum_over_batch:
        return reduce_sum(xent)
    batch_time = (
        [-1 if not isinstance(d, int) else d for d in targets.shape]
        if targets.shape is not None
        else [-1, logits.shape[1]]
    )
    xent = reshape(xent, batch_time if batch_time.count(-1) <= 1 else [-1, logits.shape[1]])
    if average_across_timesteps or sum_over_timesteps:
        xent = reduce_sum(xent, axis=1)
        if average_across_timesteps:
            xent = xent / (reduce_sum(weights, axis=1) + 1e-12)
    if average_across_batch or sum_over_batch:
        xent = reduce_sum(xent, axis=0)
        if average_across_batch:
            xent = xent / (reduce_sum(weights, axis=0) + 1e-12)
    return xent


__getattr__ = module_getattr("contrib.seq2seq")
