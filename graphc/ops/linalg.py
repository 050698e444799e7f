"""matmul (batched, with transposes), and tensordot / einsum built on it."""

from __future__ import annotations

import string

import numpy as np

from ..errors import DTypeError, ShapeError, UnimplementedError
from ..shapes import broadcast_shapes, dims_compatible, fully_known, merge_dim, normalize_axis
from .array import broadcast_like, expand_dims, reshape, transpose
from .elementwise import binary_operands
from .registry import OpDef, register
from .sources import constant, convert


def _matmul_infer(ins, attrs):
    a, b = ins
    if a.dtype is not b.dtype:
        raise DTypeError(f"matmul got mixed dtypes: {a.describe()} and {b.describe()}")
    if a.dtype.is_bool:
        raise DTypeError(f"matmul of bool tensors: {a.describe()}")
    if a.shape is None and b.shape is not None and len(b.shape) == 2:
        # TF 1.x: matmul with a matrix of unknown rank is a matrix product (MatMul)
        n = b.shape[0] if attrs["transpose_b"] else b.shape[1]
        return [(a.dtype, (None, n))]
    if b.shape is None and a.shape is not None and len(a.shape) == 2:
        m = a.shape[1] if attrs["transpose_a"] else a.shape[0]
        return [(a.dtype, (m, None))]
    if a.shape is None or b.shape is None:
        return [(a.dtype, None)]
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise ValueError("matmul needs inputs of rank >= 2 (reshape a vector to (n, 1) or (1, n))")
    m, k1 = a.shape[-2:][::-1] if attrs["transpose_a"] else a.shape[-2:]
    k2, n = b.shape[-2:][::-1] if attrs["transpose_b"] else b.shape[-2:]
    if not dims_compatible(k1, k2):
        ta = " (transposed)" if attrs["transpose_a"] else ""
        tb = " (transposed)" if attrs["transpose_b"] else ""
        raise ValueError(
            f"inner dimensions differ: {tuple(a.shape)}{ta} @ {tuple(b.shape)}{tb} "
            f"contracts {k1} with {k2}"
        )
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return [(a.dtype, tuple(batch) + (m, n))]


def _t(x):
    # .T is an attribute read; np.swapaxes (for batches) is a Python call
    return x.T if x.ndim == 2 else np.swapaxes(x, -1, -2)


def _matmul_kernel(a, b, transpose_a, transpose_b, out=None):
    if transpose_a:
        a = _t(a)
    if transpose_b:
        b = _t(b)
    return np.matmul(a, b, out=out)


def _matmul_grad(op, g):
    a, b = op.inputs
    ta, tb = op.attrs["transpose_a"], op.attrs["transpose_b"]
    if not ta and not tb:
        return [matmul(g, b, transpose_b=True), matmul(a, g, transpose_a=True)]
    if not ta and tb:
        return [matmul(g, b), matmul(g, a, transpose_a=True)]
    if ta and not tb:
        return [matmul(b, g, transpose_b=True), matmul(a, g)]
    return [
        matmul(b, g, transpose_a=True, transpose_b=True),
        matmul(g, a, transpose_a=True, transpose_b=True),
    ]


def _matmul_samples(rng):
    r = rng.standard_normal
    return [
        ([r((3, 4)), r((4, 5))], {"transpose_a": False, "transpose_b": False}),
        ([r((4, 3)), r((5, 4))], {"transpose_a": True, "transpose_b": True}),
        ([r((2, 3, 4)), r((4, 2))], {"transpose_a": False, "transpose_b": False}),
        ([r((3, 4)), r((2, 5, 4))], {"transpose_a": False, "transpose_b": True}),
    ]


MATMUL = register(
    OpDef(
        "matmul",
        _matmul_infer,
        numpy=_matmul_kernel,
        grad=_matmul_grad,
        kind="matmul",
        samples=_matmul_samples,
    )
)


def matmul(a, b, transpose_a=False, transpose_b=False, name=None):
    """Matrix product of the last two axes; leading axes broadcast as batches."""
    a, b = binary_operands(a, b, "matmul")
    return MATMUL(a, b, name=name, transpose_a=bool(transpose_a), transpose_b=bool(transpose_b))


