"""``tf.contrib.slim``: TF-Slim's layers and ``arg_scope`` (the same as
``tf.contrib.layers`` and ``tf.contrib.framework``)."""

from __future__ import annotations

from .._support import module_getattr
from .framework import add_arg_scope, arg_scope  # noqa: F401
from .layers import (  # noqa: F401
    avg_pool2d,
    batch_norm,
    conv2d,
    dropout,
    flatten,
    fully_connected,
    l1_regularizer,
    l2_regularizer,
    layer_norm,
    max_pool2d,
    one_hot_encoding,
    repeat,
    stack,
    variance_scaling_initializer,
    xavier_initializer,
)

__getattr__ = module_getattr("contrib.slim")
