"""Convolutions and max pooling compiled for the CPU (float32 NHWC), for the numpy executor.

``ops/conv.py`` holds the reference kernels: im2col (one patch matrix per batch slice) and one
OpenBLAS sgemm per convolution, scatters of strided views for the input and pooling
gradients. Measured against TensorFlow's oneDNN and torch's mkldnn kernels at the tutorial
CNN's shapes (README, "Compiled convolutions and pooling"; ``python -m benchmarks --workload
conv-ops``), the patch copies and the scatters cost as much as the sgemm, and OpenBLAS
reaches 65-75 GFLOP/s on these narrow (64-column) products. Here a convolution is a *direct*
loop instead, built with the system C++ compiler through ``host_compile`` (same flags, disk
cache and background build):

  * ``conv2d``: each batch slice is copied once into a zero-padded scratch image (no patch
    matrix), then register tiles of R output pixels x up to 64 output channels accumulate
    over every tap and input channel: one broadcast of an input value feeds NV vector FMAs
    (R x NV = 24 accumulators in registers, the filter repacked in 16-lane rows);
  * ``conv2d_backprop_input`` (stride 1, at least 16 input channels) is the same loop over
    the output gradient with the filter flipped and its channels swapped (the transposed
    convolution as a convolution), so there is no col2im scatter at all; other shapes keep
    the reference kernel, which is faster there (a 1-channel input has one useful lane in
    16);
  * ``conv2d_backprop_filter``: tiles of R filter rows (tap, input channel) x 64 output
    channels accumulate over blocks of 128 output pixels, whose gradient rows stay in L1;
  * 3x3 and 5x5 convolutions at stride 1 with 16 or more channels, forward and both
    gradients, go to ``winograd_cpu`` (Winograd's minimal filtering: fewer multiplies);
  * ``max_pool`` and ``max_pool_grad``: one pass over the windows (padded cells never win,
    the first NaN of a window wins, else its first maximum, as the reference), the gradient
    added at each window's winner.

Results agree with the reference kernels to float rounding (sums in another order; the
pooling forward pass is exact). float64 and the shapes named above take the reference
kernels, as does every call before the library is loaded or without a compiler
(``GRAPHC_NO_CC=1``). Each call runs on the calling thread: the benchmarks compare CPU time
on one core per framework, where extra threads cost more than they save."""

from __future__ import annotations

import hashlib
from functools import partial

import numpy as np

from ..ops import conv as C
from . import host_compile, winograd_cpu

