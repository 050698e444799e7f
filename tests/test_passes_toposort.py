"""passes.program.ordered_toposort, shared by Program.schedule and fusion's contraction."""

from graphc.passes.program import ordered_toposort


def test_ready_nodes_are_taken_least_key_first():
    preds = {"a": set(), "b": set(), "c": {"b"}, "d": {"a", "c"}}
    rank = {"a": 3, "b": 0, "c": 1, "d": 2}
    assert ordered_toposort(preds, rank.__getitem__) == ["b", "c", "a", "d"]


def test_a_cycle_gives_none():
    assert ordered_toposort({"a": {"b"}, "b": {"a"}, "c": set()}, ord) is None
