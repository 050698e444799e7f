"""``gc.layers``: layers that create their own variables, in TF 1.x's functional style
(``gc.layers.dense(x, 128, activation=gc.relu)``) and as objects that a ``Sequential``
stacks (``gc.layers.Dense(128, activation=gc.relu)``).

A layer object builds its variables on its first call and reuses them on later calls, so
one model can serve a training graph and an evaluation graph. Every call is recorded in
the graph's ``"layers"`` collection, which ``graph.summary()`` prints as a table."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ._kwargs import TF_BATCH_NORM, TF_CONV, TF_DROPOUT, TF_LAYER, accepts
from .errors import GraphcError, ShapeError, UnimplementedError, user_location
from .ir.graph import get_default_graph
from .ir.node import Tensor
from .ops.array import fill, reshape
from .ops.nn import dropout as _dropout
from .ops.nn import moments
from .ops.random import random_normal, random_uniform, truncated_normal
from .ops.sources import convert
from .ops.state import Variable, assign
from .shapes import fully_known, num_elements

LAYERS = "layers"  # graph collection of LayerRecord, read by Graph.summary()
UPDATE_OPS = "update_ops"  # batch_norm's moving-average updates, as TF's GraphKeys.UPDATE_OPS


@dataclass
class LayerRecord:
    """One layer call: what ``graph.summary()`` shows."""

    name: str
    kind: str
    output: Tensor
    variables: list = field(default_factory=list)


# --- initializers: callables (shape, dtype) -> tensor -----------------------------------------


def glorot_uniform_initializer(seed=None):
    """Uniform in ±sqrt(6 / (fan_in + fan_out)) (TF's default for dense and conv kernels)."""

    def init(shape, dtype):
        receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
        fan_in = shape[-2] * receptive if len(shape) >= 2 else shape[0]
        fan_out = shape[-1] * receptive
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return random_uniform(shape, -limit, limit, dtype=dtype, seed=seed)

    return init


def random_normal_initializer(mean=0.0, stddev=1.0, seed=None):
    return lambda shape, dtype: random_normal(shape, mean, stddev, dtype=dtype, seed=seed)


def truncated_normal_initializer(mean=0.0, stddev=1.0, seed=None):
    return lambda shape, dtype: truncated_normal(shape, mean, stddev, dtype=dtype, seed=seed)


def constant_initializer(value=0.0):
    return lambda shape, dtype: fill(shape, value, dtype=dtype)


def zeros_initializer():
    return constant_initializer(0.0)


def ones_initializer():
    return constant_initializer(1.0)


# --- the layer objects ------------------------------------------------------------------------


class Layer:
    """A callable that builds graph nodes, creating its variables on the first call."""

    kind = "Layer"

    def __init__(self, name=None, trainable=True):
        self.name = name
        self.trainable = trainable
        self.variables: list = []
        self.built = False
        self._scope = None

    def __call__(self, inputs, training=None):
        x = convert(inputs)
        graph = x.graph
        with graph.as_default():
            first = not self.built
            if first:
                # the first call claims a unique scope ("dense", "dense_1"); later calls reuse it
                with graph.name_scope(self.name or self.default_name()) as scope:
                    self._scope = scope
                    self.build(x)
                self.built = True
            with graph.name_scope(self._scope):
                out = self.call(x, training)
        if first:  # one summary row per layer, however often it is called
            graph.add_to_collection(
                LAYERS, LayerRecord(self._scope.rstrip("/"), self.kind, out, list(self.variables))
            )
        return out

    def default_name(self):
        # MaxPooling2D -> max_pooling2d, BatchNormalization -> batch_normalization (TF's names)
        return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", type(self).__name__).lower()

    def build(self, x):
        pass

    def call(self, x, training):
        raise NotImplementedError

    def add_variable(self, name, shape, dtype, initializer, trainable=True):
        with get_default_graph().control_dependencies(None):
            v = Variable(
                initializer(tuple(shape), dtype), name=name, trainable=trainable and self.trainable
            )
        self.variables.append(v)
        return v

    @property
    def trainable_variables(self):
        return [v for v in self.variables if v.trainable]


def _last_dim(x, what):
    d = x.shape[-1] if x.shape else None
    if not isinstance(d, int):
        raise ShapeError(
            f"{what} needs the last dimension of its input to be static: {x.describe()}",
            user_location(),
        )
    return d


def _float(x, what):
    if not x.dtype.is_floating:
        raise GraphcError(
            f"{what} needs a floating input, got {x.describe()} (use gc.cast)", user_location()
        )


class Dense(Layer):
    """``activation(inputs @ kernel + bias)`` over the last axis."""

    kind = "Dense"

    @accepts(what="gc.layers.Dense")
    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer=None,
        bias_initializer=None,
        name=None,
        trainable=True,
    ):
        super().__init__(name, trainable)
        if not isinstance(units, int) or units < 1:
            raise GraphcError(
                f"Dense: units must be a positive int, got {units!r}", user_location()
            )
        self.units, self.activation, self.use_bias = units, activation, use_bias
        self.kernel_initializer = kernel_initializer or glorot_uniform_initializer()
        self.bias_initializer = bias_initializer or zeros_initializer()

    def build(self, x):
        _float(x, "dense")
        n_in = _last_dim(x, "dense")
        self.kernel = self.add_variable(
            "kernel", (n_in, self.units), x.dtype, self.kernel_initializer
        )
        self.bias = (
            self.add_variable("bias", (self.units,), x.dtype, self.bias_initializer)
            if self.use_bias
            else None
        )

    def call(self, x, training):
        from .ops.linalg import matmul, tensordot

        y = matmul(x, self.kernel) if len(x.shape) == 2 else tensordot(x, self.kernel, 1)
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y


