"""``gc.train``: optimizers with TensorFlow 1.x's names and defaults, gradient clipping,
global steps, and the checkpoint ``Saver``.

An optimizer only builds graph nodes: ``minimize`` adds the gradients (``gc.gradients``)
and, per variable, assign ops that update the session's buffer in place. Slot variables
(momentum accumulators, Adam's moments) are ordinary non-trainable ``gc.Variable``s named
``<var>/<Optimizer>``, so ``global_variables_initializer`` initializes them and ``Saver``
saves them. Every update runs after every gradient and the loss have been computed (control
dependencies on one ``gradients_ready`` no_op that waits for all of them), so one
``sess.run([train, loss])`` reports the loss before the step."""

from __future__ import annotations

from . import dtypes as D
from ._kwargs import accepts
from .autodiff import gradients
from .checkpoint import Saver, latest_checkpoint
from .diagnostics import missing_gradients
from .errors import DTypeError, GradientError, GraphcError, user_location
from .ir.gcpause import paused_gc
from .ir.graph import get_default_graph
from .ir.node import Tensor
from .ops.array import cast, fill, fill_like
from .ops.elementwise import divide, maximum, sqrt, square
from .ops.reduce import reduce_sum
from .ops.sources import convert
from .ops.state import (
    TRAINABLE_VARIABLES,
    Variable,
    assign,
    assign_add,
    assign_sub,
    global_variables_initializer,
    group,
    locking,
    variables_initializer,
)
from .shapes import fully_known

GLOBAL_STEP = "global_step"


