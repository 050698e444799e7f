"""``gc.cond``, ``gc.while_loop``, ``gc.scan``, ``gc.map_fn``: control flow in the graph.

Each body is a Python function traced once into a ``Region`` (``ops/control.py``) with
typed parameters; tensors of enclosing graphs it uses are captured as explicit inputs.
Loop bodies have their loop-invariant part hoisted out (computed once, before the loop).
The gradient rules are here, because they trace gradients of the bodies (autodiff):

* cond: a cond over the two branches' vector-Jacobian products (only the taken branch's
  gradient runs);
* scan: a scan in the other direction over the forward's recorded carries (the forward
  scan records them, like TF's stacks / JAX's scan transpose), accumulating the gradients
  of captured tensors in a carry;
* while_loop: the loop re-run recording its variables (bounded by ``maximum_iterations``),
  then the same reverse scan over that history.
Gradient nodes are ordinary graph nodes, so second derivatives work where the bodies'
ops have them.
"""

from __future__ import annotations

from ..autodiff import gradients
from ..backends import subplan  # noqa: F401  (installs the runner of bodies)
from ..errors import DTypeError, GraphcError, ShapeError, located_at, user_location
from ..ir.graph import get_default_graph
from ..ir.node import Operation, Tensor
from ..ops.array import concat, expand_dims, fill_like
from ..ops.control import COND, CONTROL_OPS, SCAN, WHILE, Function, Region, functions_of, param
from ..ops.elementwise import add, less, logical_and
from ..ops.sources import CONST, PLACEHOLDER, convert
from ..ops.state import VARIABLE
from ..shapes import as_shape, format_shape

__all__ = ["cond", "while_loop", "scan", "map_fn", "case", "scan_with_outputs"]


# --- structures -------------------------------------------------------------------------------


def _flatten(x):
    """(leaves, rebuild): the tensors of nested lists/tuples/dicts and how to rebuild them."""
    if isinstance(x, dict):
        keys = list(x)
        parts = [_flatten(x[k]) for k in keys]
        leaves = [leaf for p in parts for leaf in p[0]]
        return leaves, _rebuilder(parts, lambda vals: dict(zip(keys, vals, strict=True)))
    if isinstance(x, (list, tuple)):
        parts = [_flatten(v) for v in x]
        leaves = [leaf for p in parts for leaf in p[0]]
        kind = type(x)
        if hasattr(x, "_fields"):
            return leaves, _rebuilder(parts, lambda vals: kind(*vals))
        return leaves, _rebuilder(parts, kind)
    return [x], lambda vals: vals[0]


def _flatten_like(structure, values):
    """The leaves of ``values`` that sit where ``structure`` has its leaves (shapes are
    tuples, so they cannot be told from structure on their own)."""
    if isinstance(structure, dict):
        return [v for k in structure for v in _flatten_like(structure[k], values[k])]
    if isinstance(structure, (list, tuple)):
        if len(values) != len(structure):
            raise GraphcError(
                f"shape_invariants {values!r} does not match the loop variables' structure",
                user_location(),
            )
        return [v for a, b in zip(structure, values, strict=True) for v in _flatten_like(a, b)]
    return [values]


def _rebuilder(parts, make):
    def rebuild(vals):
        vals, out, i = list(vals), [], 0
        for leaves, sub in parts:
            out.append(sub(vals[i : i + len(leaves)]))
            i += len(leaves)
        return make(out)

    return rebuild


def _tensors(leaves, what):
    out = []
    for v in leaves:
        if isinstance(v, Operation):
            raise GraphcError(
                f"{what} returned the operation '{v.name}' where a tensor is needed",
                user_location(),
            )
        out.append(convert(v))
    return out


# --- tracing bodies ---------------------------------------------------------------------------


