"""Winograd convolutions for the CPU (float32 NHWC, stride 1), beside ``conv_cpu``'s direct loops.

``conv_cpu``'s direct loops already run near this machine's FMA peak, so the way to beat
oneDNN on the tutorial CNN's 32->64 layers is fewer multiplies: Winograd's minimal
filtering algorithm F(m x m, r x r) (Lavin & Gray 2016; as cuDNN and NNPACK do). Each
output tile of m x m pixels is computed from an a x a input tile (a = m + r - 1) as

    Y = A^T [ sum over input channels of (G g G^T) * (B^T d B) ] A

so a tile costs a^2 multiplies per (input, output) channel pair instead of m^2 r^2:
F(2x2, 5x5) takes 36 for 4 outputs where the direct loop takes 100 (2.8x fewer), F(2x2,
3x3) 16 where it takes 36 (2.25x).

  * the transforms are straight-line code generated here from exact rational matrices
    (Toom-Cook on the points 0, 1, -1, 1/2, -2 and infinity, as many as a tile needs,
    solved in fractions; zero coefficients emit nothing), vectorized over 16 channels (NHWC
    keeps channels adjacent), one 1-D transform per side (``Tile<FR, FC>``);
  * the filter is transformed once per call into U[a*a][C][O'] (O' = O rounded up to 16);
  * tiles are processed in blocks of ``TILES`` so that the block's transformed input
    V[tiles][a*a][C'] and products P[tiles][a*a][O'] stay in L2 (a tile's positions side
    by side, so the transforms read and write contiguous memory: with the positions
    outermost, 4 KiB apart, they shared one L1 set and the transforms took a third of the
    time); each position's products are one small GEMM [tiles x C] @ [C x O], written like
    ``conv_cpu``'s kernels: register tiles of R tiles x up to 64 output channels, one
    broadcast of a V value feeding NV 16-lane FMAs (R x NV = 24 accumulators);
  * the output transform writes the valid part of each tile (images whose size is not a
    multiple of m get partial tiles; the padding beyond the image is zeros).

``conv2d_backprop_input`` at stride 1 is the convolution of the output gradient with the
flipped, channel-swapped filter (``conv_cpu`` already computes it so): the same kernel.

The filter gradient is a correlation of the input with the output gradient, summed over
every pixel; here the gradient's 2x2 tiles play the filter. A 3x3 filter gradient is one
F(3x3, 2x2) (16 multiplies per tile of 4 pixels, 36 direct); a 5x5 one is cut into blocks
of 3 and 2 rows and columns, F(3x3, 2x2), F(3x2, 2x2), F(2x3, 2x2) and F(2x2, 2x2) (points
0, 1, -1 and 0, 1): 16 + 12 + 12 + 9 = 49 multiplies per tile where the direct loop takes
100. Per block and position one GEMM [C x tiles] @ [tiles x O] accumulates over every
block of tiles; one output transform per (c, o) ends it.

Numerics: Winograd trades multiplies for conditioning; F(2x2, 5x5)'s transformed values
are larger than the outputs they cancel into. Against the float64 result on random data
its error is 1.7-5.7x the direct loop's (rms; 1.1-4.8x the largest), within the tolerance
of ``tests/test_conv_cpu.py`` up to 64 input channels (``VARIANTS``); these points gave the
smallest error of the sets tried ({0, +-1, +-2} and {0, +-1, +-1/2}: about 2.4x larger).
F(2x2, 3x3) and the filter gradient's blocks use only the points 0, 1, -1 (transforms of
0 and +-1) and sum fewer terms per accumulator than the direct loop: their error is
0.1-1.7x its own (F(5x5, 2x2) in one block was 5-10x less accurate on the filter gradient,
whose sums run over every pixel; each block of tiles is summed apart, then added to the
total). ``tests/test_winograd_cpu.py`` bounds both.

Where it runs (chosen by ``python -m benchmarks --workload conv-ops``; README, "Compiled
convolutions and pooling"): float32, stride 1, square 3x3 and 5x5 filters, at least
``MIN_CHANNELS`` input and output channels (the first, 1-channel layer of a CNN keeps the
direct loop: one useful lane in 16), for a 5x5 forward pass or input gradient at most 64
input channels. From 16 channels up it was faster at every shape measured (7x7 to 28x28
images, 16 to 512 channels: 1.1-2x; at 512 channels its blocks no longer fit in L2). Like
``conv_cpu`` it is built by ``host_compile`` in the background and is skipped until loaded,
without a compiler and with ``GRAPHC_NO_CC=1``."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import numpy as np

from . import host_compile

# interpolation points of the Toom-Cook construction (plus the point at infinity)
POINTS = (0, 1, -1, Fraction(1, 2), -2)
# filter size -> the most input channels of a convolution (for an input gradient: the
# forward pass's output channels) that F(2x2, r x r) takes. F(2x2, 5x5)'s error grows with
# them like the direct sum's, from a larger start: up to 64 it stays within float32 rounding
# as tests/test_conv_cpu.py defines it (at most 0.8 of that tolerance measured; 96 and more
# reach it), so more take the direct loop. F(2x2, 3x3) (points 0, 1, -1) is as accurate as
# the direct loop (0.4-0.5x its largest error measured, up to 256 channels): no bound.
VARIANTS = {5: 64, 3: None}
MIN_CHANNELS = 16  # fewer leave most of the 16 lanes the transforms work on empty
# tiles per block: the GEMMs' rows, in whole register tiles (6, 8 or 12 rows: the C code
# rounds it up to 24). 24 to 384 measured within noise of each other; 48 keeps a 5x5
# 32->64 block's transformed input and products (650 KiB) in this core's 1 MiB L2
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
    lines = [f"    static inline void {name}(const v16* in, int is, v16* out, int os) {{"]
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
            lines.append(f"        out[{i} * os] = v16{{}};")
            continue
        expr = ("-" if terms[0][0] == "-" else "") + terms[0][1]
        expr += "".join(f" {s} {x}" for s, x in terms[1:])
        lines.append(f"        out[{i} * os] = {expr};")
    lines.append("    }")
    return "\n".join(lines)


def _variant(m, r):
    """A struct F<m>_<r>: the sizes and the three 1-D transforms of F(m, r)."""
    at, g, bt = matrices(m, r)
    return f"""
