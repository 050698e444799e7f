"""Matrix products compiled for the CPU (float32, 2-D), for the numpy executor.

The reference kernel is ``np.matmul`` (OpenBLAS sgemm on one thread). At the narrow shapes
of a dense layer trained in small batches (64 x 3136 @ 3136 x 1024 forward, and its two
gradients: a product over K = 64, and one with the weight matrix transposed), OpenBLAS
reaches 55-77 GFLOP/s on this machine; a register-tiled loop in the style of
``conv_cpu``'s direct convolutions (one broadcast feeding several 16-lane FMAs) reaches
75-90:

  * ``nn``: B's rows are contiguous (``b[k, n]`` at ``k * ldb + n``), A is read with any
    element strides (so ``x.T`` of a row-major matrix costs no copy): tiles of R rows x up
    to 64 columns of C accumulate over blocks of KC rows of B, one broadcast of ``a[m, k]``
    feeding NV vector FMAs. Each block of B is packed strip by strip first (a dense layer's
    rows of 1024 floats lie 4 KiB apart, all in one cache set), and rows of A are taken a
    few at a time so that they stay in L1 while every strip uses them;
  * ``"t"``: B's columns are contiguous (``g @ w.T``, the input gradient of a dense layer):
    computed as ``(w @ g.T).T`` by the same loop, ``g.T`` packed (a has few rows), the
    result transposed into place.

Which kernel (or OpenBLAS) runs is decided per call from the operands' strides and shapes
(``plan``), by measurement (README, "Compiled matrix products"): the compiled loop runs on
narrow products large enough that the call's overhead does not matter; other products,
float64, batched products and every call before the library is loaded or without a
compiler (``GRAPHC_NO_CC=1``) keep ``np.matmul``. Results agree with it to float rounding
(sums in another order); NaN and Inf propagate as in any sum of products. Each call runs on
the calling thread."""

from __future__ import annotations

import hashlib

import numpy as np

from . import host_compile

