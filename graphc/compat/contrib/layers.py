"""``tf.contrib.layers`` (and TF-Slim's layers): ``fully_connected``, ``batch_norm``,
``dropout``, ``conv2d``, ``max_pool2d``, ``avg_pool2d``, ``flatten``, the Xavier and
variance-scaling initializers and the l1/l2 regularizers, with contrib's argument names,
defaults and variable names (``<scope>/weights``, ``<scope>/biases``, ``BatchNorm/beta``,
``BatchNorm/moving_mean``…). Every layer takes its defaults from ``arg_scope``."""

from __future__ import annotations

from ... import dtypes as D
from ...ops.array import identity, reshape
from ...ops.elementwise import abs as _abs
from ...ops.elementwise import multiply
from ...ops.linalg import matmul
from ...ops.nn import bias_add, l2_loss, relu
from ...ops.reduce import reduce_sum
from ...ops.sources import convert
from ...ops.state import control_dependencies
from .. import initializers as _init
from .. import layers as _layers
from .._support import module_getattr
from ..scopes import VariableScope, get_variable, variable_scope
from .framework import add_arg_scope

UPDATE_OPS = _layers.UPDATE_OPS
_ZEROS = _init.Zeros()

xavier_initializer = _init.xavier_initializer
xavier_initializer_conv2d = _init.xavier_initializer
variance_scaling_initializer = _init.variance_scaling_initializer


def l2_regularizer(scale, scope=None):
    """``scale * sum(w^2) / 2`` for a weight ``w``."""
    return lambda w: multiply(l2_loss(w), float(scale))


def l1_regularizer(scale, scope=None):
    return lambda w: multiply(reduce_sum(_abs(w)), float(scale))


def sum_regularizer(regularizer_list, scope=None):
    regs = [r for r in regularizer_list if r is not None]
    return lambda w: sum((r(w) for r in regs[1:]), regs[0](w))


@add_arg_scope
def fully_connected(
    inputs,
    num_outputs,
    activation_fn=relu,
    normalizer_fn=None,
    normalizer_params=None,
    weights_initializer=None,
    weights_regularizer=None,
    biases_initializer=_ZEROS,
    biases_regularizer=None,
    reuse=None,
    variables_collections=None,
    outputs_collections=None,
    trainable=True,
    scope=None,
):
    """``activation_fn(inputs @ weights + biases)`` over the last axis, with variables
    ``<scope>/weights`` (Xavier-uniform) and ``<scope>/biases`` (zeros); a
    ``normalizer_fn`` (e.g. ``batch_norm``) replaces the biases, as in TF."""
    x = convert(inputs)
    depth = x.shape[-1] if x.shape is not None else None
    if not isinstance(depth, int):
        from ...errors import ShapeError, user_location

        raise ShapeError(
            f"fully_connected needs a static last dimension: {x.describe()}", user_location()
        )
    with variable_scope(scope, default_name="fully_connected", reuse=reuse):
        w = get_variable(
            "weights",
            (depth, int(num_outputs)),
            dtype=x.dtype,
            initializer=weights_initializer or _init.GlorotUniform(),
            regularizer=weights_regularizer,
            trainable=trainable,
        )
        flat = x if len(x.shape) == 2 else reshape(x, [-1, depth])
        y = matmul(flat, w)
        if normalizer_fn is not None:
            y = normalizer_fn(y, **(normalizer_params or {}))
        elif biases_initializer is not None:
            b = get_variable(
                "biases",
                (int(num_outputs),),
                dtype=x.dtype,
                initializer=biases_initializer,
                regularizer=biases_regularizer,
                trainable=trainable,
            )
            y = bias_add(y, b)
        if len(x.shape) != 2:
            y = reshape(
                y,
                [-1 if d is None or isinstance(d, str) else d for d in x.shape[:-1]]
                + [int(num_outputs)],
            )
        return activation_fn(y) if activation_fn is not None else y


linear = fully_connected