class Dropout(Layer):
    """Zeroes a ``rate`` fraction of its inputs while training (a bool or a bool tensor);
    the identity otherwise."""

    kind = "Dropout"

    @accepts(what="gc.layers.Dropout")
    def __init__(self, rate=0.5, seed=None, name=None):
        super().__init__(name)
        self.rate, self.seed = rate, seed

    def call(self, x, training):
        return _dropout(
            x, rate=self.rate, training=False if training is None else training, seed=self.seed
        )


class Flatten(Layer):
    """(N, d1, d2, …) → (N, d1 * d2 * …)."""

    kind = "Flatten"

    def call(self, x, training):
        if x.shape is None or not fully_known(x.shape[1:]):
            raise ShapeError(
                f"flatten needs static dimensions after the first: {x.describe()}", user_location()
            )
        return reshape(x, (-1, num_elements(x.shape[1:])))


class BatchNormalization(Layer):
    """Normalizes over every axis but ``axis`` with the batch's statistics while
    ``training`` (a bool or a bool tensor) and with moving averages otherwise.

    While training, the moving mean and variance are updated by assign ops put in the
    graph's ``"update_ops"`` collection (TF's UPDATE_OPS); run them with the train op::

        with gc.control_dependencies(graph.get_collection("update_ops")):
            train = opt.minimize(loss)
    """

    kind = "BatchNormalization"

    @accepts(what="gc.layers.BatchNormalization")
    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        name=None,
        trainable=True,
    ):
        super().__init__(name, trainable)
        self.axis, self.momentum, self.epsilon = axis, momentum, epsilon
        self.center, self.scale = center, scale

    def build(self, x):
        _float(x, "batch_norm")
        rank = len(x.shape)
        self._axis = self.axis % rank
        d = x.shape[self._axis]
        if not isinstance(d, int):
            raise ShapeError(
                f"batch_norm needs a static size for axis {self.axis}: {x.describe()}",
                user_location(),
            )
        shape = (d,)
        self.gamma = (
            self.add_variable("gamma", shape, x.dtype, ones_initializer()) if self.scale else None
        )
        self.beta = (
            self.add_variable("beta", shape, x.dtype, zeros_initializer()) if self.center else None
        )
        self.moving_mean = self.add_variable(
            "moving_mean", shape, x.dtype, zeros_initializer(), trainable=False
        )
        self.moving_variance = self.add_variable(
            "moving_variance", shape, x.dtype, ones_initializer(), trainable=False
        )

    def _broadcastable(self, v, x):
        # parameters of shape (d,) lined up with ``axis`` of x
        rank = len(x.shape)
        return reshape(v, (x.shape[self._axis],) + (1,) * (rank - 1 - self._axis))

    def call(self, x, training):
        from .ops.conv import batch_normalization
        from .ops.elementwise import where

        axes = [i for i in range(len(x.shape)) if i != self._axis]
        mean, var = moments(x, axes)
        m = self.momentum
        if isinstance(training, bool) or training is None:
            if training:
                self._record_updates(x.graph, mean, var, m)
            else:
                mean, var = self.moving_mean, self.moving_variance
        else:
            flag = convert(training)
            new_mean = where(flag, self.moving_mean * m + mean * (1 - m), self.moving_mean)
            new_var = where(flag, self.moving_variance * m + var * (1 - m), self.moving_variance)
            x.graph.add_to_collection(UPDATE_OPS, assign(self.moving_mean, new_mean).op)
            x.graph.add_to_collection(UPDATE_OPS, assign(self.moving_variance, new_var).op)
            mean = where(flag, mean, self.moving_mean)
            var = where(flag, var, self.moving_variance)
        b = self._broadcastable
        return batch_normalization(
            x,
            b(mean, x),
            b(var, x),
            b(self.beta, x) if self.beta is not None else None,
            b(self.gamma, x) if self.gamma is not None else None,
            self.epsilon,
        )

    def _record_updates(self, graph, mean, var, m):
        graph.add_to_collection(
            UPDATE_OPS, assign(self.moving_mean, self.moving_mean * m + mean * (1 - m)).op
        )
        graph.add_to_collection(
            UPDATE_OPS, assign(self.moving_variance, self.moving_variance * m + var * (1 - m)).op
        )


