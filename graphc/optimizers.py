"""More of TF 1.x's optimizers, on ``gc.train.Optimizer`` (re-exported by ``gc.train`` and
``tf.train``): Adadelta and FTRL-Proximal, with TF's arguments, defaults, slot names and
update rules (``training_ops.ApplyAdadelta`` / ``ApplyFtrl``)."""

from __future__ import annotations

from .errors import GraphcError, user_location
from .ops.elementwise import abs as _abs
from .ops.elementwise import greater, pow, sign, sqrt, square, where  # noqa: A004
from .ops.state import assign, assign_sub, control_dependencies, group
from .train import Optimizer, _hyper


class AdadeltaOptimizer(Optimizer):
    """Adadelta (Zeiler 2012), as TF 1.x computes it::

    accum = rho * accum + (1 - rho) * g^2
    update = sqrt(accum_update + epsilon) / sqrt(accum + epsilon) * g
    accum_update = rho * accum_update + (1 - rho) * update^2
    var -= lr * update
    """

    _default_name = "Adadelta"

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-8, use_locking=False, name=None):
        super().__init__(learning_rate, use_locking, name)
        self._rho, self._epsilon = rho, epsilon

    def _slot_specs(self, var):
        return [("", 0.0), ("_1", 0.0)]  # TF's "w/Adadelta" (accum), "w/Adadelta_1"

    def _apply_dense(self, grad, var):
        accum, accum_update = self.get_slot(var, ""), self.get_slot(var, "_1")
        rho, eps = _hyper(self._rho, var), _hyper(self._epsilon, var)
        new_accum = assign(accum, accum * rho + square(grad) * (1 - rho))
        update = sqrt(accum_update + eps) / sqrt(new_accum + eps) * grad
        with control_dependencies([update.op]):
            new_update = assign(accum_update, accum_update * rho + square(update) * (1 - rho))
        return group(assign_sub(var, self._lr(var) * update), new_update)


class FtrlOptimizer(Optimizer):
    """FTRL-Proximal (McMahan et al. 2013), as TF 1.x's ``ApplyFtrl``::

        accum_new = accum + g^2
        linear += g - (accum_new^-p - accum^-p) / lr * var
        quadratic = accum_new^-p / lr + 2 * l2
        var = (sign(linear) * l1 - linear) / quadratic  if |linear| > l1  else 0
        accum = accum_new

    with ``p = learning_rate_power`` (-0.5: square roots)."""

    _default_name = "Ftrl"

    def __init__(
        self,
        learning_rate,
        learning_rate_power=-0.5,
        initial_accumulator_value=0.1,
        l1_regularization_strength=0.0,
        l2_regularization_strength=0.0,
        use_locking=False,
        name=None,
        accum_name=None,
        linear_name=None,
        l2_shrinkage_regularization_strength=0.0,
        beta=None,
    ):
        super().__init__(learning_rate, use_locking, name)
        if learning_rate_power > 0:
            raise GraphcError(
                f"FtrlOptimizer: learning_rate_power must be <= 0, got {learning_rate_power}",
                user_location(),
            )
        if initial_accumulator_value < 0:
            raise GraphcError(
                "FtrlOptimizer: initial_accumulator_value must be >= 0, got "
                f"{initial_accumulator_value}",
                user_location(),
            )
        if l2_shrinkage_regularization_strength:
            raise GraphcError(
                "FtrlOptimizer: l2_shrinkage_regularization_strength is not supported",
                user_location(),
            )
        self._power = float(learning_rate_power)
        self._init_acc = float(initial_accumulator_value)
        self._l1 = l1_regularization_strength
        self._l2 = l2_regularization_strength
        self._beta = 0.0 if beta is None else beta

    def _slot_specs(self, var):
        return [("", self._init_acc), ("_1", 0.0)]  # TF's "w/Ftrl" (accum), "w/Ftrl_1"

    def _root(self, x):
        return sqrt(x) if self._power == -0.5 else pow(x, -self._power)

    def _apply_dense(self, grad, var):
        accum, linear = self.get_slot(var, ""), self.get_slot(var, "_1")
        lr = self._lr(var)
        l1, l2 = _hyper(self._l1, var), _hyper(self._l2, var)
        accum_new = accum + square(grad)
        root_new = self._root(accum_new)
        sigma = (root_new - self._root(accum)) / lr
        new_linear = assign(linear, linear + grad - sigma * var)
        quadratic = root_new / lr + 2 * l2 + _hyper(self._beta, var) / lr
        value = where(
            greater(_abs(new_linear), l1), (sign(new_linear) * l1 - new_linear) / quadratic, 0
        )
        with control_dependencies([sigma.op, new_linear.op]):
            new_var = assign(var, value)
            new_accum = assign(accum, accum_new)
        return group(new_var, new_accum)
