"""Winograd convolutions for the CPU (float32 NHWC, stride 1), beside ``conv_cpu``'s direct loops.

``conv_cpu``'s direct loops already run near this machine's FMA peak, so the way to beat
oneDNN on the tutorial CNN's 5x5 32->64 layer is fewer multiplies: Winograd's minimal
filtering algorithm F(m x m, r x r) (Lavin & Gray 2016; as cuDNN and NNPACK do). Each
output tile of m x m pixels is computed from an a x a input tile (a = m + r - 1) as

    Y = A^T [ sum over input channels of (G g G^T) * (B^T d B) ] A

so a tile costs a^2 multiplies per (input, output) channel pair instead of m^2 r^2:
F(2x2, 5x5) takes 36 for 4 outputs where the direct loop takes 100 (2.8x fewer).

  * the transforms are straight-line code generated here from exact rational matrices
    (Toom-Cook on the points 0, 1, -1, 1/2, -2 and infinity, solved in fractions; zero
    coefficients emit nothing), vectorized over 16 channels (NHWC keeps channels adjacent);
  * the filter is transformed once per call into U[36][C][O'] (O' = O rounded up to 16);
  * tiles are processed in blocks of ``TILES`` so that the block's transformed input
    V[36][tiles][C'] and products P[36][tiles][O'] stay in L2 (each position's block a
    cache line past a multiple of 4 KiB, else the 36 positions of a tile share one L1 set);
    each position's products are one small GEMM [tiles x C] @ [C x O], written like
    ``conv_cpu``'s kernels: register tiles of R tiles x up to 64 output channels, one
    broadcast of a V value feeding NV 16-lane FMAs (R x NV = 24 accumulators);
  * the output transform writes the valid part of each tile (images whose size is not a
    multiple of m get partial tiles; the padding beyond the image is zeros).

``conv2d_backprop_input`` at stride 1 is the convolution of the output gradient with the
flipped, channel-swapped filter (``conv_cpu`` already computes it so): the same kernel.

The filter gradient is a correlation of the input with the output gradient, summed over
every pixel; here the gradient's 2x2 tiles play the filter and the 5x5 filter gradient is
computed in 3x3 blocks (four, overlapping the filter's edge), each by F(3x3, 2x2) (points
0, 1, -1): 16 multiplies per block and tile, 64 per 4 pixels where the direct loop takes
100. Per block and position, one GEMM [C x tiles] @ [tiles x O] accumulates over every
block of tiles; one output transform per (c, o) ends it.

Numerics: Winograd trades multiplies for conditioning; F(2x2, 5x5)'s transformed values
are larger than the outputs they cancel into. Against the float64 result on random data
its error is 1.7-5.7x the direct loop's (rms; 1.1-4.8x the largest), within the tolerance
of ``tests/test_conv_cpu.py`` up to ``MAX_CHANNELS`` input channels (its error grows with
them, as the direct sum's, from a larger start); these points gave the smallest error of
the sets tried ({0, +-1, +-2} and {0, +-1, +-1/2}: about 2.4x larger). F(5x5, 2x2) in one
block was 5-10x less accurate than the direct loop on the filter gradient, so the 3x3
blocks of F(3x3, 2x2) took its place; each block of tiles is summed apart and then added to
the total, which makes its error 0.1-1.7x the direct loop's (whose one running sum per
entry loses more the more pixels there are).
``tests/test_winograd_cpu.py`` bounds both.

Where it runs (chosen by ``python -m benchmarks --workload conv-ops``; README, "Compiled
convolutions and pooling"): float32, stride 1, square 5x5 filters, at least
``MIN_CHANNELS`` input and output channels (the first, 1-channel layer of a CNN keeps the
direct loop: one useful lane in 16), and for the forward pass and the input gradient at
most ``MAX_CHANNELS`` input channels. Like ``conv_cpu`` it is built by ``host_compile`` in
the background and is skipped until loaded, without a compiler and with
``GRAPHC_NO_CC=1``."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import numpy as np

from . import host_compile

# interpolation points of the Toom-Cook construction (plus the point at infinity)
POINTS = (0, 1, -1, Fraction(1, 2), -2)
VARIANTS = {5: 2}  # filter size r -> output tile m (tile a = m + r - 1 = 6)
# input channels of the convolution Winograd runs (for an input gradient: the forward pass's
# output channels): its error grows with their number like the direct sum's, from a larger
# start; up to 64 it stays within float32 rounding as tests/test_conv_cpu.py defines it (at
# most 0.8 of that tolerance measured; 96 and more reach it), so more take the direct loop
MIN_CHANNELS, MAX_CHANNELS = 16, 64
TILES = 48


# --- the transform matrices, exactly ---------------------------------------------------------


def _solve(rows, rhs):
    """x with rows @ x == rhs, exactly (a consistent system of Fractions)."""
    aug = [list(r) + [b] for r, b in zip(rows, rhs, strict=True)]
    n, pivots, top = len(rows[0]), [], 0
    for col in range(n):
        p = next((i for i in range(top, len(aug)) if aug[i][col] != 0), None)
        if p is None:
            continue
        aug[top], aug[p] = aug[p], aug[top]
        aug[top] = [v / aug[top][col] for v in aug[top]]
        for i in range(len(aug)):
            if i != top and aug[i][col] != 0:
                f = aug[i][col]
                aug[i] = [v - f * w for v, w in zip(aug[i], aug[top], strict=True)]
        pivots.append(col)
        top += 1
    if any(row[-1] != 0 for row in aug[top:]):
        raise ValueError("inconsistent Winograd system")
    x = [Fraction(0)] * n
    for i, col in enumerate(pivots):
        x[col] = aug[i][-1]
    return x


def matrices(m, r, points=POINTS):
    """A^T (m x a), G (a x r), B^T (a x a) of F(m, r) on ``points`` and infinity: A^T is the
    Vandermonde matrix of the points, G's rows are scaled by 1 / prod(p_j - p_l), and B^T is
    the one matrix that makes y_i = sum_k d[i + k] g[k] hold for every d and g."""
    a = m + r - 1
    pts = [Fraction(p) for p in points[: a - 1]]
    at = [[p**i for p in pts] + [Fraction(int(i == m - 1))] for i in range(m)]
    g = []
    for j, p in enumerate(pts):
        f = Fraction(1)
        for q in pts[:j] + pts[j + 1 :]:
            f *= p - q
        g.append([p**k / f for k in range(r)])
    g.append([Fraction(int(k == r - 1)) for k in range(r)])
    bt = [[Fraction(0)] * a for _ in range(a)]
    lhs = [[at[i][j] * g[j][k] for j in range(a)] for i in range(m) for k in range(r)]
    for col in range(a):
        x = _solve(lhs, [Fraction(int(col == i + k)) for i in range(m) for k in range(r)])
        for j in range(a):
            bt[j][col] = x[j]
    return at, g, bt


def _lit(v: Fraction) -> str:
    return f"{float(v)!r}f"


def _transform(name, mat):
    """``out[i * os] = sum_k mat[i][k] * in[k * is]`` as straight-line code over v16."""
    lines = [f"static inline void {name}(const v16* in, int is, v16* out, int os) {{"]
    for i, row in enumerate(mat):
        terms = []
        for k, c in enumerate(row):
            if c == 0:
                continue
            x = f"in[{k} * is]"
            if c == 1:
                terms.append(("+", x))
            elif c == -1:
                terms.append(("-", x))
            else:
                terms.append(("+", f"{_lit(c)} * {x}"))
        if not terms:
            lines.append(f"  out[{i} * os] = v16{{}};")
            continue
        expr = ("-" if terms[0][0] == "-" else "") + terms[0][1]
        expr += "".join(f" {s} {x}" for s, x in terms[1:])
        lines.append(f"  out[{i} * os] = {expr};")
    lines.append("}")
    return "\n".join(lines)


def _variant(m, r):
    """A struct F<m>_<r> with the three 2-D transforms, each as a column then a row pass."""
    at, g, bt = matrices(m, r)
    a = m + r - 1
    nm = f"F{m}_{r}"
    return f"""
{_transform(nm + "_bt", bt)}
{_transform(nm + "_g", g)}
{_transform(nm + "_at", at)}
struct {nm} {{
    enum {{ M = {m}, R = {r}, A = {a} }};
    // d (A x A) -> B^T d B
    static inline void input(const v16* d, v16* out) {{
        v16 t[A * A];
        for (int j = 0; j < A; ++j) {nm}_bt(d + j, A, t + j, A);
        for (int i = 0; i < A; ++i) {nm}_bt(t + i * A, 1, out + i * A, 1);
    }}
    // g (R x R) -> G g G^T (A x A)
    static inline void filter(const v16* w, v16* out) {{
        v16 t[A * R];
        for (int j = 0; j < R; ++j) {nm}_g(w + j, R, t + j, R);
        for (int i = 0; i < A; ++i) {nm}_g(t + i * R, 1, out + i * A, 1);
    }}
    // p (A x A) -> A^T p A (M x M)
    static inline void output(const v16* p, v16* y) {{
        v16 t[M * A];
        for (int j = 0; j < A; ++j) {nm}_at(p + j, A, t + j, A);
        for (int i = 0; i < M; ++i) {nm}_at(t + i * A, 1, y + i * M, 1);
    }}
}};"""


_HEAD = r"""// graphc.backends.winograd_cpu: Winograd convolutions for float32 NHWC images, stride 1
#include <stdint.h>
#include <string.h>
#include <vector>

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));

