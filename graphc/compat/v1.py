"""TensorFlow 1.x on graphc: ``import graphc.compat.v1 as tf``.

A TF 1.x graph-mode script runs with only its import line changed: the names, argument
names and defaults below are TF 1.x's, mapped onto graphc's API. Most are graphc's own
functions (their signatures already agree); the adapters here exist only where TF spells
or defaults an argument differently (``reduction_indices``, ``keep_dims``, ``dimension``,
``squeeze_dims``…).

What graphc cannot do raises ``MissingAPIError`` (a ``gc.UnimplementedError`` that is also
an ``AttributeError``) naming the TF API and what to do instead: queues, ``tf.contrib``
beyond a few initializers and layers, ``tf.data``, ``tf.estimator``. Control flow
(``tf.cond``, ``tf.while_loop``, ``tf.scan``, ``tf.map_fn``, ``tf.case``) is graphc's own
(``gc.cond``…). Summaries are accepted as no-ops with a warning.
The differences that remain are listed in the README ("Coming from TensorFlow 1.x").

TF's names shadow Python builtins here (``tf.float``, ``tf.bool``, ``tf.range``,
``tf.tuple``…), so code in this module reaches the builtins through ``builtins``."""

from __future__ import annotations

import builtins
import contextlib
import glob as _glob
import os as _os
import shutil as _shutil
import sys

import numpy as np

import graphc as _gc