_CXX = r"""// graphc.backends.conv_cpu: direct convolutions and max pooling for float32 NHWC images
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <vector>

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));

static inline v16 ld(const float* p) { return *(const v16u*)p; }
static inline void st(float* p, v16 v) { *(v16u*)p = v; }

// scratch that lives as long as the thread: padded images, packed filters and gradients
struct Scratch {
    std::vector<float> pad, wp, gp, acc;
    std::vector<long long> off;
};
static thread_local Scratch S;

static float* grow(std::vector<float>& v, size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
}

// images [n0, n1) of x (N, H, W, C) into xp (n1 - n0, Hp, Wp, C) with zeros around them
static void pad_images(const float* x, int n0, int n1, int H, int W, int C, int pt, int pl,
                       int Hp, int Wp, float* xp) {
    size_t img = (size_t)Hp * Wp * C, row = (size_t)Wp * C;
    int pr = Wp - W - pl;
    for (int n = n0; n < n1; ++n) {
        float* dst = xp + (size_t)(n - n0) * img;
        // zeros only where the image is not copied: the top and bottom rows, the sides
        memset(dst, 0, row * pt * sizeof(float));
        memset(dst + row * (pt + H), 0, row * (Hp - pt - H) * sizeof(float));
        for (int h = 0; h < H; ++h) {
            float* r = dst + (size_t)(h + pt) * row;
            memset(r, 0, (size_t)pl * C * sizeof(float));
            memcpy(r + (size_t)pl * C, x + (((size_t)n * H + h) * W) * C,
                   (size_t)W * C * sizeof(float));
            memset(r + (size_t)(pl + W) * C, 0, (size_t)pr * C * sizeof(float));
        }
    }
}

// filter (T, C, O) -> lanes [g0, g0 + 16 * NV) of every (tap, channel) row, zero past O
static void pack_filter(const float* w, int rows, int O, int g0, int lanes, float* wp) {
    for (int k = 0; k < rows; ++k)
        for (int l = 0; l < lanes; ++l)
            wp[(size_t)k * lanes + l] = g0 + l < O ? w[(size_t)k * O + g0 + l] : 0.0f;
}

static inline void store_lanes(float* dst, const v16* acc, int NV, int nl) {
    if (nl == 16 * NV) {
        for (int v = 0; v < NV; ++v) st(dst + 16 * v, acc[v]);
    } else {
        float tmp[64];
        for (int v = 0; v < NV; ++v) st(tmp + 16 * v, acc[v]);
        for (int l = 0; l < nl; ++l) dst[l] = tmp[l];
    }
}

// R output pixels x NV * 16 output channels of a convolution, every tap and input channel
template <int NV, int R>
static inline void conv_tile(const float* const* base, const long long* toff, int taps, int C,
                             const float* wp, float* const* dst, int nr, int nl) {
    v16 acc[R][NV];
    for (int r = 0; r < R; ++r)
        for (int v = 0; v < NV; ++v) acc[r][v] = v16{};
    for (int t = 0; t < taps; ++t) {
        const float* b[R];
        for (int r = 0; r < R; ++r) b[r] = base[r] + toff[t];
        const float* wt = wp + (size_t)t * C * NV * 16;
        for (int c = 0; c < C; ++c) {
            v16 wv[NV];
            for (int v = 0; v < NV; ++v) wv[v] = ld(wt + (size_t)c * NV * 16 + 16 * v);
#pragma GCC unroll 32
            for (int r = 0; r < R; ++r) {
                float xs = b[r][c];
                for (int v = 0; v < NV; ++v) acc[r][v] += xs * wv[v];
            }
        }
    }
    for (int r = 0; r < nr; ++r) store_lanes(dst[r], acc[r], NV, nl);
}

struct ConvArgs {
    const float* x;  // (N, H, W, C)
    const float* w;  // (KH, KW, C, O)
    float* out;      // (N, OH, OW, O)
    int N, H, W, C, KH, KW, O, sh, sw, pt, pb, pl, pr, OH, OW;
};

template <int NV, int R>
static void conv_group(const ConvArgs& a, const float* xp, int n0, int nc, int Hp, int Wp,
                       const float* wp, int g0, const long long* toff) {
    int nl = a.O - g0 < 16 * NV ? a.O - g0 : 16 * NV;
    long long pix = (long long)nc * a.OH * a.OW;
    const float* base[R];
    float* dst[R];
    for (long long p0 = 0; p0 < pix; p0 += R) {
        int nr = pix - p0 < R ? (int)(pix - p0) : R;
        for (int r = 0; r < R; ++r) {
            long long p = p0 + (r < nr ? r : 0);
            long long n = p / ((long long)a.OH * a.OW), q = p % ((long long)a.OH * a.OW);
            long long oh = q / a.OW, ow = q % a.OW;
            base[r] = xp + ((n * Hp + oh * a.sh) * Wp + ow * a.sw) * a.C;
            dst[r] = a.out + ((n0 + n) * a.OH * a.OW + q) * a.O + g0;
        }
        conv_tile<NV, R>(base, toff, a.KH * a.KW, a.C, wp, dst, nr, nl);
    }
}

static void conv2d(const ConvArgs& a) {
    int Hp = a.H + a.pt + a.pb, Wp = a.W + a.pl + a.pr;
    size_t img = (size_t)Hp * Wp * a.C;
    int chunk = (int)((1u << 20) / (img ? img : 1));  // about 4 MiB of padded images
    if (chunk < 1) chunk = 1;
    if (chunk > a.N) chunk = a.N;
    float* xp = grow(S.pad, img * chunk + 16);
    int taps = a.KH * a.KW;
    S.off.resize(taps);
    for (int i = 0; i < a.KH; ++i)
        for (int j = 0; j < a.KW; ++j) S.off[i * a.KW + j] = ((long long)i * Wp + j) * a.C;
    int groups = (a.O + 63) / 64;
    size_t rows = (size_t)taps * a.C;
    float* wp = grow(S.wp, rows * 64 * groups);
    for (int g = 0; g < groups; ++g) {
        int g0 = 64 * g, nv = (a.O - g0 + 15) / 16;
        pack_filter(a.w, (int)rows, a.O, g0, 16 * (nv < 4 ? nv : 4), wp + rows * 64 * g);
    }
    for (int n0 = 0; n0 < a.N; n0 += chunk) {
        int nc = a.N - n0 < chunk ? a.N - n0 : chunk;
        pad_images(a.x, n0, n0 + nc, a.H, a.W, a.C, a.pt, a.pl, Hp, Wp, xp);
        for (int g = 0; g < groups; ++g) {
            int g0 = 64 * g, nv = (a.O - g0 + 15) / 16;
            const float* wg = wp + rows * 64 * g;
            const long long* toff = S.off.data();
            if (nv >= 4)
                conv_group<4, 6>(a, xp, n0, nc, Hp, Wp, wg, g0, toff);
            else if (nv == 3)
                conv_group<3, 8>(a, xp, n0, nc, Hp, Wp, wg, g0, toff);
            else if (nv == 2)
                conv_group<2, 12>(a, xp, n0, nc, Hp, Wp, wg, g0, toff);
            else
                conv_group<1, 16>(a, xp, n0, nc, Hp, Wp, wg, g0, toff);
        }
    }
}

// --- the filter gradient: dw[t, c, o] = sum over pixels of xpad[pixel + tap t, c] * g[pixel, o]

template <int NV, int R>
static void filter_tile(const float* xp, const long long* pixoff, int np, const long long* roff,
                        const float* gp, float* accp) {
    v16 acc[R][NV];
    for (int r = 0; r < R; ++r)
        for (int v = 0; v < NV; ++v) acc[r][v] = ld(accp + (size_t)r * NV * 16 + 16 * v);
    long long ro[R];
    for (int r = 0; r < R; ++r) ro[r] = roff[r];
    for (int p = 0; p < np; ++p) {
        const float* b = xp + pixoff[p];
        v16 gv[NV];
        for (int v = 0; v < NV; ++v) gv[v] = ld(gp + (size_t)p * NV * 16 + 16 * v);
#pragma GCC unroll 32
        for (int r = 0; r < R; ++r) {
            float xs = b[ro[r]];
            for (int v = 0; v < NV; ++v) acc[r][v] += xs * gv[v];
        }
    }
    for (int r = 0; r < R; ++r)
        for (int v = 0; v < NV; ++v) st(accp + (size_t)r * NV * 16 + 16 * v, acc[r][v]);
}

template <int NV, int R>
static void filter_group(const ConvArgs& a, const float* g, float* dw, int g0) {
    // a.out is unused here; a.x is the input, g the output gradient, dw (KH, KW, C, O)
    int Hp = a.H + a.pt + a.pb, Wp = a.W + a.pl + a.pr;
    size_t img = (size_t)Hp * Wp * a.C;
    int chunk = (int)((1u << 20) / (img ? img : 1));
    if (chunk < 1) chunk = 1;
    if (chunk > a.N) chunk = a.N;
    const int P = 128;  // pixels per block: their gradient rows stay in L1
    int lanes = 16 * NV, nl = a.O - g0 < lanes ? a.O - g0 : lanes;
    long long K = (long long)a.KH * a.KW * a.C, Kr = (K + R - 1) / R * R;
    float* xp = grow(S.pad, img * chunk + 16);
    float* gp = grow(S.gp, (size_t)P * lanes);
    float* acc = grow(S.acc, (size_t)Kr * lanes);
    memset(acc, 0, sizeof(float) * Kr * lanes);
    std::vector<long long> roff(Kr), pixoff(P);
    for (long long k = 0; k < Kr; ++k) {
        long long kk = k < K ? k : 0, c = kk % a.C, t = kk / a.C;
        roff[k] = ((t / a.KW) * Wp + t % a.KW) * a.C + c;
    }
    long long opix = (long long)a.OH * a.OW;
    for (int n0 = 0; n0 < a.N; n0 += chunk) {
        int nc = a.N - n0 < chunk ? a.N - n0 : chunk;
        pad_images(a.x, n0, n0 + nc, a.H, a.W, a.C, a.pt, a.pl, Hp, Wp, xp);
        long long pix = nc * opix;
        for (long long p0 = 0; p0 < pix; p0 += P) {
            int np = pix - p0 < P ? (int)(pix - p0) : P;
            for (int p = 0; p < np; ++p) {
                long long q = p0 + p, n = q / opix, s = q % opix;
                pixoff[p] = ((n * Hp + (s / a.OW) * a.sh) * Wp + (s % a.OW) * a.sw) * a.C;
                const float* src = g + ((n0 + n) * opix + s) * a.O + g0;
                for (int l = 0; l < lanes; ++l) gp[(size_t)p * lanes + l] = l < nl ? src[l] : 0.0f;
            }
            for (long long k0 = 0; k0 < Kr; k0 += R)
                filter_tile<NV, R>(xp, pixoff.data(), np, roff.data() + k0, gp,
                                   acc + (size_t)k0 * lanes);
        }
    }
    for (long long k = 0; k < K; ++k)
        for (int l = 0; l < nl; ++l) dw[k * a.O + g0 + l] = acc[(size_t)k * lanes + l];
}

static void conv2d_filter(const ConvArgs& a, const float* g, float* dw) {
    for (int g0 = 0; g0 < a.O; g0 += 64) {
        int nv = (a.O - g0 + 15) / 16;
        if (nv >= 4)
            filter_group<4, 6>(a, g, dw, g0);
        else if (nv == 3)
            filter_group<3, 8>(a, g, dw, g0);
        else if (nv == 2)
            filter_group<2, 12>(a, g, dw, g0);
        else
            filter_group<1, 16>(a, g, dw, g0);
    }
}

// --- max pooling: padded cells never win; the first NaN of a window wins, else the first max

struct PoolArgs {
    const float* x;  // (N, H, W, C)
    const float* g;  // (N, OH, OW, C), the gradient (max_pool_grad)
    float* out;      // max_pool: (N, OH, OW, C); max_pool_grad: (N, H, W, C)
    int N, H, W, C, KH, KW, sh, sw, pt, pl, OH, OW;
};

static inline bool wins(float v, float m) { return v > m || (v != v && m == m); }

// a 2x2 window wholly inside the image (the common case), unrolled: its four cells in
// order, the same rules as the general loops below
static inline bool inside2x2(const PoolArgs& a, int oh, int ow) {
    int h = oh * a.sh - a.pt, w = ow * a.sw - a.pl;
    return a.KH == 2 && a.KW == 2 && h >= 0 && w >= 0 && h + 1 < a.H && w + 1 < a.W;
}

static void max_pool(const PoolArgs& a) {
    const int C = a.C;
    for (long long n = 0; n < a.N; ++n)
        for (int oh = 0; oh < a.OH; ++oh)
            for (int ow = 0; ow < a.OW; ++ow) {
                float* o = a.out + ((n * a.OH + oh) * a.OW + ow) * a.C;
                if (inside2x2(a, oh, ow)) {
                    int h = oh * a.sh - a.pt, w = ow * a.sw - a.pl;
                    const float* x0 = a.x + ((n * a.H + h) * a.W + w) * C;
                    const float *x1 = x0 + C, *x2 = x0 + (long long)a.W * C, *x3 = x2 + C;
#pragma omp simd
                    for (int c = 0; c < C; ++c) {
                        float m = x0[c];
                        m = wins(x1[c], m) ? x1[c] : m;
                        m = wins(x2[c], m) ? x2[c] : m;
                        o[c] = wins(x3[c], m) ? x3[c] : m;
                    }
                    continue;
                }
                for (int c = 0; c < a.C; ++c) o[c] = -INFINITY;
                for (int i = 0; i < a.KH; ++i) {
                    int h = oh * a.sh - a.pt + i;
                    if (h < 0 || h >= a.H) continue;
                    for (int j = 0; j < a.KW; ++j) {
                        int w = ow * a.sw - a.pl + j;
                        if (w < 0 || w >= a.W) continue;
                        const float* xv = a.x + ((n * a.H + h) * a.W + w) * a.C;
#pragma omp simd
                        for (int c = 0; c < a.C; ++c) o[c] = wins(xv[c], o[c]) ? xv[c] : o[c];
                    }
                }
            }
}

typedef int v16i __attribute__((vector_size(64)));

static inline v16i vwins(v16 v, v16 m) { return (v > m) | ((v != v) & (m == m)); }

// 2x2 windows of stride 2 tiling the image exactly, 16k channels: one pass of 16-lane
// vectors along each row of windows (the general loop below spends more on each window's
// addressing than on its four cells); the same winners as the loops below
static void max_pool_grad_2x2(const PoolArgs& a) {
    const long long C = a.C, row = (long long)a.W * C;
    for (long long n = 0; n < a.N; ++n)
        for (int oh = 0; oh < a.OH; ++oh) {
            const float* x0 = a.x + (n * a.H + 2 * oh) * row;
            const float* x2 = x0 + row;
            float* d0 = a.out + (n * a.H + 2 * oh) * row;
            float* d2 = d0 + row;
            const float* gv = a.g + ((n * a.OH + oh) * a.OW) * C;
            for (int ow = 0; ow < a.OW; ++ow, x0 += 2 * C, x2 += 2 * C, d0 += 2 * C, d2 += 2 * C,
                     gv += C)
                for (long long c = 0; c < C; c += 16) {
                    v16 c0 = ld(x0 + c), c1 = ld(x0 + C + c), c2 = ld(x2 + c), c3 = ld(x2 + C + c);
                    v16 g = ld(gv + c) + 0.0f, z = v16{};
                    v16i b1 = vwins(c1, c0);
                    v16 m = b1 ? c1 : c0;
                    v16i b2 = vwins(c2, m);
                    m = b2 ? c2 : m;
                    v16i b3 = vwins(c3, m);
                    v16i w2 = b2 & ~b3, w1 = b1 & ~b2 & ~b3, w0 = ~(b1 | b2 | b3);
                    st(d0 + c, w0 ? g : z);
                    st(d0 + C + c, w1 ? g : z);
                    st(d2 + c, w2 ? g : z);
                    st(d2 + C + c, b3 ? g : z);
                }
        }
}

static void max_pool_grad(const PoolArgs& a) {
    if (a.KH == 2 && a.KW == 2 && a.sh == 2 && a.sw == 2 && a.pt == 0 && a.pl == 0 &&
        a.H == 2 * a.OH && a.W == 2 * a.OW && a.C % 16 == 0) {
        max_pool_grad_2x2(a);
        return;
    }
    // windows that tile the image exactly (the usual 2x2 stride 2) store each cell once;
    // others (overlaps, cells no window reaches) start from zeros and add
    bool tiled = a.sh == a.KH && a.sw == a.KW && (long long)a.OH * a.KH - a.pt >= a.H &&
                 (long long)a.OW * a.KW - a.pl >= a.W;
    if (!tiled) memset(a.out, 0, sizeof(float) * (size_t)a.N * a.H * a.W * a.C);
    const int C = a.C;
    std::vector<float> best(C);
    std::vector<int> arg(C);
    float* bp = best.data();
    int* ap = arg.data();
    for (long long n = 0; n < a.N; ++n)
        for (int oh = 0; oh < a.OH; ++oh)
            for (int ow = 0; ow < a.OW; ++ow) {
                const float* gv = a.g + ((n * a.OH + oh) * a.OW + ow) * C;
                if (inside2x2(a, oh, ow)) {
                    int h = oh * a.sh - a.pt, w = ow * a.sw - a.pl;
                    long long c0 = ((n * a.H + h) * a.W + w) * C, row = (long long)a.W * C;
                    const float* x0 = a.x + c0;
                    const float *x1 = x0 + C, *x2 = x0 + row, *x3 = x2 + C;
                    float* d0 = a.out + c0;
                    float *d1 = d0 + C, *d2 = d0 + row, *d3 = d2 + C;
#define GC_WINNER                                   \
    float m = x0[c];                                \
    float t = 0.0f; /* the winner, as a float lane */ \
    bool b1 = wins(x1[c], m);                       \
    m = b1 ? x1[c] : m;                             \
    t = b1 ? 1.0f : t;                              \
    bool b2 = wins(x2[c], m);                       \
    m = b2 ? x2[c] : m;                             \
    t = b2 ? 2.0f : t;                              \
    t = wins(x3[c], m) ? 3.0f : t;                  \
    float g = 0.0f + gv[c];
                    if (tiled) {
#pragma omp simd
                        for (int c = 0; c < C; ++c) {
                            GC_WINNER
                            d0[c] = t == 0.0f ? g : 0.0f;
                            d1[c] = t == 1.0f ? g : 0.0f;
                            d2[c] = t == 2.0f ? g : 0.0f;
                            d3[c] = t == 3.0f ? g : 0.0f;
                        }
                    } else {
#pragma omp simd
                        for (int c = 0; c < C; ++c) {
                            GC_WINNER
                            d0[c] += t == 0.0f ? g : 0.0f;
                            d1[c] += t == 1.0f ? g : 0.0f;
                            d2[c] += t == 2.0f ? g : 0.0f;
                            d3[c] += t == 3.0f ? g : 0.0f;
                        }
                    }
#undef GC_WINNER
                    continue;
                }
                // tap 0 may be a padded cell (-inf, arg -1): it keeps the window when every
                // real cell is -inf (as the reference), and then the gradient is dropped
                for (int c = 0; c < C; ++c) bp[c] = -INFINITY, ap[c] = -1;
                for (int t = 0; t < a.KH * a.KW; ++t) {
                    int h = oh * a.sh - a.pt + t / a.KW, w = ow * a.sw - a.pl + t % a.KW;
                    if (h < 0 || h >= a.H || w < 0 || w >= a.W) continue;
                    const float* xv = a.x + ((n * a.H + h) * a.W + w) * C;
                    if (t == 0) {
                        for (int c = 0; c < C; ++c) bp[c] = xv[c], ap[c] = 0;
                        continue;
                    }
#pragma omp simd
                    for (int c = 0; c < C; ++c) {
                        bool take = wins(xv[c], bp[c]);
                        bp[c] = take ? xv[c] : bp[c];
                        ap[c] = take ? t : ap[c];
                    }
                }
                for (int t = 0; t < a.KH * a.KW; ++t) {
                    int h = oh * a.sh - a.pt + t / a.KW, w = ow * a.sw - a.pl + t % a.KW;
                    if (h < 0 || h >= a.H || w < 0 || w >= a.W) continue;
                    float* dv = a.out + ((n * a.H + h) * a.W + w) * C;
                    if (tiled) {
#pragma omp simd
                        for (int c = 0; c < C; ++c) dv[c] = ap[c] == t ? 0.0f + gv[c] : 0.0f;
                    } else {
#pragma omp simd
                        for (int c = 0; c < C; ++c) dv[c] += ap[c] == t ? gv[c] : 0.0f;
                    }
                }
            }
}

extern "C" {
// a[0]: what to run; then the pointers, then the integer arguments
void ENTRY(long long* a) {
    long long* d = a + 4;
    if (a[0] == 0 || a[0] == 1) {
        ConvArgs c{(const float*)a[1], (const float*)a[2], (float*)a[3],
                   (int)d[0], (int)d[1], (int)d[2], (int)d[3], (int)d[4], (int)d[5], (int)d[6],
                   (int)d[7], (int)d[8], (int)d[9], (int)d[10], (int)d[11], (int)d[12],
                   (int)d[13], (int)d[14]};
        if (a[0] == 0)
            conv2d(c);
        else  // x = a[1], g = a[2], dw = a[3]
            conv2d_filter(c, (const float*)a[2], (float*)a[3]);
    } else {
        PoolArgs p{(const float*)a[1], (const float*)a[2], (float*)a[3],
                   (int)d[0], (int)d[1], (int)d[2], (int)d[3], (int)d[4], (int)d[5],
                   (int)d[6], (int)d[7], (int)d[8], (int)d[9], (int)d[10], (int)d[11]};
        if (a[0] == 2)
            max_pool(p);
        else
            max_pool_grad(p);
    }
}
}
"""