_CXX = r"""// graphc.backends.gemm_cpu: register-tiled float32 matrix products
#include <string.h>
#include <vector>

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));

static inline v16 ld(const float* p) { return *(const v16u*)p; }
static inline void st(float* p, v16 v) { *(v16u*)p = v; }

static thread_local std::vector<float> BP;  // the packed block of B (every strip of it)

static float* grow(std::vector<float>& v, size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
}

// C[m, n] (+)= sum over kc of A[m, k] * B[k, n] for R rows x NV * 16 columns: A at a with
// element strides sam, sak; B's rows at b, ldb apart, every lane readable
template <int NV, int R>
static inline void nn_tile(const float* a, long long sam, long long sak, const float* b,
                           long long ldb, int kc, float* c, long long ldc, int nr, int nl,
                           bool first) {
    v16 acc[R][NV];
    const float* ar[R];
    for (int r = 0; r < R; ++r) ar[r] = a + (r < nr ? r : 0) * sam;
    for (int r = 0; r < R; ++r) {
        if (first || r >= nr) {
            for (int v = 0; v < NV; ++v) acc[r][v] = v16{};
        } else if (nl == 16 * NV) {
            for (int v = 0; v < NV; ++v) acc[r][v] = ld(c + r * ldc + 16 * v);
        } else {
            float tmp[64] = {0};
            for (int l = 0; l < nl; ++l) tmp[l] = c[r * ldc + l];
            for (int v = 0; v < NV; ++v) acc[r][v] = ld(tmp + 16 * v);
        }
    }
    if (sak == 1) {  // A's rows contiguous
        for (int k = 0; k < kc; ++k) {
            v16 bv[NV];
            for (int v = 0; v < NV; ++v) bv[v] = ld(b + k * ldb + 16 * v);
#pragma GCC unroll 32
            for (int r = 0; r < R; ++r) {
                float s = ar[r][k];
                for (int v = 0; v < NV; ++v) acc[r][v] += s * bv[v];
            }
        }
    } else if (sam == 1 && nr == R) {  // A's columns contiguous (a transposed matrix)
        const float* ak = a;
        for (int k = 0; k < kc; ++k, ak += sak) {
            v16 bv[NV];
            for (int v = 0; v < NV; ++v) bv[v] = ld(b + k * ldb + 16 * v);
#pragma GCC unroll 32
            for (int r = 0; r < R; ++r) {
                float s = ak[r];
                for (int v = 0; v < NV; ++v) acc[r][v] += s * bv[v];
            }
        }
    } else {
        for (int k = 0; k < kc; ++k) {
            v16 bv[NV];
            for (int v = 0; v < NV; ++v) bv[v] = ld(b + k * ldb + 16 * v);
#pragma GCC unroll 32
            for (int r = 0; r < R; ++r) {
                float s = ar[r][k * sak];
                for (int v = 0; v < NV; ++v) acc[r][v] += s * bv[v];
            }
        }
    }
    for (int r = 0; r < nr; ++r) {
        if (nl == 16 * NV) {
            for (int v = 0; v < NV; ++v) st(c + r * ldc + 16 * v, acc[r][v]);
        } else {
            float tmp[64];
            for (int v = 0; v < NV; ++v) st(tmp + 16 * v, acc[r][v]);
            for (int l = 0; l < nl; ++l) c[r * ldc + l] = tmp[l];
        }
    }
}

// rows [m0, m1) of C, columns [n0, n0 + nl) (one strip), over the block of K whose B is
// packed at bp (kc rows of 64 lanes, the first 16 * NV of them read)
template <int NV, int R>
static void nn_strip(const float* a, long long sam, long long sak, const float* bp, int kc,
                     float* c, long long ldc, long long m0, long long m1, long long n0, int nl,
                     bool first) {
    for (long long m = m0; m < m1; m += R) {
        int nr = m1 - m < R ? (int)(m1 - m) : R;
        nn_tile<NV, R>(a + m * sam, sam, sak, bp, 64, kc, c + m * ldc + n0, ldc, nr, nl, first);
    }
}

static void nn(const float* a, long long sam, long long sak, const float* b, long long ldb,
               float* c, long long ldc, long long M, long long N, long long K, int KC, int MC) {
    if (K == 0) {
        for (long long m = 0; m < M; ++m) memset(c + m * ldc, 0, sizeof(float) * N);
        return;
    }
    long long strips = (N + 63) / 64;
    for (long long k0 = 0; k0 < K; k0 += KC) {
        int kc = K - k0 < KC ? (int)(K - k0) : KC;
        // B's rows [k0, k0 + kc) packed strip by strip (kc rows of 64 lanes each, zero past
        // the last column), reading B row by row: its rows may lie 4 KiB apart, all in one
        // cache set, and a strip of them is 256 bytes per page
        float* bp = grow(BP, (size_t)strips * kc * 64);
        for (int k = 0; k < kc; ++k) {
            const float* src = b + (k0 + k) * ldb;
            for (long long s = 0; s < strips; ++s) {
                float* d = bp + ((size_t)s * kc + k) * 64;
                long long nl = N - 64 * s < 64 ? N - 64 * s : 64;
                memcpy(d, src + 64 * s, sizeof(float) * nl);
                if (nl < 64) memset(d + nl, 0, sizeof(float) * (64 - nl));
            }
        }
        for (long long m0 = 0; m0 < M; m0 += MC) {  // a block of A's rows, reused by every strip
            long long m1 = M - m0 < MC ? M : m0 + MC;
            const float* ak = a + k0 * sak;
            for (long long s = 0; s < strips; ++s) {
                int nl = N - 64 * s < 64 ? (int)(N - 64 * s) : 64, nv = (nl + 15) / 16;
                const float* ps = bp + (size_t)s * kc * 64;
                long long n0 = 64 * s;
                bool first = k0 == 0;
                if (nv == 4)
                    nn_strip<4, 6>(ak, sam, sak, ps, kc, c, ldc, m0, m1, n0, nl, first);
                else if (nv == 3)
                    nn_strip<3, 8>(ak, sam, sak, ps, kc, c, ldc, m0, m1, n0, nl, first);
                else if (nv == 2)
                    nn_strip<2, 12>(ak, sam, sak, ps, kc, c, ldc, m0, m1, n0, nl, first);
                else
                    nn_strip<1, 16>(ak, sam, sak, ps, kc, c, ldc, m0, m1, n0, nl, first);
            }
        }
    }
}

extern "C" {
// a[0..2]: A, B, C; then M, N, K, A's element strides (m, k), B's and C's row strides,
// the blocks of K and of M
void ENTRY(long long* a) {
    nn((const float*)a[0], a[6], a[7], (const float*)a[1], a[8], (float*)a[2], a[9], a[3],
       a[4], a[5], (int)a[10], (int)a[11]);
}
}
"""

_NAME = "gc_gemm_" + hashlib.sha1(_CXX.encode()).hexdigest()[:16]
_KERNEL = host_compile.FusedKernel(_NAME, _CXX.replace("ENTRY", _NAME), 0, ())
_state: dict = {"fn": None, "requested": False}