@add_arg_scope
def batch_norm(
    inputs,
    decay=0.999,
    center=True,
    scale=False,
    epsilon=0.001,
    activation_fn=None,
    param_initializers=None,
    param_regularizers=None,
    updates_collections=UPDATE_OPS,
    is_training=True,
    reuse=None,
    variables_collections=None,
    outputs_collections=None,
    trainable=True,
    batch_weights=None,
    fused=None,
    data_format="NHWC",
    zero_debias_moving_mean=False,
    scope=None,
    renorm=False,
    renorm_clipping=None,
    renorm_decay=0.99,
    adjustment=None,
):
    """contrib's batch normalization: variables ``BatchNorm/beta`` (``center``),
    ``BatchNorm/gamma`` (``scale``, off by default), ``moving_mean``/``moving_variance``
    moved by ``decay``. The moving-average updates go to ``tf.GraphKeys.UPDATE_OPS``, or
    run with the layer when ``updates_collections=None``."""
    if data_format not in ("NHWC", "NC", None):
        from ...errors import ShapeError, user_location

        raise ShapeError(
            f"batch_norm: data_format {data_format!r} is not supported (NHWC)", user_location()
        )
    inits = param_initializers or {}
    regs = param_regularizers or {}
    x = convert(inputs)
    graph = x.graph
    before = list(graph.get_collection(UPDATE_OPS))
    with variable_scope(scope, default_name="BatchNorm", reuse=reuse) as vs:
        y = _layers.batch_normalization(
            x,
            axis=-1,
            momentum=decay,
            epsilon=epsilon,
            center=center,
            scale=scale,
            beta_initializer=inits.get("beta"),
            gamma_initializer=inits.get("gamma"),
            moving_mean_initializer=inits.get("moving_mean"),
            moving_variance_initializer=inits.get("moving_variance"),
            beta_regularizer=regs.get("beta"),
            gamma_regularizer=regs.get("gamma"),
            training=is_training,
            trainable=trainable,
            name=VariableScope(vs.name),
            reuse=vs.reuse,
        )
    if updates_collections is None:
        new = [op for op in graph.get_collection(UPDATE_OPS) if op not in before]
        graph._collections[UPDATE_OPS] = before  # they run with the layer instead
        if new:
            with control_dependencies(new):
                y = identity(y)
    return activation_fn(y) if activation_fn is not None else y


@add_arg_scope
def dropout(
    inputs,
    keep_prob=0.5,
    noise_shape=None,
    is_training=True,
    outputs_collections=None,
    scope=None,
    seed=None,
):
    """Keep each element with probability ``keep_prob`` (scaled by ``1 / keep_prob``)
    while ``is_training`` (True by default, unlike ``tf.layers.dropout``)."""
    if not isinstance(keep_prob, (int, float)):
        keep_prob = convert(keep_prob)
    return _layers.dropout(
        inputs,
        rate=1 - keep_prob,
        noise_shape=noise_shape,
        seed=seed,
        training=is_training,
        name=scope,
    )


@add_arg_scope
def conv2d(
    inputs,
    num_outputs,
    kernel_size,
    stride=1,
    padding="SAME",
    data_format=None,
    rate=1,
    activation_fn=relu,
    normalizer_fn=None,
    normalizer_params=None,
    weights_initializer=None,
    weights_regularizer=None,
    biases_initializer=_ZEROS,
    biases_regularizer=None,
    reuse=None,
    variables_collections=None,
    outputs_collections=None,
    trainable=True,
    scope=None,
):
    """contrib's conv2d: ``SAME`` padding and ReLU by default; ``<scope>/weights``,
    ``<scope>/biases``."""
    from ...ops import conv as _conv

    x = convert(inputs)
    k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    s = (stride, stride) if isinstance(stride, int) else tuple(stride)
    with variable_scope(scope, default_name="Conv", reuse=reuse):
        w = get_variable(
            "weights",
            (k[0], k[1], x.shape[-1], int(num_outputs)),
            dtype=x.dtype,
            initializer=weights_initializer or _init.GlorotUniform(),
            regularizer=weights_regularizer,
            trainable=trainable,
        )
        y = _conv.conv2d(x, w, strides=[1, s[0], s[1], 1], padding=padding.upper())
        if normalizer_fn is not None:
            y = normalizer_fn(y, **(normalizer_params or {}))
        elif biases_initializer is not None:
            b = get_variable(
                "biases",
                (int(num_outputs),),
                dtype=x.dtype,
                initializer=biases_initializer,
                regularizer=biases_regularizer,
                trainable=trainable,
            )
            y = bias_add(y, b)
        return activation_fn(y) if activation_fn is not None else y


convolution2d = conv2d


@add_arg_scope
def max_pool2d(
    inputs,
    kernel_size,
    stride=2,
    padding="VALID",
    data_format="NHWC",
    outputs_collections=None,
    scope=None,
):
    return _layers.max_pooling2d(inputs, kernel_size, stride, padding.lower(), name=scope)


@add_arg_scope
def avg_pool2d(
    inputs,
    kernel_size,
    stride=2,
    padding="VALID",
    data_format="NHWC",
    outputs_collections=None,
    scope=None,
):
    return _layers.average_pooling2d(inputs, kernel_size, stride, padding.lower(), name=scope)


