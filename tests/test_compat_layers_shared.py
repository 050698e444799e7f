"""tf.layers builds its bias and checks its input with the helpers graphc.layers shares."""

import pytest

import graphc as gc
import graphc.compat.v1 as tf
from graphc.errors import ShapeError


def test_dense_names_itself_when_the_last_dimension_is_unknown():
    with gc.Graph().as_default():
        x = tf.placeholder(tf.float32, shape=(None, None))
        with pytest.raises(ShapeError, match=r"tf\.layers\.dense needs the last dimension"):
            tf.layers.dense(x, 3)


@pytest.mark.parametrize("use_bias", [True, False])
def test_bias_is_made_only_when_asked_for(use_bias):
    with gc.Graph().as_default():
        x = tf.placeholder(tf.float32, shape=(None, 5, 5, 2))
        y = tf.layers.conv2d(x, 4, 3, use_bias=use_bias, activation=tf.nn.relu, name="c")
        y2 = tf.layers.conv2d_transpose(y, 2, 2, strides=2, use_bias=use_bias, name="t")
        names = sorted(v.op.name for v in tf.global_variables())
        expected = (
            ["c/bias", "c/kernel", "t/bias", "t/kernel"] if use_bias else ["c/kernel", "t/kernel"]
        )
        assert names == expected
        assert y.shape.as_list() == [None, 3, 3, 4] and y2.shape.as_list() == [None, 6, 6, 2]