def _trace(parent, name, fn, avals, call):
    """Trace ``fn`` into a new region of ``parent``. ``avals`` [(dtype, shape, name)] are
    its parameters; ``call(fn, params)`` calls it. Returns (region, params, result)."""
    region = Region(parent, name)
    params = [param(region, d, s, n) for d, s, n in avals]
    with region.as_default():
        result = call(fn, params)
    for op in region.get_operations():
        if op.op is VARIABLE:
            raise GraphcError(
                f"variable '{op.name}' is created inside the body of {name}; "
                "create variables outside control flow and use them inside",
                op.location,
            )
    return region, params, result


def _outputs(region, leaves, what):
    with region.as_default():
        return [region.capture(t) for t in _tensors(leaves, what)]


def _effects(region):
    """Ops of a body run for their effects on every call: assignments, prints, groups, and
    control ops whose own bodies have effects."""
    out = []
    for op in region.get_operations():
        if not (op.op.stateful and op.op.kind == "state"):
            continue
        if op.op in CONTROL_OPS and not any(f.targets for f in functions_of(op)):
            continue
        out.append(op)
    return out


def _hoist(region, variant_params):
    """Loop-invariant code motion: the pure ops of ``region`` that depend on no parameter in
    ``variant_params`` are rebuilt in the parent graph (computed once, before the loop),
    and the region is fed their values there. Returns (outer tensors, inner tensors)."""
    outer_of = {inner: outer for outer, inner in region.captured.items()}
    variant = {t.op for t in variant_params}
    invariant = set()
    for op in region.get_operations():
        if op in variant or op.op.stateful or op.control_inputs:
            t = op.outputs[0] if op.op is PLACEHOLDER else None
            if t in outer_of and not _reads_variable(outer_of[t]):
                invariant.add(op)  # a captured value (a variable may change: not hoisted)
            continue
        if all(t.op in invariant for t in op.inputs):
            invariant.add(op)
    worth = {op for op in invariant if op.op is not PLACEHOLDER and op.op is not CONST}
    frontier = []
    for op in region.get_operations():
        if op in invariant:
            continue
        for t in op.inputs:
            if t.op in worth and t not in frontier:
                frontier.append(t)
    if not frontier:
        return [], []
    # copy what the frontier needs into the parent, in creation order
    need, stack = set(), [t.op for t in frontier]
    while stack:
        op = stack.pop()
        if op in need or (op not in worth and op.op is not CONST):
            continue
        need.add(op)
        stack.extend(t.op for t in op.inputs if t.op.op is CONST)
        stack.extend(t.op for t in op.inputs)
    copies = dict(outer_of)
    with region.parent.as_default():
        for op in sorted(need, key=lambda o: o.id):
            ins = [copies[t] for t in op.inputs]
            node = op.op.build(
                ins, dict(op.attrs), name=op.name.rsplit("/", 1)[-1], location=op.location
            )
            copies.update(zip(op.outputs, node.outputs, strict=True))
    return [copies[t] for t in frontier], frontier


def _reads_variable(t) -> bool:
    """Whether ``t`` is a variable's value, directly or captured from an enclosing graph."""
    while True:
        if t.op.op is VARIABLE:
            return True
        parent = getattr(t.graph, "captured", None)
        outer = [o for o, inner in (parent or {}).items() if inner is t]
        if not outer:
            return False
        t = outer[0]


def _check_loop_shapes(outs, params, initial, what, kind):
    """Body results must keep their parameters' dtypes and fit their declared shapes."""
    for k, (o, p, v) in enumerate(zip(outs, params, initial, strict=True)):
        if o.dtype is not p.dtype:
            raise DTypeError(
                f"{what}: {kind} {k} enters the loop as {p.dtype} but the body "
                f"returns {o.describe()}",
                user_location(),
            )
        inv = p.shape
        bad = (
            inv is not None
            and o.shape is not None
            and (
                len(o.shape) != len(inv)
                or any(
                    isinstance(d, int) and isinstance(e, int) and d != e
                    for d, e in zip(inv, o.shape, strict=True)
                )
            )
        )
        if bad:
            where = f" (built at {o.op.location})" if o.op.location else ""
            raise ShapeError(
                f"{what}: {kind} {k} enters the loop with shape {format_shape(v.shape)} but "
                f"has shape {format_shape(o.shape)} after one iteration{where}; declare the "
                "dims that change in shape_invariants (None for a changing dim)",
                user_location(),
            )