# The imports below are this module's public names: TF's API re-exported (hence F401).
# ruff: noqa: F401
from .. import dtypes as _D
from ..dtypes import DType, as_dtype, float16, float32, float64, int8, int16, int32, int64, uint8
from ..dtypes import bool_ as bool  # noqa: A001 - tf.bool
from ..errors import GraphcError, OpError, UnimplementedError
from ..errors import ShapeError as _ShapeError
from ..errors import user_location as _user_location
from ..ir import Graph, Operation, Tensor, TensorShape, get_default_graph, reset_default_graph
from ..ops import array as _array
from ..ops import reduce as _reduce
from ..ops.array import (
    broadcast_to,
    cast,
    concat,
    eye,
    gather,
    identity,
    ones_like,
    pad,
    rank,
    slice,  # noqa: A004 - tf.slice
    stack,
    stop_gradient,
    strided_slice,
    tile,
    transpose,
    unstack,
    zeros_like,
)
from ..ops.elementwise import (
    abs,
    add,
    ceil,
    cos,
    divide,
    equal,
    exp,
    expm1,
    floor,
    floordiv,
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
)
from ..ops.elementwise import where as _where
from ..ops.linalg import einsum, tensordot
from ..ops.linalg import matmul as _matmul
from ..ops.random import random_shuffle, set_random_seed
from ..ops.sources import constant as _constant
from ..ops.sources import convert as _convert
from ..ops.sources import placeholder, placeholder_with_default
from ..ops.state import (
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
from ..ops.state import tuple_ as tuple  # noqa: A001 - tf.tuple
from ..session import InteractiveSession, Session, get_default_session
from . import dynamic, initializers, layers, losses, metrics, nn, rnn, strings, summary, train
from . import flags as _flags
from ._support import MissingAPIError, Namespace, missing, module_getattr, warn_once
from .data import OutOfRangeError
from .data import data as _data
from .fifo_queue import CancelledError, FIFOQueue, QueueBase, RandomShuffleQueue
from .initializers import Constant as constant_initializer
from .initializers import GlorotNormal as glorot_normal_initializer
from .initializers import GlorotUniform as glorot_uniform_initializer
from .initializers import Ones as ones_initializer
from .initializers import RandomNormal as random_normal_initializer
from .initializers import RandomUniform as random_uniform_initializer
from .initializers import TruncatedNormal as truncated_normal_initializer
from .initializers import VarianceScaling as variance_scaling_initializer
from .initializers import Zeros as zeros_initializer
from .losses import LOSSES
from .math_extra import (
    argsort,
    cumsum,
    diag_part,
    is_inf,
    matrix_diag,
    matrix_transpose,
    meshgrid,
    norm,
    reduce_std,
    reduce_variance,
    reverse,
    reverse_v2,
    sequence_mask,
    sort,
    trace,
    unsorted_segment_mean,
    unsorted_segment_sum,
)
from .nn_extra import scatter_add, scatter_sub, scatter_update
from .queues import TextLineReader, decode_csv
from .scopes import (
    AUTO_REUSE,
    REGULARIZATION_LOSSES,
    VariableScope,
    get_variable,
    get_variable_scope,
    variable_scope,
)

erf = _gc.erf
diag = matrix_diag  # tf.diag of a vector
matrix_diag_part = diag_part

float = float32  # noqa: A001 - TF 1.x scripts may write tf.float for float32
double = float64
half = float16
newaxis = None
string = strings.string
dimension_value = builtins.int  # tf.compat.dimension_value: graphc dims are plain ints

__version__ = "1.15.0 (graphc.compat.v1)"
VERSION = __version__


# --- sources ----------------------------------------------------------------------------------


def constant(value, dtype=None, shape=None, name="Const", verify_shape=False):
    """A constant; a scalar ``value`` with a ``shape`` fills it (TF 1.x's rule). Strings
    make a ``tf.string`` constant that can be fetched (as bytes) but not computed with."""
    if strings.is_string_value(value):
        return strings.string_constant(value, name=name)
    return _constant(value, dtype=dtype, shape=shape, name=name)


def fill(dims, value, name=None):
    """``dims`` filled with ``value`` (its dtype); ``dims`` may be ``tf.shape(x)``."""
    return dynamic.filled(value, dims, _D.default_dtype_of(value), name, "fill")


def zeros(shape, dtype=float32, name=None):
    return dynamic.filled(0, shape, as_dtype(dtype), name, "zeros")


def ones(shape, dtype=float32, name=None):
    return dynamic.filled(1, shape, as_dtype(dtype), name, "ones")


range = dynamic.range_  # noqa: A001 - tf.range; run-time bounds too (tf.range(tf.shape(x)[0]))


def reshape(tensor, shape, name=None):
    """``shape`` may hold -1, be ``tf.shape(y)``, or hold one run-time element
    (``[tf.shape(x)[0], -1]`` style, see graphc.compat.dynamic)."""
    return dynamic.reshape(tensor, shape, name=name)


def random_normal(shape, mean=0.0, stddev=1.0, dtype=float32, seed=None, name=None):
    """Normal samples; ``shape`` may be ``tf.shape(x)``, ``mean``/``stddev`` tensors."""
    return dynamic.random(
        "random_normal", shape, as_dtype(dtype), seed, name, mean=mean, stddev=stddev
    )


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=float32, seed=None, name=None):
    return dynamic.random(
        "truncated_normal", shape, as_dtype(dtype), seed, name, mean=mean, stddev=stddev
    )


def random_uniform(shape, minval=0, maxval=None, dtype=float32, seed=None, name=None):
    return dynamic.random(
        "random_uniform", shape, as_dtype(dtype), seed, name, minval=minval, maxval=maxval
    )


def multinomial(logits, num_samples, seed=None, name=None, output_dtype=int64):
    """``num_samples`` class indices per row of ``logits`` (unnormalized log-probabilities),
    drawn by the Gumbel-max trick: argmax(logits + Gumbel noise). Shape (batch, samples)."""
    x = _convert(logits)
    if x.shape is not None and len(x.shape) != 2:
        raise _ShapeError(
            f"multinomial needs logits of shape [batch, classes], got {x.describe()}",
            _user_location(),
        )
    x = _array.tile(_array.expand_dims(x, 1), [1, int(num_samples), 1])
    tiny = builtins.float(np.finfo(x.dtype.np).tiny)
    u = _gc.random_uniform_like(x, minval=tiny, maxval=1.0, seed=seed)
    gumbel = -log(-log(u))
    return _reduce.argmax(x + gumbel, axis=-1, output_type=as_dtype(output_dtype), name=name)


