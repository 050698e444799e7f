"""Data-parallel training with graphc.distributed: the same script on one process or many.

    python examples/distributed_mlp.py                       # one process
    mpiexec -n 2 python -m mpi4py examples/distributed_mlp.py  # two ranks (the mpi extra:
                                           # pip install "graphc-compiler[mpi]")

Every rank builds the same graph, starts from rank 0's weights (the broadcast), trains on
its own shard of every epoch and averages the gradients with the other ranks before each
update, so all ranks hold the same weights throughout. ``-m mpi4py`` ends the whole job
when one rank fails. Rank 0 prints and saves.
"""

import numpy as np

import graphc as gc
import graphc.distributed as gd


def main(epochs=20, batch_size=32):
    gd.init()
    rank, size = gd.rank(), gd.size()
    rng = np.random.default_rng(0)  # the same data on every rank
    X = rng.standard_normal((1024, 20)).astype(np.float32)
    Y = (X[:, :5].sum(axis=1) > 0).astype(np.int64)

    gc.set_random_seed(rank)  # different initial weights: the broadcast fixes them
    x = gc.placeholder(gc.float32, (None, 20), name="x")
    labels = gc.placeholder(gc.int64, (None,), name="labels")
    logits = gc.layers.dense(gc.layers.dense(x, 64, activation=gc.relu), 2)
    loss = gc.reduce_mean(
        gc.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )
    opt = gd.DistributedOptimizer(gc.train.AdamOptimizer(0.01))
    train = opt.minimize(loss)
    sync = gd.broadcast_global_variables(root_rank=0)
    saver = gc.train.Saver()

    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        sess.run(sync)
        # batch_size rows per rank: a global batch of batch_size * size rows per step
        for xb, yb in gc.data.batches(
            X, Y, batch_size=batch_size, shuffle=True, seed=0, epochs=epochs, shard=(rank, size)
        ):
            sess.run(train, {x: xb, labels: yb})
        final = sess.run(loss, {x: X, labels: Y})
        if rank == 0:
            print(f"{size} rank(s): loss on all {len(X)} rows = {final:.4f}")
        saver.save(sess, "distributed_mlp.ckpt")  # written by rank 0 only


if __name__ == "__main__":
    main()