def _op_name(name, kind):
    """A control op has several outputs: under a user's ``name`` it is ``NAME/kind``, so the
    name itself stays free for the value the user means (``.g``: ``total = scan(...)``)."""
    return f"{name}/{kind}" if name else kind


# --- cond -------------------------------------------------------------------------------------


def _static_pred(pred):
    if isinstance(pred, (bool, int)) and not isinstance(pred, Tensor):
        return bool(pred)
    if hasattr(pred, "dtype") and not isinstance(pred, Tensor):  # a numpy bool
        return bool(pred)
    if isinstance(pred, Tensor) and pred.op.op is CONST:
        return bool(pred.op.attrs["value"])
    return None


def cond(pred, true_fn=None, false_fn=None, name=None, strict=False, fn1=None, fn2=None):
    """``true_fn()`` if ``pred`` else ``false_fn()``, chosen when the graph runs.

    Both branches are traced once; only the taken one runs (its assignments included). A
    predicate known when the graph is built (a Python bool or a constant) selects its
    branch right away: the cond folds away."""
    true_fn = true_fn if true_fn is not None else fn1
    false_fn = false_fn if false_fn is not None else fn2
    if not callable(true_fn) or not callable(false_fn):
        raise GraphcError("cond needs callables true_fn and false_fn", user_location())
    static = _static_pred(pred)
    if static is not None:
        return true_fn() if static else false_fn()
    pred = convert(pred)
    loc = user_location()
    parent = get_default_graph()
    label = name or "cond"

    def call(fn, _):
        return fn()

    rt, _, out_t = _trace(parent, f"{label}/true_fn", true_fn, [], call)
    rf, _, out_f = _trace(parent, f"{label}/false_fn", false_fn, [], call)
    leaves_t, rebuild = _flatten(out_t if out_t is not None else [])
    leaves_f, _ = _flatten(out_f if out_f is not None else [])
    ops_t = [v for v in leaves_t if isinstance(v, Operation)]
    ops_f = [v for v in leaves_f if isinstance(v, Operation)]
    leaves_t = [v for v in leaves_t if not isinstance(v, Operation)]
    leaves_f = [v for v in leaves_f if not isinstance(v, Operation)]
    if len(leaves_t) != len(leaves_f):
        raise GraphcError(
            f"cond: true_fn returns {len(leaves_t)} tensors and false_fn "
            f"{len(leaves_f)}; both branches must return the same structure",
            loc,
        )
    outs_t = _outputs(rt, leaves_t, "true_fn")
    outs_f = _outputs(rf, leaves_f, "false_fn")
    operands = list(dict.fromkeys(list(rt.captured) + list(rf.captured)))
    params_t = [rt.capture(o) for o in operands]
    params_f = [rf.capture(o) for o in operands]
    ft = Function(
        rt, params_t, outs_t, f"{label}/true_fn", targets=list(dict.fromkeys(_effects(rt) + ops_t))
    )
    ff = Function(
        rf, params_f, outs_f, f"{label}/false_fn", targets=list(dict.fromkeys(_effects(rf) + ops_f))
    )
    with located_at(loc):
        node = COND.build(
            [pred, *operands], {"then_fn": ft, "else_fn": ff}, name=_op_name(name, "cond")
        )
    if not node.outputs:
        return node  # branches run for their effects only (tf.group, no_op)
    if ops_t:
        return list(node.outputs)
    return rebuild(list(node.outputs))


