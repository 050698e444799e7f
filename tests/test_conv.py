"""conv2d, pooling and normalization (graphc/ops/conv.py): values against direct loops
written here, TF's padding rules, gradients against finite differences in float64, errors
that name the user's line, and a small CNN that learns."""

import time

import numpy as np
import pytest

import graphc as gc

# --- references: the definitions, one output cell at a time ------------------------------------


def _same_pads(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2


def _ref_conv(x, w, strides, padding):
    n, h, wd, c = x.shape
    kh, kw, _, co = w.shape
    sh, sw = strides
    if padding == "SAME":
        (oh, pt), (ow, pl) = _same_pads(h, kh, sh), _same_pads(wd, kw, sw)
    else:
        oh, ow, pt, pl = (h - kh) // sh + 1, (wd - kw) // sw + 1, 0, 0
    out = np.zeros((n, oh, ow, co))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    r, q = i * sh + a - pt, j * sw + b - pl
                    if 0 <= r < h and 0 <= q < wd:
                        out[:, i, j] += x[:, r, q] @ w[a, b]
    return out


def _ref_pool(x, k, strides, padding, reduce):
    """Pool over each window's real cells (padding never counts, as in TF)."""
    n, h, wd, c = x.shape
    if padding == "SAME":
        (oh, pt), (ow, pl) = _same_pads(h, k[0], strides[0]), _same_pads(wd, k[1], strides[1])
    else:
        oh, ow = (h - k[0]) // strides[0] + 1, (wd - k[1]) // strides[1] + 1
        pt = pl = 0
    out = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            r0, q0 = i * strides[0] - pt, j * strides[1] - pl
            win = x[:, max(r0, 0) : r0 + k[0], max(q0, 0) : q0 + k[1]]
            out[:, i, j] = reduce(win.reshape(n, -1, c), axis=1)
    return out


def _run(t, feed=None):
    with gc.Session() as sess:
        return sess.run(t, feed)


CONV_CASES = [
    ((2, 7, 7, 3), (3, 3, 3, 4), (1, 1), "SAME"),
    ((2, 8, 8, 2), (5, 5, 2, 3), (2, 2), "SAME"),  # odd padding total: 1 top, 2 bottom
    ((1, 9, 6, 2), (4, 2, 2, 5), (3, 2), "VALID"),
    ((3, 5, 5, 1), (5, 5, 1, 2), (1, 1), "VALID"),
]  # filter as large as the image


@pytest.mark.parametrize("xs,ws,strides,padding", CONV_CASES)
def test_conv2d_matches_the_direct_sum(rng, xs, ws, strides, padding):
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    y = gc.conv2d(gc.constant(x), gc.constant(w), strides=[1, *strides, 1], padding=padding)
    expected = _ref_conv(x, w, strides, padding)
    assert tuple(y.shape) == expected.shape  # the static shape rule agrees
    np.testing.assert_allclose(_run(y), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "ksize,strides,padding",
    [((2, 2), (2, 2), "SAME"), ((3, 3), (2, 2), "SAME"), ((3, 2), (1, 2), "VALID")],
)
def test_pools_match_the_direct_reduction_over_real_cells(rng, ksize, strides, padding):
    x = rng.standard_normal((2, 7, 5, 3))
    t = gc.constant(x)
    mx = gc.max_pool(t, ksize=[1, *ksize, 1], strides=[1, *strides, 1], padding=padding)
    av = gc.avg_pool(t, ksize=ksize, strides=strides, padding=padding)
    np.testing.assert_allclose(_run(mx), _ref_pool(x, ksize, strides, padding, np.max))
    np.testing.assert_allclose(_run(av), _ref_pool(x, ksize, strides, padding, np.mean))


def test_max_pool_ignores_padding_even_when_every_value_is_negative():
    x = -np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
    y = _run(gc.max_pool(gc.constant(x), 2, 2, "SAME"))
    assert y[0, :, :, 0].tolist() == [[-1, -3], [-7, -9]]


def test_conv2d_with_an_unknown_batch_runs_on_any_batch(rng):
    x = gc.placeholder(gc.float32, (None, 6, 6, 2))
    w = gc.constant(rng.standard_normal((3, 3, 2, 4)).astype(np.float32))
    y = gc.conv2d(x, w, strides=2, padding="SAME")
    assert tuple(y.shape) == (None, 3, 3, 4)
    gx, gw = gc.gradients(gc.reduce_sum(y * y), [x, w])
    assert tuple(gx.shape) == (None, 6, 6, 2) and tuple(gw.shape) == (3, 3, 2, 4)
    for n in (1, 5):
        xv = rng.standard_normal((n, 6, 6, 2)).astype(np.float32)
        yv, gxv = _run([y, gx], {x: xv})
        assert yv.shape == (n, 3, 3, 4) and yv.dtype == np.float32 and gxv.shape == xv.shape


def test_large_batches_are_convolved_in_slices_with_the_same_result(rng, monkeypatch):
    """Past a patch budget the kernels slice the batch (so a 10,000-image evaluation does not
    build gigabytes of patches); slicing must not change any value."""
    from graphc.ops import conv as C

    x, w = rng.standard_normal((7, 6, 6, 3)), rng.standard_normal((3, 3, 3, 4))
    args = ((2, 2), "SAME")
    y = C._conv2d(x, w, *args)
    g = rng.standard_normal(y.shape)
    whole = [
        y,
        C._conv2d_backprop_input(g, w, x.shape, *args),
        C._conv2d_backprop_filter(x, g, w.shape, *args),
    ]
    monkeypatch.setattr(C, "_PATCH_BUDGET", 2 * 3 * 3 * 27)  # two examples per slice
    assert len(C._batch_slices(7, 3 * 3 * 27)) == 4
    sliced = [
        C._conv2d(x, w, *args),
        C._conv2d_backprop_input(g, w, x.shape, *args),
        C._conv2d_backprop_filter(x, g, w.shape, *args),
    ]
    for a, b in zip(whole, sliced, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# --- gradients against finite differences (float64) -------------------------------------------


@pytest.mark.parametrize("xs,ws,strides,padding", CONV_CASES[:3])
def test_conv2d_gradients(rng, xs, ws, strides, padding):
    gc.test.check_gradients(
        lambda x, w: gc.conv2d(x, w, strides, padding),
        [rng.standard_normal(xs), rng.standard_normal(ws)],
    )


def test_second_order_gradients_through_conv_and_pools(rng):
    """Gradients of gradients: the backprop ops differentiate through their adjoints."""

    def grad_of_loss(x, w):
        h = gc.tanh(gc.conv2d(x, w, 1, "SAME"))
        loss = gc.reduce_sum(gc.max_pool(h, 2, 2, "SAME") ** 2) + gc.reduce_sum(
            gc.avg_pool(h, 3, 2, "SAME") ** 2
        )
        return gc.gradients(loss, [x, w])

    gc.test.check_gradients(
        grad_of_loss, [rng.standard_normal((1, 5, 5, 2)), rng.standard_normal((3, 3, 2, 2))]
    )


def test_a_small_cnn_is_differentiable_end_to_end(rng):
    def net(x, w1, w2):
        h = gc.max_pool(gc.relu(gc.conv2d(x, w1, 1, "SAME")), 2, 2, "VALID")
        h = gc.avg_pool(gc.conv2d(h, w2, 2, "SAME"), 2, 1, "SAME")
        return gc.reduce_sum(h * h)

    # shift x away from relu's kink so finite differences see a smooth function
    gc.test.check_gradients(
        net,
        [
            rng.standard_normal((2, 6, 6, 1)) + 0.1,
            rng.standard_normal((3, 3, 1, 3)),
            rng.standard_normal((2, 2, 3, 2)),
        ],
    )


# --- normalization ---------------------------------------------------------------------------


def test_batch_normalization_is_tfs_formula(rng):
    x = rng.standard_normal((4, 3))
    mean, var = x.mean(0), x.var(0)
    scale, offset = rng.standard_normal(3), rng.standard_normal(3)
    y = gc.batch_normalization(gc.constant(x), mean, var, offset, scale, 1e-3)
    np.testing.assert_allclose(
        _run(y), (x - mean) / np.sqrt(var + 1e-3) * scale + offset, rtol=1e-12
    )
    bare = gc.batch_normalization(gc.constant(x), mean, var, None, None, 1e-3)
    np.testing.assert_allclose(_run(bare), (x - mean) / np.sqrt(var + 1e-3), rtol=1e-12)


def test_batch_normalization_with_moments_is_differentiable(rng):
    def bn(x, scale, offset):
        mean, var = gc.nn.moments(x, axes=[0, 1, 2])
        return gc.batch_normalization(x, mean, var, offset, scale, 1e-3)

    gc.test.check_gradients(
        bn, [rng.standard_normal((2, 3, 3, 4)), rng.standard_normal(4), rng.standard_normal(4)]
    )


def test_layer_normalization_normalizes_each_example(rng):
    x = rng.standard_normal((5, 8)) * 3 + 2
    y = _run(gc.layer_normalization(gc.constant(x), epsilon=0.0))
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=1), 1, rtol=1e-10)
    gc.test.check_gradients(
        lambda t, g, b: gc.layer_normalization(t, scale=g, offset=b),
        [x, rng.standard_normal(8), rng.standard_normal(8)],
    )


