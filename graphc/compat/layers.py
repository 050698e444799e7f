"""``tf.layers`` of TF 1.x: functional layers whose variables come from ``get_variable``.

They are built on the compat variable store rather than on ``gc.layers`` because TF 1.x
scripts rely on its naming and sharing rules: a layer's variables are
``<layer name>/kernel`` and ``<layer name>/bias``, unnamed layers are numbered
(``dense``, ``dense_1``…), and ``reuse=True`` (or an enclosing reusing variable scope)
shares them. Defaults are TF's: glorot-uniform kernels, zero biases, ``padding="valid"``,
``dropout(training=False)``, and batch normalization that updates its moving statistics
through ops in ``tf.GraphKeys.UPDATE_OPS`` only when ``training`` is true."""

from __future__ import annotations

import numpy as np

from .. import nn as _gnn
from .._kwargs import accepts, check_kwargs, parameters
from ..errors import ShapeError, user_location
from ..ir.node import Tensor
from ..layers import _last_dim
from ..ops import conv as _conv
from ..ops.array import expand_dims, flatten_batch, reshape, squeeze
from ..ops.elementwise import where
from ..ops.linalg import matmul, tensordot
from ..ops.nn import bias_add
from ..ops.sources import convert
from ..ops.state import assign
from ._support import module_getattr
from .initializers import Ones, Zeros
from .scopes import VariableScope, all_scoped_variables, get_variable, variable_scope

UPDATE_OPS = "update_ops"


def _static_last(x, what):
    return _last_dim(x, f"tf.layers.{what}")


def _bias_and_activate(y, n, use_bias, initializer, regularizer, trainable, activation):
    """``activation(y + bias)``: the ``(n,)`` variable "bias" of the current variable scope
    (zeros unless ``initializer`` says otherwise); each part left out when not asked for."""
    if use_bias:
        bias = get_variable(
            "bias",
            (int(n),),
            dtype=y.dtype,
            initializer=initializer or Zeros(),
            regularizer=regularizer,
            trainable=trainable,
        )
        y = bias_add(y, bias)
    return activation(y) if activation is not None else y


@accepts(what="tf.layers.dense")
def dense(
    inputs,
    units,
    activation=None,
    use_bias=True,
    kernel_initializer=None,
    bias_initializer=None,
    kernel_regularizer=None,
    bias_regularizer=None,
    activity_regularizer=None,
    kernel_constraint=None,
    bias_constraint=None,
    trainable=True,
    name=None,
    reuse=None,
):
    """``activation(inputs @ kernel + bias)`` over the last axis of ``inputs``."""
    x = convert(inputs)
    n_in = _static_last(x, "dense")
    with variable_scope(name, default_name="dense", reuse=reuse):
        kernel = get_variable(
            "kernel",
            (n_in, int(units)),
            dtype=x.dtype,
            initializer=kernel_initializer,
            regularizer=kernel_regularizer,
            trainable=trainable,
        )
        y = (
            matmul(x, kernel)
            if len(x.shape) == 2
            else tensordot(x, kernel, [[len(x.shape) - 1], [0]])
        )
        return _bias_and_activate(
            y, units, use_bias, bias_initializer, bias_regularizer, trainable, activation
        )


def _pair(v, what="kernel_size"):
    """An int or a pair, as tf.layers takes sizes and strides."""
    return _conv._pair(v, what)


def _channels_last(data_format, what):
    if data_format not in ("channels_last", "NHWC", None):
        raise ShapeError(
            f"tf.layers.{what}: only data_format='channels_last' is supported, got {data_format!r}",
            user_location(),
        )


@accepts(what="tf.layers.conv2d")
def conv2d(
    inputs,
    filters,
    kernel_size,
    strides=(1, 1),
    padding="valid",
    data_format="channels_last",
    dilation_rate=(1, 1),
    activation=None,
    use_bias=True,
    kernel_initializer=None,
    bias_initializer=None,
    kernel_regularizer=None,
    bias_regularizer=None,
    activity_regularizer=None,
    kernel_constraint=None,
    bias_constraint=None,
    trainable=True,
    name=None,
    reuse=None,
):
    """A 2-d convolution layer over NHWC ``inputs`` with ``filters`` output channels."""
    _channels_last(data_format, "conv2d")
    x = convert(inputs)
    c_in = _static_last(x, "conv2d")
    kh, kw = _pair(kernel_size)
    with variable_scope(name, default_name="conv2d", reuse=reuse):
        kernel = get_variable(
            "kernel",
            (kh, kw, c_in, int(filters)),
            dtype=x.dtype,
            initializer=kernel_initializer,
            regularizer=kernel_regularizer,
            trainable=trainable,
        )
        y = _conv.conv2d(
            x, kernel, strides=_pair(strides), padding=padding, dilations=dilation_rate
        )
        return _bias_and_activate(
            y, filters, use_bias, bias_initializer, bias_regularizer, trainable, activation
        )