def case(pred_fn_pairs, default=None, exclusive=False, strict=False, name="case"):
    """The first ``fn`` whose ``pred`` holds (TF's ``tf.case``), else ``default()``: nested
    conds, evaluated in order."""
    pairs = list(pred_fn_pairs.items()) if isinstance(pred_fn_pairs, dict) else list(pred_fn_pairs)
    if default is None:
        if not pairs:
            raise GraphcError(
                "case needs at least one (pred, fn) pair or a default", user_location()
            )
        pairs, (_, default) = pairs[:-1], pairs[-1]

    def chain(i):
        if i == len(pairs):
            return default()
        p, f = pairs[i]
        return cond(p, f, lambda: chain(i + 1), name=f"{name}_{i}")

    return chain(0)


# --- while_loop -------------------------------------------------------------------------------


def while_loop(
    cond_fn,
    body_fn,
    loop_vars,
    maximum_iterations=None,
    shape_invariants=None,
    name=None,
    parallel_iterations=10,
    back_prop=True,
    swap_memory=False,
    return_same_structure=False,
):
    """Repeat ``loop_vars = body_fn(*loop_vars)`` while ``cond_fn(*loop_vars)`` holds, at most
    ``maximum_iterations`` times. A loop variable must keep its dtype and shape unless
    ``shape_invariants`` (same structure, ``None`` dims) relaxes it. As in TF 1.x, a list of
    one loop variable returns that tensor (``return_same_structure=True`` keeps the list)."""
    loc = user_location()
    label = name or "while"
    single = not isinstance(loop_vars, (list, tuple, dict))
    leaves, rebuild = _flatten(loop_vars)
    init = _tensors(leaves, "while_loop loop_vars")
    if shape_invariants is None:
        invariants = [v.shape for v in init]
    else:
        inv_leaves = _flatten_like(loop_vars, shape_invariants)
        if len(inv_leaves) != len(init):
            raise GraphcError(
                f"while_loop: {len(inv_leaves)} shape_invariants for {len(init)} loop variables",
                loc,
            )
        invariants = [
            as_shape(getattr(s, "as_list", lambda s=s: s)()) if s is not None else None
            for s in inv_leaves
        ]
        for k, (v, inv) in enumerate(zip(init, invariants, strict=True)):
            if (
                inv is not None
                and v.shape is not None
                and (
                    len(inv) != len(v.shape)
                    or any(
                        isinstance(a, int) and isinstance(b, int) and a != b
                        for a, b in zip(inv, v.shape, strict=True)
                    )
                )
            ):
                raise ShapeError(
                    f"{label}: loop variable {k} {v.describe()} does not fit its "
                    f"shape invariant {format_shape(inv)}",
                    loc,
                )
    counter = None
    if isinstance(maximum_iterations, Tensor) and maximum_iterations.op.op is CONST:
        maximum_iterations = int(maximum_iterations.op.attrs["value"])
    if isinstance(maximum_iterations, Tensor):  # a run-time bound: count in a loop var
        counter = maximum_iterations
        maximum_iterations = None
    elif maximum_iterations is not None:
        maximum_iterations = int(maximum_iterations)
    avals = [
        (v.dtype, inv, f"loop_var{k}")
        for k, (v, inv) in enumerate(zip(init, invariants, strict=True))
    ]

    n_user = len(init)

    def call(fn, params):
        args = rebuild(params[:n_user])
        user_args = [args] if single else list(args)
        return fn(*user_args, *params[n_user:])

    if counter is not None:  # a run-time bound: an extra loop variable counts
        limit = convert(counter)
        user_cond, user_body = cond_fn, body_fn

        def cond_fn(*a):  # noqa: F811 - the user's condition and the bound
            return logical_and(less(a[-1], limit), user_cond(*a[:-1]))

        def body_fn(*a):  # noqa: F811
            return list(_flatten(user_body(*a[:-1]))[0]) + [add(a[-1], 1)]

        init = init + [convert(0, dtype=limit.dtype)]
        avals = avals + [(limit.dtype, (), "iteration")]

    parent = get_default_graph()
    rc, pc, c = _trace(parent, f"{label}/cond", cond_fn, avals, call)
    rb, pb, out = _trace(parent, f"{label}/body", body_fn, avals, call)
    (c,) = _tensors(_flatten(c)[0], "while_loop cond")
    c = rc.capture(c)
    if not c.dtype.is_bool or (c.shape is not None and len(c.shape) != 0):
        raise DTypeError(f"{label}: cond must return a scalar bool, got {c.describe()}", loc)
    out_leaves = _flatten(out)[0]
    if len(out_leaves) != len(pb):
        raise GraphcError(
            f"{label}: the body returns {len(out_leaves)} values for {len(pb)} loop variables", loc
        )
    outs = _outputs(rb, out_leaves, f"{label} body")
    with located_at(loc):
        _check_loop_shapes(outs, pb, init, label, "loop variable")
    hoisted_outer, hoisted_inner = _hoist(rb, pb)
    operands = list(dict.fromkeys(list(rc.captured) + list(rb.captured)))
    cond_f = Function(
        rc, pc + [rc.capture(o) for o in operands], [c], f"{label}/cond", targets=_effects(rc)
    )
    body_f = Function(
        rb,
        pb + [rb.capture(o) for o in operands] + hoisted_inner,
        outs,
        f"{label}/body",
        targets=_effects(rb),
    )
    # the cond is fed the hoisted values too (as unused params), so both take one input list
    cond_f = Function(
        rc,
        list(cond_f.params) + [_dummy(rc, t) for t in hoisted_inner],
        [c],
        f"{label}/cond",
        targets=cond_f.targets,
    )
    with located_at(loc):
        node = WHILE.build(
            init + operands + hoisted_outer,
            {
                "cond_fn": cond_f,
                "body_fn": body_f,
                "n_vars": len(init),
                "maximum_iterations": maximum_iterations,
            },
            name=_op_name(name, "while"),
        )
    results = list(node.outputs[: len(init)])
    if counter is not None:
        results = results[:-1]
    if single:
        return results[0]
    if len(results) == 1 and not return_same_structure and isinstance(loop_vars, (list, tuple)):
        return results[0]
    return rebuild(results)


