"""Sessions (SPEC §6): fetch structures, feeds and their validation, variables held per
session, the default session, and concurrent runs."""

import collections
import threading

import numpy as np
import pytest

import graphc as gc

# --- fetch structures -------------------------------------------------------------------------


@pytest.fixture
def xy():
    x = gc.placeholder(gc.float32, shape=(None, 2), name="x")
    y = gc.reduce_sum(x * 2.0, name="total")
    return x, y


def test_fetch_a_single_tensor(xy):
    x, y = xy
    with gc.Session() as sess:
        assert sess.run(y, {x: [[1, 2], [3, 4]]}) == 20.0


def test_nested_fetch_structures_keep_their_shape(xy):
    x, y = xy
    Pair = collections.namedtuple("Pair", "total inputs")
    feed = {x: np.array([[1.0, 2.0]], np.float32)}
    with gc.Session() as sess:
        out = sess.run({"loss": y, "more": [y, (x, "total:0")], "pair": Pair(y, x)}, feed)
    assert set(out) == {"loss", "more", "pair"}
    assert out["loss"] == 6.0
    assert isinstance(out["more"], list) and isinstance(out["more"][1], tuple)
    np.testing.assert_array_equal(out["more"][1][0], feed[x])
    assert out["more"][1][1] == 6.0
    assert isinstance(out["pair"], Pair) and out["pair"].total == 6.0


def test_names_as_fetches_and_feed_keys(xy):
    with gc.Session() as sess:
        assert sess.run("total", {"x": [[1, 1]]}) == 4.0
        assert sess.run("total:0", {"x:0": [[1, 1]]}) == 4.0
        with pytest.raises(gc.NotFoundError, match="totl"):
            sess.run("totl", {"x": [[1, 1]]})


def test_fetching_an_op_gives_none():
    v = gc.Variable(1.0)
    with gc.Session() as sess:
        assert sess.run(v.initializer) is None
        assert sess.run([v.initializer, v]) == [None, 1.0]


def test_zero_d_results_are_numpy_scalars(xy):
    x, y = xy
    with gc.Session() as sess:
        r = sess.run(y, {x: [[1, 2]]})
    assert isinstance(r, np.float32) and not isinstance(r, np.ndarray)


def test_fetching_unfetchable_things_is_an_error():
    with gc.Session() as sess:
        with pytest.raises(gc.GraphcError, match="cannot fetch"):
            sess.run(3.0)


# --- feeds ------------------------------------------------------------------------------------


def test_feed_any_intermediate_tensor():
    x = gc.placeholder(gc.float32, shape=(2,), name="x")
    h = x * 10.0
    out = h + 1.0
    with gc.Session() as sess:
        # x is not needed when h is fed
        np.testing.assert_array_equal(sess.run(out, {h: [1.0, 2.0]}), [2.0, 3.0])
        np.testing.assert_array_equal(sess.run(out, {x: [1.0, 2.0]}), [11.0, 21.0])


def test_feed_a_placeholder_with_default():
    base = gc.constant([1.0, 2.0])
    p = gc.placeholder_with_default(base, shape=(None,))
    y = p * 2.0
    with gc.Session() as sess:
        np.testing.assert_array_equal(sess.run(y), [2.0, 4.0])
        np.testing.assert_array_equal(sess.run(y, {p: [5.0, 6.0, 7.0]}), [10.0, 12.0, 14.0])


def test_python_values_are_converted_to_the_placeholder_dtype():
    x = gc.placeholder(gc.float32, shape=(2,))
    with gc.Session() as sess:
        r = sess.run(x * 1.0, {x: [1, 2]})  # ints to a float placeholder: fine
    assert r.dtype == np.float32


def test_missing_feed_names_the_placeholder_and_the_fetch():
    x = gc.placeholder(gc.float32, shape=(None, 3), name="images")
    loss = gc.reduce_mean(x, name="loss")
    with gc.Session() as sess:
        with pytest.raises(gc.FeedError) as e:
            sess.run(loss)
    msg = str(e.value)
    assert "'images'" in msg and "loss" in msg and "feed_dict" in msg


def test_feed_dtype_kind_is_checked():
    i = gc.placeholder(gc.int32, shape=(2,), name="labels")
    with gc.Session() as sess:
        with pytest.raises(gc.FeedError, match="labels"):
            sess.run(i + 1, {i: np.array([0.5, 1.5])})
        with pytest.raises(gc.FeedError, match="labels"):
            sess.run(i + 1, {i: np.array(["a", "b"])})
        with pytest.raises(gc.FeedError, match="symbolic"):
            sess.run(i + 1, {i: gc.constant([1, 2])})


