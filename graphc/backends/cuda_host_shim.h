// Run graphc's generated CUDA kernels on the CPU, so tests check their arithmetic without a GPU.
//
// g++ -std=c++20 -include cuda_host_shim.h compiles the generated source unchanged: the CUDA
// keywords become plain C++, the device math functions are libm's overloads, and
// gc_host_launch runs every block of the grid in turn with one std::thread per CUDA thread,
// so __syncthreads() is a real barrier and the reductions' shared-memory tree is exercised.
// Blocks run one at a time, which is why a __shared__ array may be a function-local static.
#pragma once

#include <math.h>
#include <string.h>

#include <barrier>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static

struct gc_dim3 {
  unsigned x = 0, y = 0, z = 0;
};

namespace gc_host {
inline thread_local gc_dim3 threadIdx, blockIdx;
inline gc_dim3 blockDim, gridDim;
inline std::barrier<>* block_barrier = nullptr;
}  // namespace gc_host

using gc_host::blockDim;
using gc_host::blockIdx;
using gc_host::gridDim;
using gc_host::threadIdx;

#define __syncthreads() gc_host::block_barrier->arrive_and_wait()

// The device intrinsics the generated code uses that libm lacks.
inline float rsqrt(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }

// float16 travels as its bits; _Float16 conversions round to nearest even, as cvt.rn does.
inline float gc_h2f(unsigned short h) {
  _Float16 f;
  memcpy(&f, &h, sizeof f);
  return (float)f;
}
inline unsigned short gc_f2h(float x) {
  _Float16 f = (_Float16)x;
  unsigned short h;
  memcpy(&h, &f, sizeof h);
  return h;
}

// Runs ``kernel(args)`` (a launcher that unpacks args and calls the generated kernel) for
// every thread of a grid_x x grid_y grid of 1-D blocks.
inline void gc_host_launch(unsigned grid_x, unsigned grid_y, unsigned block,
                           void (*kernel)(void**), void** args) {
  gc_host::gridDim = {grid_x, grid_y, 1};
  gc_host::blockDim = {block, 1, 1};
  for (unsigned by = 0; by < grid_y; ++by) {
    for (unsigned bx = 0; bx < grid_x; ++bx) {
      std::barrier<> barrier(block);
      gc_host::block_barrier = &barrier;
      std::vector<std::thread> threads;
      for (unsigned t = 0; t < block; ++t) {
        threads.emplace_back([=] {
          gc_host::threadIdx = {t, 0, 0};
          gc_host::blockIdx = {bx, by, 0};
          kernel(args);
        });
      }
      for (auto& thread : threads) thread.join();
    }
  }
}