def _tensordot_axes(axes, ra, rb):
    """TF's ``axes`` (an int n: the last n of a with the first n of b; a pair of ints or of
    lists) as two lists of non-negative axes, for ranks ``ra`` and ``rb``."""
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if not 0 <= n <= min(ra, rb):
            raise ShapeError(f"tensordot: axes={n} needs operands of rank >= {n}")
        return list(range(ra - n, ra)), list(range(n))
    if len(axes) != 2:
        raise ShapeError(f"tensordot: axes must be an int or a pair, got {axes!r}")
    axes_a, axes_b = (
        [int(a) for a in ([ax] if isinstance(ax, (int, np.integer)) else ax)] for ax in axes
    )
    if len(axes_a) != len(axes_b):
        raise ShapeError(f"tensordot: axes {axes_a} and {axes_b} differ in length")
    return [normalize_axis(x, ra) for x in axes_a], [normalize_axis(x, rb) for x in axes_b]


def _frozen_axes(axes):
    """``axes`` as a hashable attr."""
    if isinstance(axes, (int, np.integer)):
        return int(axes)
    return tuple(
        int(ax) if isinstance(ax, (int, np.integer)) else tuple(int(a) for a in ax) for ax in axes
    )


def tensordot(a, b, axes, name=None):
    """Contract ``axes`` of ``a`` with those of ``b`` (an int ``n``: the last n of a with the
    first n of b). Lowered to transpose + reshape + matmul, so it differentiates for free;
    an operand of unknown rank (``tf.placeholder(tf.float32)``) takes the TENSORDOT op,
    whose axes the plan resolves from the feeds."""
    a, b = convert(a), convert(b)
    if a.shape is None or b.shape is None:
        return TENSORDOT(a, b, name=name, axes=_frozen_axes(axes))
    ra, rb = len(a.shape), len(b.shape)
    axes_a, axes_b = _tensordot_axes(axes, ra, rb)
    free_a = [i for i in range(ra) if i not in axes_a]
    free_b = [i for i in range(rb) if i not in axes_b]
    for i, j in zip(axes_a, axes_b):
        if not dims_compatible(a.shape[i], b.shape[j]):
            raise DTypeError(
                f"tensordot: axis {i} of {a.describe()} and axis {j} of {b.describe()} differ"
            )
    k = _prod([merge_dim(a.shape[i], b.shape[j]) for i, j in zip(axes_a, axes_b)])
    at = reshape(transpose(a, free_a + axes_a), (-1, k if k is not None else -1))
    bt = reshape(transpose(b, axes_b + free_b), (k if k is not None else -1, -1))
    out_shape = [a.shape[i] for i in free_a] + [b.shape[i] for i in free_b]
    r = matmul(at, bt)
    if sum(1 for d in out_shape if not isinstance(d, int)) > 1:  # two unknown dims: -1 is one
        return TENSORDOT(a, b, name=name, axes=_frozen_axes(axes))
    return reshape(r, [-1 if d is None or isinstance(d, str) else d for d in out_shape], name=name)


def _tensordot_infer(ins, attrs):
    a, b = ins
    if a.dtype is not b.dtype:
        raise DTypeError(f"tensordot got mixed dtypes: {a.describe()} and {b.describe()}")
    if a.shape is None or b.shape is None:
        return [(a.dtype, None)]
    axes_a, axes_b = _tensordot_axes(attrs["axes"], len(a.shape), len(b.shape))
    for i, j in zip(axes_a, axes_b):
        if not dims_compatible(a.shape[i], b.shape[j]):
            raise ShapeError(
                f"tensordot: axis {i} of {a.describe()} and axis {j} of {b.describe()} differ"
            )
    return [
        (
            a.dtype,
            tuple(d for i, d in enumerate(a.shape) if i not in axes_a)
            + tuple(d for i, d in enumerate(b.shape) if i not in axes_b),
        )
    ]


def _resolve_tensordot(ins, attrs):
    a, b = ins[0], ins[1]
    if a.shape is None or b.shape is None:
        return attrs
    axes_a, axes_b = _tensordot_axes(attrs["axes"], len(a.shape), len(b.shape))
    return {**attrs, "axes": (tuple(axes_a), tuple(axes_b))}


