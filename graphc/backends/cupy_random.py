"""Seeded random draws on the device that give the CPU backend's numbers, bit for bit.

The SPEC's contract for random ops is "same seed, same numbers on every backend". The CPU
draws with numpy's ``Generator`` over PCG64, one generator per random node and session
(``RunContext.rng``). PCG64 is a 128-bit linear congruential generator with an output
permutation, so it can be run as a counter-based generator: the state after ``i`` steps is
``A_i * s + C_i (mod 2**128)`` with ``A_i = M**i`` and ``C_i = inc * (M**(i-1) + ... + 1)``,
and the ``i``-th 64-bit output is ``rotr64(hi ^ lo, hi >> 58)`` of that state. Written with
the array module ``xp`` over uint64 halves and 32-bit limbs (nothing wider exists on the
device), every output of a draw is computed in parallel; numpy standing in for cupy runs the
very same code, and the tests compare it with ``Generator.uniform`` bit for bit.

What is drawn here: ``random_uniform`` of a floating dtype (and so every dropout mask), which
numpy computes as ``low + (high - low) * ((raw >> 11) * 2**-53)`` in float64, rounded to the
dtype: exact IEEE operations, one raw output per element, so the device and the host agree
exactly. What stays a host step, and why: ``random_normal`` and ``truncated_normal`` (numpy's
ziggurat consumes a variable number of raw outputs per sample, from tables numpy does not
expose, and its rare slow path calls ``exp``/``log1p``, whose last bit differs between libm
and CUDA), integer ``random_uniform`` (Lemire's rejection sampling, also a variable count)
and ``random_permutation`` (a sequential shuffle). They are initializers in the usual plans,
not steps of a steady training loop.

The device keeps each node's generator state (two uint64) and advances it itself; the host
generator is advanced by the same count (``bit_generator.advance``, pure host arithmetic, no
copy), so the two never diverge and a later host draw of the node continues the stream. A
host generator that moved on its own (a host draw of the node) is uploaded again.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from ..ops.random import RANDOM_UNIFORM

_M = 0x2360ED051FC65DA44385DF649FCCF645  # PCG64's multiplier (numpy's PCG_DEFAULT_MULTIPLIER_128)
_MASK64 = (1 << 64) - 1
_U32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


def _halves(value: int):
    """A 128-bit integer as numpy uint64 (hi, lo)."""
    return np.uint64(value >> 64), np.uint64(value & _MASK64)


def _mulhi64(xp, a, b):
    """The high 64 bits of the 128-bit products ``a * b`` (uint64 arrays), from 32-bit limbs."""
    a0, a1, b0, b1 = a & _U32, a >> _S32, b & _U32, b >> _S32
    p01, p10 = a0 * b1, a1 * b0
    mid = ((a0 * b0) >> _S32) + (p01 & _U32) + (p10 & _U32)  # < 3 * 2**32: no overflow
    return a1 * b1 + (p01 >> _S32) + (p10 >> _S32) + (mid >> _S32)


def mul128(xp, a, b):
    """``a * b mod 2**128`` for (hi, lo) pairs of uint64 arrays (wrapping multiplies)."""
    (ah, al), (bh, bl) = a, b
    return _mulhi64(xp, al, bl) + al * bh + ah * bl, al * bl


def add128(xp, a, b):
    (ah, al), (bh, bl) = a, b
    lo = al + bl
    return ah + bh + (lo < al).astype(np.uint64), lo


def jump_tables(xp, n):
    """``(A, G)`` for ``i = 1..n``, each a (hi, lo) pair of uint64 arrays of length n:
    ``A_i = M**i`` and ``G_i = M**(i-1) + ... + 1`` (mod 2**128), so that ``i`` steps take a
    state ``s`` to ``A_i * s + G_i * inc``. Built by doubling: ``log2(n)`` rounds of xp ops."""
    mh, ml = _halves(_M)
    a = (xp.asarray([mh], dtype=np.uint64), xp.asarray([ml], dtype=np.uint64))
    g = (xp.zeros(1, dtype=np.uint64), xp.ones(1, dtype=np.uint64))
    while a[0].size < n:
        k = a[0].size
        ak = (a[0][k - 1 :], a[1][k - 1 :])  # M**k, broadcast over the first k entries
        gk = (g[0][k - 1 :], g[1][k - 1 :])
        a2 = mul128(xp, a, ak)  # M**(j + k)
        g2 = add128(xp, gk, mul128(xp, ak, g))  # G_k + M**k * G_j
        a = tuple(xp.concatenate([x, y]) for x, y in zip(a, a2, strict=True))
        g = tuple(xp.concatenate([x, y]) for x, y in zip(g, g2, strict=True))
    return tuple(x[:n] for x in a), tuple(x[:n] for x in g)


def raw_outputs(xp, state, a, c):
    """PCG64's next ``n`` 64-bit outputs from ``state`` ((hi, lo) of 1-element uint64 arrays),
    given the jump tables ``a`` and ``c = G * inc``; also the state after them."""
    hi, lo = add128(xp, mul128(xp, a, state), c)
    rot = hi >> np.uint64(58)
    x = hi ^ lo
    out = (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))
    return out, (hi[-1:], lo[-1:])


def uniform_from_raw(xp, raw, minval, maxval, dtype):
    """numpy's ``Generator.uniform``: ``low + (high - low) * next_double``, in float64."""
    low = np.float64(minval)
    span = np.float64(maxval) - low
    doubles = (raw >> np.uint64(11)).astype(np.float64) * np.float64(1.0 / 9007199254740992.0)
    return (low + span * doubles).astype(dtype, copy=False)