@add_arg_scope
def flatten(inputs, outputs_collections=None, scope=None):
    return _layers.flatten(inputs, name=scope)


@add_arg_scope
def layer_norm(
    inputs,
    center=True,
    scale=True,
    activation_fn=None,
    reuse=None,
    variables_collections=None,
    outputs_collections=None,
    trainable=True,
    begin_norm_axis=1,
    begin_params_axis=-1,
    scope=None,
):
    """contrib's layer normalization: each example normalized over the axes from
    ``begin_norm_axis`` on (epsilon 1e-12), then scaled by ``LayerNorm/gamma`` and shifted
    by ``LayerNorm/beta``, whose shape is that of the axes from ``begin_params_axis`` on."""
    from ...errors import ShapeError, user_location
    from ...ops.elementwise import rsqrt
    from ...ops.reduce import reduce_mean

    x = convert(inputs)
    if x.shape is None:
        raise ShapeError(f"layer_norm: inputs have undefined rank: {x.describe()}", user_location())
    rank = len(x.shape)
    norm_axes = list(range(begin_norm_axis % rank, rank))
    params_shape = tuple(x.shape[begin_params_axis % rank :])
    if not all(isinstance(d, int) for d in params_shape):
        raise ShapeError(
            f"layer_norm needs static dimensions from axis {begin_params_axis % rank} on: "
            f"{x.describe()}",
            user_location(),
        )
    with variable_scope(scope, default_name="LayerNorm", reuse=reuse):
        mean = reduce_mean(x, axis=norm_axes, keepdims=True)
        centered = x - mean
        variance = reduce_mean(centered * centered, axis=norm_axes, keepdims=True)
        y = centered * rsqrt(variance + 1e-12)
        if scale:
            gamma = get_variable(
                "gamma", params_shape, dtype=x.dtype, initializer=_init.Ones(), trainable=trainable
            )
            y = y * gamma
        if center:
            beta = get_variable(
                "beta", params_shape, dtype=x.dtype, initializer=_init.Zeros(), trainable=trainable
            )
            y = y + beta
        return activation_fn(y) if activation_fn is not None else y


def repeat(inputs, repetitions, layer, *args, **kwargs):
    """``layer`` applied ``repetitions`` times, each in scope ``<scope>/<scope>_<i>`` (slim's
    VGG blocks: ``slim.repeat(net, 2, slim.conv2d, 64, [3, 3], scope="conv1")``)."""
    scope = kwargs.pop("scope", None) or getattr(layer, "__name__", "repeat")
    outputs = inputs
    with variable_scope(scope, default_name="Repeat"):
        for i in range(int(repetitions)):
            outputs = layer(outputs, *args, scope=f"{scope}_{i + 1}", **kwargs)
    return outputs


def stack(inputs, layer, stack_args, **kwargs):
    """``layer`` applied once per item of ``stack_args`` (a tuple of its arguments, or one
    argument), each in scope ``<scope>/<scope>_<i>``: ``slim.stack(x, slim.fully_connected,
    [32, 64, 128], scope="fc")``."""
    scope = kwargs.pop("scope", None) or getattr(layer, "__name__", "stack")
    outputs = inputs
    with variable_scope(scope, default_name="Stack"):
        for i, a in enumerate(stack_args):
            a = a if isinstance(a, (list, tuple)) else (a,)
            outputs = layer(outputs, *a, scope=f"{scope}_{i + 1}", **kwargs)
    return outputs


def embed_sequence(
    ids,
    vocab_size=None,
    embed_dim=None,
    unique=False,
    initializer=None,
    regularizer=None,
    trainable=True,
    scope=None,
    reuse=None,
):
    """Embeddings of integer ``ids`` (a ``[vocab_size, embed_dim]`` variable
    ``EmbedSequence/embeddings``, looked up)."""
    from ...ops.array import gather

    with variable_scope(scope, default_name="EmbedSequence", reuse=reuse):
        table = get_variable(
            "embeddings",
            (int(vocab_size), int(embed_dim)),
            dtype=D.float32,
            initializer=initializer,
            regularizer=regularizer,
            trainable=trainable,
        )
        return gather(table, convert(ids))


def one_hot_encoding(
    labels, num_classes, on_value=1.0, off_value=0.0, outputs_collections=None, scope=None
):
    from ...ops.array import one_hot

    return one_hot(labels, num_classes, on_value=on_value, off_value=off_value, dtype=D.float32)


__getattr__ = module_getattr("contrib.layers")
