"""Elementwise ops. Each is one OpDef: its dtype rule, its numpy kernel (which accepts
``out=`` so fused groups can run in tiles), its scalar expression ``expr`` (a C template
over ``{0}``, ``{1}``… that the CUDA generator and the fusion pass share) and its pullback.

Composites (relu, softplus, clip_by_value…) are built from these in ``ops/nn.py``."""

from __future__ import annotations

import math

import numpy as np

from .. import dtypes as D
from ..errors import DTypeError
from ..ir.node import Tensor
from ..shapes import broadcast_shapes
from .array import fill_like
from .registry import OpDef, register
from .sources import convert

# --- rules ------------------------------------------------------------------------------------

_KINDS = {
    "float": lambda d: d.is_floating,
    "number": lambda d: d.is_floating or d.is_integer,
    "int": lambda d: d.is_integer,
    "bool": lambda d: d.is_bool,
    "any": lambda d: True,
}


def _check_kind(opname, kind, x):
    if not _KINDS[kind](x.dtype):
        needs_cast = kind == "float" and not x.dtype.is_floating
        hint = " (use gc.cast(x, gc.float32))" if needs_cast else ""
        raise DTypeError(f"{opname} needs a {kind} tensor, got {x.describe()}{hint}")


def unary_rule(kind, out=None):
    def infer(inputs, attrs):
        (x,) = inputs
        _check_kind(infer.op_name, kind, x)
        return [(out or x.dtype, x.shape)]

    return infer


def binary_rule(kind, out=None):
    def infer(inputs, attrs):
        dts = {t.dtype for t in inputs}
        if len(dts) > 1:
            raise DTypeError(
                f"{infer.op_name} got mixed dtypes: "
                + " and ".join(t.describe() for t in inputs)
                + "; graphc does not promote silently, use gc.cast"
            )
        for t in inputs:
            _check_kind(infer.op_name, kind, t)
        shape = broadcast_shapes(*(t.shape for t in inputs))
        dtype = out(inputs[0].dtype) if callable(out) else (out or inputs[0].dtype)
        return [(dtype, shape)]

    return infer


def _float_samples(lo=-2.0, hi=2.0):
    def samples(rng):
        return [
            ([rng.uniform(lo, hi, (3, 4)).astype(np.float64)], {}),
            ([np.float64(rng.uniform(lo, hi))], {}),
        ]

    return samples


def _binary_samples(lo=-2.0, hi=2.0, dtype=np.float64):
    def samples(rng):
        def a(*s):
            return rng.uniform(lo, hi, s).astype(dtype)

        return [([a(3, 4), a(3, 4)], {}), ([a(2, 3, 4), a(4)], {}), ([a(3, 1), a(1, 4)], {})]

    return samples


def elementwise(
    name,
    kernel,
    expr,
    grad=None,
    kind="float",
    out=None,
    arity=1,
    samples=None,
    differentiable=True,
    doc="",
    fuse_alone=False,
):
    infer = (unary_rule if arity == 1 else binary_rule)(kind, out)
    infer.op_name = name
    if samples is None:
        samples = _float_samples() if arity == 1 else _binary_samples()
    return register(
        OpDef(
            name,
            infer,
            numpy=kernel,
            grad=grad,
            expr=expr,
            kind="elementwise",
            differentiable=differentiable,
            fuse_alone=fuse_alone,
            samples=samples,
            doc=doc,
        )
    )


# --- kernels that numpy lacks as ufuncs (all take out=) ---------------------------------------


def _sigmoid(x, out=None):
    # 0.5 * (tanh(x/2) + 1): stable for large |x| and no overflow warnings. A fresh
    # array, not out=None: numpy returns a scalar for 0-d input, which in-place ufuncs reject.
    out = np.multiply(x, 0.5, out=np.empty_like(x) if out is None else out)
    np.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


def _rsqrt(x, out=None):
    out = np.sqrt(x, out=np.empty_like(x) if out is None else out)  # 0-d: see _sigmoid
    return np.reciprocal(out, out=out)