def _dummy(region, t):
    return param(region, t.dtype, t.shape, "hoisted")


# --- scan and map_fn --------------------------------------------------------------------------


def scan(
    fn,
    elems,
    initializer=None,
    reverse=False,
    name=None,
    parallel_iterations=10,
    back_prop=True,
    swap_memory=False,
    infer_shape=True,
):
    """TF's ``scan``: ``a = fn(a, x)`` for each ``x`` along the leading axis of ``elems``
    (from the end when ``reverse``), returning every ``a``, stacked. ``initializer`` gives
    the first ``a`` (and its structure); without one, the first element does."""
    loc = user_location()
    x_leaves, x_rebuild = _flatten(elems)
    xs = _tensors(x_leaves, "scan elems")
    _check_elems(xs, name or "scan", loc)
    first = None
    if initializer is None:
        edge = -1 if reverse else 0
        first = [x[edge] for x in xs]
        xs = [x[:-1] if reverse else x[1:] for x in xs]
        initializer = x_rebuild(first)

    def step(a, x):
        a = fn(a, x)
        return a, a

    _, ys = scan_with_outputs(
        step, x_rebuild(xs), initializer, reverse=reverse, name=name, _location=loc
    )
    with located_at(loc):
        if first is not None:
            y_leaves, y_rebuild = _flatten(ys)
            ys = y_rebuild(
                [
                    concat([y, expand_dims(f, 0)], 0)
                    if reverse
                    else concat([expand_dims(f, 0), y], 0)
                    for y, f in zip(y_leaves, first, strict=True)
                ]
            )
    return ys


