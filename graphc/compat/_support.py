"""What every TF 1.x namespace of the compat layer shares: the error for an API graphc
does not provide, namespaces of plain functions, and warnings given once."""

from __future__ import annotations

import difflib
import sys
import warnings

from ..errors import UnimplementedError, user_location

# Why some well-known TF 1.x APIs are missing, and what to use instead.
_HINTS = {
    "contrib": "tf.contrib was never part of TF's stable API; graphc provides "
    "contrib.layers, contrib.framework (arg_scope), contrib.slim, contrib.rnn and "
    "contrib.seq2seq.sequence_loss",
    "estimator": "write the training loop with tf.Session and feed_dict",
    "keras": "build the model with tf.layers or graphc.layers",
    "enable_eager_execution": "graphc is define-and-run: build the graph, then run it in a "
    "tf.Session (graph mode is TF 1.x's default)",
    "PaddingFIFOQueue": "graphc has FIFOQueue and RandomShuffleQueue; pad the examples first",
    "PriorityQueue": "graphc has FIFOQueue and RandomShuffleQueue",
    "train.batch_join": "use tf.train.batch on one reader",
    "train.shuffle_batch_join": "use tf.train.shuffle_batch on one reader",
    "boolean_mask": "its result's shape depends on the data, which graphc graphs cannot "
    "have; multiply by the mask (tf.cast(mask, x.dtype)) instead",
    "unique": "its result's shape depends on the data, which graphc graphs cannot have",
    "dynamic_partition": "its results' shapes depend on the data, which graphc graphs cannot have",
    "py_func": "graphc cannot call Python inside a graph; use gc.register_op",
    "string": "graphc tensors are numeric; strings are not supported",
    "sparse": "sparse tensors are not supported",
    "SparseTensor": "sparse tensors are not supported",
}


class MissingAPIError(UnimplementedError, AttributeError):
    """A TF 1.x name that graphc.compat.v1 does not provide. It is an AttributeError too,
    so ``hasattr(tf, name)`` and ``getattr(tf, name, default)`` keep working."""


def missing(namespace: str, name: str, candidates=()) -> MissingAPIError:
    """The error for ``tf.<namespace>.<name>``; a name close to one of ``candidates`` (the
    names the namespace has) is most likely a typo, so the message asks about it first."""
    qual = f"{namespace}.{name}" if namespace else name
    top = namespace.split(".")[0]
    public = [c for c in candidates if not c.startswith("_")]
    close = difflib.get_close_matches(name, public, n=1, cutoff=0.8) if public else []
    if close and qual not in _HINTS and name not in _HINTS:
        prefix = f"{namespace}." if namespace else ""
        return MissingAPIError(
            f"tf.{qual} does not exist: did you mean {close[0]}? (tf.{prefix}{close[0]})",
            user_location(),
        )
    hint = _HINTS.get(qual) or _HINTS.get(name) or _HINTS.get(top)
    return MissingAPIError(
        f"tf.{qual} is not available in graphc.compat.v1" + (f": {hint}" if hint else ""),
        user_location(),
    )


def module_getattr(namespace: str):
    """A module-level ``__getattr__`` raising MissingAPIError for TF names not defined
    (called at the bottom of the module, whose names it offers as did-you-means)."""
    names = sys._getframe(1).f_globals

    def __getattr__(name):
        if name.startswith("__"):  # import machinery and tools probe dunders: stay quiet
            raise AttributeError(name)
        raise missing(namespace, name, list(names))

    return __getattr__


class Namespace:
    """A module-like bundle of functions (``tf.math``, ``tf.random``…); unknown names raise
    MissingAPIError naming the full TF path."""

    def __init__(self, name: str, **members):
        self._name = name
        self.__dict__.update(members)

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise missing(self._name, attr, list(self.__dict__))

    def __repr__(self):
        return f"<graphc.compat.v1 namespace tf.{self._name}>"


_warned: set = set()


def warn_once(key: str, message: str) -> None:
    """A UserWarning the first time ``key`` comes up in this process."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, UserWarning, stacklevel=3)


def ignored(what: str, **kwargs) -> None:
    """Warn once about TF arguments that have no graphc meaning but were set."""
    for k, v in kwargs.items():
        if v not in (None, False):
            warn_once(f"{what}:{k}", f"{what}: argument {k}={v!r} has no effect in graphc")
