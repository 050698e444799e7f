"""GPU contenders for the benchmark runner: graphc's cupy backend (eager launches, and with
its step captured as a CUDA Graph) and PyTorch CUDA eager. They join only where a GPU is
present; ``contenders(name)`` is empty otherwise.

Wiring, in ``benchmarks/__main__.py``::

    from . import gpu
    contenders = WORKLOADS[name]()
    contenders.update(gpu.contenders(name))

Every contender returns only after the GPU is done (graphc copies its fetches out; torch
synchronizes), so the runner's wall-clock medians compare like with like.
"""

from __future__ import annotations

import numpy as np

import graphc as gc

from .workloads import CHAIN_N, _mlp_data, _peer, chain_graphc, mlp_graph, torch_sgd_step


def unavailable_reason():
    """None when cupy sees a CUDA device, else why the GPU contenders are absent."""
    from graphc.backends.cupy_backend import gpu_unavailable_reason

    return gpu_unavailable_reason()


def _torch_cuda():
    torch = _peer("torch")
    return torch if torch is not None and torch.cuda.is_available() else None


def _graphc_runner(graph, fetches, feeds, init=None, cuda_graph=False):
    """``step()`` running ``fetches`` on the cupy backend, optionally as a replayed CUDA Graph."""
    from graphc.backends.cupy_backend import CupyExecutable

    sess = gc.Session(graph=graph, backend="cupy")
    if init is not None:
        sess.run(init)
    if not cuda_graph:
        return lambda: sess.run(fetches, feeds)
    plan = gc.compile(
        fetches, feed_shapes={t: np.shape(v) for t, v in feeds.items()}, backend="cupy", graph=graph
    )
    exe = CupyExecutable(plan, cuda_graph=True)
    ctx = sess._ctx  # the session's variables, as sess.run would use
    return lambda: exe(ctx, feeds)


def _mlp(n, sizes, loss_kind, lr):
    X, Y, W0 = _mlp_data(n, sizes)
    graph, x, y, train, loss, init = mlp_graph(W0, loss_kind, lr)
    out = {"graphc cupy": _graphc_runner(graph, [train, loss], {x: X, y: Y}, init)}
    out["graphc cupy+graph"] = _graphc_runner(
        graph, [train, loss], {x: X, y: Y}, init, cuda_graph=True
    )
    torch = _torch_cuda()
    if torch is not None:
        dev = torch.device("cuda")
        tX, tY = torch.from_numpy(X), torch.from_numpy(Y)
        tW = [torch.tensor(w, device=dev, requires_grad=True) for w in W0]

        def torch_step():
            # feeds cross the bus every step, as graphc's do; .item() is the fetch (it syncs)
            return torch_sgd_step(torch, tW, tX.to(dev), tY.to(dev), loss_kind, lr).item()

        out["torch cuda eager"] = torch_step
    return out


def _chain():
    X = np.random.default_rng(0).standard_normal(CHAIN_N).astype(np.float32)
    graph = gc.Graph()
    with graph.as_default():
        x = gc.placeholder(gc.float32, (None,), name="x")
        s = chain_graphc(x)
    out = {
        "graphc cupy": _graphc_runner(graph, s, {x: X}),
        "graphc cupy+graph": _graphc_runner(graph, s, {x: X}, cuda_graph=True),
    }
    torch = _torch_cuda()
    if torch is not None:
        tX = torch.from_numpy(X)

        def torch_chain():
            v = tX.to("cuda")
            y = torch.tanh(torch.exp(-v * v) * 3.0 + 1.0)
            return torch.sqrt(torch.abs(y * y - 0.5) * 2.0 + 1.0).sum().item()

        out["torch cuda eager"] = torch_chain
    return out


_BUILDERS = {
    "mlp2": lambda: _mlp(64, (1000, 100, 10), "sse", 1e-4),
    "mlp3": lambda: _mlp(256, (784, 512, 512, 10), "xent", 0.05),
    "chain": _chain,
}


def contenders(workload: str) -> dict:
    """The GPU contenders for ``workload`` ({} without a GPU or for CPU-only workloads)."""
    if workload not in _BUILDERS or unavailable_reason() is not None:
        return {}
    return _BUILDERS[workload]()
