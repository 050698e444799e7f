"""graphc: a define-and-run deep-learning compiler for numpy and cupy.

import graphc as gc
x = gc.placeholder(gc.float32, shape=(None, 3))
y = gc.reduce_sum(x * 2)
with gc.Session() as sess:
    sess.run(y, {x: [[1, 2, 3]]})
"""

from . import dtypes, errors, ops  # noqa: F401  (ops fills the registry)
from .dtypes import (
    DType,
    as_dtype,
    bool_,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    uint8,
)
from .dtypes import bool_ as bool  # noqa: A001,F401 - the SPEC's dtype name (tf.bool), like gc.range
from .errors import ArgumentError  # noqa: F401
from .errors import (
    CheckpointError,
    ClosedSessionError,
    DefineAndRunError,
    DTypeError,
    FeedError,
    GradientError,
    GraphcError,
    GraphFinalizedError,
    GSyntaxError,
    LimitError,
    NotFoundError,
    NumericsError,
    OpError,
    ShapeError,
    UnimplementedError,
    UninitializedError,
)
from .ir import Graph, Operation, Tensor, TensorShape, get_default_graph, reset_default_graph
from .ops.array import empty  # noqa: F401
from .ops.array import (
    broadcast_like,
    broadcast_to,
    cast,
    concat,
    expand_dims,
    eye,
    fill,
    fill_like,
    gather,
    getitem,
    identity,
    matrix_transpose,
    one_hot,
    ones,
    ones_like,
    pad,
    range,
    rank,
    reshape,
    reshape_like,
    shape,
    size,
    slice,
    split,
    squeeze,
    stack,
    stop_gradient,
    strided_slice,
    tile,
    to_float,
    transpose,
    unstack,
    zeros,
    zeros_like,
)
from .ops.elementwise import (
    abs,
    add,
    ceil,
    cos,
    divide,
    equal,
    erf,
    exp,
    expm1,
    floor,
    floordiv,
    floormod,
    greater,
    greater_equal,
    is_finite,
    is_nan,
    less,
    less_equal,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    maximum,
    minimum,
    mod,
    multiply,
    neg,
    negative,
    not_equal,
    pow,
    reciprocal,
    round,
    rsqrt,
    sigmoid,
    sign,
    sin,
    sqrt,
    square,
    subtract,
    tanh,
    truediv,
    where,
)
from .ops.linalg import einsum, matmul, tensordot
from .ops.nn import (
    bias_add,
    dropout,
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
    softmax_cross_entropy_with_logits,
    softplus,
    softsign,
    sparse_softmax_cross_entropy_with_logits,
)
from .ops.random import (
    random_int,
    random_normal,
    random_permutation,
    random_shuffle,
    random_uniform,
    set_random_seed,
    truncated_normal,
)
from .ops.random import random_normal_like, random_uniform_like  # noqa: F401
from .ops.reduce import (
    argmax,
    argmin,
    count_nonzero,
    reduce_all,
    reduce_any,
    reduce_logsumexp,
    reduce_max,
    reduce_mean,
    reduce_min,
    reduce_prod,
    reduce_sum,
)
from .ops.registry import REGISTRY, OpDef
from .ops.sources import constant, placeholder, placeholder_with_default
from .ops.state import (
    Variable,
    assign,
    assign_add,
    assign_sub,
    check_numerics,
    control_dependencies,
    global_variables,
    global_variables_initializer,
    group,
    no_op,
    trainable_variables,
    variables_initializer,
)
from .ops.state import print_ as print  # noqa: A001 - gc.print is the public name
from .session import InteractiveSession, Session, get_default_session


def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    """min(max(t, lo), hi)."""
    return minimum(maximum(t, clip_value_min), clip_value_max, name=name)


def name_scope(name):
    """``with gc.name_scope("layer1"):`` prefixes op names with ``layer1/``."""
    return get_default_graph().name_scope(name)


__version__ = "0.1.0"

from .autodiff import gradients  # noqa: E402

from . import nn  # noqa: E402  (gc.nn: the NN ops under TensorFlow's names)

from . import test  # noqa: E402,F401  (gc.test.check_gradients)

from .ops.conv import (  # noqa: E402
    avg_pool,
    batch_normalization,
    conv2d,
    layer_normalization,
    max_pool,
)

from . import train  # noqa: E402  (gc.train: optimizers, clipping, Saver)
from .ops.custom import custom_gradient, register_op  # noqa: E402
from . import data, layers  # noqa: E402  (gc.data: batches, IDX files; gc.layers)
from .frontend.dsl import load, loads  # noqa: E402  (the .g language)

from .compiler import compile  # noqa: E402,A001 - gc.compile is the public name

from . import summary  # noqa: E402  (gc.summary: TensorBoard event files, the tensorboard extra)
from . import onnx  # noqa: E402  (gc.onnx: ONNX export and import, the onnx extra)
from .viz import viz  # noqa: E402  (gc.viz: SVG pictures of graphs and plans)

from . import diagnostics  # noqa: E402  (NaN trap, plan cache log, growth watch: SPEC §12)
from .diagnostics import GraphcWarning  # noqa: E402

from .frontend.control import case, cond, map_fn, scan, while_loop  # noqa: E402  (SPEC §15)