def _check_elems(xs, label, loc):
    for x in xs:
        if x.shape is None or not x.shape:
            raise ShapeError(
                f"{label}: elems {x.describe()} needs a leading axis to scan over", loc
            )


def scan_with_outputs(fn, elems, initializer, reverse=False, name=None, _location=None):
    """JAX's ``lax.scan``: ``carry, y = fn(carry, x)`` for each ``x`` along the leading axis of
    ``elems``; returns ``(final carry, stacked y's)``. ``gc.scan``, ``gc.map_fn`` and the
    compat ``dynamic_rnn`` are built on it."""
    loc = _location or user_location()
    label = name or "scan"
    x_leaves, x_rebuild = _flatten(elems)
    xs = _tensors(x_leaves, "scan elems")
    _check_elems(xs, label, loc)
    a_leaves, a_rebuild = _flatten(initializer)
    init = _tensors(a_leaves, "scan initializer")
    k = len(init)
    avals = [(a.dtype, a.shape, f"carry{i}") for i, a in enumerate(init)] + [
        (x.dtype, x.shape[1:], f"elem{i}") for i, x in enumerate(xs)
    ]

    def call(f, params):
        return f(a_rebuild(params[:k]), x_rebuild(params[k:]))

    region, params, out = _trace(get_default_graph(), f"{label}/body", fn, avals, call)
    if not isinstance(out, (list, tuple)) or len(out) != 2:
        raise GraphcError(f"{label}: the step function must return (carry, y)", loc)
    c_leaves, y_leaves = _flatten(out[0])[0], _flatten(out[1])
    y_leaves, y_rebuild = y_leaves
    if len(c_leaves) != k:
        raise GraphcError(
            f"{label}: fn returns {len(c_leaves)} values but the accumulator has {k}", loc
        )
    carries = _outputs(region, c_leaves, f"{label} fn")
    ys = _outputs(region, y_leaves, f"{label} fn")
    with located_at(loc):
        _check_loop_shapes(carries, params[:k], init, label, "accumulator")
    hoisted_outer, hoisted_inner = _hoist(region, params)
    caps = list(region.captured)
    body = Function(
        region,
        params + [region.capture(c) for c in caps] + hoisted_inner,
        carries + ys,
        f"{label}/body",
        targets=_effects(region),
    )
    with located_at(loc):
        node = SCAN.build(
            init + xs + caps + hoisted_outer,
            {"body_fn": body, "n_carry": k, "n_elems": len(xs), "reverse": bool(reverse)},
            name=_op_name(name, "scan"),
        )
    outs = node.outputs
    return a_rebuild(list(outs[:k])), y_rebuild(list(outs[k : k + len(ys)]))


def map_fn(
    fn,
    elems,
    dtype=None,
    parallel_iterations=None,
    back_prop=True,
    swap_memory=False,
    infer_shape=True,
    name=None,
    fn_output_signature=None,
):
    """``fn`` applied to each element along the leading axis of ``elems``, results stacked
    (TF's ``map_fn``; the output structure is what ``fn`` returns)."""
    _, ys = scan_with_outputs(
        lambda _, x: ((), fn(x)), elems, (), name=name or "map", _location=user_location()
    )
    return ys


# --- gradients --------------------------------------------------------------------------------


def _floating(ts):
    return [i for i, t in enumerate(ts) if t.dtype.is_floating]


def _vjp(region, outs, cotangents, xs):
    """d(sum of outs . cotangents)/d(xs), traced in ``region`` (zeros where unconnected)."""
    pairs = [
        (o, g)
        for o, g in zip(outs, cotangents, strict=True)
        if g is not None and o.dtype.is_floating
    ]
    with region.as_default():
        if not pairs or not xs:
            return [fill_like(x, 0) for x in xs]
        return gradients(
            [o for o, _ in pairs],
            list(xs),
            grad_ys=[g for _, g in pairs],
            unconnected="zero",
            name="grad",
        )