class Conv2D(Layer):
    """NHWC convolution with an HWIO kernel, bias and activation."""

    kind = "Conv2D"

    @accepts(what="gc.layers.Conv2D")
    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        activation=None,
        use_bias=True,
        kernel_initializer=None,
        bias_initializer=None,
        name=None,
        trainable=True,
    ):
        super().__init__(name, trainable)
        self.filters = filters
        self.kernel_size = (
            (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        )
        self.strides, self.padding = strides, padding.upper()
        self.activation, self.use_bias = activation, use_bias
        self.kernel_initializer = kernel_initializer or glorot_uniform_initializer()
        self.bias_initializer = bias_initializer or zeros_initializer()

    def build(self, x):
        _float(x, "conv2d")
        c = _last_dim(x, "conv2d")
        self.kernel = self.add_variable(
            "kernel", self.kernel_size + (c, self.filters), x.dtype, self.kernel_initializer
        )
        self.bias = (
            self.add_variable("bias", (self.filters,), x.dtype, self.bias_initializer)
            if self.use_bias
            else None
        )

    def call(self, x, training):
        y = _nn_op("conv2d")(x, self.kernel, strides=self.strides, padding=self.padding)
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y


class MaxPooling2D(Layer):
    kind = "MaxPooling2D"

    @accepts(what="gc.layers.MaxPooling2D")
    def __init__(self, pool_size, strides=None, padding="valid", name=None):
        super().__init__(name)
        self.pool_size, self.strides = pool_size, strides or pool_size
        self.padding = padding.upper()

    def call(self, x, training):
        return _nn_op("max_pool")(x, self.pool_size, self.strides, self.padding)


def _nn_op(name):
    from .ops import conv

    fn = getattr(conv, name, None)
    if fn is None:
        raise UnimplementedError(f"gc.layers needs gc.nn.{name}, which this build lacks")
    return fn


class Sequential:
    """A stack of layers applied in order: ``model = Sequential([Dense(64, activation=gc.relu),
    Dense(10)]); logits = model(x, training=True)``. Layer objects keep their variables, so
    calling the model again (e.g. on a test input, ``training=False``) shares them."""

    def __init__(self, layers=None, name=None):
        self.name = name
        self.layers = list(layers or [])
        for layer in self.layers:
            if not callable(layer):
                raise GraphcError(
                    f"Sequential takes layers (callables), got {layer!r}", user_location()
                )

    def add(self, layer):
        self.layers.append(layer)

    def __call__(self, inputs, training=None):
        x = convert(inputs)
        for layer in self.layers:
            x = layer(x, training=training) if isinstance(layer, Layer) else layer(x)
        return x

    @property
    def variables(self):
        return [v for layer in self.layers for v in getattr(layer, "variables", [])]

    @property
    def trainable_variables(self):
        return [v for v in self.variables if v.trainable]

    def summary(self, print_fn=print):
        graph = self.layers[0].variables[0].graph if self.variables else get_default_graph()
        return graph.summary(print_fn=print_fn)

    def __repr__(self):
        """The model's layers as ``graph.summary()`` shows them (output shapes once the
        model has been called)."""
        from .shapes import format_shape, num_elements

        records = {}
        for layer in self.layers:
            scope = getattr(layer, "_scope", None)
            graph = (
                layer.variables[0].graph
                if getattr(layer, "variables", None)
                else get_default_graph()
            )
            if scope:
                for rec in graph.get_collection(LAYERS):
                    if rec.name == scope.rstrip("/"):
                        records[id(layer)] = rec
        rows = []
        for layer in self.layers:
            rec = records.get(id(layer))
            if isinstance(layer, Layer):
                name = rec.name if rec else layer.name or layer.default_name()
                kind = layer.kind
            else:
                name, kind = getattr(layer, "__name__", type(layer).__name__), "function"
            variables = getattr(layer, "variables", [])
            rows.append(
                (
                    f"{name} ({kind})",
                    format_shape(rec.output.shape) if rec else "(not built)",
                    ", ".join(
                        v.op.name.rsplit("/", 1)[-1] + format_shape(v.shape) for v in variables
                    ),
                    sum(num_elements(v.shape) or 0 for v in variables),
                )
            )
        total = sum(r[3] for r in rows)
        header = ("Layer (type)", "Output shape", "Variables", "Params")
        widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(4)]
        line = "  ".join("{:<%d}" % w for w in widths[:3]) + "  {:>%d}" % widths[3]
        rule = "-" * (sum(widths) + 6)
        title = f"Sequential {self.name!r}" if self.name else "Sequential"
        return "\n".join(
            [f"{title}: {len(self.layers)} layers", line.format(*header), rule]
            + [line.format(*r) for r in rows]
            + [rule, f"Total params: {total:,}"]
        )

    __str__ = __repr__


