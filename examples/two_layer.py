"""The two-layer ReLU network of the autograd tutorial, three ways.

    N, D_in, H, D_out = 64, 1000, 100, 10
    y_pred = relu(x @ w1) @ w2;  loss = sum((y_pred - y) ** 2);  SGD, lr 1e-6, 500 steps

1. numpy, with the backward pass written by hand (the tutorial's first version);
2. graphc, with the backward pass derived by ``gc.gradients`` (autograd's counterpart);
3. graphc, with ReLU as a user op registered with its own forward and backward
   (``gc.register_op``: the counterpart of a custom ``autograd.Function``).

All three start from the same numbers; the script checks that their losses and final
weights agree and prints the loss every 100 steps.

    python examples/two_layer.py [--steps 500]
"""

import argparse

import numpy as np

import graphc as gc

N, D_in, H, D_out = 64, 1000, 100, 10
LEARNING_RATE = 1e-6


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D_in)).astype(np.float32)
    y = rng.standard_normal((N, D_out)).astype(np.float32)
    w1 = rng.standard_normal((D_in, H)).astype(np.float32)
    w2 = rng.standard_normal((H, D_out)).astype(np.float32)
    return x, y, w1, w2


def numpy_manual(x, y, w1, w2, steps):
    """Forward and backward by hand, as in the tutorial."""
    w1, w2 = w1.copy(), w2.copy()
    losses = []
    for _ in range(steps):
        h = x @ w1
        h_relu = np.maximum(h, 0)
        y_pred = h_relu @ w2
        losses.append(float(np.square(y_pred - y).sum()))
        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h_relu.T @ grad_y_pred
        grad_h_relu = grad_y_pred @ w2.T
        grad_h = grad_h_relu.copy()
        grad_h[h < 0] = 0
        grad_w1 = x.T @ grad_h
        w1 -= LEARNING_RATE * grad_w1
        w2 -= LEARNING_RATE * grad_w2
    return losses, w1, w2


def graphc_train(x, y, w1, w2, steps, relu):
    """The same network as a graph; ``relu`` builds the activation node."""
    graph = gc.Graph()
    with graph.as_default():
        x_in = gc.placeholder(gc.float32, (None, D_in), name="x")
        y_in = gc.placeholder(gc.float32, (None, D_out), name="y")
        v1 = gc.Variable(w1, name="w1")
        v2 = gc.Variable(w2, name="w2")
        y_pred = relu(x_in @ v1) @ v2
        loss = gc.reduce_sum((y_pred - y_in) ** 2)
        grad_w1, grad_w2 = gc.gradients(loss, [v1, v2])
        step = gc.group(v1.assign_sub(LEARNING_RATE * grad_w1),
                        v2.assign_sub(LEARNING_RATE * grad_w2))
        with gc.Session(graph=graph) as sess:
            sess.run(gc.global_variables_initializer())
            losses = [float(sess.run([step, loss], {x_in: x, y_in: y})[1]) for _ in range(steps)]
            return losses, sess.run(v1), sess.run(v2)


def _relu_forward(h):
    return np.maximum(h, 0)


def _relu_backward(op, grad_output):
    """d relu(h) / dh is 1 where h > 0: the tutorial's ``grad_input[input < 0] = 0``."""
    (h,) = op.inputs
    return [grad_output * gc.cast(h > 0, grad_output.dtype)]


my_relu = gc.register_op("example_relu", forward=_relu_forward, gradient=_relu_backward)


def main(argv=None):
    parser = argparse.ArgumentParser(description="two-layer ReLU network three ways")
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args(argv)
    x, y, w1, w2 = data()

    runs = {
        "numpy, manual backward": numpy_manual(x, y, w1, w2, args.steps),
        "graphc, gc.gradients": graphc_train(x, y, w1, w2, args.steps, gc.relu),
        "graphc, registered ReLU op": graphc_train(x, y, w1, w2, args.steps, my_relu),
    }
    names = list(runs)
    print("step  " + "  ".join(f"{n:>28}" for n in names))
    for t in range(args.steps):
        if t % 100 == 99 or t == args.steps - 1 or t == 0:
            print(f"{t + 1:4d}  " + "  ".join(f"{runs[n][0][t]:28.4f}" for n in names))

    reference = runs[names[0]]
    for name in names[1:]:
        losses, v1, v2 = runs[name]
        # float32 sums in a different order: agreement to float32 precision, not bit-exactness
        np.testing.assert_allclose(losses, reference[0], rtol=1e-3)
        np.testing.assert_allclose(v1, reference[1], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(v2, reference[2], rtol=1e-3, atol=1e-3)
    print(f"The three agree: final loss {reference[0][-1]:.4f} (started at {reference[0][0]:.1f})")


if __name__ == "__main__":
    main()