def _cond_grad(op, *dys):
    pred, operands = op.inputs[0], op.inputs[1:]
    wrt = _floating(operands)
    if not wrt:
        return [None] * len(op.inputs)

    def branch(fn):
        r = fn.graph
        d = [param(r, o.dtype, o.shape, "d_out") for o in fn.outputs]
        gs = _vjp(r, fn.outputs, d, [fn.params[i] for i in wrt])
        return Function(r, list(fn.params) + d, gs, fn.name + "/grad")

    node = COND.build(
        [pred, *operands, *dys],
        {"then_fn": branch(op.attrs["then_fn"]), "else_fn": branch(op.attrs["else_fn"])},
        name=op.name.rsplit("/", 1)[-1] + "_grad",
    )
    result = [None] * len(op.inputs)
    for j, i in enumerate(wrt):
        result[1 + i] = node.outputs[j]
    return result


def _backward_scan(fn, k, m, init, elems, caps, history, d_final, d_ys, d_history, reverse, name):
    """The reverse scan computing the gradients of a scan (or recorded while loop) with body
    ``fn``: returns the gradients of (init, elems, caps), None for non-float ones."""
    r = fn.graph
    c_params, x_params, z_params = fn.params[:k], fn.params[k : k + m], fn.params[k + m :]
    cf, xf, zf = _floating(init), _floating(elems), _floating(caps)
    y_outs = fn.outputs[k:]
    yf = [j for j in _floating(y_outs) if d_ys[j] is not None]
    hf = [i for i in cf if d_history is not None and d_history[i] is not None]
    dc = [param(r, c_params[i].dtype, c_params[i].shape, "d_carry") for i in cf]
    dz = [param(r, z_params[i].dtype, z_params[i].shape, "d_captured") for i in zf]
    dy = [param(r, y_outs[j].dtype, y_outs[j].shape, "d_y") for j in yf]
    dh = [param(r, c_params[i].dtype, c_params[i].shape, "d_history") for i in hf]
    cot = [None] * len(fn.outputs)
    for i, g in zip(cf, dc, strict=True):
        cot[i] = g
    for j, g in zip(yf, dy, strict=True):
        cot[k + j] = g
    xs = [c_params[i] for i in cf] + [x_params[i] for i in xf] + [z_params[i] for i in zf]
    gs = _vjp(r, fn.outputs, cot, xs)
    g_c, g_x, g_z = gs[: len(cf)], gs[len(cf) : len(cf) + len(xf)], gs[len(cf) + len(xf) :]
    with r.as_default(), r.name_scope("grad"):
        by_h = dict(zip(hf, dh, strict=True))
        new_dc = [add(g, by_h[i]) if i in by_h else g for i, g in zip(cf, g_c, strict=True)]
        new_dz = [add(a, g) for a, g in zip(dz, g_z, strict=True)]
    bfn = Function(
        r,
        dc + dz + list(c_params) + list(x_params) + dy + dh + list(z_params),
        new_dc + new_dz + g_x,
        fn.name + "/grad",
    )
    carry0 = [d_final[i] for i in cf] + [fill_like(caps[i], 0) for i in zf]
    in_elems = list(history) + list(elems) + [d_ys[j] for j in yf] + [d_history[i] for i in hf]
    node = SCAN.build(
        carry0 + in_elems + list(caps),
        {"body_fn": bfn, "n_carry": len(carry0), "n_elems": len(in_elems), "reverse": not reverse},
        name=name,
    )
    outs = node.outputs
    d_init = [None] * len(init)
    for n, i in enumerate(cf):
        d_init[i] = outs[n]
    d_caps = [None] * len(caps)
    for n, i in enumerate(zf):
        d_caps[i] = outs[len(cf) + n]
    d_elems = [None] * len(elems)
    base = len(carry0)
    for n, i in enumerate(xf):
        d_elems[i] = outs[base + n]
    return d_init, d_elems, d_caps