static inline v16 ld(const float* p) { return *(const v16u*)p; }
static inline void st(float* p, v16 v) { *(v16u*)p = v; }
"""

_BODY = r"""
struct Scratch {
    std::vector<float> pad, u, v, m;
};
static thread_local Scratch S;

static float* grow(std::vector<float>& v, size_t n) {
    if (v.size() < n) v.resize(n);  // new floats are zeros
    return v.data();
}

struct WArgs {
    const float* x;  // (N, H, W, C)
    const float* w;  // conv: the filter (K, K, C, O); filter gradient: the gradient g
    float* out;      // conv: (N, OH, OW, O); filter gradient: dw (K, K, C, O)
    int N, H, W, C, O, K, pt, pl, OH, OW, T;
};

// Images [n0, n1) into xp (n1 - n0, Hp, Wp, Cp): the image at (pt, pl), zeros elsewhere.
// The padded images are walked in slices of about 4 MiB.
static void pad_images(const WArgs& a, int n0, int n1, int Hp, int Wp, int Cp, float* xp) {
    size_t img = (size_t)Hp * Wp * Cp;
    memset(xp, 0, img * (n1 - n0) * sizeof(float));
    for (int n = n0; n < n1; ++n)
        for (int h = 0; h < a.H; ++h) {
            int hp = h + a.pt;
            if (hp < 0 || hp >= Hp) continue;
            for (int w = 0; w < a.W; ++w) {
                int wp = w + a.pl;
                if (wp < 0 || wp >= Wp) continue;
                memcpy(xp + (size_t)(n - n0) * img + ((size_t)hp * Wp + wp) * Cp,
                       a.x + (((size_t)n * a.H + h) * a.W + w) * a.C, a.C * sizeof(float));
            }
        }
}

