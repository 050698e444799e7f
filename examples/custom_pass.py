"""A user pass: rewrite ``x * 2`` into ``x + x`` over the compiler's networkx graph, and
show the plan report change while the result stays the same.

    python examples/custom_pass.py
"""

import numpy as np

import graphc as gc
import graphc.passes as gp


def double_to_add(g):
    """x * 2 -> x + x (an add is cheaper than a multiply by a constant on some targets)."""
    for n in gp.find(g, "multiply"):
        x, c = gp.inputs(g, n)
        if gp.constant_value(g, c) == 2:
            gp.replace_uses(g, n, gp.add_op(g, "add", [x, x], like=n))
    gp.remove_dead(g)  # the multiply and its constant are no longer read


def main():
    x = gc.placeholder(gc.float32, (None, 4), name="x")
    y = gc.tanh(x * 2.0, name="y")
    feeds = {x: np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)}
    for passes in (None, [double_to_add]):
        plan = gc.compile(y, feed_shapes={x: (2, 4)}, optimize=1, passes=passes)
        print(f"--- passes={[p.__name__ for p in passes or []]}")
        print(plan.report())
        with gc.Session(optimize=1, passes=passes) as sess:
            print("result:", np.array2string(sess.run(y, feeds), precision=4))
    np.testing.assert_allclose(
        gc.Session(passes=[double_to_add]).run(y, feeds), np.tanh(feeds[x] * 2), rtol=1e-6
    )
    print("x * 2 -> x + x: same result")


if __name__ == "__main__":
    main()
