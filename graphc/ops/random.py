"""Seeded random sources. Each node draws from its own generator, created per session
from (graph seed, op seed): the same seeds give the same numbers in every fresh session
and on every backend (the cupy backend draws on the host too)."""

from __future__ import annotations

import numpy as np

from .. import dtypes as D
from ..errors import DTypeError, ShapeError
from ..ir.graph import get_default_graph
from ..shapes import as_shape, fully_known
from .array import gather
from .registry import OpDef, register
from .sources import convert


# The draws take a numpy dtype and use only numpy: the standalone backend carries their
# source into generated modules, so both backends draw the same numbers from one definition.
def _normal(rng, shape, dtype, mean, stddev):
    return (rng.standard_normal(shape) * stddev + mean).astype(dtype)


def _uniform(rng, shape, dtype, minval, maxval):
    if dtype.kind in "iu":
        return rng.integers(minval, maxval, size=shape, dtype=dtype)
    return rng.uniform(minval, maxval, size=shape).astype(dtype)


def _truncated(rng, shape, dtype, mean, stddev):
    # redraw values beyond two standard deviations, as TF does
    x = rng.standard_normal(shape)
    bad = np.abs(x) > 2
    while bad.any():
        x[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(x) > 2
    return (x * stddev + mean).astype(dtype)


def _normal_kernel(ctx, node, *like, shape, dtype, seed, mean, stddev):
    return _normal(ctx.rng(node), like[0].shape if like else shape, dtype.np, mean, stddev)


def _uniform_kernel(ctx, node, *like, shape, dtype, seed, minval, maxval):
    return _uniform(ctx.rng(node), like[0].shape if like else shape, dtype.np, minval, maxval)


def _truncated_kernel(ctx, node, *like, shape, dtype, seed, mean, stddev):
    return _truncated(ctx.rng(node), like[0].shape if like else shape, dtype.np, mean, stddev)


def _random_infer(ins, attrs):
    return [(attrs["dtype"], ins[0].shape if ins else attrs["shape"])]


def _random_op(name, kernel, samples):
    return register(
        OpDef(
            name,
            _random_infer,
            numpy=kernel,
            kind="random",
            stateful=True,
            differentiable=False,
            samples=samples,
        )
    )


# Samples are large enough for the registry tests to check the distribution's statistics.
def _normal_samples(rng):
    return [
        ([], {"shape": (4000,), "dtype": D.float64, "seed": 1, "mean": 1.0, "stddev": 2.0}),
        ([], {"shape": (50, 40), "dtype": D.float32, "seed": 2, "mean": 0.0, "stddev": 1.0}),
    ]


def _uniform_samples(rng):
    return [
        ([], {"shape": (4000,), "dtype": D.float32, "seed": 3, "minval": -2.0, "maxval": 3.0}),
        ([], {"shape": (4000,), "dtype": D.int32, "seed": 4, "minval": 3, "maxval": 7}),
        (
            [rng.standard_normal((40, 100))],
            {"shape": None, "dtype": D.float64, "seed": 5, "minval": 0.0, "maxval": 1.0},
        ),
    ]


RANDOM_NORMAL = _random_op("random_normal", _normal_kernel, _normal_samples)
RANDOM_UNIFORM = _random_op("random_uniform", _uniform_kernel, _uniform_samples)
TRUNCATED_NORMAL = _random_op("truncated_normal", _truncated_kernel, _normal_samples)


def _static_shape(shape, what):
    s = as_shape(shape)
    if not fully_known(s):
        raise ShapeError(f"{what} needs a static shape, got {shape!r}")
    return tuple(s)


def _like_of(shape):
    """``x`` when ``shape`` is ``gc.shape(x)`` of a tensor whose shape is known only at run
    time (the draw then takes x's run-time shape), else None."""
    from ..ir.node import Tensor

    if isinstance(shape, Tensor) and shape.op.type == "shape":
        return shape.op.inputs[0]
    return None


def _shape_arg(shape, what):
    from .array import _shape_value

    return _static_shape(_shape_value(shape, what, f"{what}_like(x) or gc.shape(x)"), what)


def _seed(seed):
    return None if seed is None else int(seed)


def random_normal(shape, mean=0.0, stddev=1.0, dtype=D.float32, seed=None, name=None):
    """Normal samples; the same ``seed`` gives the same numbers in every fresh session."""
    dtype = D.as_dtype(dtype)
    if not dtype.is_floating:
        raise DTypeError(f"random_normal needs a floating dtype, got {dtype}")
    like = _like_of(shape)
    if like is not None:  # gc.random_normal(gc.shape(x)): x's run-time shape
        return random_normal_like(like, mean, stddev, dtype=dtype, seed=seed, name=name)
    return RANDOM_NORMAL(
        name=name,
        shape=_shape_arg(shape, "random_normal"),
        dtype=dtype,
        seed=_seed(seed),
        mean=float(mean),
        stddev=float(stddev),
    )


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=D.float32, seed=None, name=None):
    """Normal samples redrawn when beyond two standard deviations."""
    dtype = D.as_dtype(dtype)
    like = _like_of(shape)
    if like is not None:
        return TRUNCATED_NORMAL(
            convert(like),
            name=name,
            shape=None,
            dtype=dtype,
            seed=_seed(seed),
            mean=float(mean),
            stddev=float(stddev),
        )
    return TRUNCATED_NORMAL(
        name=name,
        shape=_shape_arg(shape, "truncated_normal"),
        dtype=dtype,
        seed=_seed(seed),
        mean=float(mean),
        stddev=float(stddev),
    )