def categorical(logits, num_samples, dtype=None, seed=None, name=None):
    """``tf.random.categorical``: ``multinomial`` under its TF 2 name."""
    return multinomial(logits, num_samples, seed, name, dtype or int64)


def Print(input_, data=None, message=None, first_n=None, summarize=None, name=None):  # noqa: N802
    """The identity on ``input_`` that prints ``message`` and ``data`` at each run."""
    return _gc.print(input_, data=data, message=message or "", summarize=summarize, name=name)


def name_scope(name, default_name=None, values=None):
    """``with tf.name_scope("layer1"):`` prefixes op names (not get_variable names)."""
    return get_default_graph().name_scope(name if name is not None else default_name)


def get_collection(key, scope=None):
    return get_default_graph().get_collection(key, scope)


def add_to_collection(name, value):
    get_default_graph().add_to_collection(name, value)


def local_variables(scope=None):
    """Variables outside ``global_variables``: the running totals of ``tf.metrics``."""
    return get_default_graph().get_collection(metrics.LOCAL_VARIABLES, scope)


def local_variables_initializer():
    return variables_initializer(local_variables(), name="local_init")


def device(device_name_or_function):
    """Accepted and ignored: the session's backend decides where every op runs."""
    return contextlib.nullcontext()


colocate_with = container = device


initialize_all_variables = global_variables_initializer
all_variables = global_variables


def initialize_variables(var_list, name="init"):
    return variables_initializer(var_list, name=name)


def global_norm(t_list, name=None):
    return train.global_norm(t_list, name=name)


def clip_by_global_norm(t_list, clip_norm, use_norm=None, name=None):
    return train.clip_by_global_norm(t_list, clip_norm, use_norm=use_norm, name=name)


def clip_by_norm(t, clip_norm, axes=None, name=None):
    return train.clip_by_norm(t, clip_norm, name=name)


def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    return _gc.clip_by_value(t, clip_value_min, clip_value_max, name=name)


def gradients(
    ys,
    xs,
    grad_ys=None,
    name="gradients",
    colocate_gradients_with_ops=False,
    gate_gradients=False,
    aggregation_method=None,
    stop_gradients=None,
    unconnected_gradients="none",
):
    """Symbolic gradients, as new graph tensors (``None`` for an unconnected x)."""
    how = getattr(unconnected_gradients, "value", unconnected_gradients)
    return _gc.gradients(
        ys,
        xs,
        grad_ys=grad_ys,
        name=name,
        stop_gradients=stop_gradients,
        unconnected=str(how).lower(),
    )


UnconnectedGradients = Namespace("UnconnectedGradients", NONE="none", ZERO="zero")


# --- math with TF 1.x's argument names --------------------------------------------------------


def _reduction(fn):
    def reduce(
        input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None, keep_dims=None
    ):
        if axis is None:
            axis = reduction_indices
        keep = keepdims if keepdims is not None else keep_dims
        return fn(input_tensor, axis=axis, keepdims=builtins.bool(keep), name=name)

    reduce.__name__ = reduce.__qualname__ = fn.__name__
    reduce.__doc__ = (
        f"``{fn.__name__}`` over ``axis`` (or TF 1.x's ``reduction_indices``), "
        "keeping the reduced axes if ``keepdims`` (or ``keep_dims``)."
    )
    return reduce


reduce_sum = _reduction(_reduce.reduce_sum)
reduce_mean = _reduction(_reduce.reduce_mean)
reduce_max = _reduction(_reduce.reduce_max)
reduce_min = _reduction(_reduce.reduce_min)
reduce_prod = _reduction(_reduce.reduce_prod)
reduce_any = _reduction(_reduce.reduce_any)
reduce_all = _reduction(_reduce.reduce_all)
reduce_logsumexp = _reduction(_reduce.reduce_logsumexp)