static int slice_images(const WArgs& a, size_t img) {
    int chunk = (int)((1u << 20) / img);
    return chunk < 1 ? 1 : chunk > a.N ? a.N : chunk;
}

// The input tiles [t0, t0 + nt) of the padded images xp (TH x TW tiles an image, STEP
// apart, the first at (dh, dw)), transformed: V[xi][tile][c], positions vstride apart.
template <class F>
static void input_tiles(const float* xp, size_t img, int Wp, int Cp, int TH, int TW, int step,
                        int dh, int dw, long long t0, int nt, float* V, size_t vstride) {
    const int A = F::A, AA = A * A;
    for (int tt = 0; tt < nt; ++tt) {
        long long t = t0 + tt, n = t / (TH * TW), q = t % (TH * TW);
        size_t h0 = (q / TW) * step + dh, w0 = (q % TW) * step + dw;
        const float* base = xp + n * img + (h0 * Wp + w0) * Cp;
        float* dst = V + (size_t)tt * Cp;
        for (int c0 = 0; c0 < Cp; c0 += 16) {
            v16 d[AA], v[AA];
            for (int i = 0; i < A; ++i)
                for (int j = 0; j < A; ++j)
                    d[i * A + j] = ld(base + ((size_t)i * Wp + j) * Cp + c0);
            F::input(d, v);
            for (int xi = 0; xi < AA; ++xi) st(dst + xi * vstride + c0, v[xi]);
        }
    }
}

// 16 lanes of channels [o0, o0 + nl) at src, zeros past nl
static inline v16 ld_lanes(const float* src, int nl) {
    if (nl == 16) return ld(src);
    v16 e = v16{};
    for (int l = 0; l < nl; ++l) e[l] = src[l];
    return e;
}

