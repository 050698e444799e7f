"""Acceptance probes (issues 2-4) that found bugs: written from the SPEC alone, run at every
optimize level. Each test names the behaviour the SPEC promises."""

import numpy as np
import pytest

import graphc as gc

LEVELS = (0, 1, 2)


@pytest.fixture(autouse=True)
def _fresh_graph():
    gc.reset_default_graph()


def test_bool_dtype_has_the_spec_name():
    """SPEC §2 lists ``bool`` among the dtypes; ``gc.bool`` spells it like ``tf.bool``."""
    b = gc.placeholder(gc.bool, shape=(2,))
    assert b.dtype == gc.bool_
    with gc.Session() as s:
        np.testing.assert_array_equal(s.run(gc.cast(b, gc.float32), {b: [True, False]}), [1, 0])


@pytest.mark.parametrize("opt", LEVELS)
def test_empty_batch_through_a_fused_softmax(opt):
    """A batch of 0 rows is a legal feed for a (None, k) placeholder: the fused kernel's
    scratch must have 0 rows too, not one row that cannot broadcast against the loop."""
    x = gc.placeholder(gc.float32, shape=(None, 3))
    y = gc.softmax(x @ gc.ones((3, 2)))
    with gc.Session(optimize=opt) as s:
        out, total = s.run([y, gc.reduce_sum(y)], {x: np.zeros((0, 3), np.float32)})
    assert out.shape == (0, 2) and total == 0


@pytest.mark.parametrize("opt", LEVELS)
def test_compile_rejects_feed_shapes_that_contradict_the_static_shape(opt):
    """``gc.compile(feed_shapes=...)`` checks each planned shape like a fed value: rank and
    every known dim must match, and the error names the tensor."""
    x = gc.placeholder(gc.float32, shape=(None, 3), name="pixels")
    y = gc.reduce_sum(x)
    for bad in ((4, 5), (4,), (4, 3, 1)):
        with pytest.raises(gc.ShapeError, match="pixels"):
            gc.compile(y, feed_shapes={x: bad}, optimize=opt)
    assert gc.compile(y, feed_shapes={x: (4, 3)}, optimize=opt).stats["peak_bytes"] >= 0
    assert gc.compile(y, feed_shapes={"pixels:0": (0, 3)}, optimize=opt) is not None


@pytest.mark.parametrize("opt", LEVELS)
def test_a_feed_dict_that_is_not_a_mapping_is_a_feed_error(opt):
    """Malformed feeds raise graphc errors, never an AttributeError from inside run()."""
    x = gc.placeholder(gc.float32, shape=(None, 2))
    with gc.Session(optimize=opt) as s:
        for bad in ([(x, [[1.0, 2.0]])], ((x, 1.0),), [x]):
            with pytest.raises(gc.FeedError, match="feed_dict maps tensors"):
                s.run(gc.reduce_sum(x), bad)
        assert s.run(gc.reduce_sum(x), {x: [[1.0, 2.0]]}) == 3


def test_float_of_a_tensor_explains_define_and_run():
    x = gc.placeholder(gc.float32, shape=())
    with pytest.raises(gc.DefineAndRunError, match="float"):
        float(x)


@pytest.mark.parametrize(
    "equation, shapes",
    [
        ("ii->", [(3, 3)]),
        ("ii->i", [(3, 3)]),
        ("iij,j->i", [(2, 2, 3), (3,)]),
        ("ij,jj->i", [(2, 3), (3, 3)]),
        ("iji->j", [(2, 4, 2)]),
    ],
)
def test_einsum_differentiates_through_a_repeated_index(equation, shapes):
    """einsum covers the contractions numpy supports, traces and diagonals included, and
    its gradients match finite differences there too."""
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(s) for s in shapes]
    gc.test.check_gradients(lambda *xs: gc.einsum(equation, *xs), inputs)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"backend": "tpu"}, "unknown backend"),
        ({"optimize": 5}, "optimize must be"),
        ({"optimize": "fast"}, "optimize must be"),
    ],
)
def test_session_arguments_are_checked_when_it_is_made(kwargs, words):
    """A bad backend or level is a GraphcError from Session(...), never a ValueError and not
    a surprise at the first run."""
    with pytest.raises(gc.GraphcError, match=words):
        gc.Session(**kwargs)
    assert gc.Session(optimize=True).optimize == 2 and gc.Session(optimize=False).optimize == 0


@pytest.mark.parametrize("opt", LEVELS)
def test_compile_takes_the_fetch_structures_run_takes(opt):
    """gc.compile plans any nesting of lists, tuples and dicts of fetches, as Session.run
    runs them; something that is not a fetch is a GraphcError, not a TypeError."""
    x = gc.placeholder(gc.float32, shape=(None, 3), name="x")
    y = gc.reduce_sum(x * 2, name="y")
    flat = gc.compile(y, feed_shapes={x: (2, 3)}, optimize=opt).stats["nodes_after"]
    for fetches in ({"a": y}, (y, [y]), {"k": (y.op, ["y:0"])}):
        plan = gc.compile(fetches, feed_shapes={"x": (2, 3)}, optimize=opt)
        assert plan.stats["nodes_after"] == flat
    with pytest.raises(gc.GraphcError, match="cannot compile"):
        gc.compile({"a": [3.0]}, feed_shapes={x: (2, 3)}, optimize=opt)


@pytest.mark.parametrize(
    "make",
    [
        lambda x: gc.zeros(gc.shape(x)),
        lambda x: gc.fill(gc.shape(x), 1.0),
        lambda x: gc.broadcast_to(x[0], gc.shape(x)),
        lambda x: gc.reshape(x, gc.shape(x)),
    ],
)
def test_shape_arguments_from_gc_shape(make):
    """TF1 code passes gc.shape(x) as a shape: a static one is its value; a dynamic one is a
    ShapeError naming the *_like op to use (not an error about iterating a tensor)."""
    static = gc.placeholder(gc.float32, shape=(2, 4))
    assert make(static).shape == (2, 4)
    dynamic = gc.placeholder(gc.float32, shape=(None, 4))
    with pytest.raises(gc.ShapeError, match="_like"):
        make(dynamic)