def count_nonzero(
    input_tensor,
    axis=None,
    keepdims=None,
    dtype=int64,
    name=None,
    reduction_indices=None,
    keep_dims=None,
):
    axis = axis if axis is not None else reduction_indices
    keep = keepdims if keepdims is not None else keep_dims
    return _reduce.count_nonzero(
        input_tensor, axis=axis, keepdims=builtins.bool(keep), dtype=dtype, name=name
    )


def argmax(input, axis=None, name=None, dimension=None, output_type=int64):  # noqa: A002
    """Index of the largest entry along ``axis`` (or TF 1.x's ``dimension``; default 0)."""
    axis = axis if axis is not None else dimension
    return _reduce.argmax(input, axis=axis, output_type=output_type, name=name)


def argmin(input, axis=None, name=None, dimension=None, output_type=int64):  # noqa: A002
    axis = axis if axis is not None else dimension
    return _reduce.argmin(input, axis=axis, output_type=output_type, name=name)


def arg_max(input, dimension, output_type=int64, name=None):  # noqa: A002
    return argmax(input, dimension, name=name, output_type=output_type)


def arg_min(input, dimension, output_type=int64, name=None):  # noqa: A002
    return argmin(input, dimension, name=name, output_type=output_type)


def matmul(
    a,
    b,
    transpose_a=False,
    transpose_b=False,
    adjoint_a=False,
    adjoint_b=False,
    a_is_sparse=False,
    b_is_sparse=False,
    name=None,
):
    """Matrix product; ``adjoint_*`` is ``transpose_*`` for the real dtypes graphc has."""
    return _matmul(
        a, b, transpose_a=transpose_a or adjoint_a, transpose_b=transpose_b or adjoint_b, name=name
    )


def div(x, y, name=None):
    """TF 1.x's ``div``: floor division for integers, true division for floats."""
    x, y = _gc.ops.elementwise.binary_operands(x, y, "div")
    return floordiv(x, y, name=name) if x.dtype.is_integer else divide(x, y, name=name)


floor_div = floordiv
floormod = truncatemod = mod
realdiv = divide
scalar_mul = multiply


def add_n(inputs, name=None):
    """The sum of a list of tensors of one shape."""
    inputs = list(inputs)
    total = inputs[0]
    for t in inputs[1:]:
        total = add(total, t)
    return identity(total, name=name) if name else total


accumulate_n = add_n


def squared_difference(x, y, name=None):
    return square(subtract(x, y), name=name)


def to_float(x, name="ToFloat"):
    return cast(x, float32, name=name)


def to_double(x, name="ToDouble"):
    return cast(x, float64, name=name)


def to_int32(x, name="ToInt32"):
    return cast(x, int32, name=name)


def to_int64(x, name="ToInt64"):
    return cast(x, int64, name=name)


def squeeze(input, axis=None, name=None, squeeze_dims=None):  # noqa: A002
    return _array.squeeze(input, axis=axis if axis is not None else squeeze_dims, name=name)


def expand_dims(input, axis=None, name=None, dim=None):  # noqa: A002
    return _array.expand_dims(input, axis if axis is not None else dim, name=name)


def split(value, num_or_size_splits, axis=0, num=None, name="split"):
    return _array.split(value, num_or_size_splits, axis=axis, name=name)


def one_hot(indices, depth, on_value=None, off_value=None, axis=None, dtype=None, name=None):
    """One-hot rows; the dtype follows ``on_value``/``off_value`` if given, else float32."""
    if dtype is None:
        given = on_value if on_value is not None else off_value
        dtype = _D.default_dtype_of(given) if given is not None else float32
    return _array.one_hot(
        indices,
        depth,
        on_value=1 if on_value is None else on_value,
        off_value=0 if off_value is None else off_value,
        axis=-1 if axis is None else axis,
        dtype=dtype,
        name=name,
    )