# erf, vectorized: numpy has no erf ufunc, and np.vectorize(math.erf) costs ~60x tanh.
# float64: Cephes' ndtr.c (S. L. Moshier's rational approximations, after W. J. Cody):
# x T(x^2) / U(x^2) for |x| < 1, 1 - exp(-x^2) P(|x|) / Q(|x|) above (erf is 1.0 in float64
# from |x| = 6 on); each branch runs on its own elements only. float32 (and float16):
# tanh(x S(x^2)), x clipped to +-4 (erf rounds to 1.0 in float32 from 3.92 on), S a degree-7
# least-squares fit of atanh(erf(x)) / x weighted by erf's float32 ulps; all in float32
# arithmetic and one tanh (numpy's SIMD loop), no branches. Both within 3 ulps of the correctly
# rounded erf in their dtype (tests/test_erf.py checks a dense grid against math.erf). The
# coefficients live inside the block functions so that the standalone emitter carries them.


def _polyval(coefs, x, r=None):
    """``coefs[0] x^n + ... + coefs[n]`` by Horner's rule, in place in ``r`` (a new array
    if not given; never ``x`` itself)."""
    r = np.multiply(x, coefs[0], out=r)
    r += coefs[1]
    for k in coefs[2:]:
        r *= x
        r += k
    return r


_ERF_BLOCK = 65536  # elements per block: fewer ufunc calls; temporaries of a few hundred KB


def _erf_vec(x, out=None):
    """erf of a float32 or float64 array (into ``out``, an array of its shape and dtype, if
    given), block by block."""
    shape = x.shape
    x = x.reshape(-1)  # 1-d: numpy's in-place operators turn 0-d arrays into scalars
    r = np.empty_like(x) if out is None else out.reshape(-1)
    block = _erf_block32 if x.dtype == np.float32 else _erf_block
    for i in range(0, x.size, _ERF_BLOCK):
        block(x[i : i + _ERF_BLOCK], r[i : i + _ERF_BLOCK])
    return r.reshape(shape)


def _erf_block32(x, r):
    """erf of the float32 block ``x``, into ``r``: tanh(x S(x^2)) with x clipped."""
    s = (
        4.73084474e-09,
        4.47613613e-08,
        -4.94968108e-06,
        8.52286571e-05,
        -6.16010311e-04,
        -1.94437238e-04,
        1.02769733e-01,
        1.12837924e00,
    )
    np.clip(x, -4.0, 4.0, out=r)  # tanh rounds to 1.0 from here on
    z = np.multiply(r, r)
    p = _polyval(s, z)
    p *= r
    np.tanh(p, out=r)


def _erf_small(x, r):
    """erf of the float64 block ``x``, into ``r``, where |x| < 1 (or x is NaN)."""
    erf_t = (
        9.60497373987051638749e0,
        9.00260197203842689217e1,
        2.23200534594684319226e3,
        7.00332514112805075473e3,
        5.55923013010394962768e4,
    )
    erf_u = (
        1.0,
        3.35617141647503099647e1,
        5.21357949780152679795e2,
        4.59432382970980127987e3,
        2.26290000613890934246e4,
        4.92673942608635921086e4,
    )
    z = np.multiply(x, x)
    np.minimum(z, 1.0, out=z)  # when run on a whole block, the other branch's values are
    q = _polyval(erf_u, z)  # overwritten after: kept finite, they raise no warnings
    _polyval(erf_t, z, r)
    r *= x
    r /= q


def _erf_large(x, r):
    """erf of the float64 block ``x`` (every |x| >= 1), into ``r``."""
    erfc_p = (
        2.46196981473530512524e-10,
        5.64189564831068821977e-1,
        7.46321056442269912687e0,
        4.86371970985681366614e1,
        1.96520832956077098242e2,
        5.26445194995477358631e2,
        9.34528527171957607540e2,
        1.02755188689515710272e3,
        5.57535335369399327526e2,
    )
    erfc_q = (
        1.0,
        1.32281951154744992508e1,
        8.67072140885989742329e1,
        3.54937778887819891062e2,
        9.75708501743205489753e2,
        1.82390916687909736289e3,
        2.24633760818710981792e3,
        1.65666309194161350182e3,
        5.57535340817727675546e2,
    )
    a = np.abs(x)
    np.minimum(a, 6.0, out=a)
    np.multiply(a, a, out=r)
    np.negative(r, out=r)
    np.exp(r, out=r)
    t = _polyval(erfc_p, a)
    r *= t
    r /= _polyval(erfc_q, a, t)
    np.subtract(1.0, r, out=r)
    np.copysign(r, x, out=r)


