"""An MLP classifier trained with gc.layers, gc.data.batches and sparse softmax
cross-entropy: the define-and-run counterpart of a Dataset/DataLoader training loop.

The data are scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download;
``pip install "graphc-compiler[examples]"``). Without scikit-learn a synthetic 10-class problem of
the same shape stands in, and the script says so.

    python examples/mlp_digits.py [--epochs 30] [--synthetic]
"""

import argparse

import numpy as np

import graphc as gc


def load_digits_or_synthetic(force_synthetic=False, seed=0):
    """``(x_train, y_train, x_test, y_test, name)`` with an 80/20 split."""
    rng = np.random.default_rng(seed)
    try:
        if force_synthetic:
            raise ImportError
        from sklearn.datasets import load_digits

        digits = load_digits()
        x, y, name = digits.data / 16.0, digits.target, "scikit-learn digits"
    except ImportError:
        # ten noisy prototypes in 64 dimensions: the digits' shape without their content
        prototypes = rng.uniform(0, 1, (10, 64))
        y = rng.integers(0, 10, 1797)
        x = np.clip(prototypes[y] + rng.normal(0, 0.5, (1797, 64)), 0, 1)
        name = "synthetic (scikit-learn not installed)"
    order = rng.permutation(len(y))
    x, y = x[order].astype(np.float32), y[order].astype(np.int64)
    cut = int(0.8 * len(y))
    return x[:cut], y[:cut], x[cut:], y[cut:], name


def build(hidden=64, learning_rate=0.01, seed=1):
    gc.set_random_seed(seed)
    x = gc.placeholder(gc.float32, (None, 64), name="x")
    labels = gc.placeholder(gc.int64, (None,), name="labels")
    training = gc.placeholder_with_default(False, (), name="training")
    model = gc.layers.Sequential(
        [
            gc.layers.Dense(hidden, activation=gc.relu),
            gc.layers.Dropout(0.1, seed=seed),
            gc.layers.Dense(10),
        ]
    )
    logits = model(x, training=training)
    loss = gc.reduce_mean(
        gc.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )
    accuracy = gc.reduce_mean(gc.cast(gc.equal(gc.argmax(logits, 1), labels), gc.float32))
    train = gc.train.AdamOptimizer(learning_rate).minimize(loss)
    return x, labels, training, loss, accuracy, train


def main(argv=None):
    parser = argparse.ArgumentParser(description="MLP on the digits with graphc")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--synthetic", action="store_true", help="skip scikit-learn")
    args = parser.parse_args(argv)

    x_train, y_train, x_test, y_test, name = load_digits_or_synthetic(args.synthetic)
    print(f"dataset: {name}: {len(y_train)} train / {len(y_test)} test examples")
    x, labels, training, loss, accuracy, train = build()
    gc.get_default_graph().summary()

    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        epoch, seen, total = 0, 0, 0.0
        for xb, yb in gc.data.batches(
            x_train, y_train, batch_size=args.batch_size, shuffle=True, seed=0, epochs=args.epochs
        ):
            _, batch_loss = sess.run([train, loss], {x: xb, labels: yb, training: True})
            total += float(batch_loss) * len(yb)
            seen += len(yb)
            if seen >= len(y_train):  # one epoch done
                epoch += 1
                if epoch % 5 == 0 or epoch == args.epochs:
                    acc = sess.run(accuracy, {x: x_test, labels: y_test})
                    print(
                        f"epoch {epoch:3d}  train loss {total / seen:.4f}  test accuracy {acc:.4f}"
                    )
                seen, total = 0, 0.0
        test_accuracy = float(sess.run(accuracy, {x: x_test, labels: y_test}))
    print(f"final test accuracy: {test_accuracy:.4f}")
    return test_accuracy


if __name__ == "__main__":
    main()