@accepts(what="tf.layers.conv1d")
def conv1d(
    inputs,
    filters,
    kernel_size,
    strides=1,
    padding="valid",
    data_format="channels_last",
    dilation_rate=1,
    activation=None,
    use_bias=True,
    kernel_initializer=None,
    bias_initializer=None,
    kernel_regularizer=None,
    bias_regularizer=None,
    activity_regularizer=None,
    kernel_constraint=None,
    bias_constraint=None,
    trainable=True,
    name=None,
    reuse=None,
):
    """A 1-d convolution layer over ``(batch, width, channels)`` ``inputs`` (the text CNNs'
    layer): a conv2d over a height of 1, variables ``conv1d/kernel`` (width, in, filters)
    and ``conv1d/bias``."""
    _channels_last(data_format, "conv1d")
    x = convert(inputs)
    c_in = _static_last(x, "conv1d")
    (k,) = _single(kernel_size, "kernel_size")
    (stride,) = _single(strides, "strides")
    (rate,) = _single(dilation_rate, "dilation_rate")
    with variable_scope(name, default_name="conv1d", reuse=reuse):
        kernel = get_variable(
            "kernel",
            (k, c_in, int(filters)),
            dtype=x.dtype,
            initializer=kernel_initializer,
            regularizer=kernel_regularizer,
            trainable=trainable,
        )
        y = _conv.conv2d(
            expand_dims(x, 1),
            expand_dims(kernel, 0),
            strides=(1, stride),
            padding=padding,
            dilations=(1, rate),
        )
        return _bias_and_activate(
            squeeze(y, [1]),
            filters,
            use_bias,
            bias_initializer,
            bias_regularizer,
            trainable,
            activation,
        )


def _single(v, what):
    v = tuple(v) if isinstance(v, (list, tuple)) else (v,)
    if len(v) != 1:
        raise ShapeError(f"tf.layers 1-d: {what} must be one int, got {v!r}", user_location())
    return (int(v[0]),)


def _pool1d(pool, inputs, pool_size, strides, padding, data_format, what, name):
    _channels_last(data_format, what)
    (k,) = _single(pool_size, "pool_size")
    (s,) = _single(strides, "strides")
    y = pool(expand_dims(convert(inputs), 1), (1, k), (1, s), padding)
    return squeeze(y, [1], name=name)


@accepts(what="tf.layers.max_pooling1d")
def max_pooling1d(
    inputs, pool_size, strides, padding="valid", data_format="channels_last", name=None
):
    return _pool1d(
        _conv.max_pool, inputs, pool_size, strides, padding, data_format, "max_pooling1d", name
    )


@accepts(what="tf.layers.average_pooling1d")
def average_pooling1d(
    inputs, pool_size, strides, padding="valid", data_format="channels_last", name=None
):
    return _pool1d(
        _conv.avg_pool, inputs, pool_size, strides, padding, data_format, "average_pooling1d", name
    )


@accepts(what="tf.layers.conv2d_transpose")
def conv2d_transpose(
    inputs,
    filters,
    kernel_size,
    strides=(1, 1),
    padding="valid",
    data_format="channels_last",
    activation=None,
    use_bias=True,
    kernel_initializer=None,
    bias_initializer=None,
    kernel_regularizer=None,
    bias_regularizer=None,
    activity_regularizer=None,
    kernel_constraint=None,
    bias_constraint=None,
    trainable=True,
    name=None,
    reuse=None,
):
    """The transpose of a convolution (the gradient of conv2d with respect to its input):
    each spatial dim grows to ``size * stride`` ("same") or
    ``size * stride + max(kernel - stride, 0)`` ("valid"). The kernel is
    ``(kh, kw, filters, in_channels)``, as TF's."""
    _channels_last(data_format, "conv2d_transpose")
    x = convert(inputs)
    c_in = _static_last(x, "conv2d_transpose")
    (kh, kw), (sh, sw) = _pair(kernel_size), _pair(strides)
    same = padding.lower() == "same"
    h, w = (
        d * s + (0 if same else max(k - s, 0))
        for d, s, k in ((x.shape[1], sh, kh), (x.shape[2], sw, kw))
    )
    with variable_scope(name, default_name="conv2d_transpose", reuse=reuse):
        kernel = get_variable(
            "kernel",
            (kh, kw, int(filters), c_in),
            dtype=x.dtype,
            initializer=kernel_initializer,
            regularizer=kernel_regularizer,
            trainable=trainable,
        )
        y = _conv.CONV2D_BACKPROP_INPUT(
            x,
            kernel,
            input_shape=(x.shape[0], h, w, int(filters)),
            strides=(sh, sw),
            padding=_conv._padding(padding),
        )
        return _bias_and_activate(
            y, filters, use_bias, bias_initializer, bias_regularizer, trainable, activation
        )