def gather_nd(params, indices, name=None, batch_dims=0):
    """``params[tuple(indices[..., :])]`` for each index row: the rows address the first
    ``k = indices.shape[-1]`` axes. Built as one ``gather`` on ``params`` flattened over those
    axes (row-major offsets), so its gradient is gather's; ``params.shape[1:]`` must be
    static, the first axis may be ``None``."""
    params, indices = convert_to_tensor(params), convert_to_tensor(indices)
    if batch_dims:
        raise missing("", "gather_nd(batch_dims=)")
    k = indices.shape[-1] if indices.shape is not None and len(indices.shape) else None
    if (
        not isinstance(k, builtins.int)
        or params.shape is None
        or k > len(params.shape)
        or not builtins.all(isinstance(d, builtins.int) for d in params.shape[1:])
    ):
        raise _ShapeError(
            f"gather_nd needs indices with a static last axis of at most "
            f"params' rank, and params with static dims after the first: "
            f"params {params.describe()}, indices {indices.describe()}",
            _user_location(),
        )
    dims = params.shape[1:k]
    strides = np.cumprod([1] + builtins.list(dims[::-1]), dtype=np.int64)[::-1]
    offsets = _reduce.reduce_sum(indices * strides.astype(indices.dtype.np), axis=-1)
    flat = reshape(params, [-1] + builtins.list(params.shape[k:]))
    return gather(flat, offsets, name=name)


def where(condition, x=None, y=None, name=None):
    """``x`` where ``condition`` else ``y``. The one-argument form (the coordinates of the
    true entries) has a data-dependent shape, which graphc graphs cannot have."""
    if x is None and y is None:
        raise MissingAPIError(
            "tf.where(condition) with one argument returns a data-dependent "
            "shape, which graphc does not support; use tf.where(c, x, y)"
        )
    return _where(condition, x, y, name=name)


where_v2 = where


def shape(input, name=None, out_type=int32):  # noqa: A002
    """The shape as an int tensor (a constant when it is static)."""
    return _array.shape(input, dtype=out_type, name=name)


def size(input, name=None, out_type=int32):  # noqa: A002
    return _array.size(input, dtype=out_type, name=name)


def linspace(start, stop, num, name=None):
    """``num`` evenly spaced float32 values from ``start`` to ``stop`` (static arguments)."""
    return constant(np.linspace(start, stop, num).astype("float32"), name=name or "linspace")


lin_space = linspace


def convert_to_tensor(value, dtype=None, name=None, preferred_dtype=None):
    if isinstance(value, Tensor):
        return value if dtype is None else cast(value, dtype)
    return _constant(value, dtype=dtype, name=name)


def cond(pred, true_fn=None, false_fn=None, strict=False, name=None, fn1=None, fn2=None):
    """``true_fn()`` where the scalar bool ``pred`` is true, else ``false_fn()``: a real
    branch (``gc.cond``), so only the taken branch runs, its assignments included."""
    true_fn, false_fn = true_fn or fn1, false_fn or fn2
    if isinstance(pred, Tensor) and pred.shape is None:
        pred = reshape(pred, ())
    return _gc.cond(pred, true_fn, false_fn, name=name)


def while_loop(
    cond,
    body,
    loop_vars,
    shape_invariants=None,
    parallel_iterations=10,
    back_prop=True,
    swap_memory=False,
    name=None,
    maximum_iterations=None,
    return_same_structure=False,
):
    """TF 1.x's argument order over ``gc.while_loop`` (a list of one loop variable returns
    the tensor, unless ``return_same_structure``)."""
    return _gc.while_loop(
        cond,
        body,
        loop_vars,
        maximum_iterations=maximum_iterations,
        shape_invariants=shape_invariants,
        name=name,
        return_same_structure=return_same_structure,
    )


scan = _gc.scan
map_fn = _gc.map_fn
case = _gc.case


# --- sessions, configuration and other switches TF 1.x scripts flip ---------------------------


class _Options:
    """A record that accepts any option (``ConfigProto(log_device_placement=True)``,
    ``config.gpu_options.allow_growth = True``); graphc has nothing to configure there."""

    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _Options()
        setattr(self, name, value)
        return value


