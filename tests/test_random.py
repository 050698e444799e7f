"""Seeded randomness (SPEC §2): the same seeds give the same numbers in every fresh session;
successive runs draw new numbers; a graph-level seed makes unseeded ops reproducible;
integer ranges and permutations are what they say."""

import numpy as np
import pytest

import graphc as gc


def _fresh_run(t, times=1):
    with gc.Session(graph=t.graph) as sess:
        return [sess.run(t) for _ in range(times)]


@pytest.mark.parametrize(
    "make",
    [
        lambda: gc.random_normal((4, 3), mean=1.0, stddev=0.5, seed=7),
        lambda: gc.random_uniform((5,), -1.0, 1.0, seed=7),
        lambda: gc.truncated_normal((6,), seed=7),
        lambda: gc.random_int((8,), 0, 100, seed=7),
        lambda: gc.random_permutation(10, seed=7),
    ],
    ids=["normal", "uniform", "truncated", "int", "permutation"],
)
def test_same_seed_same_numbers_in_fresh_sessions(make):
    t = make()
    first, second = _fresh_run(t, times=2), _fresh_run(t, times=2)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])  # the whole sequence repeats
    assert not np.array_equal(first[0], first[1])  # but each run draws anew


def test_same_seed_in_a_rebuilt_graph_gives_the_same_numbers():
    a = _fresh_run(gc.random_normal((5,), seed=3))[0]
    gc.reset_default_graph()
    gc.constant(0.0)  # a different graph around it changes nothing
    b = _fresh_run(gc.random_normal((5,), seed=3))[0]
    np.testing.assert_array_equal(a, b)


def test_different_seeds_differ():
    a = gc.random_normal((5,), seed=1)
    b = gc.random_normal((5,), seed=2)
    with gc.Session() as sess:
        va, vb = sess.run([a, b])
    assert not np.array_equal(va, vb)


def test_unseeded_ops_differ_between_sessions():
    t = gc.random_normal((8,))
    assert not np.array_equal(_fresh_run(t)[0], _fresh_run(t)[0])


def test_graph_level_seed_makes_unseeded_ops_reproducible():
    def build():
        gc.reset_default_graph()
        gc.set_random_seed(42)
        return gc.random_normal((4,)), gc.random_uniform((4,))

    n1, u1 = build()
    with gc.Session() as sess:
        first = sess.run([n1, u1])
    n2, u2 = build()
    with gc.Session() as sess:
        second = sess.run([n2, u2])
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], first[1])  # two ops, two streams


def test_graph_seed_and_op_seed_combine():
    gc.set_random_seed(1)
    a = _fresh_run(gc.random_normal((4,), seed=5))[0]
    gc.reset_default_graph()
    gc.set_random_seed(2)
    b = _fresh_run(gc.random_normal((4,), seed=5))[0]
    assert not np.array_equal(a, b)


def test_variable_initialized_from_a_seeded_source_is_reproducible():
    w = gc.Variable(gc.random_normal((3, 2), stddev=0.01, seed=1), name="w")
    values = []
    for _ in range(2):
        with gc.Session() as sess:
            sess.run(gc.global_variables_initializer())
            values.append(sess.run(w))
    np.testing.assert_array_equal(values[0], values[1])
    assert values[0].dtype == np.float32 and np.abs(values[0]).max() < 0.1


def test_random_int_range_and_dtype():
    t = gc.random_int((2000,), 3, 7, seed=0)
    assert t.dtype is gc.int32 and t.shape == (2000,)
    (v,) = _fresh_run(t)
    assert set(np.unique(v).tolist()) == {3, 4, 5, 6}  # maxval excluded, all others hit
    only_max = gc.random_int((50,), 4, seed=0, dtype=gc.int64)  # torch.randint(high) form
    (w,) = _fresh_run(only_max)
    assert w.dtype == np.int64 and w.min() >= 0 and w.max() < 4


def test_random_uniform_range():
    (v,) = _fresh_run(gc.random_uniform((2000,), minval=2.0, maxval=2.5, seed=0))
    assert v.min() >= 2.0 and v.max() < 2.5


def test_random_permutation_is_a_permutation():
    t = gc.random_permutation(20, seed=0)
    assert t.dtype is gc.int64 and t.shape == (20,)
    (v,) = _fresh_run(t)
    assert sorted(v.tolist()) == list(range(20)) and v.tolist() != list(range(20))


def test_random_shuffle_permutes_rows():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    (v,) = _fresh_run(gc.random_shuffle(gc.constant(x), seed=0))
    assert sorted(map(tuple, v.tolist())) == sorted(map(tuple, x.tolist()))


def test_random_ops_need_static_shapes_and_sensible_dtypes():
    with pytest.raises(gc.ShapeError, match="static shape"):
        gc.random_normal((None, 3))
    with pytest.raises(gc.DTypeError, match="floating"):
        gc.random_normal((3,), dtype=gc.int32)
    with pytest.raises(gc.DTypeError, match="maxval"):
        gc.random_uniform((3,), dtype=gc.int32)


def test_dropout_is_seeded_and_scales_kept_values():
    x = gc.ones((200, 50))
    d = gc.nn.dropout(x, keep_prob=0.8, seed=3)
    a, b = _fresh_run(d)[0], _fresh_run(d)[0]
    np.testing.assert_array_equal(a, b)
    kept = a != 0
    np.testing.assert_allclose(a[kept], 1 / 0.8, rtol=1e-6)
    assert abs(kept.mean() - 0.8) < 0.02
    assert gc.nn.dropout(x, rate=0.2, training=False) is x
