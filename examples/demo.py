"""``make demo``, the Python part: build the two-layer network of the README in Python,
let graphc differentiate it, and train it with ``GradientDescentOptimizer``, printing the
loss as it falls; then save the trained weights and restore them into a fresh session.

    python examples/demo.py [--steps 200]
"""

import argparse
import os
import tempfile

import numpy as np

import graphc as gc


def main(argv=None):
    parser = argparse.ArgumentParser(description="graphc demo (Python API)")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 1000)).astype(np.float32)
    Y = rng.standard_normal((64, 10)).astype(np.float32)

    x = gc.placeholder(gc.float32, shape=(None, 1000), name="x")
    y = gc.placeholder(gc.float32, shape=(None, 10), name="y")
    w1 = gc.Variable(gc.random_normal((1000, 100), stddev=0.01, seed=1), name="w1")
    w2 = gc.Variable(gc.random_normal((100, 10), stddev=0.01, seed=2), name="w2")
    pred = gc.relu(x @ w1) @ w2
    loss = gc.reduce_sum((pred - y) ** 2, name="loss")
    train = gc.train.GradientDescentOptimizer(2e-4).minimize(loss, name="train")
    saver = gc.train.Saver()

    print(
        f"graphc demo (Python): 1000-100-10 ReLU network, {len(gc.get_default_graph())} "
        "graph nodes including the gradients"
    )
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        for step in range(args.steps):
            _, value = sess.run([train, loss], feed_dict={x: X, y: Y})
            if step % 20 == 0 or step == args.steps - 1:
                print(f"  step {step:4d}  loss {value:.6g}")
        final = sess.run(loss, {x: X, y: Y})
        with tempfile.TemporaryDirectory(prefix="graphc-demo-") as tmp:
            path = saver.save(sess, os.path.join(tmp, "two_layer.ckpt"))
            with gc.Session() as fresh:
                saver.restore(fresh, path)
                restored = fresh.run(loss, {x: X, y: Y})
    print(f"  checkpoint round trip: loss {final:.6g} before saving, {restored:.6g} restored")
    assert restored == final


if __name__ == "__main__":
    main()