def _scan_grad(op, *gs):
    fn, k, m = op.attrs["body_fn"], op.attrs["n_carry"], op.attrs["n_elems"]
    j = len(fn.outputs) - k
    init, elems, caps = op.inputs[:k], op.inputs[k : k + m], op.inputs[k + m :]
    history = op.outputs[k + j :]
    d_init, d_elems, d_caps = _backward_scan(
        fn,
        k,
        m,
        init,
        elems,
        caps,
        history,
        gs[:k],
        gs[k : k + j],
        gs[k + j :],
        op.attrs.get("reverse", False),
        op.name.rsplit("/", 1)[-1] + "_grad",
    )
    return d_init + d_elems + d_caps


def _while_grad(op, *gs):
    n = op.attrs["n_vars"]
    init, caps = op.inputs[:n], op.inputs[n:]
    if op.attrs.get("record"):
        history, d_history = op.outputs[n : 2 * n], gs[n : 2 * n]
    else:
        # re-run the loop recording each iteration's variables (bounded by maximum_iterations)
        twin = WHILE.build(
            list(op.inputs),
            {**dict(op.attrs), "record": True},
            name=op.name.rsplit("/", 1)[-1] + "_record",
        )
        history, d_history = twin.outputs[n : 2 * n], None
    d_init, _, d_caps = _backward_scan(
        op.attrs["body_fn"],
        n,
        0,
        init,
        [],
        caps,
        history,
        gs[:n],
        [],
        d_history,
        False,
        op.name.rsplit("/", 1)[-1] + "_grad",
    )
    return d_init + d_caps


# --- bodies given as callables of every parameter (the .g form graph.to_text prints) ----------


def _param_types(opdef, inputs, attrs):
    """(dtype, shape) of each parameter of the op's bodies, from its inputs."""
    if opdef is COND:
        return [(t.dtype, t.shape) for t in inputs[1:]]
    if opdef is WHILE:
        return [(t.dtype, t.shape) for t in inputs]
    k, m = attrs["n_carry"], attrs["n_elems"]
    elems = [(t.dtype, t.shape[1:] if t.shape is not None else None) for t in inputs[k : k + m]]
    return (
        [(t.dtype, t.shape) for t in inputs[:k]]
        + elems
        + [(t.dtype, t.shape) for t in inputs[k + m :]]
    )


param_types = _param_types


def function_in(region, params, result, name, before):
    """A Function over a body built in an existing ``region`` (``fn g(...) in f`` in .g):
    its outputs are ``result``'s tensors; its effects, the effect ops not in ``before``."""
    leaves = [] if result is None else _flatten(result)[0]
    outs = _outputs(region, leaves, name)
    targets = [op for op in _effects(region) if op not in before]
    return Function(region, params, outs, name, targets=targets)


def bodies_from_callables(opdef, inputs, attrs):
    """``attrs`` with each callable (a branch, condition or body taking every parameter,
    captures included) traced into a Function, for ``op.cond(...)`` & co. in ``.g``."""
    attrs = dict(attrs)
    types = _param_types(opdef, inputs, attrs)
    parent = get_default_graph()
    for key, fn in list(attrs.items()):
        if not callable(fn) or isinstance(fn, Function):
            continue
        region, params, out = _trace(
            parent, key, fn, [(d, s, f"p{i}") for i, (d, s) in enumerate(types)], lambda f, p: f(*p)
        )
        leaves = [] if out is None else _flatten(out)[0]
        outs = _outputs(region, leaves, key)
        attrs[key] = Function(region, params, outs, key, targets=_effects(region))
    return attrs


for _op in CONTROL_OPS:
    _op.extra["bodies_from_callables"] = (
        lambda op: lambda ins, attrs: bodies_from_callables(op, ins, attrs)
    )(_op)

COND.grad = _cond_grad
SCAN.grad = _scan_grad
WHILE.grad = _while_grad
