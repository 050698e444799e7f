"""The two-layer ReLU network of the autograd tutorial, three ways.

    N, D_in, H, D_out = 64, 1000, 100, 10
    y_pred = relu(x @ w1) @ w2;  loss = sum((y_pred - y) ** 2);  SGD, lr 1e-6, 500 steps

1. numpy, with the backward pass written by hand (the tutorial's first version);
2. graphc, with the backward pass derived by ``gc.gradients`` (autograd's counterpart);
3. graphc, with ReLU as a user op registered with its own forward and backward
   (``gc.register_op``: the counterpart of a custom ``autograd.Function``).

All three start from the same numbers; the script checks that their losses and final
weights agree and prints the loss every 100 steps. It computes in float64 by default so
that agreement can be checked tightly; ``--dtype float32`` is the tutorial's precision
(then late, tiny losses agree only to float32 rounding of large cancelling sums).

    python examples/two_layer.py [--steps 500] [--dtype float32]
"""

import argparse

import numpy as np

import graphc as gc

N, D_in, H, D_out = 64, 1000, 100, 10
LEARNING_RATE = 1e-6


# relative tolerance for (losses, weights) when comparing the three runs
TOLERANCES = {"float64": (1e-7, 1e-7), "float32": (5e-2, 1e-3)}


def data(dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D_in)).astype(dtype)
    y = rng.standard_normal((N, D_out)).astype(dtype)
    w1 = rng.standard_normal((D_in, H)).astype(dtype)
    w2 = rng.standard_normal((H, D_out)).astype(dtype)
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
        dtype = gc.as_dtype(x.dtype)
        x_in = gc.placeholder(dtype, (None, D_in), name="x")
        y_in = gc.placeholder(dtype, (None, D_out), name="y")
        v1 = gc.Variable(w1, name="w1")
        v2 = gc.Variable(w2, name="w2")
        y_pred = relu(x_in @ v1) @ v2
        loss = gc.reduce_sum((y_pred - y_in) ** 2)
        grad_w1, grad_w2 = gc.gradients(loss, [v1, v2])
        step = gc.group(
            v1.assign_sub(LEARNING_RATE * grad_w1), v2.assign_sub(LEARNING_RATE * grad_w2)
        )
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
    parser.add_argument("--dtype", choices=sorted(TOLERANCES), default="float64")
    args = parser.parse_args(argv)
    x, y, w1, w2 = data(args.dtype)

    runs = {
        "numpy, manual backward": numpy_manual(x, y, w1, w2, args.steps),
        "graphc, gc.gradients": graphc_train(x, y, w1, w2, args.steps, gc.relu),
        "graphc, registered ReLU op": graphc_train(x, y, w1, w2, args.steps, my_relu),
    }
    names = list(runs)
    print("step  " + "  ".join(f"{n:>28}" for n in names))
    for t in range(args.steps):
        if t % 100 == 99 or t == args.steps - 1 or t == 0:
            print(f"{t + 1:4d}  " + "  ".join(f"{runs[n][0][t]:28.6g}" for n in names))

    reference = runs[names[0]]
    loss_rtol, weight_tol = TOLERANCES[args.dtype]
    for name in names[1:]:
        losses, v1, v2 = runs[name]
        # the same sums in another order: agreement to rounding, not bit-exactness
        np.testing.assert_allclose(losses, reference[0], rtol=loss_rtol)
        np.testing.assert_allclose(v1, reference[1], rtol=weight_tol, atol=weight_tol)
        np.testing.assert_allclose(v2, reference[2], rtol=weight_tol, atol=weight_tol)
    print(f"The three agree: final loss {reference[0][-1]:.6g} (started at {reference[0][0]:.6g})")


if __name__ == "__main__":
    main()