def _tensordot_kernel(a, b, axes):
    axes_a, axes_b = _tensordot_axes(axes, a.ndim, b.ndim)
    return np.tensordot(a, b, axes=(axes_a, axes_b))


def tensordot_grad_with(xp, g, a, b, axes, which):
    """The cotangent of tensordot's operand ``which`` ("a" or "b") from the output's ``g``:
    a tensordot of ``g`` with the other operand, its axes put back in the operand's order
    (``xp``: numpy, or cupy on the device)."""
    axes_a, axes_b = _tensordot_axes(axes, a.ndim, b.ndim)
    free_a = [i for i in range(a.ndim) if i not in axes_a]
    free_b = [i for i in range(b.ndim) if i not in axes_b]
    nfa = len(free_a)
    if which == "a":
        r = xp.tensordot(g, b, axes=(list(range(nfa, g.ndim)), free_b))
        labels = free_a + [axes_a[axes_b.index(j)] for j in sorted(axes_b)]
    else:
        r = xp.tensordot(a, g, axes=(free_a, list(range(nfa))))
        labels = [axes_b[axes_a.index(i)] for i in sorted(axes_a)] + free_b
    return xp.ascontiguousarray(xp.transpose(r, [int(k) for k in np.argsort(labels)]))


def _tensordot_grad_kernel(g, a, b, axes, which):
    return tensordot_grad_with(np, g, a, b, axes, which)


def _tensordot_grad_infer(ins, attrs):
    g, a, b = ins
    return [(g.dtype, (a if attrs["which"] == "a" else b).shape)]


def _tensordot_grad_grad(op, h):
    """grad_a(g, b) is the adjoint of h -> tensordot(h, b) (and grad_b(g, a) of
    h -> tensordot(a, h)): <h, grad_a(g, b)> = <tensordot(h, b), g>. The operand it
    stands for is read only for its shape."""
    g, a, b = op.inputs
    axes = op.attrs["axes"]
    if op.attrs["which"] == "a":
        return [TENSORDOT(h, b, axes=axes), None, TENSORDOT_GRAD(g, h, b, axes=axes, which="b")]
    return [TENSORDOT(a, h, axes=axes), TENSORDOT_GRAD(g, a, h, axes=axes, which="a"), None]


def _tensordot_samples(rng):
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 3, 5))
    return [
        ([a, b], {"axes": ((1, 2), (1, 0))}),
        ([a, rng.standard_normal((4, 5))], {"axes": 1}),
        ([a, b], {"axes": ((-1,), (0,))}),
    ]


TENSORDOT = register(
    OpDef(
        "tensordot",
        _tensordot_infer,
        numpy=_tensordot_kernel,
        kind="other",
        grad=lambda op, g: [
            TENSORDOT_GRAD(g, *op.inputs, axes=op.attrs["axes"], which="a"),
            TENSORDOT_GRAD(g, *op.inputs, axes=op.attrs["axes"], which="b"),
        ],
        samples=_tensordot_samples,
        doc="np.tensordot: what tensordot builds when an operand's rank is unknown",
        extra={"resolve": _resolve_tensordot},
    )
)
TENSORDOT_GRAD = register(
    OpDef(
        "tensordot_grad",
        _tensordot_grad_infer,
        numpy=_tensordot_grad_kernel,
        kind="other",
        grad=_tensordot_grad_grad,
        samples=lambda rng: [
            (
                [
                    rng.standard_normal((2, 5)),
                    rng.standard_normal((2, 3, 4)),
                    rng.standard_normal((4, 3, 5)),
                ],
                {"axes": ((1, 2), (1, 0)), "which": which},
            )
            for which in ("a", "b")
        ],
        doc="the cotangent of one operand of TENSORDOT",
        extra={"resolve": lambda ins, attrs: _resolve_tensordot(ins[1:], attrs)},
    )
)


def _prod(dims):
    n = 1
    for d in dims:
        if not isinstance(d, int):
            return None
        n *= d
    return n


# --- einsum -----------------------------------------------------------------------------------