class DeviceRandom:
    """A session's random generators on the device: per random node, its PCG64 state as a
    (2,) uint64 device array, the host generator it mirrors and that generator's state when
    the device last matched it. The jump tables of ``i = 1..n`` are a prefix of those for a
    larger ``n``, so one table (and one ``G * inc`` per node) of the largest draw so far serves
    every size. ``uploads`` counts state uploads."""

    def __init__(self, xp):
        self.xp = xp
        self.states: dict = {}  # node -> (device (2,) uint64, host generator, host state int)
        self.tables = None  # (A, G) for i = 1..size
        self.offsets: dict = {}  # node -> C = G * inc, as long as the tables
        self.uploads = 0
        self._lock = threading.Lock()

    def draw(self, ctx, node, n):
        """The node's next ``n`` raw 64-bit outputs, on the device; the host generator is
        advanced past them too."""
        xp = self.xp
        with self._lock:
            gen = ctx.rng(node)
            host = gen.bit_generator.state["state"]
            entry = self.states.get(node)
            if entry is None or entry[1] is not gen or entry[2] != host["state"]:
                state = xp.asarray(np.array(_halves(host["state"]), dtype=np.uint64))
                entry = self.states[node] = (state, gen, host["state"])
                self.uploads += 1
            if n == 0:
                return xp.zeros(0, dtype=np.uint64)
            state = entry[0]
            if self.tables is None or self.tables[0][0].size < n:
                self.tables = jump_tables(xp, 1 << (n - 1).bit_length())  # room to grow
                self.offsets.clear()
            a, g = self.tables
            c = self.offsets.get(node)
            if c is None:
                inc = tuple(xp.asarray([h], dtype=np.uint64) for h in _halves(host["inc"]))
                c = self.offsets[node] = mul128(xp, g, inc)
            a, c = tuple(x[:n] for x in a), tuple(x[:n] for x in c)
            raw, (hi, lo) = raw_outputs(xp, (state[0:1], state[1:2]), a, c)
            state[0:1] = hi
            state[1:2] = lo
            gen.bit_generator.advance(n)  # the host mirror, by pure host arithmetic
            self.states[node] = (state, gen, gen.bit_generator.state["state"]["state"])
            return raw


_STATE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_STATE_LOCK = threading.Lock()


def device_random(ctx, xp) -> DeviceRandom:
    """The DeviceRandom of the session that owns ``ctx`` (one per array module)."""
    with _STATE_LOCK:
        per_ctx = _STATE.setdefault(ctx, {})
        state = per_ctx.get(id(xp))
        if state is None:
            state = per_ctx[id(xp)] = DeviceRandom(xp)
        return state


def _random_uniform(xp, ctx, node, out, *like, shape, dtype, seed, minval, maxval):
    shape = tuple(like[0].shape) if like else tuple(shape)
    n = int(np.prod(shape, dtype=np.int64))
    raw = device_random(ctx, xp).draw(ctx, node, n)
    values = uniform_from_raw(xp, raw, minval, maxval, dtype.np).reshape(shape)
    if out is not None:
        xp.copyto(out, values)
        return out
    return values


def _floating(attrs):
    return attrs["dtype"].is_floating


# The device lowerings of stateful ops: ``fn(xp, ctx, node, out, *inputs, **attrs)``, and
# for each the attrs it handles (the others run on the host).
STATE_LOWERINGS = {RANDOM_UNIFORM: (_random_uniform, _floating)}
