"""``tf.metrics`` of TF 1.x: streaming metrics as ``(value, update_op)`` pairs.

Each metric keeps running totals in local variables (collection ``local_variables``, not
``variables``, so ``tf.local_variables_initializer()`` resets them and ``Saver`` ignores
them). Running ``update_op`` adds a batch to the totals and returns the updated metric;
``value`` reads the metric without changing it."""

from __future__ import annotations

from ..ir.graph import get_default_graph
from ..ops.array import broadcast_like, cast, size
from ..ops.elementwise import equal, maximum
from ..ops.reduce import reduce_sum
from ..ops.sources import convert
from ..ops.state import Variable, assign_add, control_dependencies, group
from ._support import module_getattr
from .scopes import variable_scope

LOCAL_VARIABLES = "local_variables"


def _local(name, dtype):
    from ..ops.array import zeros

    return Variable(
        zeros((), dtype=dtype),
        trainable=False,
        name=name,
        collections=[LOCAL_VARIABLES, "metric_variables"],
    )


def mean(values, weights=None, metrics_collections=None, updates_collections=None, name=None):
    """The running (weighted) mean of every value seen by ``update_op``."""
    values = convert(values)
    v = cast(values, "float32")
    w = cast(convert(weights, like=values), "float32") if weights is not None else None
    with variable_scope(name, default_name="mean"):
        total, count = _local("total", "float32"), _local("count", "float32")
        if w is None:
            batch_total, batch_count = reduce_sum(v), cast(size(v), "float32")
        else:
            batch_total, batch_count = reduce_sum(v * w), reduce_sum(broadcast_like(w, v))
        value = total / maximum(count, 1e-30)
        update = group(assign_add(total, batch_total), assign_add(count, batch_count))
        with control_dependencies([update]):  # read the totals after this batch is added
            update_value = total / maximum(count, 1e-30)
    for key, t in ((metrics_collections, value), (updates_collections, update_value)):
        for c in key or ():
            get_default_graph().add_to_collection(c, t)
    return value, update_value


def accuracy(
    labels, predictions, weights=None, metrics_collections=None, updates_collections=None, name=None
):
    """The running fraction of ``predictions`` equal to ``labels``."""
    predictions = convert(predictions)
    labels = convert(labels, like=predictions)
    if labels.dtype is not predictions.dtype:
        labels = cast(labels, predictions.dtype)
    hits = cast(equal(labels, predictions), "float32")
    return mean(hits, weights, metrics_collections, updates_collections, name=name or "accuracy")


__getattr__ = module_getattr("metrics")
