"""Liveness, best-fit packing, in-place reuse, and a training step's planned peak."""

import numpy as np

import graphc as gc
from graphc.passes.memory import Slot, pack


def slot(i, nbytes, start, end):
    return Slot(i, "arena", gc.float32, (nbytes // 4,), nbytes, start, end)


def test_pack_reuses_memory_of_dead_buffers():
    a, b, c = slot(0, 256, 0, 1), slot(1, 256, 2, 3), slot(2, 256, 1, 2)
    peak = pack([a, b, c])
    assert a.offset == b.offset  # disjoint lifetimes share bytes
    assert c.offset != a.offset and peak == 512


def test_a_later_buffer_takes_a_freed_gap_instead_of_growing_the_arena():
    early = slot(0, 256, 0, 1)
    big = slot(1, 1024, 0, 9)
    late = slot(2, 256, 2, 9)
    assert pack([early, big, late]) == 1280
    assert late.offset == early.offset


def test_overlapping_lifetimes_never_share_bytes():
    rng = np.random.default_rng(0)
    slots = []
    for i in range(60):
        s = int(rng.integers(0, 30))
        slots.append(slot(i, int(rng.integers(1, 40)) * 64, s, s + int(rng.integers(0, 8))))
    peak = pack(slots)
    for a in slots:
        assert a.offset + a.nbytes <= peak
        for b in slots:
            if a is not b and a.start <= b.end and b.start <= a.end:
                assert a.offset + a.nbytes <= b.offset or b.offset + b.nbytes <= a.offset


def test_elementwise_chain_runs_in_place():
    x = gc.placeholder(gc.float32, (1000,))
    y = gc.matmul(gc.reshape(x, (1, 1000)), gc.ones((1000, 1000)))  # an arena intermediate
    z = gc.exp(gc.tanh(gc.sin(y)))
    plan = gc.compile(z, feed_shapes={x: (1000,)}, optimize=1)  # no fusion: plain kernels
    arena = [s for s in plan.slots if s.kind == "arena"]
    # one buffer for matmul's result, reused in place by sin, tanh and exp
    assert len(arena) <= 2


def test_training_step_peak_is_planned_and_below_the_sum_of_intermediates():
    x = gc.placeholder(gc.float32, (None, 784))
    y = gc.placeholder(gc.float32, (None, 10))
    w1 = gc.Variable(gc.random_normal((784, 256), stddev=0.01, seed=1))
    w2 = gc.Variable(gc.random_normal((256, 10), stddev=0.01, seed=2))
    logits = gc.relu(x @ w1) @ w2
    loss = gc.reduce_mean(gc.softmax_cross_entropy_with_logits(labels=y, logits=logits))
    g1, g2 = gc.gradients(loss, [w1, w2])
    step = gc.group(gc.assign_sub(w1, 0.1 * g1), gc.assign_sub(w2, 0.1 * g2))
    plan = gc.compile([step, loss], feed_shapes={x: (128, 784), y: (128, 10)})
    planned = [s for s in plan.slots if s.kind in ("arena", "scratch")]
    assert 0 < plan.stats["peak_bytes"] < sum(s.nbytes for s in planned) + 64 * len(planned)
    # the largest intermediates are the (128, 256) activations and the (784, 256) gradient
    assert plan.stats["peak_bytes"] >= 784 * 256 * 4
    assert plan.stats["peak_bytes"] <= 784 * 256 * 4 + 6 * 128 * 256 * 4


def _best_fit_by_scanning(slots):
    """The packing rule spelled out: largest first, each slot in the smallest hole (the lowest,
    on ties) between the placed slots whose lifetimes overlap its own, else on top of them."""
    placed = []
    for s in sorted(slots, key=lambda s: (-s.nbytes, s.start)):
        size = -(-s.nbytes // 64) * 64
        ranges = sorted((o, o + z) for o, z, a, b in placed if a <= s.end and b >= s.start)
        top, best = 0, None
        for lo, hi in ranges:
            if lo - top >= size and (best is None or lo - top < best[0]):
                best = (lo - top, top)
            top = max(top, hi)
        offset = best[1] if best else top
        placed.append((offset, size, s.start, s.end))
    return [o for o, *_ in placed], sorted(slots, key=lambda s: (-s.nbytes, s.start))


def test_pack_places_every_slot_where_the_best_fit_rule_says():
    rng = np.random.default_rng(1)
    for _ in range(20):
        slots = []
        for i in range(int(rng.integers(1, 300))):
            s = int(rng.integers(0, 200))
            life = int(rng.integers(0, 3)) if rng.random() < 0.7 else int(rng.integers(0, 200))
            slots.append(slot(i, int(rng.choice([64, 128, 256, 2048, 8192])), s, s + life))
        want, order = _best_fit_by_scanning(slots)
        peak = pack(slots)
        assert [s.offset for s in order] == want
        assert peak == max(s.offset + s.nbytes for s in slots)