struct F{m}_{r} {{
    enum {{ M = {m}, R = {r}, A = {m + r - 1} }};
{_transform("bt", bt)}
{_transform("g", g)}
{_transform("at", at)}
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

# the 2-D transforms of F(FR::M x FC::M, FR::R x FC::R): FR along the rows (i), FC along the
# columns (j), each a pass over the columns then one over the rows
_TILE = r"""
template <class FR, class FC>
struct Tile {
    enum { MR = FR::M, MC = FC::M, RR = FR::R, RC = FC::R, AR = FR::A, AC = FC::A };
    enum { AA = AR * AC };
    // d (AR x AC) -> B_R^T d B_C
    static inline void input(const v16* d, v16* out) {
        v16 t[AR * AC];
        for (int j = 0; j < AC; ++j) FR::bt(d + j, AC, t + j, AC);
        for (int i = 0; i < AR; ++i) FC::bt(t + i * AC, 1, out + i * AC, 1);
    }
    // g (RR x RC) -> G_R g G_C^T (AR x AC)
    static inline void filter(const v16* g, v16* out) {
        v16 t[AR * RC];
        for (int j = 0; j < RC; ++j) FR::g(g + j, RC, t + j, RC);
        for (int i = 0; i < AR; ++i) FC::g(t + i * RC, 1, out + i * AC, 1);
    }
    // p (AR x AC) -> A_R^T p A_C (MR x MC)
    static inline void output(const v16* p, v16* y) {
        v16 t[MR * AC];
        for (int j = 0; j < AC; ++j) FR::at(p + j, AC, t + j, AC);
        for (int i = 0; i < MR; ++i) FC::at(t + i * AC, 1, y + i * MC, 1);
    }
};
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

// how many padded images a slice holds: about 4 MiB of them, at least one
static int slice_images(const WArgs& a, size_t img) {
    int chunk = (int)((1u << 20) / img);
    return chunk < 1 ? 1 : chunk > a.N ? a.N : chunk;
}

// The input tiles [t0, t0 + nt) of the padded images xp (TH x TW tiles an image, STEP
// apart, the first at (dh, dw)), transformed: V[tile][xi][c'] (one tile's positions together,
// so the transforms read and write contiguous memory; the GEMMs read rows AA * Cp apart).
template <class F>
static void input_tiles(const float* xp, size_t img, int Wp, int Cp, int TH, int TW, int step,
                        int dh, int dw, long long t0, int nt, float* V) {
    for (int tt = 0; tt < nt; ++tt) {
        long long t = t0 + tt, n = t / (TH * TW), q = t % (TH * TW);
        size_t h0 = (q / TW) * step + dh, w0 = (q % TW) * step + dw;
        const float* base = xp + n * img + (h0 * Wp + w0) * Cp;
        float* dst = V + (size_t)tt * F::AA * Cp;
        for (int c0 = 0; c0 < Cp; c0 += 16) {
            v16 d[F::AA], v[F::AA];
            for (int i = 0; i < F::AR; ++i)
                for (int j = 0; j < F::AC; ++j)
                    d[i * F::AC + j] = ld(base + ((size_t)i * Wp + j) * Cp + c0);
            F::input(d, v);
            for (int xi = 0; xi < F::AA; ++xi) st(dst + xi * Cp + c0, v[xi]);
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

template <class F>  // a Tile<F(m, r), F(m, r)>
static void wino_conv(const WArgs& a) {
    const int M = F::MR, R = F::RR, AA = F::AA;
    const int Cp = (a.C + 15) / 16 * 16, Op = (a.O + 15) / 16 * 16;
    const int TH = (a.OH + M - 1) / M, TW = (a.OW + M - 1) / M;
    const int Hp = TH * M + R - 1, Wp = TW * M + R - 1;
    const int T = (a.T + 23) / 24 * 24;  // rows rounded up to whole register tiles fit
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
    // V[tile][xi][c'] and P[tile][xi][o']: a GEMM's rows are AA * C' (AA * O') floats apart
    const int ldv = AA * Cp, ldp = AA * Op;
    float* V = grow(S.v, (size_t)T * ldv);
    float* P = grow(S.m, (size_t)T * ldp);
    size_t img = (size_t)Hp * Wp * Cp;
    int chunk = slice_images(a, img);
    float* xp = grow(S.pad, img * chunk);
    for (int n0 = 0; n0 < a.N; n0 += chunk) {
        int nc = a.N - n0 < chunk ? a.N - n0 : chunk;
        pad_images(a, n0, n0 + nc, Hp, Wp, Cp, xp);
        long long tiles = (long long)nc * TH * TW;
        for (long long t0 = 0; t0 < tiles; t0 += T) {
            int nt = tiles - t0 < T ? (int)(tiles - t0) : T;
            input_tiles<F>(xp, img, Wp, Cp, TH, TW, M, 0, 0, t0, nt, V);
            int rows = (nt + 23) / 24 * 24;  // whole register tiles; rows past nt are unused
            memset(V + (size_t)nt * ldv, 0, (size_t)(rows - nt) * ldv * sizeof(float));
            // the 36 products: P[xi] = V[xi] @ U[xi]
            for (int xi = 0; xi < AA; ++xi) {
                const float* vx = V + (size_t)xi * Cp;
                float* px = P + (size_t)xi * Op;
                for (int g0 = 0; g0 < Op; g0 += 64) {
                    const float* ux = U + (size_t)xi * a.C * Op + g0;
                    int nv = (Op - g0) / 16;
                    if (nv >= 4)
                        gemm_rows<4, 6>(vx, ldv, ux, Op, a.C, px + g0, ldp, rows);
                    else if (nv == 3)
                        gemm_rows<3, 8>(vx, ldv, ux, Op, a.C, px + g0, ldp, rows);
                    else if (nv == 2)
                        gemm_rows<2, 12>(vx, ldv, ux, Op, a.C, px + g0, ldp, rows);
                    else
                        gemm_rows<1, 12>(vx, ldv, ux, Op, a.C, px + g0, ldp, rows);
                }
            }
            // output transform: the valid M x M part of each tile
            for (int tt = 0; tt < nt; ++tt) {
                long long t = t0 + tt, n = t / (TH * TW), q = t % (TH * TW);
                int oh0 = (int)(q / TW) * M, ow0 = (int)(q % TW) * M;
                int mh = a.OH - oh0 < M ? a.OH - oh0 : M, mw = a.OW - ow0 < M ? a.OW - ow0 : M;
                const float* src = P + (size_t)tt * ldp;
                for (int o1 = 0; o1 < Op; o1 += 64) {
                    // up to 64 channels at once: the tile's products are read in address order
                    const int ng = Op - o1 < 64 ? (Op - o1) / 16 : 4;
                    v16 p[4][AA];
                    for (int xi = 0; xi < AA; ++xi)
                        for (int q = 0; q < ng; ++q) p[q][xi] = ld(src + xi * Op + o1 + 16 * q);
                    for (int q = 0; q < ng; ++q) {
                        v16 y[M * M];
                        F::output(p[q], y);
                        int o0 = o1 + 16 * q, nl = a.O - o0 < 16 ? a.O - o0 : 16;
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
}

// --- the filter gradient: the gradient's 2x2 tiles as the filter -----------------------------
// Block (dh, dw) of dw, b_R x b_C entries dw[dh + i, dw + j], is the sum over the gradient's
// 2x2 tiles g of A_R^T [ (B_R^T d B_C)[c] * (G_R g G_C^T)[o] ] A_C, d the input tile at
// (dh, dw) past the gradient tile's first pixel: F(b_R x b_C, 2 x 2). A 5x5 filter is cut
// into blocks of 3 and 2 rows and columns, F(3, 2) and F(2, 2) on the points 0, 1, -1 (and
// 0, 1): 16 + 12 + 12 + 9 = 49 multiplies per tile (4 pixels) where the direct loop takes
// 100, as accurate as it (F(5x5, 2x2) in one block was 5-10x less accurate: the sum runs
// over every pixel). Per block and position one GEMM [C x tiles] @ [tiles x O] accumulates
// over every block of tiles; one output transform per (c, o) ends it.

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

struct FilterGeom {
    int Cp, Op, TH, TW, Wp;
    size_t img, mstride;
};

// one block of dw (F = Tile<F(b_R, 2), F(b_C, 2)> at (dh, dw)), tiles [t0, t0 + nt) of the
// padded images xp: transform the gradient and input tiles, add the products into acc
template <class F>
static void filter_block(const WArgs& a, const FilterGeom& f, const float* xp, int n0, int dh,
                         int dw, long long t0, int nt, float* V, float* Gt, float* acc) {
    const int TS = 2, AA = F::AA;
    for (int tt = 0; tt < nt; ++tt) {  // Gt[tile][xi][o'], zeros past the image
        long long t = t0 + tt, n = t / (f.TH * f.TW), q = t % (f.TH * f.TW);
        int oh0 = (int)(q / f.TW) * TS, ow0 = (int)(q % f.TW) * TS;
        for (int o0 = 0; o0 < f.Op; o0 += 16) {
            v16 gg[TS * TS], u[AA];
            int nl = a.O - o0 < 16 ? a.O - o0 : 16;
            for (int i = 0; i < TS; ++i)
                for (int j = 0; j < TS; ++j) {
                    bool in = oh0 + i < a.OH && ow0 + j < a.OW;
                    size_t pix = ((size_t)(n0 + n) * a.OH + oh0 + i) * a.OW + ow0 + j;
                    gg[i * TS + j] = in ? ld_lanes(a.w + pix * a.O + o0, nl) : v16{};
                }
            F::filter(gg, u);
            float* dst = Gt + ((size_t)tt * AA) * f.Op + o0;
            for (int xi = 0; xi < AA; ++xi) st(dst + xi * f.Op, u[xi]);
        }
    }
    input_tiles<F>(xp, f.img, f.Wp, f.Cp, f.TH, f.TW, TS, dh, dw, t0, nt, V);
    const int ldv = AA * f.Cp, ldg = AA * f.Op;
    for (int xi = 0; xi < AA; ++xi) {
        const float* vx = V + (size_t)xi * f.Cp;
        for (int g0 = 0; g0 < f.Op; g0 += 64) {
            const float* gx = Gt + (size_t)xi * f.Op + g0;
            float* mx = acc + xi * f.mstride + g0;
            int nv = (f.Op - g0) / 16;
            if (nv >= 4)
                filter_rows<4, 6>(vx, ldv, gx, ldg, nt, mx, f.Op, a.C);
            else if (nv == 3)
                filter_rows<3, 8>(vx, ldv, gx, ldg, nt, mx, f.Op, a.C);
            else if (nv == 2)
                filter_rows<2, 12>(vx, ldv, gx, ldg, nt, mx, f.Op, a.C);
            else
                filter_rows<1, 12>(vx, ldv, gx, ldg, nt, mx, f.Op, a.C);
        }
    }
}

// the block's sums, transformed back into dw
template <class F>
static void filter_out(const WArgs& a, const FilterGeom& f, const float* acc, int dh, int dw) {
    for (int c = 0; c < a.C; ++c)
        for (int o0 = 0; o0 < f.Op; o0 += 16) {
            v16 p[F::AA], y[F::MR * F::MC];
            const float* src = acc + (size_t)c * f.Op + o0;
            for (int xi = 0; xi < F::AA; ++xi) p[xi] = ld(src + xi * f.mstride);
            F::output(p, y);
            int nl = a.O - o0 < 16 ? a.O - o0 : 16;
            for (int i = 0; i < F::MR; ++i)
                for (int j = 0; j < F::MC; ++j) {
                    size_t tap = (size_t)(dh + i) * a.K + dw + j;
                    st_lanes(a.out + (tap * a.C + c) * a.O + o0, y[i * F::MC + j], nl);
                }
        }
}

typedef Tile<F3_2, F3_2> B33;
typedef Tile<F3_2, F2_2> B32;
typedef Tile<F2_2, F3_2> B23;
typedef Tile<F2_2, F2_2> B22;

// the filter gradient of a 3x3 (one block, F(3x3, 2x2)) or 5x5 filter (four blocks)
static void filter_grad(const WArgs& a) {
    FilterGeom f;
    const int TS = 2, T = a.T;
    f.Cp = (a.C + 15) / 16 * 16, f.Op = (a.O + 15) / 16 * 16;
    f.TH = (a.OH + TS - 1) / TS, f.TW = (a.OW + TS - 1) / TS;
    const int Hp = f.TH * TS + a.K - 1;
    f.Wp = f.TW * TS + a.K - 1;
    f.img = (size_t)Hp * f.Wp * f.Cp;
    const int Crows = (a.C + 11) / 12 * 12 + 12;  // whole register tiles of rows
    f.mstride = (size_t)Crows * f.Op + 16;
    const int AA = B33::AA + B32::AA + B23::AA + B22::AA;
    // rows past C read up to 12 floats beyond
    float* V = grow(S.v, (size_t)T * B33::AA * f.Cp + 16);
    float* Gt = grow(S.m, (size_t)T * B33::AA * f.Op);
    float* Acc = grow(S.u, AA * f.mstride);
    memset(Acc, 0, AA * f.mstride * sizeof(float));
    float *a33 = Acc, *a32 = a33 + B33::AA * f.mstride, *a23 = a32 + B32::AA * f.mstride;
    float* a22 = a23 + B23::AA * f.mstride;
    int chunk = slice_images(a, f.img);
    float* xp = grow(S.pad, f.img * chunk);
    for (int n0 = 0; n0 < a.N; n0 += chunk) {
        int nc = a.N - n0 < chunk ? a.N - n0 : chunk;
        pad_images(a, n0, n0 + nc, Hp, f.Wp, f.Cp, xp);
        long long tiles = (long long)nc * f.TH * f.TW;
        for (long long t0 = 0; t0 < tiles; t0 += T) {
            int nt = tiles - t0 < T ? (int)(tiles - t0) : T;
            filter_block<B33>(a, f, xp, n0, 0, 0, t0, nt, V, Gt, a33);
            if (a.K == 3) continue;
            filter_block<B32>(a, f, xp, n0, 0, 3, t0, nt, V, Gt, a32);
            filter_block<B23>(a, f, xp, n0, 3, 0, t0, nt, V, Gt, a23);
            filter_block<B22>(a, f, xp, n0, 3, 3, t0, nt, V, Gt, a22);
        }
    }
    filter_out<B33>(a, f, a33, 0, 0);
    if (a.K == 3) return;
    filter_out<B32>(a, f, a32, 0, 3);
    filter_out<B23>(a, f, a23, 3, 0);
    filter_out<B22>(a, f, a22, 3, 3);
}

extern "C" {
// a[0]: 0 a convolution (x, w, out), 1 its filter gradient (x, g, dw); a[1..3] the pointers;
// then N, H, W, C, O, K, pt, pl, OH, OW, T
void ENTRY(long long* a) {
    long long* d = a + 4;
    WArgs w{(const float*)a[1], (const float*)a[2], (float*)a[3], (int)d[0], (int)d[1],
            (int)d[2], (int)d[3], (int)d[4], (int)d[5], (int)d[6], (int)d[7], (int)d[8],
            (int)d[9], (int)d[10]};
    if (a[0] == 0 && w.K == 5) wino_conv<Tile<F2_5, F2_5> >(w);
    if (a[0] == 0 && w.K == 3) wino_conv<Tile<F2_3, F2_3> >(w);
    if (a[0] == 1 && (w.K == 5 || w.K == 3)) filter_grad(w);
}
}
"""


def _source():
    variants = "".join(_variant(m, r) for m, r in ((2, 5), (2, 3), (3, 2), (2, 2)))
    return _HEAD + variants + _TILE + _BODY


_CXX = _source()
_NAME = "gc_wino_" + hashlib.sha1(_CXX.encode()).hexdigest()[:16]
_KERNEL = host_compile.FusedKernel(_NAME, _CXX.replace("ENTRY", _NAME), 0, ())
_state: dict = {"fn": None, "requested": False}


def request() -> None:
    """Build (or load from the disk cache) the library once per process, in the background
    unless ``GRAPHC_CC_SYNC=1``; until it is loaded ``applies`` says no."""
    host_compile.request_library(_state, _KERNEL)


def _takes(arrays, filter_shape):
    if _state["fn"] is None or any(a.dtype != np.float32 for a in arrays):
        return False
    kh, kw, c, o = filter_shape
    return kh == kw and kh in VARIANTS and c >= MIN_CHANNELS and o >= MIN_CHANNELS


def applies(x, w) -> bool:
    """Whether the stride-1 convolution of x (N, H, W, C) with w (R, R, C, O) runs here."""
    if not _takes((x, w), w.shape):
        return False
    most = VARIANTS[w.shape[0]]
    return most is None or w.shape[2] <= most


def applies_filter_grad(x, g, filter_shape) -> bool:
    """Whether the filter gradient of a stride-1 convolution of x runs here (its small
    blocks are as accurate as the direct loop: no bound on the channels)."""
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
