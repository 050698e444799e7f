"""passes.program.ordered_toposort (fusion's contraction) and Program.schedule."""

import networkx as nx

import graphc as gc
from graphc.ops.elementwise import EXP
from graphc.passes.importer import import_graph
from graphc.passes.program import FEED, Node, Program, _sched_key, ordered_toposort


def test_ready_nodes_are_taken_least_key_first():
    preds = {"a": set(), "b": set(), "c": {"b"}, "d": {"a", "c"}}
    rank = {"a": 3, "b": 0, "c": 1, "d": 2}
    assert ordered_toposort(preds, rank.__getitem__) == ["b", "c", "a", "d"]


def test_a_cycle_gives_none():
    assert ordered_toposort({"a": {"b"}, "b": {"a"}, "c": set()}, ord) is None


def _networkx_schedule(program):
    return list(nx.lexicographical_topological_sort(program.g, key=_sched_key))


def test_the_schedule_is_networkx_lexicographical_sort_of_a_real_program():
    x = gc.placeholder(gc.float32, (None, 4))
    w = gc.Variable(gc.ones((4, 4)))
    loss = gc.reduce_sum(gc.tanh(x @ w) ** 2)
    train = gc.train.AdamOptimizer(0.1).minimize(loss)
    program = import_graph(gc.get_default_graph(), [loss], [train], {x: (2, 4)})
    assert program.schedule() == _networkx_schedule(program)


def test_a_program_whose_key_order_is_not_topological_is_sorted_by_networkx():
    f32 = gc.float32
    feed = Node(FEED, (), {}, [(f32, (2,))], (), -1, 0)
    # b reads a but comes first by program order (as a user pass may leave it)
    a = Node(EXP, [(feed, 0)], {}, [(f32, (2,))], (), 5, 0)
    b = Node(EXP, [(a, 0)], {}, [(f32, (2,))], (), 1, 0)
    program = Program([feed, a, b], [(b, 0)], [], {})
    assert program.schedule() == [feed, a, b] == _networkx_schedule(program)


def test_after_fusion_the_schedule_is_still_networkx_lexicographical_sort():
    """Fusion leaves programs whose key order is not topological (a fused node takes its
    last member's place): the schedule's own least-key-first sort gives networkx's order."""
    from graphc.passes.fusion import fuse
    from graphc.passes.program import _is_topological

    x = gc.placeholder(gc.float32, (None, 8))
    h = x
    for i in range(4):
        w = gc.Variable(gc.random_normal((8, 8), seed=i))
        b = gc.Variable(gc.zeros((8,)))
        h = gc.relu(h @ w + b)
    loss = gc.reduce_mean(h**2)
    train = gc.train.AdamOptimizer(0.1).minimize(loss)
    program = fuse(import_graph(gc.get_default_graph(), [loss], [train], {x: (16, 8)}))
    assert not _is_topological(sorted(program.g, key=_sched_key))
    assert program.schedule() == _networkx_schedule(program)