# one entry point (its first argument says which kernel), named by the source's hash so that
# an edited source never meets a stale library
_NAME = "gc_conv_" + hashlib.sha1(_CXX.encode()).hexdigest()[:16]
_KERNEL = host_compile.FusedKernel(_NAME, _CXX.replace("ENTRY", _NAME), 0, ())
_state: dict = {"fn": None, "requested": False}


def request() -> None:
    """Build (or load from the disk cache) the library, once per process, in the background
    unless ``GRAPHC_CC_SYNC=1``; until it is loaded the reference kernels run."""
    if host_compile.request_library(_state, _KERNEL):
        winograd_cpu.request()  # 3x3 and 5x5 stride-1 convolutions of 16+ channels: faster


def _ready(*arrays) -> bool:
    return _state["fn"] is not None and all(a.dtype == np.float32 for a in arrays)


def _call(code, pointers, dims):
    args = np.array(
        [code, *(host_compile.address(p) if p is not None else 0 for p in pointers), *dims],
        np.int64,
    )
    _state["fn"](host_compile.address(args))


def _contiguous(a):
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _into(out, shape, fill):
    """Run ``fill(dst)`` into ``out`` when it is a contiguous float32 buffer, else into a new
    array (copied into ``out`` when given)."""
    if out is not None and out.flags.c_contiguous and out.dtype == np.float32:
        fill(out)
        return out
    dst = np.empty(shape, np.float32)
    fill(dst)
    if out is None:
        return dst
    out[...] = dst
    return out