# --- the functional forms (TF 1.x's tf.layers) ------------------------------------------------


@accepts(*TF_LAYER, what="gc.layers.dense")
def dense(
    inputs,
    units,
    activation=None,
    use_bias=True,
    kernel_initializer=None,
    bias_initializer=None,
    name=None,
    trainable=True,
    **_tf_kwargs,
):
    """A fully connected layer: ``activation(inputs @ kernel + bias)``. Creates variables
    ``<name>/kernel`` (Glorot-uniform) and ``<name>/bias`` (zeros)."""
    return Dense(
        units, activation, use_bias, kernel_initializer, bias_initializer, name, trainable
    )(inputs)


@accepts(*TF_DROPOUT, what="gc.layers.dropout")
def dropout(inputs, rate=0.5, training=False, seed=None, name=None, **_tf_kwargs):
    """Dropout that acts only when ``training`` is true (TF's default is False)."""
    return Dropout(rate, seed, name)(inputs, training=training)


def flatten(inputs, name=None):
    return Flatten(name)(inputs)


@accepts(*TF_BATCH_NORM, what="gc.layers.batch_norm")
def batch_norm(
    inputs,
    axis=-1,
    momentum=0.99,
    epsilon=1e-3,
    center=True,
    scale=True,
    training=False,
    name=None,
    trainable=True,
    **_tf_kwargs,
):
    """Batch normalization (see BatchNormalization): batch statistics and moving-average
    updates (``"update_ops"`` collection) while ``training``, moving averages otherwise."""
    return BatchNormalization(axis, momentum, epsilon, center, scale, name, trainable)(
        inputs, training=training
    )


batch_normalization = batch_norm


@accepts(*TF_CONV, what="gc.layers.conv2d")
def conv2d(
    inputs,
    filters,
    kernel_size,
    strides=1,
    padding="valid",
    activation=None,
    use_bias=True,
    kernel_initializer=None,
    bias_initializer=None,
    name=None,
    trainable=True,
    **_tf_kwargs,
):
    return Conv2D(
        filters,
        kernel_size,
        strides,
        padding,
        activation,
        use_bias,
        kernel_initializer,
        bias_initializer,
        name,
        trainable,
    )(inputs)


def max_pooling2d(inputs, pool_size, strides, padding="valid", name=None):
    return MaxPooling2D(pool_size, strides, padding, name)(inputs)


__all__ = [
    "Layer",
    "Dense",
    "Dropout",
    "Flatten",
    "BatchNormalization",
    "Conv2D",
    "MaxPooling2D",
    "Sequential",
    "dense",
    "dropout",
    "flatten",
    "batch_norm",
    "batch_normalization",
    "conv2d",
    "max_pooling2d",
    "glorot_uniform_initializer",
    "random_normal_initializer",
    "truncated_normal_initializer",
    "constant_initializer",
    "zeros_initializer",
    "ones_initializer",
    "LAYERS",
    "UPDATE_OPS",
    "LayerRecord",
]