@accepts(what="tf.layers.max_pooling2d")
def max_pooling2d(
    inputs, pool_size, strides, padding="valid", data_format="channels_last", name=None
):
    _channels_last(data_format, "max_pooling2d")
    return _conv.max_pool(inputs, _pair(pool_size), _pair(strides), padding, name=name)


@accepts(what="tf.layers.average_pooling2d")
def average_pooling2d(
    inputs, pool_size, strides, padding="valid", data_format="channels_last", name=None
):
    _channels_last(data_format, "average_pooling2d")
    return _conv.avg_pool(inputs, _pair(pool_size), _pair(strides), padding, name=name)


@accepts(what="tf.layers.flatten")
def flatten(inputs, name=None, data_format="channels_last"):
    """Keep the batch axis, merge the others (sizes not static come with the feeds)."""
    x = convert(inputs)
    rest = x.shape[1:] if x.shape is not None else None
    if rest is None or not all(isinstance(d, int) for d in rest):
        return flatten_batch(x, name=name)  # TF reshapes to (batch, -1) when the graph runs
    return reshape(x, (-1, int(np.prod(rest, dtype=np.int64))), name=name)


@accepts(what="tf.layers.dropout")
def dropout(inputs, rate=0.5, noise_shape=None, seed=None, training=False, name=None):
    """Drop with probability ``rate`` while ``training`` (a bool or a bool tensor); TF's
    default is ``training=False``: the identity."""
    return _gnn.dropout(
        inputs, rate=rate, noise_shape=noise_shape, seed=seed, training=training, name=name
    )


@accepts(what="tf.layers.batch_normalization")
def batch_normalization(
    inputs,
    axis=-1,
    momentum=0.99,
    epsilon=1e-3,
    center=True,
    scale=True,
    beta_initializer=None,
    gamma_initializer=None,
    moving_mean_initializer=None,
    moving_variance_initializer=None,
    beta_regularizer=None,
    gamma_regularizer=None,
    beta_constraint=None,
    gamma_constraint=None,
    training=False,
    trainable=True,
    name=None,
    reuse=None,
    renorm=False,
    renorm_clipping=None,
    renorm_momentum=0.99,
    fused=None,
    virtual_batch_size=None,
    adjustment=None,
):
    """Normalize over every axis but ``axis`` with the batch's statistics while training
    and the moving averages otherwise. While training, ops that move the averages towards
    the batch's (``moving = moving * momentum + batch * (1 - momentum)``) are added to
    ``tf.GraphKeys.UPDATE_OPS``: run them, e.g. as control dependencies of the train op."""
    x = convert(inputs)
    if x.shape is None:  # TF: "Input has undefined rank"
        raise ShapeError(
            f"tf.layers.batch_normalization: input has undefined rank: {x.describe()} "
            "(give the placeholder a shape)",
            user_location(),
        )
    rank = len(x.shape)
    axis = axis % rank
    channels = x.shape[axis]
    if not isinstance(channels, int):
        raise ShapeError(
            f"tf.layers.batch_normalization needs a static axis {axis}, got {x.describe()}",
            user_location(),
        )
    reduce_axes = [i for i in range(rank) if i != axis]
    with variable_scope(name, default_name="batch_normalization", reuse=reuse):

        def param(pname, init, trainable_, reg=None):
            v = get_variable(
                pname,
                (channels,),
                dtype=x.dtype,
                initializer=init,
                regularizer=reg,
                trainable=trainable_,
            )
            return (
                v
                if axis == rank - 1
                else reshape(v, [channels if i == axis else 1 for i in range(rank)])
            )

        gamma = (
            param("gamma", gamma_initializer or Ones(), trainable, gamma_regularizer)
            if scale
            else None
        )
        beta = (
            param("beta", beta_initializer or Zeros(), trainable, beta_regularizer)
            if center
            else None
        )
        moving_mean = get_variable(
            "moving_mean",
            (channels,),
            dtype=x.dtype,
            initializer=moving_mean_initializer or Zeros(),
            trainable=False,
        )
        moving_var = get_variable(
            "moving_variance",
            (channels,),
            dtype=x.dtype,
            initializer=moving_variance_initializer or Ones(),
            trainable=False,
        )
        if isinstance(training, Tensor) and training.shape is None:
            training = reshape(training, ())  # a shapeless bool placeholder is a scalar
        if training is False:
            mean, var = moving_mean, moving_var
        else:
            batch_mean, batch_var = _gnn.moments(x, axes=reduce_axes)
            if training is True:
                mean, var = batch_mean, batch_var
            else:  # a bool tensor chooses at run time
                mean = where(training, batch_mean, moving_mean)
                var = where(training, batch_var, moving_var)
            for moving, batch in ((moving_mean, batch_mean), (moving_var, batch_var)):
                new = moving * momentum + batch * (1 - momentum)
                if isinstance(training, Tensor):
                    new = where(training, new, moving)
                x.graph.add_to_collection(UPDATE_OPS, assign(moving, new).op)
        if axis != rank - 1:
            shape = [channels if i == axis else 1 for i in range(rank)]
            mean, var = reshape(mean, shape), reshape(var, shape)
        return _conv.batch_normalization(x, mean, var, beta, gamma, epsilon)