class Optimizer:
    """Base class: ``compute_gradients`` → ``apply_gradients`` (``minimize`` does both).

    A subclass names its slots in ``_slot_specs(var)`` and builds one variable's update
    in ``_apply_dense(grad, var)`` from ``self._lr(var)`` and ``self.get_slot(var, name)``."""

    _default_name = "Optimizer"

    def __init__(self, learning_rate, use_locking=False, name=None):
        if not isinstance(learning_rate, (int, float, Tensor)) and not callable(learning_rate):
            raise GraphcError(
                f"{type(self).__name__}: learning_rate must be a number or a "
                f"tensor, got {learning_rate!r}",
                user_location(),
            )
        self._learning_rate = learning_rate
        self._use_locking = bool(use_locking)  # every update holds its variable's lock
        self._name = name or self._default_name
        self._slots: dict = {}  # (var, slot name) -> Variable
        self._non_slot: dict = {}  # name -> Variable shared by all vars (Adam's beta powers)

    # -- the TF1 API ----------------------------------------------------------------------------
    def get_name(self):
        return self._name

    @accepts(
        "gate_gradients",
        "aggregation_method",
        "colocate_gradients_with_ops",
        what="Optimizer.minimize",
    )
    @paused_gc
    def minimize(
        self, loss, global_step=None, var_list=None, name=None, grad_loss=None, **_tf_kwargs
    ):
        """Add the gradients of ``loss`` and the updates of ``var_list`` (default: the
        trainable variables) and return the op that runs one step. ``global_step`` (an int
        variable) is incremented after the updates."""
        grads_and_vars = self.compute_gradients(loss, var_list=var_list, grad_loss=grad_loss)
        missing_gradients(loss, grads_and_vars)  # raise (none) or warn (some), saying why
        with loss.graph.control_dependencies([loss.op]):
            return self.apply_gradients(grads_and_vars, global_step=global_step, name=name)

    @accepts(
        "gate_gradients",
        "aggregation_method",
        "colocate_gradients_with_ops",
        what="Optimizer.compute_gradients",
    )
    def compute_gradients(self, loss, var_list=None, grad_loss=None, **_tf_kwargs):
        """``[(gradient or None, variable), ...]`` for ``var_list`` (default: trainable)."""
        if not isinstance(loss, Tensor):
            raise GraphcError(
                f"{type(self).__name__}: the loss must be a tensor, got {loss!r}", user_location()
            )
        if not loss.dtype.is_floating:
            raise DTypeError(
                f"cannot minimize {loss.describe()}: it is not floating point", user_location()
            )
        if var_list is None:
            # integer and bool variables (counters, masks) can never receive a gradient
            var_list = [
                v for v in loss.graph.get_collection(TRAINABLE_VARIABLES) if v.dtype.is_floating
            ]
        var_list = list(var_list)
        if not var_list:
            raise GradientError(
                f"there are no trainable variables to minimize {loss.describe()} "
                "over: create gc.Variable(...)s or pass var_list",
                user_location(),
            )
        for v in var_list:
            if not isinstance(v, Variable):
                raise GraphcError(f"var_list must hold gc.Variables, got {v!r}", user_location())
        grads = gradients(loss, var_list, grad_ys=grad_loss)
        return list(zip(grads, var_list, strict=True))

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        """The op that applies ``(gradient, variable)`` pairs (pairs with a None gradient are
        skipped) and then increments ``global_step``."""
        grads_and_vars = [(g, v) for g, v in grads_and_vars]
        live = [(g, v) for g, v in grads_and_vars if g is not None]
        if not live:
            names = ", ".join(v.op.name for _, v in grads_and_vars)
            raise GradientError(
                f"no gradients were provided for any variable [{names}]; "
                "gc.gradients(loss, variables, unconnected='raise') says which "
                "op cuts the path or that the loss does not use them",
                user_location(),
            )
        graph = live[0][1].graph
        for g, v in live:
            if g.dtype is not v.dtype:
                raise DTypeError(
                    f"the gradient {g.describe()} of {v.describe()} has another "
                    "dtype than the variable",
                    user_location(),
                )
        with graph.as_default():  # the step joins the variables' graph, whatever the default
            return self._build_step(graph, live, global_step, name)

    def _build_step(self, graph, live, global_step, name):
        with graph.control_dependencies(None):  # slots initialize on their own
            for _, v in live:
                self._create_slots(v)
            self._create_non_slots(graph, live[0][1].dtype)
        # The step op gets exactly the name asked for ("train", or the optimizer's name) and
        # its update ops live under it ("train/assign_sub"), as in TF. The scope is given as
        # absolute ("train/") so that opening it does not claim the op's own name.
        step_name = graph.unique_name(name or self._name, mark_used=False)
        with graph.name_scope(step_name + "/"):
            # One no_op waits for every gradient, and every update waits for it (TF's
            # pattern): one control edge per update op instead of one per (op, gradient).
            ready = group(*[g.op for g, _ in live], name="gradients_ready")
            with graph.control_dependencies([ready]), locking(self._use_locking):
                self._prepare()
                updates = [self._apply_dense(g, v) for g, v in live]
                finish = self._finish(graph, updates)
        base = step_name.rsplit("/", 1)[-1]
        if global_step is None:
            return group(*updates, *finish, name=base)
        with graph.control_dependencies(updates + finish):
            return assign_add(global_step, 1, name=base).op

    def get_slot(self, var, name):
        return self._slots.get((var, name))

    def get_slot_names(self):
        return sorted({name for _, name in self._slots})

    def variables(self):
        """The optimizer's own variables (slots and shared ones)."""
        return list(self._slots.values()) + list(self._non_slot.values())

    # -- for subclasses -------------------------------------------------------------------------
    def _slot_specs(self, var):
        """``[(slot name, initial value), ...]`` for ``var``."""
        return []

    def _non_slot_specs(self):
        return []

    def _prepare(self):
        """Called once per step built, before the updates (TF's ``_prepare``): a subclass
        forgets the step tensors it shares between its variables' updates."""

    def _apply_dense(self, grad, var):
        raise NotImplementedError

    def _finish(self, graph, updates):
        return []

    def _lr(self, var):
        return _hyper(self._learning_rate, var)

    # -- helpers --------------------------------------------------------------------------------
    def _create_slots(self, var):
        for slot, value in self._slot_specs(var):
            if (var, slot) in self._slots:
                continue
            init = _filled_like(var, value)
            with var.graph.name_scope(var.op.name + "/"):
                name = self._name if slot == "" else f"{self._name}{slot}"
                self._slots[(var, slot)] = Variable(init, trainable=False, name=name)

    def _create_non_slots(self, graph, dtype):
        for name, value in self._non_slot_specs():
            if name not in self._non_slot:
                with graph.name_scope(""):
                    self._non_slot[name] = Variable(
                        _constant(value, dtype), trainable=False, name=name
                    )