ConfigProto = GPUOptions = RunOptions = RunMetadata = GraphOptions = OptimizerOptions = _Options


def disable_v2_behavior():
    """A no-op: graphc is always in TF 1.x graph mode."""


disable_eager_execution = enable_resource_variables = disable_resource_variables = (
    disable_v2_tensorshape
) = disable_v2_behavior


def executing_eagerly():
    return False


def _log(*args, **kwargs):
    """tf.logging calls are accepted and dropped: graphc reports through exceptions."""


logging = Namespace(
    "logging",
    set_verbosity=_log,
    info=_log,
    warning=_log,
    warn=_log,
    error=_log,
    debug=_log,
    DEBUG=10,
    INFO=20,
    WARN=30,
    WARNING=30,
    ERROR=40,
    FATAL=50,
)


def _app_run(main=None, argv=None):
    """Parse the flags, call ``main(remaining argv)`` and exit with its result (TF's
    ``tf.app.run``)."""
    main = main or sys.modules["__main__"].main
    rest = _flags.FLAGS(sys.argv if argv is None else argv)
    sys.exit(main(rest))


_flag_names = {
    k: getattr(_flags, k)
    for k in (
        "FLAGS",
        "DEFINE_string",
        "DEFINE_integer",
        "DEFINE_float",
        "DEFINE_boolean",
        "DEFINE_bool",
    )
}
flags = Namespace("flags", **_flag_names)
app = Namespace("app", run=_app_run, flags=flags)


class GraphKeys:
    """The standard collection names."""

    GLOBAL_VARIABLES = VARIABLES = "variables"
    TRAINABLE_VARIABLES = "trainable_variables"
    UPDATE_OPS = layers.UPDATE_OPS
    LOSSES = LOSSES
    REGULARIZATION_LOSSES = REGULARIZATION_LOSSES
    GLOBAL_STEP = "global_step"
    SUMMARIES = "summaries"
    LOCAL_VARIABLES = "local_variables"
    MODEL_VARIABLES = "model_variables"
    QUEUE_RUNNERS = "queue_runners"


# --- sub-namespaces ---------------------------------------------------------------------------

# ``except tf.errors.InvalidArgumentError:`` catches graphc's errors: every one of them is a
# GraphcError, whose subclass (ShapeError, DTypeError, FeedError…) says more
errors = Namespace(
    "errors",
    OpError=GraphcError,
    InvalidArgumentError=GraphcError,
    FailedPreconditionError=_gc.UninitializedError,
    NotFoundError=_gc.NotFoundError,
    UnimplementedError=UnimplementedError,
    DataLossError=_gc.CheckpointError,
    OutOfRangeError=OutOfRangeError,
    CancelledError=CancelledError,
)

math = Namespace(
    "math",
    abs=abs,
    add=add,
    add_n=add_n,
    argmax=argmax,
    argmin=argmin,
    ceil=ceil,
    cos=cos,
    count_nonzero=count_nonzero,
    divide=divide,
    equal=equal,
    exp=exp,
    expm1=expm1,
    floor=floor,
    floordiv=floordiv,
    floormod=mod,
    greater=greater,
    greater_equal=greater_equal,
    is_finite=is_finite,
    is_nan=is_nan,
    less=less,
    less_equal=less_equal,
    log=log,
    log1p=log1p,
    log_sigmoid=lambda x, name=None: -nn.softplus(-x),
    logical_and=logical_and,
    logical_not=logical_not,
    logical_or=logical_or,
    logical_xor=logical_xor,
    maximum=maximum,
    minimum=minimum,
    mod=mod,
    multiply=multiply,
    negative=negative,
    not_equal=not_equal,
    pow=pow,
    reciprocal=reciprocal,
    reduce_all=reduce_all,
    reduce_any=reduce_any,
    reduce_logsumexp=reduce_logsumexp,
    reduce_max=reduce_max,
    reduce_mean=reduce_mean,
    reduce_min=reduce_min,
    reduce_prod=reduce_prod,
    reduce_sum=reduce_sum,
    round=round,
    rsqrt=rsqrt,
    sigmoid=sigmoid,
    sign=sign,
    sin=sin,
    softplus=nn.softplus,
    sqrt=sqrt,
    square=square,
    squared_difference=squared_difference,
    subtract=subtract,
    tanh=tanh,
    truediv=truediv,
    in_top_k=nn.in_top_k,
    l2_normalize=nn.l2_normalize,
    top_k=nn.top_k,
    cumsum=cumsum,
    reduce_std=reduce_std,
    reduce_variance=reduce_variance,
    unsorted_segment_sum=unsorted_segment_sum,
    unsorted_segment_mean=unsorted_segment_mean,
    erf=_gc.erf,
    is_inf=is_inf,
)