def _erf_block(x, r):
    """erf of the float64 block ``x``, into ``r``. The large branch runs on its own elements;
    the small one on the whole block when few are large (a gather and scatter cost more)."""
    large = np.abs(x) >= 1.0  # NaN goes to the small branch, which keeps it NaN
    n = np.count_nonzero(large)
    if n == 0:
        _erf_small(x, r)
        return
    if n == x.size:
        _erf_large(x, r)
        return
    if n <= x.size // 4:
        _erf_small(x, r)
    else:
        i = np.flatnonzero(np.logical_not(large))
        done = np.empty(i.size)
        _erf_small(x.take(i), done)
        r[i] = done
    i = np.flatnonzero(large)
    done = np.empty(i.size)
    _erf_large(x.take(i), done)
    r[i] = done


def _erf(x, out=None):
    x = np.asarray(x)
    work = np.float32 if x.dtype in (np.float16, np.float32) else np.float64
    if (
        out is not None
        and out.dtype == work
        and out.shape == x.shape
        and not np.shares_memory(out, x)
    ):
        return _erf_vec(x.astype(work, copy=False), out)
    r = _erf_vec(x.astype(work, copy=False)).astype(x.dtype, copy=False)
    if out is None:
        return r
    out[...] = r
    return out


def _is_finite(x, out=None):
    return np.isfinite(x, out=out)


def _where(c, a, b, out=None):
    if out is None:
        return np.where(c, a, b)
    np.copyto(out, b)
    np.copyto(out, a, where=np.broadcast_to(c, out.shape))
    return out


def _divide(x, y, out=None):
    return np.true_divide(x, y, out=out)


def _check_divisor(y, what):
    """An integer division by zero raises (numpy would return 0; TF raises "Integer division
    by zero")."""
    if getattr(y, "dtype", np.asarray(y).dtype).kind in "iub" and not np.all(y):
        raise ZeroDivisionError(f"integer division by zero (in {what})")


def _floordiv(x, y, out=None):
    _check_divisor(y, "floor_divide")
    return np.floor_divide(x, y, out=out)


def _mod(x, y, out=None):
    _check_divisor(y, "mod")
    return np.mod(x, y, out=out)


def _int_div_dtype(d):
    return d if d.is_floating else D.float64


# --- pullbacks --------------------------------------------------------------------------------
# Each returns one gradient per input; the autodiff driver sums fan-in and undoes broadcasting.


def _zero_grad(op, g):
    return [zeros_like(op.inputs[0])]


def _abs_grad(op, g):
    return [g * sign(op.inputs[0])]


def _pow_grad(op, g):
    x, y = op.inputs
    z = op.outputs[0]
    gx = g * y * pow(x, y - 1)
    safe_log = where(greater(x, 0), log(where(greater(x, 0), x, 1)), zeros_like(x))
    return [gx, g * z * safe_log]


def _max_grad(op, g):
    x, y = op.inputs
    pick_x = greater_equal(x, y)
    return [where(pick_x, g, 0), where(pick_x, 0, g)]


def _min_grad(op, g):
    x, y = op.inputs
    pick_x = less_equal(x, y)
    return [where(pick_x, g, 0), where(pick_x, 0, g)]


# --- the ops ----------------------------------------------------------------------------------
# name, numpy kernel, C expression, pullback. In the expression {T} is the C type of the result
# and {F} the floating type the op's arithmetic uses (float for float16/32, double otherwise):
# a division of floats stays in float, one of integers goes through double, as in numpy.
# maximum/minimum propagate NaN, as numpy does (CUDA's max/min would drop it).