static inline void st_lanes(float* dst, v16 v, int nl) {
    if (nl == 16)
        st(dst, v);
    else
        for (int l = 0; l < nl; ++l) dst[l] = v[l];
}

// --- the convolution: F(m x m, r x r) --------------------------------------------------------

// p (rows of RR at stride ldm) = v (RR rows at stride ldv) @ u (K x NV * 16, rows at ldu)
template <int NV, int RR>
static inline void gemm_tile(const float* v, int ldv, const float* u, int ldu, int K, float* p,
                             int ldm) {
    v16 acc[RR][NV];
    for (int r = 0; r < RR; ++r)
        for (int q = 0; q < NV; ++q) acc[r][q] = v16{};
    for (int k = 0; k < K; ++k) {
        v16 wv[NV];
        for (int q = 0; q < NV; ++q) wv[q] = ld(u + (size_t)k * ldu + 16 * q);
#pragma GCC unroll 32
        for (int r = 0; r < RR; ++r) {
            float xs = v[(size_t)r * ldv + k];
            for (int q = 0; q < NV; ++q) acc[r][q] += xs * wv[q];
        }
    }
    for (int r = 0; r < RR; ++r)
        for (int q = 0; q < NV; ++q) st(p + (size_t)r * ldm + 16 * q, acc[r][q]);
}

template <int NV, int RR>
static void gemm_rows(const float* v, int ldv, const float* u, int ldu, int K, float* p, int ldm,
                      int rows) {
    for (int r0 = 0; r0 < rows; r0 += RR)
        gemm_tile<NV, RR>(v + (size_t)r0 * ldv, ldv, u, ldu, K, p + (size_t)r0 * ldm, ldm);
}

template <class F>
static void wino_conv(const WArgs& a) {
    const int M = F::M, R = F::R, A = F::A, AA = A * A;
    const int Cp = (a.C + 15) / 16 * 16, Op = (a.O + 15) / 16 * 16;
    const int TH = (a.OH + M - 1) / M, TW = (a.OW + M - 1) / M;
    const int Hp = TH * M + R - 1, Wp = TW * M + R - 1;
    const int T = a.T;
    // the filter, transformed: U[xi][c][Op]
    float* U = grow(S.u, (size_t)AA * a.C * Op);
    for (int c = 0; c < a.C; ++c)
        for (int o0 = 0; o0 < Op; o0 += 16) {
            v16 g[R * R], u[AA];
            int nl = a.O - o0 < 16 ? a.O - o0 : 16;
            for (int t = 0; t < R * R; ++t)
                g[t] = ld_lanes(a.w + ((size_t)t * a.C + c) * a.O + o0, nl);
            F::filter(g, u);
            for (int xi = 0; xi < AA; ++xi) st(U + ((size_t)xi * a.C + c) * Op + o0, u[xi]);
        }
    // one position's block after another, a cache line apart beyond their size: strides of a
    // multiple of 4 KiB would put all 36 positions of a tile in one L1 set
    const size_t vstride = (size_t)T * Cp + 16, pstride = (size_t)T * Op + 16;
    float* V = grow(S.v, AA * vstride);
    float* P = grow(S.m, AA * pstride);
    size_t img = (size_t)Hp * Wp * Cp;
    int chunk = slice_images(a, img);
    float* xp = grow(S.pad, img * chunk);
    for (int n0 = 0; n0 < a.N; n0 += chunk) {
        int nc = a.N - n0 < chunk ? a.N - n0 : chunk;
        pad_images(a, n0, n0 + nc, Hp, Wp, Cp, xp);
        long long tiles = (long long)nc * TH * TW;
        for (long long t0 = 0; t0 < tiles; t0 += T) {
            int nt = tiles - t0 < T ? (int)(tiles - t0) : T;
            input_tiles<F>(xp, img, Wp, Cp, TH, TW, M, 0, 0, t0, nt, V, vstride);
            int rows = (nt + 23) / 24 * 24;  // whole register tiles; rows past nt are unused
            for (int tt = nt; tt < rows; ++tt)
                for (int xi = 0; xi < AA; ++xi)
                    memset(V + xi * vstride + (size_t)tt * Cp, 0, Cp * sizeof(float));
            // the 36 products: P[xi] = V[xi] @ U[xi]
            for (int xi = 0; xi < AA; ++xi) {
                const float* vx = V + xi * vstride;
                float* px = P + xi * pstride;
                for (int g0 = 0; g0 < Op; g0 += 64) {
                    const float* ux = U + (size_t)xi * a.C * Op + g0;
                    int nv = (Op - g0) / 16;
                    if (nv >= 4)
                        gemm_rows<4, 6>(vx, Cp, ux, Op, a.C, px + g0, Op, rows);
                    else if (nv == 3)
                        gemm_rows<3, 8>(vx, Cp, ux, Op, a.C, px + g0, Op, rows);
                    else if (nv == 2)
                        gemm_rows<2, 12>(vx, Cp, ux, Op, a.C, px + g0, Op, rows);
                    else
                        gemm_rows<1, 12>(vx, Cp, ux, Op, a.C, px + g0, Op, rows);
                }
            }
            // output transform: the valid M x M part of each tile
            for (int tt = 0; tt < nt; ++tt) {
                long long t = t0 + tt, n = t / (TH * TW), q = t % (TH * TW);
                int oh0 = (int)(q / TW) * M, ow0 = (int)(q % TW) * M;
                int mh = a.OH - oh0 < M ? a.OH - oh0 : M, mw = a.OW - ow0 < M ? a.OW - ow0 : M;
                const float* src = P + (size_t)tt * Op;
                for (int o0 = 0; o0 < Op; o0 += 16) {
                    v16 p[AA], y[M * M];
                    for (int xi = 0; xi < AA; ++xi) p[xi] = ld(src + xi * pstride + o0);
                    F::output(p, y);
                    int nl = a.O - o0 < 16 ? a.O - o0 : 16;
                    for (int i = 0; i < mh; ++i)
                        for (int j = 0; j < mw; ++j) {
                            size_t pix = ((size_t)(n0 + n) * a.OH + oh0 + i) * a.OW + ow0 + j;
                            st_lanes(a.out + pix * a.O + o0, y[i * M + j], nl);
                        }
                }
            }
        }
    }
}

