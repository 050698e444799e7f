"""Linear regression, the TensorFlow 1.x tutorial, in graphc.

The classic TF1 program (17 points, per-sample gradient descent in a feed_dict loop,
the cost printed every 50 epochs) with only the import changed: placeholders of unknown
shape, ``GradientDescentOptimizer(...).minimize(cost)``, ``sess.run(optimizer, feed_dict)``.
At the end the fitted line is compared with the least-squares fit, and, when matplotlib
is installed, data and line are saved to a PNG.

    python examples/linear_regression.py [--epochs 1000] [--plot linear_regression.png]
"""

import argparse

import numpy as np
from linreg_data import X, Y  # run as a script: examples/ is on sys.path

import graphc as gc

# The tutorial's data (linreg_data.py also writes it as .npy feeds for linear_regression.g).
train_X = np.asarray(X)
train_Y = np.asarray(Y)
test_X = np.asarray([6.83, 4.668, 8.9, 7.91, 5.7, 8.7, 3.1, 2.1])
test_Y = np.asarray([1.84, 2.273, 3.2, 2.831, 2.92, 3.24, 1.35, 1.03])
n_samples = train_X.shape[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--display-step", type=int, default=50)
    parser.add_argument(
        "--plot",
        default="linear_regression.png",
        help="PNG to write when matplotlib is installed ('' to skip)",
    )
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)

    # tf Graph Input
    X = gc.placeholder("float")
    Y = gc.placeholder("float")

    # Set model weights
    W = gc.Variable(rng.standard_normal(), name="weight")
    b = gc.Variable(rng.standard_normal(), name="bias")

    # Construct a linear model
    pred = gc.add(gc.multiply(X, W), b)

    # Mean squared error
    cost = gc.reduce_sum(gc.pow(pred - Y, 2)) / (2 * n_samples)
    optimizer = gc.train.GradientDescentOptimizer(args.learning_rate).minimize(cost)

    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        for epoch in range(args.epochs):
            for x, y in zip(train_X, train_Y, strict=True):
                sess.run(optimizer, feed_dict={X: x, Y: y})
            if (epoch + 1) % args.display_step == 0:
                c = sess.run(cost, feed_dict={X: train_X, Y: train_Y})
                print(
                    f"Epoch: {epoch + 1:04d} cost= {c:.9f} W= {sess.run(W):.6f} "
                    f"b= {sess.run(b):.6f}"
                )

        print("Optimization Finished!")
        training_cost = sess.run(cost, feed_dict={X: train_X, Y: train_Y})
        w_fit, b_fit = sess.run([W, b])
        print(f"Training cost= {training_cost:.9f} W= {w_fit:.6f} b= {b_fit:.6f}")

        testing_cost = sess.run(
            gc.reduce_sum(gc.pow(pred - Y, 2)) / (2 * test_X.shape[0]),
            feed_dict={X: test_X, Y: test_Y},
        )
        print(f"Testing cost= {testing_cost:.9f}")
        print(f"Absolute mean square loss difference: {abs(training_cost - testing_cost):.9f}")

    slope, intercept = np.polyfit(train_X, train_Y, 1)
    print(f"Least-squares fit: W= {slope:.6f} b= {intercept:.6f}")
    _plot(args.plot, w_fit, b_fit)
    return w_fit, b_fit


def _plot(path, w, b):
    if not path:
        return
    try:
        import matplotlib
    except ImportError:
        print('matplotlib is not installed: no plot (pip install "graphc-compiler[examples]")')
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot(train_X, train_Y, "ro", label="Original data")
    ax.plot(test_X, test_Y, "bo", label="Testing data")
    xs = np.linspace(min(train_X.min(), test_X.min()), max(train_X.max(), test_X.max()), 2)
    ax.plot(xs, w * xs + b, label="Fitted line")
    ax.legend()
    fig.savefig(path)
    plt.close(fig)
    print(f"Plot saved to {path}")


if __name__ == "__main__":
    main()