def random_uniform(shape, minval=0, maxval=None, dtype=D.float32, seed=None, name=None):
    """Uniform in [minval, maxval) (maxval defaults to 1 for floats; required for ints)."""
    dtype = D.as_dtype(dtype)
    if maxval is None:
        if dtype.is_integer:
            raise DTypeError("random_uniform with an integer dtype needs maxval")
        maxval = 1.0
    like = _like_of(shape)
    if like is not None:
        return random_uniform_like(like, minval, maxval, dtype=dtype, seed=seed, name=name)
    return RANDOM_UNIFORM(
        name=name,
        shape=_shape_arg(shape, "random_uniform"),
        dtype=dtype,
        seed=_seed(seed),
        minval=minval,
        maxval=maxval,
    )


def random_uniform_like(x, minval=0.0, maxval=1.0, dtype=None, seed=None, name=None):
    """Uniform samples of ``x``'s run-time shape."""
    x = convert(x)
    dtype = D.as_dtype(dtype) if dtype is not None else x.dtype
    return RANDOM_UNIFORM(
        x, name=name, shape=None, dtype=dtype, seed=_seed(seed), minval=minval, maxval=maxval
    )


def random_normal_like(x, mean=0.0, stddev=1.0, dtype=None, seed=None, name=None):
    """Normal samples of ``x``'s run-time shape (``torch.randn_like``)."""
    x = convert(x)
    dtype = D.as_dtype(dtype) if dtype is not None else x.dtype
    if not dtype.is_floating:
        raise DTypeError(f"random_normal_like needs a floating dtype, got {dtype}")
    return RANDOM_NORMAL(
        x,
        name=name,
        shape=None,
        dtype=dtype,
        seed=_seed(seed),
        mean=float(mean),
        stddev=float(stddev),
    )


def random_int(shape, minval=0, maxval=None, dtype=D.int32, seed=None, name=None):
    """Uniform integers in [minval, maxval) (``torch.randint``)."""
    if maxval is None:
        minval, maxval = 0, minval
    return random_uniform(shape, minval, maxval, dtype=dtype, seed=seed, name=name)


def _perm(ctx, node, n, dtype, seed):
    return ctx.rng(node).permutation(n).astype(dtype.np)


RANDOM_PERMUTATION = register(
    OpDef(
        "random_permutation",
        lambda ins, a: [(a["dtype"], (a["n"],))],
        numpy=_perm,
        kind="random",
        stateful=True,
        differentiable=False,
        samples=lambda rng: [
            ([], {"n": 50, "dtype": D.int64, "seed": 6}),
            ([], {"n": 7, "dtype": D.int32, "seed": 7}),
        ],
    )
)


def random_permutation(n, dtype=D.int64, seed=None, name=None):
    """A random ordering of 0..n-1 (``torch.randperm``)."""
    return RANDOM_PERMUTATION(name=name, n=int(n), dtype=D.as_dtype(dtype), seed=_seed(seed))


def random_shuffle(value, seed=None, name=None):
    """``value`` with its first dimension in a seeded random order (a new order each run)."""
    x = convert(value)
    n = x.shape[0]
    if not isinstance(n, int):
        raise ShapeError(f"random_shuffle needs a static first dimension: {x.describe()}")
    return gather(x, random_permutation(n, seed=seed), name=name)


def set_random_seed(seed):
    """The graph-level seed: ops without their own seed derive one from it."""
    get_default_graph().seed = None if seed is None else int(seed)


def seed_for(node):
    """(graph seed, op seed) for a random node; None where neither is set."""
    op_seed = node.attrs.get("seed")
    g_seed = node.graph.seed
    if op_seed is None and g_seed is None:
        return None
    if op_seed is None:
        op_seed = node.id
    return (g_seed or 0, op_seed)