# --- TF 1.x's object layers: tf.layers.Dense(10)(x) -----------------------------------------


class Layer:
    """A layer object: the first call creates its variables under a fresh scope name (or
    ``name``), and every later call shares them — TF 1.x's ``tf.layers.Dense`` & co."""

    _function = None
    _default_name = "layer"

    def __init__(self, *args, name=None, **kwargs):
        fn = type(self)._function
        if fn is not None:  # a misspelled argument fails here, not at the first call
            check_kwargs(f"tf.layers.{type(self).__name__}", kwargs, parameters(fn) - {"inputs"})
        self._args, self._kwargs = args, kwargs
        self.name = name
        self._scope = None

    def __call__(self, inputs, **call_kwargs):
        if self._scope is None:
            with variable_scope(self.name, default_name=self._default_name) as scope:
                self._scope = VariableScope(scope.name)  # reserve the name
            reuse = None
        else:
            reuse = True
        fn = type(self)._function
        return fn(
            inputs, *self._args, name=self._scope, reuse=reuse, **{**self._kwargs, **call_kwargs}
        )

    @property
    def variables(self):
        if self._scope is None:
            return []
        prefix = self._scope.name + "/"
        return [v for name, v in all_scoped_variables().items() if name.startswith(prefix)]

    @property
    def trainable_variables(self):
        return [v for v in self.variables if v.trainable]

    def __getattr__(self, attr):  # .kernel, .bias, .gamma, .moving_mean…
        if attr.startswith("_") or self._scope is None:
            raise AttributeError(attr)
        for v in self.variables:
            if v.op.name == f"{self._scope.name}/{attr}":
                return v
        raise AttributeError(attr)


class _Stateless(Layer):
    """Pooling, flatten and dropout have no variables: each call just applies the op."""

    def __call__(self, inputs, **call_kwargs):
        fn = type(self)._function
        return fn(inputs, *self._args, name=self.name, **{**self._kwargs, **call_kwargs})


def _layer_class(name, function, default_name, base=Layer):
    cls = type(
        name,
        (base,),
        {
            "_function": staticmethod(function),
            "_default_name": default_name,
            "__doc__": f"``tf.layers.{name}``: see ``{function.__name__}``.",
        },
    )
    return cls


Dense = _layer_class("Dense", dense, "dense")
Conv2D = _layer_class("Conv2D", conv2d, "conv2d")
Conv1D = _layer_class("Conv1D", conv1d, "conv1d")
MaxPooling1D = _layer_class("MaxPooling1D", max_pooling1d, "max_pooling1d", _Stateless)
AveragePooling1D = _layer_class(
    "AveragePooling1D", average_pooling1d, "average_pooling1d", _Stateless
)
Conv2DTranspose = _layer_class("Conv2DTranspose", conv2d_transpose, "conv2d_transpose")
BatchNormalization = _layer_class("BatchNormalization", batch_normalization, "batch_normalization")
MaxPooling2D = _layer_class("MaxPooling2D", max_pooling2d, "max_pooling2d", _Stateless)
AveragePooling2D = _layer_class(
    "AveragePooling2D", average_pooling2d, "average_pooling2d", _Stateless
)
Flatten = _layer_class("Flatten", flatten, "flatten", _Stateless)
Dropout = _layer_class("Dropout", dropout, "dropout", _Stateless)


__all__ = [
    "average_pooling1d",
    "average_pooling2d",
    "conv1d",
    "max_pooling1d",
    "Conv1D",
    "MaxPooling1D",
    "AveragePooling1D",
    "batch_normalization",
    "conv2d",
    "conv2d_transpose",
    "dense",
    "dropout",
    "flatten",
    "max_pooling2d",
    "Layer",
    "Dense",
    "Conv2D",
    "Conv2DTranspose",
    "BatchNormalization",
    "MaxPooling2D",
    "AveragePooling2D",
    "Flatten",
    "Dropout",
]

__getattr__ = module_getattr("layers")