# --- errors name the user's line ----------------------------------------------------------------


def test_channel_mismatch_names_both_tensors_and_this_line():
    x = gc.placeholder(gc.float32, (None, 8, 8, 3), name="images")
    w = gc.Variable(gc.zeros((3, 3, 1, 4)), name="kernel")
    with pytest.raises(gc.ShapeError) as e:
        gc.conv2d(x, w, 1, "SAME")
    msg = str(e.value)
    assert "3 channels" in msg and "kernel" in msg and "test_conv.py" in msg


def test_unknown_image_size_is_refused_with_a_hint():
    x = gc.placeholder(gc.float32, (None, None, None, 3))
    with pytest.raises(gc.ShapeError, match="static height, width"):
        gc.max_pool(x, 2, 2, "SAME")


def test_bad_padding_and_window_that_does_not_fit():
    x = gc.placeholder(gc.float32, (None, 4, 4, 1))
    with pytest.raises(gc.ShapeError, match="SAME"):
        gc.max_pool(x, 2, 2, "FULL")
    with pytest.raises(gc.ShapeError, match="does not fit"):
        gc.conv2d(x, gc.zeros((5, 5, 1, 1)), 1, "VALID")
    with pytest.raises(gc.ShapeError, match="dilations"):
        gc.conv2d(x, gc.zeros((3, 3, 1, 1)), 1, "SAME", dilations=2)