def _constant(value, dtype):
    from .ops.sources import constant

    return constant(value, dtype=dtype)


def _filled_like(var, value):
    """An initial value for a slot of ``var``: built from ``var``'s static shape (or its
    initial value's run-time shape), never from ``var`` itself, which may be uninitialized."""
    if var.shape is not None and fully_known(var.shape):
        return fill(var.shape, value, dtype=var.dtype)
    return fill_like(var.initial_value, value, dtype=var.dtype)


def _hyper(value, var):
    """A hyperparameter (a number or a tensor, e.g. a decaying learning rate) in ``var``'s
    dtype: a number stays a weak scalar; a tensor of another float dtype is cast."""
    if isinstance(value, Tensor):
        return value if value.dtype is var.dtype else cast(value, var.dtype)
    if callable(value):
        return _hyper(value(), var)
    return float(value)


class GradientDescentOptimizer(Optimizer):
    """``var -= learning_rate * grad``."""

    _default_name = "GradientDescent"

    def _apply_dense(self, grad, var):
        return assign_sub(var, grad * self._lr(var))


class MomentumOptimizer(Optimizer):
    """``accum = momentum * accum + grad; var -= lr * accum`` (TF's form). With
    ``use_nesterov``: ``var -= lr * (grad + momentum * accum)``."""

    _default_name = "Momentum"

    def __init__(self, learning_rate, momentum, use_locking=False, name=None, use_nesterov=False):
        super().__init__(learning_rate, use_locking, name)
        self._momentum = momentum
        self._nesterov = bool(use_nesterov)

    def _slot_specs(self, var):
        return [("", 0.0)]

    def _apply_dense(self, grad, var):
        acc = self.get_slot(var, "")
        mom = _hyper(self._momentum, var)
        new_acc = assign(acc, acc * mom + grad)
        if self._nesterov:
            return assign_sub(var, (grad + new_acc * mom) * self._lr(var))
        return assign_sub(var, new_acc * self._lr(var))