def _conv_dims(x_shape, w_shape, strides, padding, pads=None):
    n, h, w, c = x_shape
    kh, kw, _, o = w_shape
    (oh, ow), ((pt, pb), (pl, pr)) = C._geometry((h, w), (kh, kw), strides, padding)
    if pads is not None:
        (pt, pb), (pl, pr) = pads
        oh, ow = h + pt + pb - kh + 1, w + pl + pr - kw + 1
    return (n, h, w, c, kh, kw, o, strides[0], strides[1], pt, pb, pl, pr, oh, ow)


def conv2d(x, w, strides, padding, out=None):
    if not _ready(x, w):
        return C._conv2d(x, w, strides, padding, out)
    x, w = _contiguous(x), _contiguous(w)
    dims = _conv_dims(x.shape, w.shape, strides, padding)
    shape = (dims[0], dims[13], dims[14], dims[6])
    if tuple(strides) == (1, 1) and winograd_cpu.applies(x, w):
        pads, hw = (dims[9], dims[11]), (dims[13], dims[14])
        return _into(out, shape, partial(winograd_cpu.conv, x, w, pads, hw))
    return _into(out, shape, lambda o: _call(0, (x, w, o), dims))


def conv2d_backprop_input(g, w, input_shape, strides, padding, out=None):
    kh, kw, c, o = w.shape
    if not _ready(g, w) or tuple(strides) != (1, 1) or c < 16:
        return C._conv2d_backprop_input(g, w, input_shape, strides, padding, out)
    # stride 1: the adjoint is a VALID convolution of g padded by (k - 1 - pad) before and the
    # rest after, with the filter flipped in space and its channels swapped
    n, h, wd = g.shape[0], input_shape[1], input_shape[2]
    _, ((pt, _), (pl, _)) = C._geometry((h, wd), (kh, kw), strides, padding)
    top, left = kh - 1 - pt, kw - 1 - pl
    pads = ((top, h - g.shape[1] + kh - 1 - top), (left, wd - g.shape[2] + kw - 1 - left))
    flipped = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))
    g = _contiguous(g)
    if winograd_cpu.applies(g, flipped):
        conv = partial(winograd_cpu.conv, g, flipped, (top, left), (h, wd))
        return _into(out, (n, h, wd, c), conv)
    dims = _conv_dims(g.shape, flipped.shape, (1, 1), padding, pads)
    return _into(out, (n, h, wd, c), lambda dst: _call(0, (g, flipped, dst), dims))


