"""More of ``tf.train`` that TF 1.x training scripts use: the learning-rate schedules
(``piecewise_constant``, ``polynomial_decay``, ``inverse_time_decay``,
``natural_exp_decay``, ``cosine_decay``), ``ExponentialMovingAverage`` and
``tf.train.global_step``. The schedules are float32 graphs of the global step, as TF's."""

from __future__ import annotations

import math

from .. import dtypes as D
from ..errors import GraphcError, user_location
from ..ir.node import Tensor
from ..ops.array import cast
from ..ops.elementwise import cos, exp, floor, less_equal, maximum, minimum, pow, where
from ..ops.sources import constant, convert
from ..ops.state import assign, group


def _step(global_step):
    return cast(convert(global_step), D.float32)


def _f32(v):
    return cast(convert(v), D.float32) if isinstance(v, Tensor) else constant(float(v), D.float32)


def piecewise_constant(x, boundaries, values, name=None):
    """``values[0]`` while ``x <= boundaries[0]``, ``values[1]`` up to ``boundaries[1]``…,
    ``values[-1]`` after the last boundary."""
    if len(values) != len(boundaries) + 1:
        raise GraphcError(
            f"piecewise_constant needs one more value than boundaries, got {len(values)} "
            f"values and {len(boundaries)} boundaries",
            user_location(),
        )
    x = convert(x)
    dtype = convert(values[0]).dtype if isinstance(values[0], Tensor) else D.float32
    out = constant(values[-1], dtype)
    for b, v in zip(reversed(boundaries), reversed(values[:-1]), strict=True):
        out = where(less_equal(x, convert(b, like=x)), constant(v, dtype), out)
    return out


def polynomial_decay(
    learning_rate,
    global_step,
    decay_steps,
    end_learning_rate=0.0001,
    power=1.0,
    cycle=False,
    name=None,
):
    """``(lr - end) * (1 - step / decay_steps) ** power + end``, the step held at
    ``decay_steps`` (or, with ``cycle``, ``decay_steps`` grown to the next multiple)."""
    step = _step(global_step)
    steps = constant(float(decay_steps), D.float32)
    if cycle:
        steps = steps * maximum(floor((step + steps - 1) / steps), 1.0)  # ceil(step / steps)
    else:
        step = minimum(step, steps)
    frac = 1 - step / steps
    lr, end = _f32(learning_rate), _f32(end_learning_rate)
    return (lr - end) * pow(frac, _f32(power)) + end


def inverse_time_decay(
    learning_rate, global_step, decay_steps, decay_rate, staircase=False, name=None
):
    """``lr / (1 + decay_rate * step / decay_steps)``."""
    p = _step(global_step) / float(decay_steps)
    if staircase:
        p = floor(p)
    return _f32(learning_rate) / (1 + float(decay_rate) * p)


def natural_exp_decay(
    learning_rate, global_step, decay_steps, decay_rate, staircase=False, name=None
):
    """``lr * exp(-decay_rate * step / decay_steps)``."""
    p = _step(global_step) / float(decay_steps)
    if staircase:
        p = floor(p)
    return _f32(learning_rate) * exp(-float(decay_rate) * p)


def cosine_decay(learning_rate, global_step, decay_steps, alpha=0.0, name=None):
    """``lr * ((1 - alpha) * c + alpha)``, ``c = (1 + cos(pi * min(step, decay_steps) /
    decay_steps)) / 2``."""
    step = minimum(_step(global_step), float(decay_steps))
    cosine = 0.5 * (1 + cos(math.pi * step / float(decay_steps)))
    return _f32(learning_rate) * ((1 - float(alpha)) * cosine + float(alpha))


def global_step(sess, global_step_tensor):
    """The global step's value, as a Python int."""
    return int(sess.run(global_step_tensor))


class ExponentialMovingAverage:
    """Shadow copies of variables moved towards them by ``apply()``:
    ``shadow -= (1 - decay) * (shadow - variable)``; with ``num_updates``, the decay is
    ``min(decay, (1 + num_updates) / (10 + num_updates))``. ``average(var)`` is the shadow
    variable (named ``<var>/ExponentialMovingAverage``), initialized to the variable's
    initial value."""

    def __init__(self, decay, num_updates=None, zero_debias=False, name="ExponentialMovingAverage"):
        self._decay = decay
        self._num_updates = num_updates
        self._name = name
        self._averages: dict = {}

    def apply(self, var_list=None):
        from ..ops.state import Variable, trainable_variables

        var_list = list(var_list) if var_list is not None else trainable_variables()
        decay = _f32(self._decay)
        if self._num_updates is not None:
            n = _f32(self._num_updates)
            decay = minimum(decay, (1 + n) / (10 + n))
        updates = []
        for v in var_list:
            if v not in self._averages:
                base = v.name.split(":")[0]
                init = getattr(v, "initial_value", None)
                init = init if init is not None else v
                self._averages[v] = Variable(
                    init, trainable=False, name=f"{base}/{self._name}", dtype=v.dtype
                )
            shadow = self._averages[v]
            d = cast(decay, v.dtype)
            updates.append(assign(shadow, shadow - (1 - d) * (shadow - v)))
        return group(*updates)

    def average(self, var):
        return self._averages.get(var)

    def average_name(self, var):
        return f"{var.name.split(':')[0]}/{self._name}"

    def variables_to_restore(self, moving_avg_variables=None):
        """{checkpoint name: variable}: each averaged variable restores from its shadow."""
        from ..ops.state import global_variables

        out = {}
        for v in global_variables():
            name = v.name.split(":")[0]
            if v in self._averages:
                out[self.average_name(v)] = v
            elif v not in self._averages.values():
                out[name] = v
        return out