def test_feed_static_shape_is_checked():
    x = gc.placeholder(gc.float32, shape=(None, 3), name="x")
    with gc.Session() as sess:
        with pytest.raises(gc.ShapeError, match=r"\(2, 4\).*\(\?, 3\)"):
            sess.run(x + 1.0, {x: np.zeros((2, 4))})
        with pytest.raises(gc.ShapeError, match="x:0"):
            sess.run(x + 1.0, {x: np.zeros(3)})  # wrong rank
        assert sess.run(x + 1.0, {x: np.zeros((7, 3))}).shape == (7, 3)  # None: any size


def test_malformed_feed_values_are_feed_errors():
    x = gc.placeholder(gc.float32, shape=(None, 2), name="x")
    with gc.Session() as sess:
        for bad in ([[1.0, 2.0], [3.0]], None, "abc", {"a": 1}):
            with pytest.raises(gc.FeedError, match="x:0"):
                sess.run(x + 1.0, {x: bad})


def test_symbolic_dims_must_agree_across_feeds():
    x = gc.placeholder(gc.float32, shape=("N", 2), name="x")
    y = gc.placeholder(gc.float32, shape=("N",), name="y")
    assert (x @ gc.ones((2, 4))).shape == ("N", 4)
    loss = gc.reduce_sum(x, axis=1) - y
    with gc.Session() as sess:
        np.testing.assert_array_equal(
            sess.run(loss, {x: np.ones((3, 2)), y: np.ones(3)}), np.ones(3)
        )
        with pytest.raises(gc.ShapeError, match="'N' is 3 .* but 4"):
            sess.run(loss, {x: np.ones((3, 2)), y: np.ones(4)})


def test_feeds_are_not_modified_and_results_do_not_alias_them():
    x = gc.placeholder(gc.float32, shape=(3,))
    fed = np.array([1.0, 2.0, 3.0], np.float32)
    with gc.Session() as sess:
        r = sess.run(gc.identity(x), {x: fed})
    r[0] = 99
    assert fed[0] == 1.0


# --- variables --------------------------------------------------------------------------------


def test_variables_live_in_each_session():
    v = gc.Variable(np.array([1.0, 2.0], np.float32), name="v")
    bump = v.assign_add([10.0, 10.0])
    init = gc.global_variables_initializer()
    with gc.Session() as a, gc.Session() as b:
        a.run(init)
        b.run(init)
        a.run(bump)
        a.run(bump)
        np.testing.assert_array_equal(a.run(v), [21.0, 22.0])
        np.testing.assert_array_equal(b.run(v), [1.0, 2.0])


def test_reading_an_uninitialized_variable_names_it():
    v = gc.Variable(3.0, name="weights")
    with gc.Session() as sess:
        with pytest.raises(gc.UninitializedError, match="'weights'.*initializer"):
            sess.run(v * 2.0)


def test_initializers():
    a = gc.Variable(gc.fill((2,), 4.0), name="a")
    b = gc.Variable(a.initial_value * 2.0, name="b")  # initial value built from another's
    with gc.Session() as sess:
        sess.run(gc.variables_initializer([a]))
        np.testing.assert_array_equal(sess.run(a), [4.0, 4.0])
        with pytest.raises(gc.UninitializedError):
            sess.run(b)
        sess.run(gc.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(b), [8.0, 8.0])
        sess.run(a.assign([0.0, 0.0]))
        sess.run(a.initializer)  # re-initializing restores it
        np.testing.assert_array_equal(sess.run(a), [4.0, 4.0])


def test_assign_ops_return_the_new_value_and_check_types():
    v = gc.Variable(np.zeros(3, np.float32), name="v")
    with gc.Session() as sess:
        sess.run(v.initializer)
        np.testing.assert_array_equal(sess.run(v.assign([1.0, 2.0, 3.0])), [1, 2, 3])
        np.testing.assert_array_equal(sess.run(gc.assign_add(v, [1.0, 1.0, 1.0])), [2, 3, 4])
        np.testing.assert_array_equal(sess.run(gc.assign_sub(v, [0.5, 0.5, 0.5])), [1.5, 2.5, 3.5])
    with pytest.raises(gc.ShapeError, match="'v:0'"):
        v.assign([1.0, 2.0])
    with pytest.raises(gc.DTypeError):
        v.assign(gc.constant([1.0, 2.0, 3.0], dtype=gc.float64))  # a tensor is never weak
    with pytest.raises(gc.DTypeError, match="Variable"):
        gc.assign(gc.constant([1.0]), [2.0])


