"""The op registry: one OpDef per op holds everything graphc knows about it.

An OpDef carries
  * ``infer(node_inputs, attrs) -> [(dtype, shape), ...]`` — the static shape and dtype rule,
    run when a node is built, so errors point at the user's line;
  * ``numpy`` — the kernel, ``numpy(*arrays, **attrs)`` (stateful ops get ``(ctx, node, ...)``);
  * ``expr`` — for elementwise ops, the scalar expression that the fusion pass and the
    code generators (numpy tiles, CUDA C) share (see ``ops.scalar``);
  * ``grad(node, *output_grads) -> [input_grad or None, ...]`` — the pullback, in graph ops;
  * ``samples(rng) -> [(arrays, attrs), ...]`` — inputs the registry-driven tests use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import DTypeError, GraphcError, ShapeError, user_location
from ..ir.graph import get_default_graph
from ..ir.node import Tensor
from ..shapes import format_shape

REGISTRY: dict[str, OpDef] = {}


@dataclass(eq=False)
class OpDef:
    name: str
    infer: Callable
    numpy: Callable | None = None
    grad: Callable | None = None
    expr: object = None  # ScalarExpr for elementwise ops
    # elementwise | reduction | matmul | shape | source | state | random | other
    kind: str = "other"
    stateful: bool = False  # kernel reads/writes session state: never folded or CSE'd
    differentiable: bool = True
    # an elementwise op whose numpy kernel is a many-pass formula (no ufunc): fusion makes a
    # group of it alone, so a backend that compiles groups runs it as one loop
    fuse_alone: bool = False
    samples: Callable | None = None
    doc: str = ""
    extra: dict = field(default_factory=dict)  # room for backends: e.g. extra["cupy"]

    def __repr__(self):
        return f"<OpDef {self.name}>"

    def __hash__(self):
        return id(self)

    def build(self, inputs, attrs=None, name=None, output_cls=None, location=None, origin=None):
        """Check the rules and add a node to the inputs' graph (or the default graph)."""

        attrs = attrs or {}
        graph = inputs[0].graph if inputs else get_default_graph()
        capture = getattr(get_default_graph(), "capture", None)
        if capture is not None:  # inside a control-flow body: outer inputs become captures
            graph = get_default_graph()
            inputs = [capture(t) for t in inputs]
        for t in inputs:
            if t.graph is not graph:
                raise GraphcError(
                    f"{self.name}: input {t.describe()} belongs to another graph", user_location()
                )
        try:
            avals = self.infer(inputs, attrs)
        except GraphcError as e:
            if e.location is None:
                e.location = location or user_location()
                e.args = (e._format(),)
            raise
        except (ValueError, TypeError, IndexError) as e:
            loc = location or user_location()
            ins = ", ".join(f"{t.dtype}{format_shape(t.shape)}" for t in inputs)
            cls = DTypeError if isinstance(e, TypeError) else ShapeError
            raise cls(
                f"{self.name}{' ' + repr(name) if name else ''}: {e} (inputs: {ins})", loc
            ) from None
        return graph.create_op(
            self,
            inputs,
            attrs,
            avals,
            name=name,
            location=location,
            output_cls=output_cls or Tensor,
            origin=origin,
        )

    def __call__(self, *inputs, name=None, **attrs):
        """Build the node and return its output (or the tuple of outputs)."""
        node = self.build(list(inputs), attrs, name=name)
        return node.outputs[0] if len(node.outputs) == 1 else node.outputs


def register(opdef: OpDef) -> OpDef:
    if opdef.name in REGISTRY:
        raise GraphcError(f"an op named {opdef.name!r} is already registered")
    REGISTRY[opdef.name] = opdef
    return opdef


def get(name: str) -> OpDef:
    return REGISTRY[name]