linalg = Namespace(
    "linalg",
    matmul=matmul,
    matrix_transpose=matrix_transpose,
    transpose=matrix_transpose,
    norm=norm,
    tensordot=tensordot,
    einsum=einsum,
    diag=matrix_diag,
    diag_part=diag_part,
    trace=trace,
)

random = Namespace(
    "random",
    normal=random_normal,
    uniform=random_uniform,
    truncated_normal=truncated_normal,
    shuffle=random_shuffle,
    categorical=categorical,
    multinomial=multinomial,
    set_random_seed=set_random_seed,
    set_seed=set_random_seed,
)

dtypes = Namespace(
    "dtypes",
    DType=DType,
    as_dtype=as_dtype,
    float16=float16,
    float32=float32,
    float64=float64,
    int8=int8,
    int16=int16,
    int32=int32,
    int64=int64,
    uint8=uint8,
    bool=bool,
    half=half,
    double=double,
)

# tf.contrib: a package (graphc.compat.contrib) of the pieces classic tutorials use;
# everything else in it raises MissingAPIError
from . import contrib  # noqa: E402
from .contrib.layers import fully_connected as _fully_connected  # noqa: E402

# `from graphc.compat.v1.contrib import rnn` and `import graphc.compat.v1.contrib.layers`
# work as TF's module paths did: this module is not a package, so the paths are aliases
for _name, _module in list(sys.modules.items()):
    if _name == "graphc.compat.contrib" or _name.startswith("graphc.compat.contrib."):
        sys.modules["graphc.compat.v1" + _name[len("graphc.compat") :]] = _module

data = _data  # tf.data (graphc.compat.data): a Python-side pipeline feeding the graph

# scripts written for TF 1.15 / 2.x spell everything tf.compat.v1.<name>: this very module
compat = Namespace("compat", v1=sys.modules[__name__], dimension_value=dimension_value)


def _makedirs(path):
    _os.makedirs(path, exist_ok=True)


def _rename(src, dst, overwrite=False):
    if not overwrite and _os.path.exists(dst):
        raise FileExistsError(dst)
    _os.replace(src, dst)


# tf.gfile: the local file system (the scripts use it for log and checkpoint directories)
gfile = Namespace(
    "gfile",
    Exists=_os.path.exists,
    MakeDirs=_makedirs,
    MkDir=_os.mkdir,
    DeleteRecursively=_shutil.rmtree,
    IsDirectory=_os.path.isdir,
    ListDirectory=_os.listdir,
    Glob=_glob.glob,
    Remove=_os.remove,
    Rename=_rename,
    Copy=_shutil.copyfile,
    Walk=_os.walk,
    GFile=open,
    Open=open,
    FastGFile=open,
)
io = Namespace(
    "io",
    decode_csv=decode_csv,
    gfile=Namespace(
        "io.gfile",
        exists=_os.path.exists,
        makedirs=_makedirs,
        mkdir=_os.mkdir,
        rmtree=_shutil.rmtree,
        isdir=_os.path.isdir,
        listdir=_os.listdir,
        glob=_glob.glob,
        remove=_os.remove,
        rename=_rename,
        copy=_shutil.copyfile,
        walk=_os.walk,
        GFile=open,
    ),
)

__getattr__ = module_getattr("")