NEG = elementwise("neg", np.negative, "(-{0})", lambda op, g: [-g], kind="number")
ABS = elementwise("abs", np.absolute, "abs({0})", _abs_grad, kind="number")
SIGN = elementwise("sign", np.sign, "(({0} > 0) - ({0} < 0))", _zero_grad, kind="number")
EXP = elementwise("exp", np.exp, "exp({0})", lambda op, g: [g * op.outputs[0]])
LOG = elementwise(
    "log", np.log, "log({0})", lambda op, g: [g / op.inputs[0]], samples=_float_samples(0.2, 3.0)
)
LOG1P = elementwise(
    "log1p",
    np.log1p,
    "log1p({0})",
    lambda op, g: [g / (op.inputs[0] + 1)],
    samples=_float_samples(-0.5, 3.0),
)
EXPM1 = elementwise("expm1", np.expm1, "expm1({0})", lambda op, g: [g * (op.outputs[0] + 1)])
SQRT = elementwise(
    "sqrt",
    np.sqrt,
    "sqrt({0})",
    lambda op, g: [g / (op.outputs[0] * 2)],
    samples=_float_samples(0.2, 3.0),
)
RSQRT = elementwise(
    "rsqrt",
    _rsqrt,
    "rsqrt({0})",
    lambda op, g: [g * -0.5 * op.outputs[0] * op.outputs[0] * op.outputs[0]],
    samples=_float_samples(0.2, 3.0),
)
SQUARE = elementwise(
    "square", np.square, "({0} * {0})", lambda op, g: [g * 2 * op.inputs[0]], kind="number"
)
RECIPROCAL = elementwise(
    "reciprocal",
    np.reciprocal,
    "(1 / {0})",
    lambda op, g: [-g * op.outputs[0] * op.outputs[0]],
    samples=_float_samples(0.3, 3.0),
)
SIN = elementwise("sin", np.sin, "sin({0})", lambda op, g: [g * cos(op.inputs[0])])
COS = elementwise("cos", np.cos, "cos({0})", lambda op, g: [-g * sin(op.inputs[0])])
TANH = elementwise(
    "tanh", np.tanh, "tanh({0})", lambda op, g: [g * (1 - op.outputs[0] * op.outputs[0])]
)
# one formula for every backend: the numpy kernel above and the CUDA expression below
SIGMOID = elementwise(
    "sigmoid",
    _sigmoid,
    "(({F})0.5 * (tanh(({F})0.5 * {0}) + ({F})1))",
    lambda op, g: [g * op.outputs[0] * (1 - op.outputs[0])],
)
ERF = elementwise(
    "erf",
    _erf,
    "erf({0})",
    lambda op, g: [g * (2 / math.sqrt(math.pi)) * exp(-square(op.inputs[0]))],
    fuse_alone=True,  # numpy has no erf: its kernel is a rational/tanh formula of many passes
)
FLOOR = elementwise("floor", np.floor, "floor({0})", _zero_grad)
CEIL = elementwise("ceil", np.ceil, "ceil({0})", _zero_grad)
ROUND = elementwise("round", np.rint, "rint({0})", _zero_grad)  # half to even, as numpy and TF
LOGICAL_NOT = elementwise(
    "logical_not",
    np.logical_not,
    "(!{0})",
    kind="bool",
    differentiable=False,
    samples=lambda rng: [([rng.random((3, 4)) > 0.5], {})],
)


def _special_samples(rng):
    # finite values alone would make is_nan / is_finite constant
    values = np.array([0.5, np.nan, np.inf, -np.inf, -2.0, 0.0])
    return [([rng.permutation(values).reshape(2, 3)], {})]


IS_NAN = elementwise(
    "is_nan", np.isnan, "isnan({0})", out=D.bool_, differentiable=False, samples=_special_samples
)
IS_FINITE = elementwise(
    "is_finite",
    _is_finite,
    "isfinite({0})",
    out=D.bool_,
    differentiable=False,
    samples=_special_samples,
)
CAST_KINDS = None  # cast lives in array.py: it changes dtype, which ends a fused group