// --- the filter gradient: F(b x b, s x s) over b x b blocks of the filter --------------------
// The gradient's s x s tiles play the filter: block (bi, bj) of dw, dw[bi * b + i, bj * b + j]
// for i, j < b, is the sum over tiles of A^T [ (B^T d B)[c] * (G g G^T)[o] ] A, d the input
// tile at (bi * b, bj * b) past the gradient tile's pixel. Per block and position one GEMM
// [C x tiles] @ [tiles x O], accumulated over every block of tiles, then one output
// transform per (c, o). F(3x3, 2x2) (points 0, 1, -1) keeps the direct loop's accuracy where
// F(5x5, 2x2) in one block was 5-10x less accurate (the sum runs over every pixel).

// RR rows (input channels) x NV * 16 output channels, added into acc (rows at ldm)
template <int NV, int RR>
static inline void filter_tile(const float* v, int ldv, const float* gt, int ldg, int K,
                               float* acc, int ldm) {
    v16 s[RR][NV];  // this block's sum, then added to acc: long sums lose less
    for (int r = 0; r < RR; ++r)
        for (int q = 0; q < NV; ++q) s[r][q] = v16{};
    for (int k = 0; k < K; ++k) {
        v16 gv[NV];
        for (int q = 0; q < NV; ++q) gv[q] = ld(gt + (size_t)k * ldg + 16 * q);
        const float* vk = v + (size_t)k * ldv;
#pragma GCC unroll 32
        for (int r = 0; r < RR; ++r) {
            float xs = vk[r];
            for (int q = 0; q < NV; ++q) s[r][q] += xs * gv[q];
        }
    }
    for (int r = 0; r < RR; ++r)
        for (int q = 0; q < NV; ++q) {
            float* dst = acc + (size_t)r * ldm + 16 * q;
            st(dst, ld(dst) + s[r][q]);
        }
}

template <int NV, int RR>
static void filter_rows(const float* v, int ldv, const float* gt, int ldg, int K, float* acc,
                        int ldm, int rows) {
    for (int r0 = 0; r0 < rows; r0 += RR)
        filter_tile<NV, RR>(v + r0, ldv, gt, ldg, K, acc + (size_t)r0 * ldm, ldm);
}

