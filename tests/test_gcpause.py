"""``paused_gc``: no collection while graphc builds, and what it built is left in the oldest
generation (not walked again by the first young collections), while cyclic garbage made
meanwhile is still freed and a process's own frozen objects stay frozen."""

import gc as collector
import weakref

import pytest

from graphc.ir.gcpause import paused_gc


class Node:
    pass


@pytest.fixture
def enabled():
    was = collector.isenabled()
    collector.enable()
    yield
    if not was:
        collector.disable()


def _generation_of(obj):
    for gen in range(3):
        if any(o is obj for o in collector.get_objects(generation=gen)):
            return gen
    return None


@paused_gc
def _build(n):
    assert not collector.isenabled()
    nodes = [Node() for _ in range(n)]
    for a, b in zip(nodes, nodes[1:]):
        a.next = b
    cycle = Node()
    cycle.me = cycle  # garbage only the cyclic collector can free
    return nodes, weakref.ref(cycle)


def test_what_a_paused_call_built_lands_in_the_oldest_generation(enabled):
    collector.collect()
    nodes, dead = _build(2000)
    assert collector.isenabled()
    assert _generation_of(nodes) == 2 and _generation_of(nodes[1000]) == 2
    assert collector.get_count()[0] < 100  # the young generation starts empty
    assert dead() is not None  # not collected yet: promoted with the rest ...
    collector.collect()
    assert dead() is None  # ... and freed by the next full collection
    assert _generation_of(nodes[-1]) == 2


def test_a_nested_paused_call_leaves_collection_to_the_outer_one(enabled):
    @paused_gc
    def outer():
        inner, _ = _build(10)
        assert not collector.isenabled()
        return inner

    assert len(outer()) == 10 and collector.isenabled()


def test_a_caller_that_disabled_collection_keeps_it_disabled(enabled):
    collector.disable()
    nodes, _ = _build(10)
    assert not collector.isenabled()
    collector.enable()


def test_objects_the_process_froze_stay_frozen(enabled):
    keep = [Node() for _ in range(50)]
    collector.freeze()
    try:
        frozen = collector.get_freeze_count()
        assert frozen >= 50
        nodes, _ = _build(100)
        assert collector.get_freeze_count() == frozen
        assert _generation_of(keep[0]) is None  # still in the permanent generation
    finally:
        collector.unfreeze()
    assert len(nodes) == 100