def test_integer_images_are_a_dtype_error():
    x = gc.placeholder(gc.int32, (None, 4, 4, 1))
    with pytest.raises(gc.DTypeError, match="floating"):
        gc.avg_pool(x, 2, 2, "VALID")


# --- a small CNN learns ------------------------------------------------------------------------


def make_digits(n, rng, size=8, classes=4):
    """Blurry images of ``classes`` fixed prototypes, shifted by up to one pixel, with noise."""
    protos = np.random.default_rng(99).random((classes, size, size)) > 0.6
    labels = rng.integers(0, classes, n)
    imgs = protos[labels].astype(np.float32)
    for i, (dy, dx) in enumerate(rng.integers(-1, 2, (n, 2))):
        imgs[i] = np.roll(imgs[i], (dy, dx), axis=(0, 1))
    imgs += rng.normal(0, 0.3, imgs.shape).astype(np.float32)
    return imgs[..., None], labels


def test_a_small_cnn_trains_on_synthetic_digits_quickly(rng):
    xs, ys = make_digits(512, rng)
    x = gc.placeholder(gc.float32, (None, 8, 8, 1))
    y = gc.placeholder(gc.int32, (None,))
    w1 = gc.Variable(gc.truncated_normal((3, 3, 1, 8), stddev=0.3, seed=1))
    w2 = gc.Variable(gc.truncated_normal((4 * 4 * 8, 4), stddev=0.1, seed=2))
    b2 = gc.Variable(gc.zeros((4,)))
    h = gc.max_pool(gc.relu(gc.conv2d(x, w1, 1, "SAME")), 2, 2, "SAME")
    logits = gc.reshape(h, (-1, 4 * 4 * 8)) @ w2 + b2
    loss = gc.reduce_mean(gc.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    params = [w1, w2, b2]
    grads = gc.gradients(loss, params)
    step = gc.group(*[gc.assign_sub(p, 0.5 * g) for p, g in zip(params, grads, strict=True)])
    accuracy = gc.reduce_mean(
        gc.cast(gc.equal(gc.argmax(logits, 1), gc.cast(y, gc.int64)), gc.float32)
    )
    start = time.perf_counter()
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        before = sess.run(loss, {x: xs, y: ys})
        for _ in range(6):
            for i in range(0, 512, 64):
                sess.run(step, {x: xs[i : i + 64], y: ys[i : i + 64]})
        after, acc = sess.run([loss, accuracy], {x: xs, y: ys})
    assert after < before / 3
    assert acc > 0.9
    assert time.perf_counter() - start < 20