def _parse_einsum(equation, n):
    eq = equation.replace(" ", "")
    if "..." in eq:
        raise ValueError("einsum: ellipsis is not supported")
    if "->" in eq:
        ins, out = eq.split("->")
    else:
        ins = eq
        letters = ins.replace(",", "")
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    ins = ins.split(",")
    if len(ins) != n:
        raise ValueError(f"einsum: equation {equation!r} names {len(ins)} operands, got {n}")
    return ins, out


def _einsum_infer(ins, attrs):
    subs, out = attrs["subscripts"], attrs["output"]
    dims = {}
    dtype = ins[0].dtype
    for t, s in zip(ins, subs):
        if t.dtype is not dtype:
            raise TypeError(f"einsum: mixed dtypes {dtype} and {t.dtype}")
        if t.shape is None:  # unknown rank: its indices' sizes come with the feeds
            continue
        if len(t.shape) != len(s):
            raise ValueError(f"einsum: operand {s!r} has shape {t.shape}")
        for c, d in zip(s, t.shape):
            if c in dims and not dims_compatible(dims[c], d) and d != 1 and dims[c] != 1:
                raise ValueError(
                    f"einsum: index {c!r} is {dims[c]} in one operand and {d} in another"
                )
            dims[c] = merge_dim(dims.get(c), d) if dims.get(c) != 1 else d
    return [(dtype, tuple(dims.get(c) for c in out))]


def _einsum_kernel(*xs, subscripts, output):
    return np.einsum(",".join(subscripts) + "->" + output, *xs, optimize=len(xs) > 2)


def _einsum_grad(op, g):
    subs, out = op.attrs["subscripts"], op.attrs["output"]
    grads = []
    for i, (x, s) in enumerate(zip(op.inputs, subs)):
        u = "".join(dict.fromkeys(s))  # the distinct indices, in order of first use
        others = [(t, ss) for j, (t, ss) in enumerate(zip(op.inputs, subs)) if j != i]
        seen = set(out) | {c for _, ss in others for c in ss}
        kept = "".join(c for c in u if c in seen)
        gi = EINSUM(
            g, *[t for t, _ in others], subscripts=(out, *[ss for _, ss in others]), output=kept
        )
        for pos, c in enumerate(u):
            if c not in seen:
                gi = expand_dims(gi, pos)
        if u != s:
            grads.append(_onto_diagonal(gi, s, x))
        else:
            grads.append(broadcast_like(gi, x) if kept != s else gi)
    return grads


def _onto_diagonal(gi, s, x):
    """An operand with a repeated index (``ii``, a trace) only reaches the output through
    its diagonal: the gradient over the distinct indices goes where the repeated indices
    agree, and zero elsewhere. Needs the operand's static shape."""
    if not fully_known(x.shape):
        raise UnimplementedError(
            f"einsum: the gradient of {s!r} (a repeated index) needs the "
            f"static shape of {x.describe()}"
        )
    mask = np.ones(x.shape, dtype=bool)
    at = np.indices(x.shape)
    for pos, c in enumerate(s):
        first = s.index(c)
        if first != pos:
            gi = expand_dims(gi, pos)
            mask &= at[first] == at[pos]
    return broadcast_like(gi, x) * constant(mask.astype(x.dtype.np))


EINSUM = register(
    OpDef(
        "einsum",
        _einsum_infer,
        numpy=_einsum_kernel,
        grad=_einsum_grad,
        kind="matmul",
        samples=lambda rng: [
            (
                [rng.standard_normal((3, 4)), rng.standard_normal((4, 5))],
                {"subscripts": ("ij", "jk"), "output": "ik"},
            ),
            (
                [rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4))],
                {"subscripts": ("bij", "bj"), "output": "bi"},
            ),
            ([rng.standard_normal((3, 4))], {"subscripts": ("ij",), "output": "j"}),
        ],
    )
)


def einsum(equation, *inputs, name=None):
    """``np.einsum`` on tensors (no ellipsis); differentiable, also through a repeated index
    within one operand (a trace or diagonal) when that operand's shape is static."""
    ts = [convert(t) for t in inputs]
    subs, out = _parse_einsum(equation, len(ts))
    for s in subs + [out]:
        if any(c not in string.ascii_letters for c in s):
            raise ValueError(f"einsum: bad subscripts {s!r}")
    return EINSUM(*ts, name=name, subscripts=tuple(subs), output=out)
