"""graphc basics: the TensorFlow 1.x first steps, and tensor creation in graph form.

The define-by-run calls a PyTorch user knows become graph nodes that a session runs:

    torch.zeros(2, 3)          gc.zeros((2, 3))
    torch.ones(2, 3)           gc.ones((2, 3))
    torch.randn(2, 3)          gc.random_normal((2, 3), seed=...)
    torch.rand(2, 3)           gc.random_uniform((2, 3), seed=...)
    torch.randint(0, 10, (5,)) gc.random_int((5,), 0, 10, seed=...)
    torch.randperm(8)          gc.random_permutation(8, seed=...)
    torch.zeros_like(x)        gc.zeros_like(x)          (ones_like alike)
    x.view(-1, 4)              gc.reshape(x, (-1, 4))
    x.add_(1)                  v.assign_add(...) on a gc.Variable

Run: python examples/basics.py
"""

import numpy as np

import graphc as gc


def tf1_basics(sess):
    print("== TF1-style basics ==")
    a = gc.constant(2, name="a")
    b = gc.constant(3, name="b")
    print("a + b =", sess.run(a + b), "   a * b =", sess.run(a * b))

    # placeholders: declared now, fed later
    x = gc.placeholder(gc.int16, name="x")
    y = gc.placeholder(gc.int16, name="y")
    add, mul = gc.add(x, y), gc.multiply(x, y)
    print(
        "x + y =",
        sess.run(add, feed_dict={x: 2, y: 3}),
        "   x * y =",
        sess.run(mul, feed_dict={x: 2, y: 3}),
    )

    # matmul of constants: (1x2) @ (2x1) = [[12]]
    m1 = gc.constant([[3.0, 3.0]])
    m2 = gc.constant([[2.0], [2.0]])
    print("matmul([[3, 3]], [[2], [2]]) =", sess.run(gc.matmul(m1, m2)))


def tensor_creation(sess):
    print("== tensor creation, as graph nodes ==")
    z = gc.zeros((2, 3))
    o = gc.ones((2, 3), dtype=gc.int32)
    n = gc.random_normal((2, 3), seed=0)
    u = gc.random_uniform((2, 3), seed=1)
    i = gc.random_int((5,), 0, 10, seed=2)
    p = gc.random_permutation(8, seed=3)
    results = sess.run(
        {"zeros": z, "ones": o, "normal": n, "uniform": u, "randint": i, "randperm": p}
    )
    for name, value in results.items():
        print(f"{name:9s} {value.dtype}{value.shape}:\n{value}")

    x = gc.placeholder(gc.float32, shape=(None, 3), name="batch")
    like = {"zeros_like": gc.zeros_like(x), "ones_like": gc.ones_like(x)}
    print("*_like of a (2, 3) feed:", sess.run(like, {x: np.full((2, 3), 7.0)}))

    flat = gc.range(12, dtype=gc.float32)
    view = gc.reshape(flat, (-1, 4))  # -1 is inferred when the graph is built
    print("reshape(range(12), (-1, 4)) has static shape", tuple(view.shape))
    print(sess.run(view))


def in_place_update(sess):
    print("== in-place update: assign_add is the graph's add_ ==")
    v = gc.Variable(gc.ones((2, 2)), name="v")
    add_ = v.assign_add(gc.fill((2, 2), 5.0))
    sess.run(v.initializer)
    print("before:", sess.run(v).tolist())
    sess.run(add_)
    print("after v.assign_add(5):", sess.run(v).tolist())


def main():
    with gc.Session() as sess:
        tf1_basics(sess)
        tensor_creation(sess)
        in_place_update(sess)


if __name__ == "__main__":
    main()