# Where the compiled loops run (measured against OpenBLAS on one thread, README "Compiled
# matrix products"): "nn" (b's rows contiguous) on products of at least NN_MIN_MACS
# multiply-adds that are narrow (one of M, N, K at most NARROW) or whose b has rows a
# multiple of 4 KiB apart (1024k float32 columns: 2000x3136 @ 3136x1024 ran 8% faster than
# OpenBLAS, where square products of 512 columns tie); "t" (b's columns contiguous: a @ w.T) when
# a has at most NARROW rows, K is at least T_MIN_K, N at least T_MIN_N (fewer columns: the
# packing and transposing cost more than the loop saves; an LSTM's 128x512 @ (128x512).T
# ran 1.7x OpenBLAS's time) and the product has T_MIN_MACS.
NARROW = 128
NN_MIN_MACS = 1 << 25
T_MIN_K = 512
T_MIN_N = 256
T_MIN_MACS = 1 << 22


def _blocks(n):
    """Rows of B per packed block, and rows of A per block: every strip of the packed block
    is used by a few rows of A at a time, while those rows stay in L1 (measured at the
    dense layer's shapes: README, "Compiled matrix products")."""
    return 512, (12 if n > 64 else 1 << 30)


def request() -> None:
    """Build (or load from the disk cache) the library, once per process, in the background
    unless ``GRAPHC_CC_SYNC=1``; until it is loaded ``np.matmul`` runs."""
    host_compile.request_library(_state, _KERNEL)


def _estrides(x):
    """Element strides of float32 ``x``, or None when a stride is not a whole element."""
    s = x.strides
    if any(v % 4 for v in s):
        return None
    return tuple(v // 4 for v in s)


def plan(a, b):
    """How compiled kernels compute ``a @ b`` (2-D float32 views): ``"nn"`` (b's rows are
    contiguous), ``"t"`` (b's columns are: ``(b.T @ a.T).T``, a.T packed when its rows are
    not contiguous), or None for ``np.matmul``."""
    if a.ndim != 2 or b.ndim != 2:
        return None
    (m, k), n = a.shape, b.shape[1]
    # (the cheap tests first: most products of a plan are small, and this runs per call)
    macs = m * n * k
    if macs < T_MIN_MACS and macs < NN_MIN_MACS:
        return None
    if a.dtype.char != "f" or b.dtype.char != "f":
        return None
    sa, sb = a.strides, b.strides  # bytes
    if (sa[0] | sa[1] | sb[0] | sb[1]) & 3:
        return None  # not whole elements
    if sb[1] == 4 and macs >= NN_MIN_MACS and (min(m, n, k) <= NARROW or sb[0] % 4096 == 0):
        return "nn"
    if sb[0] == 4 and m <= NARROW and k >= T_MIN_K and n >= T_MIN_N and macs >= T_MIN_MACS:
        return "t"
    return None


def _nn(a, b, c):
    """c = a @ b by the compiled loop; b's and c's rows contiguous."""
    (m, k), n = a.shape, b.shape[1]
    sa, sb, sc = _estrides(a), _estrides(b), _estrides(c)
    ptr = host_compile.address
    call = np.array(
        [ptr(a), ptr(b), ptr(c), m, n, k, sa[0], sa[1], sb[0], sc[0], *_blocks(n)], np.int64
    )
    _state["fn"](ptr(call))


def matmul(a, b, transpose_a=False, transpose_b=False, out=None):
    """``ops.linalg``'s matmul kernel, compiled where ``plan`` says so, else ``np.matmul``."""
    if transpose_a:
        a = a.T if a.ndim == 2 else np.swapaxes(a, -1, -2)
    if transpose_b:
        b = b.T if b.ndim == 2 else np.swapaxes(b, -1, -2)
    kind = plan(a, b) if _state["fn"] is not None else None
    if kind is None:
        return np.matmul(a, b, out=out)
    shape = (a.shape[0], b.shape[1])
    if kind == "t":  # (b.T @ a.T).T: b.T's rows are contiguous, a.T is made so
        ct = np.empty(shape[::-1], np.float32)
        _nn(b.T, np.ascontiguousarray(a.T), ct)
        if out is None:
            return ct.T.copy()
        out[...] = ct.T
        return out
    if out is not None and out.dtype == np.float32 and out.shape == shape:
        sc = _estrides(out)
        if sc is not None and sc[1] == 1 and not _overlaps(out, a, b):
            _nn(a, b, out)
            return out
    dst = np.empty(shape, np.float32)
    _nn(a, b, dst)
    if out is None:
        return dst
    out[...] = dst
    return out


def _overlaps(out, a, b):
    return np.may_share_memory(out, a) or np.may_share_memory(out, b)


__all__ = ["matmul", "plan", "request"]
