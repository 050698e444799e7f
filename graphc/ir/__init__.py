"""The graph IR: immutable operations, symbolic tensors, graphs."""

from .graph import Graph, get_default_graph, reset_default_graph
from .node import Operation, Tensor, TensorShape

__all__ = [
    "Graph",
    "Operation",
    "Tensor",
    "TensorShape",
    "get_default_graph",
    "reset_default_graph",
]