def test_control_dependencies_order_a_read_after_an_update():
    counter = gc.Variable(0, name="counter")
    with gc.control_dependencies([counter.assign_add(1)]):
        after = gc.identity(counter)
    with gc.Session() as sess:
        sess.run(counter.initializer)
        assert [sess.run(after) for _ in range(3)] == [1, 2, 3]


def test_results_do_not_alias_variables():
    v = gc.Variable(np.array([1.0, 2.0], np.float32))
    with gc.Session() as sess:
        sess.run(v.initializer)
        r = sess.run(v)
        r[:] = 0
        np.testing.assert_array_equal(sess.run(v), [1.0, 2.0])


def test_variable_load():
    v = gc.Variable(np.zeros(2, np.float32))
    with gc.Session() as sess:
        v.load([3.0, 4.0])
        np.testing.assert_array_equal(sess.run(v), [3.0, 4.0])
        with pytest.raises(gc.ShapeError):
            v.load([1.0, 2.0, 3.0])


# --- concurrency ------------------------------------------------------------------------------


def test_four_threads_share_one_session():
    x = gc.placeholder(gc.float32, shape=(None,), name="x")
    w = gc.Variable(np.float32(3.0), name="w")
    y = gc.reduce_sum(x * w)
    sess = gc.Session()
    sess.run(w.initializer)
    results, errors = {}, []

    def work(k):
        try:
            values = np.arange(k + 1, dtype=np.float32)
            results[k] = {float(sess.run(y, {x: values})) for _ in range(100)}
        except Exception as e:  # surfaced in the main thread below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    # each thread saw only its own answer: 3 * (0 + 1 + ... + k)
    assert results == {k: {3.0 * k * (k + 1) / 2} for k in range(4)}


def test_concurrent_assign_add_loses_no_update():
    v = gc.Variable(0, name="hits")
    bump = v.assign_add(1)
    sess = gc.Session()
    sess.run(v.initializer)
    threads = [
        threading.Thread(target=lambda: [sess.run(bump) for _ in range(200)]) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sess.run(v) == 800


# --- the default session ----------------------------------------------------------------------


def test_eval_and_run_under_the_default_session():
    v = gc.Variable(2.0)
    x = gc.placeholder(gc.float32, shape=())
    with gc.Session() as sess:
        assert gc.get_default_session() is sess
        v.initializer.run()
        assert v.eval() == 2.0
        assert (v * x).eval({x: 4.0}) == 8.0
        v.assign(5.0).op.run()
        assert v.eval(session=sess) == 5.0
    assert gc.get_default_session() is None


def test_eval_without_a_session_explains():
    c = gc.constant(1.0, name="c")
    with pytest.raises(gc.GraphcError, match="no default session"):
        c.eval()


def test_session_as_default_does_not_close():
    c = gc.constant(1.0)
    sess = gc.Session()
    with sess.as_default():
        assert c.eval() == 1.0
    assert sess.run(c) == 1.0  # still open
    sess.close()
    with pytest.raises(gc.GraphcError, match="closed"):
        sess.run(c)


def test_interactive_session_installs_itself():
    c = gc.constant([1.0, 2.0]) * 3.0
    sess = gc.InteractiveSession()
    try:
        np.testing.assert_array_equal(c.eval(), [3.0, 6.0])
    finally:
        sess.close()
    assert gc.get_default_session() is None


def test_session_on_another_graph():
    g = gc.Graph()
    with g.as_default():
        gc.constant(5.0, name="five")
    other = gc.constant(1.0)
    with gc.Session(graph=g) as sess:
        assert sess.run("five") == 5.0
        with pytest.raises(gc.GraphcError, match="another graph"):
            sess.run(other)


def test_graph_as_the_first_positional_argument():
    g = gc.Graph()
    with g.as_default():
        gc.constant(5.0, name="five")
    with gc.Session(g) as sess:  # SPEC §6: Session(graph=None, ...)
        assert sess.graph is g and sess.run("five") == 5.0


def test_make_callable(xy):
    x, y = xy
    with gc.Session() as sess:
        f = sess.make_callable([y, x], [x])
        total, fed = f(np.ones((2, 2), np.float32))
        assert total == 8.0 and fed.shape == (2, 2)
        with pytest.raises(gc.FeedError, match="1 feed"):
            f()


def test_print_prints_at_every_run(capsys):
    x = gc.placeholder(gc.float32, shape=(2,))
    y = gc.print(x * 2.0, message="doubled:") + 1.0
    assert capsys.readouterr().out == ""  # building prints nothing
    with gc.Session() as sess:
        np.testing.assert_array_equal(sess.run(y, {x: [1.0, 2.0]}), [3.0, 5.0])
        sess.run(y, {x: [0.0, 5.0]})
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["doubled: [2. 4.]", "doubled: [ 0. 10.]"]
