"""gc.layers: dense / dropout / flatten / batch_norm / Sequential and graph.summary()."""

import numpy as np
import pytest

import graphc as gc


def test_dense_creates_named_variables_and_computes_affine_map(rng):
    x = gc.placeholder(gc.float32, (None, 3))
    y = gc.layers.dense(
        x,
        2,
        activation=gc.relu,
        kernel_initializer=gc.layers.constant_initializer(0.5),
        bias_initializer=gc.layers.constant_initializer(-1.0),
    )
    assert y.shape == (None, 2)
    assert [v.op.name for v in gc.trainable_variables()] == ["dense/kernel", "dense/bias"]
    z = gc.layers.dense(y, 4, use_bias=False)
    assert [v.op.name for v in gc.trainable_variables()][-1] == "dense_1/kernel"
    xv = rng.standard_normal((5, 3)).astype(np.float32)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        got, _ = sess.run([y, z], {x: xv})
    np.testing.assert_allclose(
        got, np.maximum(xv.sum(1, keepdims=True) * 0.5 - 1, 0) * np.ones((1, 2)), rtol=1e-6
    )


def test_glorot_initializer_is_seeded_and_bounded():
    gc.set_random_seed(1)
    x = gc.placeholder(gc.float32, (None, 30))
    gc.layers.dense(x, 20)
    kernel = gc.trainable_variables()[0]
    values = []
    for _ in range(2):
        with gc.Session() as sess:
            sess.run(gc.global_variables_initializer())
            values.append(sess.run(kernel))
    np.testing.assert_array_equal(values[0], values[1])
    assert np.abs(values[0]).max() <= np.sqrt(6 / 50) and values[0].std() > 0.1


def test_dropout_and_flatten():
    x = gc.placeholder(gc.float32, (None, 2, 3))
    flat = gc.layers.flatten(x)
    assert flat.shape == (None, 6)
    kept = gc.layers.dropout(flat, rate=0.5)  # training=False by default
    dropped = gc.layers.dropout(flat, rate=0.5, training=True, seed=3)
    xv = np.ones((100, 2, 3), np.float32)
    with gc.Session() as sess:
        a, b = sess.run([kept, dropped], {x: xv})
    np.testing.assert_array_equal(a, np.ones((100, 6)))
    assert set(np.unique(b)) == {0.0, 2.0} and 0.4 < (b == 0).mean() < 0.6
    with pytest.raises(gc.ShapeError, match="static"):
        gc.layers.flatten(gc.placeholder(gc.float32, (None, None)))


def test_batch_norm_training_statistics_and_moving_averages(rng):
    x = gc.placeholder(gc.float64, (None, 3))
    training = gc.placeholder_with_default(True, ())
    y = gc.layers.batch_norm(x, momentum=0.5, epsilon=0.0, training=training)
    updates = gc.get_default_graph().get_collection(gc.layers.UPDATE_OPS)
    assert len(updates) == 2
    names = {v.op.name for v in gc.global_variables()}
    assert {"batch_normalization/moving_mean", "batch_normalization/moving_variance"} <= names
    assert {v.op.name for v in gc.trainable_variables()} == {
        "batch_normalization/gamma",
        "batch_normalization/beta",
    }
    xv = rng.normal(3, 2, (50, 3))
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        out, *_ = sess.run([y] + updates, {x: xv})
        np.testing.assert_allclose(out.mean(0), 0, atol=1e-10)
        np.testing.assert_allclose(out.std(0), 1, rtol=1e-8)
        mm, mv = sess.run(gc.global_variables()[2:4])
        np.testing.assert_allclose(mm, 0.5 * xv.mean(0))
        np.testing.assert_allclose(mv, 0.5 + 0.5 * xv.var(0))
        inference = sess.run(y, {x: xv, training: False})
    np.testing.assert_allclose(inference, (xv - mm) / np.sqrt(mv))


def test_sequential_shares_variables_between_calls_and_summary():
    model = gc.layers.Sequential(
        [
            gc.layers.Flatten(),
            gc.layers.Dense(8, activation=gc.relu),
            gc.layers.Dropout(0.25),
            gc.layers.Dense(3),
        ]
    )
    x = gc.placeholder(gc.float32, (None, 2, 2), name="x")
    train_logits = model(x, training=True)
    test_logits = model(x, training=False)
    assert train_logits.shape == test_logits.shape == (None, 3)
    assert len(model.variables) == 4 and len(gc.trainable_variables()) == 4
    gc.train.AdamOptimizer().minimize(gc.reduce_sum(train_logits))  # its slots are not params
    lines = []
    text = gc.get_default_graph().summary(print_fn=lines.append)
    assert lines == [text]
    assert "dense (Dense)" in text and "(?, 8)" in text and "kernel(4, 8)" in text
    assert "Total params: 67" in text  # 4*8+8 + 8*3+3, counted once
    assert "Adam" not in text
    xv = np.ones((2, 2, 2), np.float32)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        a, b = sess.run([test_logits, model(x)], {x: xv})
    np.testing.assert_array_equal(a, b)


def test_dense_needs_a_static_feature_dimension():
    with pytest.raises(gc.ShapeError, match="last dimension"):
        gc.layers.dense(gc.placeholder(gc.float32, (None, None)), 3)


def test_conv2d_and_max_pooling_layers_train():
    gc.set_random_seed(0)
    x = gc.placeholder(gc.float32, (None, 6, 6, 1))
    h = gc.layers.conv2d(x, 4, 3, padding="same", activation=gc.relu)
    p = gc.layers.max_pooling2d(h, 2, 2)
    assert h.shape == (None, 6, 6, 4) and p.shape == (None, 3, 3, 4)
    out = gc.layers.dense(gc.layers.flatten(p), 1)
    loss = gc.reduce_mean(gc.square(out - 1.0))
    train = gc.train.AdamOptimizer(0.05).minimize(loss)
    assert [v.op.name for v in gc.trainable_variables()][:2] == ["conv2d/kernel", "conv2d/bias"]
    xv = np.random.default_rng(0).random((8, 6, 6, 1)).astype(np.float32)
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        first = sess.run(loss, {x: xv})
        for _ in range(30):
            sess.run(train, {x: xv})
        assert sess.run(loss, {x: xv}) < 0.1 * first


def test_summary_lists_each_layer_once():
    model = gc.layers.Sequential([gc.layers.Dense(2), gc.layers.Dense(1)])
    x = gc.placeholder(gc.float32, (None, 3))
    model(x)
    model(x)
    text = model.summary(print_fn=lambda s: None)
    assert text.count("(Dense)") == 2 and "dense_1 (Dense)" in text
    assert "Total params: 11" in text