class AdamOptimizer(Optimizer):
    """Adam (Kingma & Ba), as TF 1.x computes it::

    lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
    m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g^2
    var -= lr_t * m / (sqrt(v) + epsilon)
    """

    _default_name = "Adam"

    def __init__(
        self,
        learning_rate=0.001,
        beta1=0.9,
        beta2=0.999,
        epsilon=1e-8,
        use_locking=False,
        name=None,
    ):
        super().__init__(learning_rate, use_locking, name)
        self._beta1, self._beta2, self._epsilon = beta1, beta2, epsilon
        self._step_tensors: dict = {}

    def _slot_specs(self, var):
        return [("", 0.0), ("_1", 0.0)]  # TF's names: "w/Adam" (m) and "w/Adam_1" (v)

    def _non_slot_specs(self):
        return [("beta1_power", self._beta1), ("beta2_power", self._beta2)]

    def _prepare(self):
        self._step_tensors = {}  # dtype -> what every variable of that dtype shares

    def _shared(self, var):
        """The step's ``lr_t`` and the hyperparameters as tensors of ``var``'s dtype, built
        once per step and dtype (the beta powers change only after every update, so one
        ``lr_t`` serves all variables; per variable, a deep model's step computed it
        hundreds of times)."""
        found = self._step_tensors.get(var.dtype)
        if found is None:
            b1, b2 = _hyper(self._beta1, var), _hyper(self._beta2, var)
            b1_power = _as(self._non_slot["beta1_power"], var)
            b2_power = _as(self._non_slot["beta2_power"], var)
            lr_t = self._lr(var) * sqrt(1 - b2_power) / (1 - b1_power)
            found = [lr_t] + [
                convert(h, like=var)  # (a number: the constant ``var * h`` would make)
                for h in (b1, 1 - b1, b2, 1 - b2, _hyper(self._epsilon, var))
            ]
            self._step_tensors[var.dtype] = found
        return found

    def _apply_dense(self, grad, var):
        m, v = self.get_slot(var, ""), self.get_slot(var, "_1")
        lr_t, b1, one_minus_b1, b2, one_minus_b2, epsilon = self._shared(var)
        new_m = assign(m, m * b1 + grad * one_minus_b1)
        new_v = assign(v, v * b2 + square(grad) * one_minus_b2)
        return assign_sub(var, lr_t * new_m / (sqrt(new_v) + epsilon))

    def _finish(self, graph, updates):
        # the beta powers advance once per step, after every variable has used them
        with graph.control_dependencies(updates):
            b1p, b2p = self._non_slot["beta1_power"], self._non_slot["beta2_power"]
            return [
                assign(b1p, b1p * _hyper(self._beta1, b1p)).op,
                assign(b2p, b2p * _hyper(self._beta2, b2p)).op,
            ]


class RMSPropOptimizer(Optimizer):
    """TF 1.x's RMSProp::

        ms = decay * ms + (1 - decay) * g^2          (ms starts at ones, as in TF)
        mom = momentum * mom + lr * g / sqrt(ms + epsilon)
        var -= mom

    ``centered`` also tracks the mean gradient ``mg`` and divides by
    ``sqrt(ms - mg^2 + epsilon)``."""

    _default_name = "RMSProp"

    def __init__(
        self,
        learning_rate,
        decay=0.9,
        momentum=0.0,
        epsilon=1e-10,
        use_locking=False,
        centered=False,
        name=None,
    ):
        super().__init__(learning_rate, use_locking, name)
        self._decay, self._momentum, self._epsilon = decay, momentum, epsilon
        self._centered = bool(centered)

    def _slot_specs(self, var):
        specs = [("", 1.0), ("_1", 0.0)]  # "w/RMSProp" (ms), "w/RMSProp_1" (mom)
        if self._centered:
            specs.append(("_2", 0.0))  # "w/RMSProp_2" (mg)
        return specs

    def _apply_dense(self, grad, var):
        ms, mom = self.get_slot(var, ""), self.get_slot(var, "_1")
        rho, mu = _hyper(self._decay, var), _hyper(self._momentum, var)
        eps = _hyper(self._epsilon, var)
        new_ms = assign(ms, ms * rho + square(grad) * (1 - rho))
        denom = new_ms
        if self._centered:
            mg = self.get_slot(var, "_2")
            new_mg = assign(mg, mg * rho + grad * (1 - rho))
            denom = new_ms - square(new_mg)
        new_mom = assign(mom, mom * mu + self._lr(var) * grad / sqrt(denom + eps))
        return assign_sub(var, new_mom)


class AdagradOptimizer(Optimizer):
    """``accum += g^2; var -= lr * g / sqrt(accum)``, accumulators starting at
    ``initial_accumulator_value``."""

    _default_name = "Adagrad"

    def __init__(self, learning_rate, initial_accumulator_value=0.1, use_locking=False, name=None):
        super().__init__(learning_rate, use_locking, name)
        if not initial_accumulator_value > 0:
            raise GraphcError(
                "AdagradOptimizer: initial_accumulator_value must be positive, "
                f"got {initial_accumulator_value!r}",
                user_location(),
            )
        self._init_acc = float(initial_accumulator_value)

    def _slot_specs(self, var):
        return [("", self._init_acc)]

    def _apply_dense(self, grad, var):
        acc = self.get_slot(var, "")
        new_acc = assign_add(acc, square(grad))
        return assign_sub(var, self._lr(var) * grad / sqrt(new_acc))


