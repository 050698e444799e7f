"""``tf.initializers`` and the ``tf.*_initializer`` classes of TF 1.x.

An initializer is called as ``init(shape, dtype=None, partition_info=None)`` and returns a
graph tensor (random ones draw from graphc's seeded random ops). The variance-scaling family
uses TF's fans: a kernel of shape ``(..., fan_in, fan_out)`` has receptive field
``prod(shape[:-2])``, which multiplies both fans."""

from __future__ import annotations

import math

import numpy as np

from .. import dtypes as D
from ..errors import GraphcError, user_location
from ..ops import random as _random
from ..ops.array import fill
from ..ops.sources import constant as _constant
from ._support import module_getattr

# a truncated normal (cut at two standard deviations) of unit scale has this standard
# deviation; TF divides by it so the variance comes out as requested
_TRUNCATED_STDDEV = 0.87962566103423978


def _dtype(dtype, default):
    return D.as_dtype(dtype if dtype is not None else default)


def _shape(shape):
    return tuple(int(d) for d in shape)


class Initializer:
    """Base class: subclasses implement ``__call__(shape, dtype=None, partition_info=None)``."""

    dtype = None

    def get_config(self):
        return dict(vars(self))


class Zeros(Initializer):
    def __init__(self, dtype=D.float32):
        self.dtype = dtype

    def __call__(self, shape, dtype=None, partition_info=None):
        return fill(_shape(shape), 0, dtype=_dtype(dtype, self.dtype))


class Ones(Initializer):
    def __init__(self, dtype=D.float32):
        self.dtype = dtype

    def __call__(self, shape, dtype=None, partition_info=None):
        return fill(_shape(shape), 1, dtype=_dtype(dtype, self.dtype))


class Constant(Initializer):
    """A scalar is broadcast to the shape; an array must have the shape's size (TF reshapes)."""

    def __init__(self, value=0, dtype=D.float32, verify_shape=False):
        self.value, self.dtype = value, dtype

    def __call__(self, shape, dtype=None, partition_info=None):
        dt = _dtype(dtype, self.dtype)
        arr = np.asarray(self.value, dtype=dt.np)
        shape = _shape(shape)
        if arr.size == 1:
            return fill(shape, arr.reshape(()).item(), dtype=dt)
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise GraphcError(
                f"constant_initializer: {arr.size} values cannot fill shape {shape}",
                user_location(),
            )
        return _constant(arr.reshape(shape), dtype=dt)


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=1.0, seed=None, dtype=D.float32):
        self.mean, self.stddev, self.seed, self.dtype = mean, stddev, seed, dtype

    def __call__(self, shape, dtype=None, partition_info=None):
        return _random.random_normal(
            _shape(shape), self.mean, self.stddev, _dtype(dtype, self.dtype), seed=self.seed
        )


class TruncatedNormal(Initializer):
    def __init__(self, mean=0.0, stddev=1.0, seed=None, dtype=D.float32):
        self.mean, self.stddev, self.seed, self.dtype = mean, stddev, seed, dtype

    def __call__(self, shape, dtype=None, partition_info=None):
        return _random.truncated_normal(
            _shape(shape), self.mean, self.stddev, _dtype(dtype, self.dtype), seed=self.seed
        )


class RandomUniform(Initializer):
    def __init__(self, minval=0, maxval=None, seed=None, dtype=D.float32):
        self.minval, self.maxval, self.seed, self.dtype = minval, maxval, seed, dtype

    def __call__(self, shape, dtype=None, partition_info=None):
        return _random.random_uniform(
            _shape(shape), self.minval, self.maxval, _dtype(dtype, self.dtype), seed=self.seed
        )


def _fans(shape):
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2], dtype=np.int64)) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


class VarianceScaling(Initializer):
    """Samples with variance ``scale / n``, ``n`` the fan_in, fan_out or their mean."""

    def __init__(
        self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None, dtype=D.float32
    ):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise GraphcError(f"variance_scaling_initializer: bad mode {mode!r}")
        if distribution == "normal":  # TF 1.x's spelling of the truncated normal
            distribution = "truncated_normal"
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise GraphcError(f"variance_scaling_initializer: bad distribution {distribution!r}")
        self.scale, self.mode, self.distribution = scale, mode, distribution
        self.seed, self.dtype = seed, dtype

    def __call__(self, shape, dtype=None, partition_info=None):
        shape = _shape(shape)
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, n)
        dt = _dtype(dtype, self.dtype)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return _random.random_uniform(shape, -limit, limit, dt, seed=self.seed)
        if self.distribution == "untruncated_normal":
            return _random.random_normal(shape, 0.0, math.sqrt(variance), dt, seed=self.seed)
        return _random.truncated_normal(
            shape, 0.0, math.sqrt(variance) / _TRUNCATED_STDDEV, dt, seed=self.seed
        )


class GlorotUniform(VarianceScaling):
    """Uniform in ``±sqrt(6 / (fan_in + fan_out))``: TF's default for get_variable."""

    def __init__(self, seed=None, dtype=D.float32):
        super().__init__(1.0, "fan_avg", "uniform", seed, dtype)


class GlorotNormal(VarianceScaling):
    def __init__(self, seed=None, dtype=D.float32):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed, dtype)


def he_normal(seed=None):
    return VarianceScaling(2.0, "fan_in", "truncated_normal", seed)


def he_uniform(seed=None):
    return VarianceScaling(2.0, "fan_in", "uniform", seed)


def lecun_normal(seed=None):
    return VarianceScaling(1.0, "fan_in", "truncated_normal", seed)


def lecun_uniform(seed=None):
    return VarianceScaling(1.0, "fan_in", "uniform", seed)


def xavier_initializer(uniform=True, seed=None, dtype=D.float32):
    """``tf.contrib.layers.xavier_initializer``: Glorot, uniform or (truncated) normal."""
    return GlorotUniform(seed, dtype) if uniform else GlorotNormal(seed, dtype)


def variance_scaling_initializer(
    factor=2.0, mode="FAN_IN", uniform=False, seed=None, dtype=D.float32
):
    """``tf.contrib.layers.variance_scaling_initializer`` (He initialization by default)."""
    mode = {"FAN_IN": "fan_in", "FAN_OUT": "fan_out", "FAN_AVG": "fan_avg"}[mode.upper()]
    return VarianceScaling(factor, mode, "uniform" if uniform else "truncated_normal", seed, dtype)


def as_initializer(init):
    """TF accepts an initializer object, a class, or a plain value/array as an initializer."""
    if isinstance(init, type) and issubclass(init, Initializer):
        return init()
    return init


# tf.initializers.* (TF 1.x names, lower case) and the classes behind tf.*_initializer
zeros = Zeros
ones = Ones
constant = Constant
random_normal = RandomNormal
truncated_normal = TruncatedNormal
random_uniform = RandomUniform
variance_scaling = VarianceScaling
glorot_uniform = GlorotUniform
glorot_normal = GlorotNormal

__getattr__ = module_getattr("initializers")
