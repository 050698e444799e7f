"""Every differentiable op in the registry, checked against central finite differences.

The cases come from each op's own ``samples`` (which include broadcasting shapes), so an op
added to the registry is gradient-checked without touching this file."""

import numpy as np
import pytest

import graphc as gc
from graphc.ops.registry import REGISTRY


def _cases():
    rng = np.random.default_rng(1234)
    for name, opdef in sorted(REGISTRY.items()):
        if not opdef.differentiable or opdef.samples is None or opdef.stateful:
            continue
        if opdef.extra.get("user_gradient"):  # a user's rule need not be the true derivative
            continue
        for i, (arrays, attrs) in enumerate(opdef.samples(rng)):
            yield pytest.param(opdef, arrays, attrs, id=f"{name}-{i}")


def _low_precision(opdef, arrays, attrs):
    """Outputs narrower than float64 (cast to float32) need a coarser difference step."""
    shapes = [gc.placeholder(gc.as_dtype(np.asarray(a).dtype), np.shape(a)) for a in arrays]
    node = opdef.build(shapes, dict(attrs))
    return any(t.dtype.is_floating and t.dtype is not gc.float64 for t in node.outputs)


@pytest.mark.parametrize("opdef,arrays,attrs", list(_cases()))
def test_op_gradient_matches_finite_differences(opdef, arrays, attrs):
    assert opdef.grad is not None, f"{opdef.name} is differentiable but has no gradient rule"
    if _low_precision(opdef, arrays, attrs):
        kw = {"delta": 1e-3, "rtol": 1e-3, "atol": 1e-3}
    else:
        kw = {}

    def build(*xs):
        node = opdef.build(list(xs), dict(attrs))
        return list(node.outputs)

    gc.test.check_gradients(build, arrays, **kw)


@pytest.mark.parametrize("opdef,arrays,attrs", list(_cases()))
def test_op_second_derivative_matches_finite_differences(opdef, arrays, attrs):
    """The gradient of each op's gradient (Hessian-vector products need it). A sine of the
    outputs makes the outer function non-linear, so second derivatives of the op count."""
    kw = {"delta": 1e-3, "rtol": 1e-3, "atol": 1e-3} if _low_precision(opdef, arrays, attrs) else {}

    def grad_of(*xs):
        node = opdef.build(list(xs), dict(attrs))
        terms = [
            gc.reduce_sum(gc.sin(gc.cast(t, gc.float64)))
            for t in node.outputs
            if t.dtype.is_floating
        ]
        loss = terms[0]
        for t in terms[1:]:
            loss = loss + t
        return gc.gradients(loss, [x for x in xs if x.dtype.is_floating], unconnected="zero")

    gc.test.check_gradients(grad_of, arrays, **kw)


def test_every_differentiable_op_has_a_rule_and_samples():
    missing = [
        n
        for n, o in REGISTRY.items()
        if o.differentiable
        and not o.stateful
        and not o.extra.get("user_gradient")
        and (o.grad is None or o.samples is None)
    ]
    assert missing == []


def test_the_registry_check_covers_elementwise_broadcasting():
    ids = [p.id for p in _cases()]
    for name in ("add", "multiply", "divide", "pow", "maximum", "matmul", "einsum"):
        assert sum(i.startswith(name + "-") for i in ids) >= 2
