"""The two sides of a side-by-side script (control_tf_compare.py, seq2seq_tf_compare.py):
``tf PATH`` evaluates the programs with TensorFlow's ``tf.compat.v1`` and saves the values;
``gc PATH`` evaluates them with ``graphc.compat.v1`` and prints the largest difference per
program. TensorFlow is never a dependency of graphc."""

import sys

import numpy as np


def evaluate_programs(tf, progs, bound):
    """``{name: value}`` of ``progs`` (``{name: (fetch, feed)}``) in one session, every
    non-scalar trainable variable loaded with the same uniform draws on both sides."""
    rng = np.random.default_rng(1)
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for w in tf.trainable_variables():
            shape = [int(d) for d in w.shape]
            if shape:
                w.load(rng.uniform(-bound, bound, shape).astype(np.float32), sess)
        return {name: np.asarray(sess.run(fetch, feed)) for name, (fetch, feed) in progs.items()}


def compare_main(evaluate, width=28):
    """Run the side that ``sys.argv`` names; ``evaluate(tf) -> {name: array}``. Returns
    graphc's values on the graphc side, None on TensorFlow's."""
    side, path = sys.argv[1], sys.argv[2]
    if side == "tf":
        import tensorflow.compat.v1 as tf

        tf.disable_v2_behavior()
        np.savez(path, **evaluate(tf))
        return None
    import graphc.compat.v1 as tf

    theirs = np.load(path)
    ours = evaluate(tf)
    print(f"{'program':<{width}} {'max |graphc - TF|':>18}  value shape")
    for name, value in ours.items():
        if value.shape != theirs[name].shape:
            print(f"{name:<{width}} {'shape differs':>18}  {value.shape} vs {theirs[name].shape}")
            continue
        diff = float(np.max(np.abs(value.astype(np.float64) - theirs[name]))) if value.size else 0
        print(f"{name:<{width}} {diff:>18.2e}  {value.shape}")
    return ours