template <class F>  // F(b, s): M = the filter block's size b, R = the gradient tile's s
static void wino_filter(const WArgs& a) {
    const int B = F::M, TS = F::R, A = F::A, AA = A * A;
    const int NB = (a.K + B - 1) / B;  // blocks per filter side
    const int Cp = (a.C + 15) / 16 * 16, Op = (a.O + 15) / 16 * 16;
    const int TH = (a.OH + TS - 1) / TS, TW = (a.OW + TS - 1) / TS;
    const int Hp = TH * TS + NB * B - 1, Wp = TW * TS + NB * B - 1;
    const int T = a.T, Crows = (a.C + 11) / 12 * 12 + 12;  // whole register tiles of rows
    const size_t vstride = (size_t)T * Cp + 16, gstride = (size_t)T * Op + 16;
    const size_t mstride = (size_t)Crows * Op + 16;
    float* V = grow(S.v, AA * vstride + 32);  // rows past C read up to 12 floats beyond
    float* Gt = grow(S.m, AA * gstride);
    float* Acc = grow(S.u, NB * NB * AA * mstride);
    memset(Acc, 0, NB * NB * AA * mstride * sizeof(float));
    size_t img = (size_t)Hp * Wp * Cp;
    int chunk = slice_images(a, img);
    float* xp = grow(S.pad, img * chunk);
    for (int n0 = 0; n0 < a.N; n0 += chunk) {
        int nc = a.N - n0 < chunk ? a.N - n0 : chunk;
        pad_images(a, n0, n0 + nc, Hp, Wp, Cp, xp);
        long long tiles = (long long)nc * TH * TW;
        for (long long t0 = 0; t0 < tiles; t0 += T) {
            int nt = tiles - t0 < T ? (int)(tiles - t0) : T;
            // the gradient tiles, transformed: Gt[xi][tile][o] (zeros past the image)
            for (int tt = 0; tt < nt; ++tt) {
                long long t = t0 + tt, n = t / (TH * TW), q = t % (TH * TW);
                int oh0 = (int)(q / TW) * TS, ow0 = (int)(q % TW) * TS;
                for (int o0 = 0; o0 < Op; o0 += 16) {
                    v16 gg[TS * TS], u[AA];
                    int nl = a.O - o0 < 16 ? a.O - o0 : 16;
                    for (int i = 0; i < TS; ++i)
                        for (int j = 0; j < TS; ++j) {
                            bool in = oh0 + i < a.OH && ow0 + j < a.OW;
                            size_t pix = ((size_t)(n0 + n) * a.OH + oh0 + i) * a.OW + ow0 + j;
                            gg[i * TS + j] = in ? ld_lanes(a.w + pix * a.O + o0, nl) : v16{};
                        }
                    F::filter(gg, u);
                    for (int xi = 0; xi < AA; ++xi)
                        st(Gt + xi * gstride + (size_t)tt * Op + o0, u[xi]);
                }
            }
            for (int blk = 0; blk < NB * NB; ++blk) {
                int dh = blk / NB * B, dw = blk % NB * B;
                input_tiles<F>(xp, img, Wp, Cp, TH, TW, TS, dh, dw, t0, nt, V, vstride);
                for (int xi = 0; xi < AA; ++xi) {
                    const float* vx = V + xi * vstride;
                    for (int g0 = 0; g0 < Op; g0 += 64) {
                        const float* gx = Gt + xi * gstride + g0;
                        float* mx = Acc + (blk * AA + xi) * mstride + g0;
                        int nv = (Op - g0) / 16;
                        if (nv >= 4)
                            filter_rows<4, 6>(vx, Cp, gx, Op, nt, mx, Op, a.C);
                        else if (nv == 3)
                            filter_rows<3, 8>(vx, Cp, gx, Op, nt, mx, Op, a.C);
                        else if (nv == 2)
                            filter_rows<2, 12>(vx, Cp, gx, Op, nt, mx, Op, a.C);
                        else
                            filter_rows<1, 12>(vx, Cp, gx, Op, nt, mx, Op, a.C);
                    }
                }
            }
        }
    }
    for (int blk = 0; blk < NB * NB; ++blk) {
        int dh = blk / NB * B, dw = blk % NB * B;
        for (int c = 0; c < a.C; ++c)
            for (int o0 = 0; o0 < Op; o0 += 16) {
                v16 p[AA], y[B * B];
                const float* src = Acc + (size_t)blk * AA * mstride + (size_t)c * Op + o0;
                for (int xi = 0; xi < AA; ++xi) p[xi] = ld(src + xi * mstride);
                F::output(p, y);
                int nl = a.O - o0 < 16 ? a.O - o0 : 16;
                for (int i = 0; i < B && dh + i < a.K; ++i)
                    for (int j = 0; j < B && dw + j < a.K; ++j) {
                        size_t tap = (size_t)(dh + i) * a.K + dw + j;
                        st_lanes(a.out + (tap * a.C + c) * a.O + o0, y[i * B + j], nl);
                    }
            }
    }
}