ADD = elementwise("add", np.add, "({0} + {1})", lambda op, g: [g, g], kind="number", arity=2)
SUBTRACT = elementwise(
    "subtract", np.subtract, "({0} - {1})", lambda op, g: [g, -g], kind="number", arity=2
)
MULTIPLY = elementwise(
    "multiply",
    np.multiply,
    "({0} * {1})",
    lambda op, g: [g * op.inputs[1], g * op.inputs[0]],
    kind="number",
    arity=2,
)
DIVIDE = elementwise(
    "divide",
    _divide,
    "(({F}){0} / {1})",
    lambda op, g: [g / op.inputs[1], -g * op.outputs[0] / op.inputs[1]],
    kind="number",
    arity=2,
    out=_int_div_dtype,
    samples=_binary_samples(0.5, 2.0),
)
FLOORDIV = elementwise(
    "floordiv",
    _floordiv,
    "floor(({F}){0} / {1})",
    kind="number",
    arity=2,
    differentiable=False,
    samples=_binary_samples(0.5, 4.0),
)
MOD = elementwise(
    "mod",
    _mod,
    "({0} - floor(({F}){0} / {1}) * {1})",
    lambda op, g: [g, -g * floordiv(op.inputs[0], op.inputs[1])],
    kind="number",
    arity=2,
    samples=_binary_samples(0.5, 4.0),
)
POW = elementwise(
    "pow",
    np.power,
    "pow(({F}){0}, ({F}){1})",
    _pow_grad,
    kind="number",
    arity=2,
    samples=_binary_samples(0.5, 2.0),
)
MAXIMUM = elementwise(
    "maximum",
    np.maximum,
    "(({0} >= {1} || {0} != {0}) ? {0} : {1})",
    _max_grad,
    kind="number",
    arity=2,
)
MINIMUM = elementwise(
    "minimum",
    np.minimum,
    "(({0} <= {1} || {0} != {0}) ? {0} : {1})",
    _min_grad,
    kind="number",
    arity=2,
)


def _cmp(name, fn, c):
    return elementwise(name, fn, c, kind="any", arity=2, out=D.bool_, differentiable=False)


EQUAL = _cmp("equal", np.equal, "({0} == {1})")
NOT_EQUAL = _cmp("not_equal", np.not_equal, "({0} != {1})")
LESS = _cmp("less", np.less, "({0} < {1})")
LESS_EQUAL = _cmp("less_equal", np.less_equal, "({0} <= {1})")
GREATER = _cmp("greater", np.greater, "({0} > {1})")
GREATER_EQUAL = _cmp("greater_equal", np.greater_equal, "({0} >= {1})")


def _bool_samples(rng):
    return [([rng.random((3, 4)) > 0.5, rng.random((3, 4)) > 0.5], {})]


LOGICAL_AND = elementwise(
    "logical_and",
    np.logical_and,
    "({0} && {1})",
    kind="bool",
    arity=2,
    differentiable=False,
    samples=_bool_samples,
)
LOGICAL_OR = elementwise(
    "logical_or",
    np.logical_or,
    "({0} || {1})",
    kind="bool",
    arity=2,
    differentiable=False,
    samples=_bool_samples,
)
LOGICAL_XOR = elementwise(
    "logical_xor",
    np.logical_xor,
    "({0} != {1})",
    kind="bool",
    arity=2,
    differentiable=False,
    samples=_bool_samples,
)


def _where_infer(inputs, attrs):
    c, a, b = inputs
    if not c.dtype.is_bool:
        raise DTypeError(f"where: the condition must be bool, got {c.describe()}")
    if a.dtype is not b.dtype:
        raise DTypeError(
            f"where: the branches have different dtypes: {a.describe()} and {b.describe()}"
        )
    return [(a.dtype, broadcast_shapes(c.shape, a.shape, b.shape))]


_where_infer.op_name = "where"


def _where_samples(rng):
    return [
        ([rng.random((3, 4)) > 0.5, rng.standard_normal((3, 4)), rng.standard_normal((4,))], {})
    ]


WHERE = register(
    OpDef(
        "where",
        _where_infer,
        numpy=_where,
        expr="({0} ? {1} : {2})",
        kind="elementwise",
        grad=lambda op, g: [None, where(op.inputs[0], g, 0), where(op.inputs[0], 0, g)],
        samples=_where_samples,
    )
)


# --- the functions users call -----------------------------------------------------------------


def _unary_fn(opdef, doc):
    def fn(x, name=None):
        return opdef(convert(x), name=name)

    fn.__name__ = fn.__qualname__ = opdef.name
    fn.__doc__ = doc
    return fn