def _as(t, like):
    return t if t.dtype is like.dtype else cast(t, like.dtype)


# --- clipping ---------------------------------------------------------------------------------


def global_norm(t_list, name=None):
    """sqrt(sum of the squared entries of every tensor in ``t_list``); None entries skipped."""
    ts = [convert(t) for t in t_list if t is not None]
    if not ts:
        raise GraphcError("global_norm of an empty list", user_location())
    total = reduce_sum(square(ts[0]))
    for t in ts[1:]:
        total = total + _as(reduce_sum(square(t)), total)
    return sqrt(total, name=name)


def clip_by_global_norm(t_list, clip_norm, use_norm=None, name=None):
    """Scale every tensor by ``clip_norm / max(global_norm, clip_norm)``: unchanged when the
    global norm is within ``clip_norm``, else the whole list is shrunk by one factor (so
    the direction is kept). Returns ``(clipped list, global_norm)``; None entries stay None."""
    t_list = list(t_list)
    norm = use_norm if use_norm is not None else global_norm(t_list)
    clip = _hyper(clip_norm, norm)
    scale = (
        divide(clip, maximum(norm, clip))
        if isinstance(clip, Tensor)
        else clip / maximum(norm, clip)
    )
    clipped = [None if t is None else convert(t) * _as(scale, convert(t)) for t in t_list]
    return clipped, norm


def clip_by_norm(t, clip_norm, name=None):
    """``t * clip_norm / max(l2norm(t), clip_norm)``."""
    (clipped,), _ = clip_by_global_norm([t], clip_norm)
    return clipped


# --- global step ------------------------------------------------------------------------------


def get_global_step(graph=None):
    graph = graph or get_default_graph()
    steps = graph.get_collection(GLOBAL_STEP)
    return steps[0] if steps else None


def get_or_create_global_step(graph=None):
    """The graph's int64 step counter (a non-trainable variable named ``global_step``)."""
    graph = graph or get_default_graph()
    step = get_global_step(graph)
    if step is None:
        with graph.as_default(), graph.control_dependencies(None), graph.name_scope(""):
            step = Variable(_constant(0, D.int64), trainable=False, name="global_step")
        graph.add_to_collection(GLOBAL_STEP, step)
    return step


create_global_step = get_or_create_global_step


def exponential_decay(
    learning_rate, global_step, decay_steps, decay_rate, staircase=False, name=None
):
    """``learning_rate * decay_rate ** (global_step / decay_steps)`` as a float32 tensor."""
    from .ops.elementwise import floor, pow

    step = cast(global_step, D.float32)
    p = step / float(decay_steps)
    if staircase:
        p = floor(p)
    return pow(_constant(float(decay_rate), D.float32), p) * float(learning_rate)


__all__ = [
    "Optimizer",
    "GradientDescentOptimizer",
    "MomentumOptimizer",
    "AdamOptimizer",
    "RMSPropOptimizer",
    "AdagradOptimizer",
    "clip_by_global_norm",
    "clip_by_norm",
    "global_norm",
    "Saver",
    "latest_checkpoint",
    "get_global_step",
    "get_or_create_global_step",
    "create_global_step",
    "exponential_decay",
    "global_variables_initializer",
    "variables_initializer",
]

from .fit import History, Progress, TrainingInterrupted, evaluate, fit  # noqa: E402,F401
from .optimizers import AdadeltaOptimizer, FtrlOptimizer  # noqa: E402  (built on Optimizer)

__all__ += ["AdadeltaOptimizer", "FtrlOptimizer"]