extern "C" {
// a[0]: 0 a convolution (x, w, out), 1 its filter gradient (x, g, dw); a[1..3] the pointers;
// then N, H, W, C, O, K, pt, pl, OH, OW, T
void ENTRY(long long* a) {
    long long* d = a + 4;
    WArgs w{(const float*)a[1], (const float*)a[2], (float*)a[3], (int)d[0], (int)d[1],
            (int)d[2], (int)d[3], (int)d[4], (int)d[5], (int)d[6], (int)d[7], (int)d[8],
            (int)d[9], (int)d[10]};
    if (a[0] == 0 && w.K == 5) wino_conv<F2_5>(w);
    if (a[0] == 1 && w.K == 5) wino_filter<F3_2>(w);
}
}
"""


def _source():
    return _HEAD + _variant(2, 5) + _variant(3, 2) + _BODY


_CXX = _source()
_NAME = "gc_wino_" + hashlib.sha1(_CXX.encode()).hexdigest()[:16]
_KERNEL = host_compile.FusedKernel(_NAME, _CXX.replace("ENTRY", _NAME), 0, ())
_state: dict = {"fn": None, "requested": False}


def request() -> None:
    """Build (or load from the disk cache) the library once per process, in the background
    unless ``GRAPHC_CC_SYNC=1``; until it is loaded ``applies`` says no."""
    if _state["requested"] or host_compile.compiler() is None:
        return
    _state["requested"] = True

    def ready(found):
        _state["fn"] = found[_KERNEL.name]

    host_compile.request([_KERNEL], ready)


def _takes(arrays, filter_shape):
    if _state["fn"] is None or any(a.dtype != np.float32 for a in arrays):
        return False
    kh, kw, c, o = filter_shape
    return kh == kw and kh in VARIANTS and c >= MIN_CHANNELS and o >= MIN_CHANNELS


def applies(x, w) -> bool:
    """Whether the stride-1 convolution of x (N, H, W, C) with w (R, R, C, O) runs here."""
    return _takes((x, w), w.shape) and w.shape[2] <= MAX_CHANNELS


def applies_filter_grad(x, g, filter_shape) -> bool:
    """Whether the filter gradient of a stride-1 convolution of x runs here (F(3x3, 2x2)
    is as accurate as the direct loop: no bound on the channels)."""
    return _takes((x, g), filter_shape)


def conv(x, w, pads, out_hw, out):
    """out (N, OH, OW, O) = the stride-1 convolution of x, zero-padded by ``pads`` = (top,
    left) (and as needed after), with w; x, w and out C-contiguous float32."""
    n, h, wd, c = x.shape
    r, _, _, o = w.shape
    dims = (n, h, wd, c, o, r, pads[0], pads[1], out_hw[0], out_hw[1], TILES)
    ptrs = [host_compile.address(a) for a in (x, w, out)]
    args = np.array([0, *ptrs, *dims], np.int64)
    _state["fn"](host_compile.address(args))
    return out


def filter_grad(x, g, filter_shape, pads, out):
    """out (R, R, C, O) = the filter gradient of the stride-1 convolution of x (zero-padded
    by ``pads`` = (top, left)) whose output gradient is g (N, OH, OW, O)."""
    n, h, wd, c = x.shape
    r, _, _, o = filter_shape
    dims = (n, h, wd, c, o, r, pads[0], pads[1], g.shape[1], g.shape[2], TILES)
    ptrs = [host_compile.address(a) for a in (x, g, out)]
    args = np.array([1, *ptrs, *dims], np.int64)
    _state["fn"](host_compile.address(args))
    return out


__all__ = ["request", "applies", "applies_filter_grad", "conv", "filter_grad", "matrices"]