def _binary_fn(opdef, doc):
    def fn(x, y, name=None):
        x, y = binary_operands(x, y, opdef.name)
        return opdef(x, y, name=name)

    fn.__name__ = fn.__qualname__ = opdef.name
    fn.__doc__ = doc
    return fn


def binary_operands(x, y, what):
    """Tensors for a binary op; a non-tensor operand is weak and takes the other's dtype."""
    if isinstance(x, Tensor):
        return x, convert(y, like=x, what=f"{what}: ")
    if isinstance(y, Tensor):
        return convert(x, like=y, what=f"{what}: "), y
    x = convert(x)
    return x, convert(y, like=x, what=f"{what}: ")


negative = neg = _unary_fn(NEG, "-x")
abs = _unary_fn(ABS, "|x|")  # noqa: A001 - gc.abs is the public name
sign = _unary_fn(SIGN, "-1, 0 or 1")
exp = _unary_fn(EXP, "e**x")
log = _unary_fn(LOG, "natural logarithm")
log1p = _unary_fn(LOG1P, "log(1 + x), accurate near 0")
expm1 = _unary_fn(EXPM1, "exp(x) - 1, accurate near 0")
sqrt = _unary_fn(SQRT, "square root")
rsqrt = _unary_fn(RSQRT, "1 / sqrt(x)")
square = _unary_fn(SQUARE, "x * x")
reciprocal = _unary_fn(RECIPROCAL, "1 / x")
sin = _unary_fn(SIN, "sine")
cos = _unary_fn(COS, "cosine")
tanh = _unary_fn(TANH, "hyperbolic tangent")
sigmoid = _unary_fn(SIGMOID, "1 / (1 + exp(-x))")
erf = _unary_fn(ERF, "the error function")
floor = _unary_fn(FLOOR, "round down")
ceil = _unary_fn(CEIL, "round up")
round = _unary_fn(ROUND, "round half to even")  # noqa: A001
logical_not = _unary_fn(LOGICAL_NOT, "not x (bool)")
is_nan = _unary_fn(IS_NAN, "True where x is NaN")
is_finite = _unary_fn(IS_FINITE, "True where x is neither NaN nor infinite")

add = _binary_fn(ADD, "x + y (broadcasting)")
subtract = _binary_fn(SUBTRACT, "x - y")
multiply = _binary_fn(MULTIPLY, "x * y")
divide = truediv = _binary_fn(DIVIDE, "x / y; integer inputs give float64")
floordiv = _binary_fn(FLOORDIV, "x // y (rounds toward -inf)")
mod = floormod = _binary_fn(MOD, "x % y (the sign of y, as Python)")
pow = _binary_fn(POW, "x ** y")  # noqa: A001
maximum = _binary_fn(MAXIMUM, "elementwise max")
minimum = _binary_fn(MINIMUM, "elementwise min")
equal = _binary_fn(EQUAL, "x == y (bool)")
not_equal = _binary_fn(NOT_EQUAL, "x != y (bool)")
less = _binary_fn(LESS, "x < y (bool)")
less_equal = _binary_fn(LESS_EQUAL, "x <= y (bool)")
greater = _binary_fn(GREATER, "x > y (bool)")
greater_equal = _binary_fn(GREATER_EQUAL, "x >= y (bool)")
logical_and = _binary_fn(LOGICAL_AND, "x and y (bool)")
logical_or = _binary_fn(LOGICAL_OR, "x or y (bool)")
logical_xor = _binary_fn(LOGICAL_XOR, "x xor y (bool)")


def where(condition, x, y, name=None):
    """``x`` where ``condition`` is true, else ``y`` (broadcasting, weak scalars allowed)."""
    c = convert(condition)
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        x = convert(x)
    x, y = binary_operands(x, y, "where")
    return WHERE(c, x, y, name=name)


def zeros_like(x, dtype=None, name=None):
    """Zeros of ``x``'s shape, for the gradient rules above (``gc.zeros_like`` is
    ``ops.array``'s; this one keeps the op's default name)."""
    return fill_like(x, 0, dtype=dtype, name=name)