def conv2d_backprop_filter(x, g, filter_shape, strides, padding, out=None):
    if not _ready(x, g):
        return C._conv2d_backprop_filter(x, g, filter_shape, strides, padding, out)
    x, g = _contiguous(x), _contiguous(g)
    dims = _conv_dims(x.shape, filter_shape, strides, padding)
    if tuple(strides) == (1, 1) and winograd_cpu.applies_filter_grad(x, g, filter_shape):
        grad = partial(winograd_cpu.filter_grad, x, g, filter_shape, (dims[9], dims[11]))
        return _into(out, tuple(filter_shape), grad)
    return _into(out, tuple(filter_shape), lambda dw: _call(1, (x, g, dw), dims))


def _pool_dims(x_shape, ksize, strides, padding):
    n, h, w, c = x_shape
    (oh, ow), ((pt, _), (pl, _)) = C._geometry((h, w), ksize, strides, padding)
    return (n, h, w, c, ksize[0], ksize[1], strides[0], strides[1], pt, pl, oh, ow)


def max_pool(x, ksize, strides, padding, out=None):
    if not _ready(x):
        return C._max_pool(x, ksize, strides, padding, out)
    x = _contiguous(x)
    dims = _pool_dims(x.shape, ksize, strides, padding)
    shape = (dims[0], dims[10], dims[11], dims[3])
    return _into(out, shape, lambda o: _call(2, (x, None, o), dims))


def max_pool_grad(x, g, ksize, strides, padding, out=None):
    if not _ready(x, g):
        return C._max_pool_grad(x, g, ksize, strides, padding, out)
    x, g = _contiguous(x), _contiguous(g)
    dims = _pool_dims(x.shape, ksize, strides, padding)
    return _into(out, x.shape, lambda dx: _call(3, (x, g, dx), dims))


# the numpy executor runs these in place of the registry kernels when it compiles loops
KERNELS = {
    C.CONV2D: conv2d,
    C.CONV2D_BACKPROP_INPUT: conv2d_backprop_input,
    C.CONV2D_BACKPROP_FILTER: conv2d_backprop_filter,
    C.MAX_POOL: max_pool,
    C.MAX_POOL_GRAD: max_pool_grad,
}

__all__ = ["KERNELS", "request"]
