//===- attnc_prepass.cuh - The ids pre-pass kernel of CudaABI.h -----------===//
//
// Part of every .cu attnc emits for a mask with ids_eq atoms: per (b, h,
// key tile of KEYS keys) the min and max of each atom's key-side ids, so
// the forward kernel classifies a key tile with two loads per atom instead
// of rescanning the ids in every CTA (TileIdsPrepass.cpp is the CPU twin).
// Layout of a.scratch:
//   a.scratch[((b * HQ + h) * ceil(LK / KEYS) + kt) * 2 * S::ids + 2 * atom + {0: min, 1: max}]
// min/max do not depend on the order of the scan, so the parallel
// reduction gives exactly attnc_ids_tile_<n>'s words. S is the spec's
// struct (attnc_spec_<n>: `ids` atoms, kvid(c, j, p) the key-side id of
// atom j at key p, kvid_extent(c, j) the keys it has). The emitter writes the extern "C" entry
// attnc_prepass_<n>, which calls attnc_prepass_body.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_PREPASS_CUH
#define ATTNC_PREPASS_CUH
#ifndef ATTNC_CU_EMBEDDED
#include "attnc_element.cuh"
#endif

template <class S, int KEYS> __device__ __forceinline__ void attnc_prepass_body(const attnc_cuda_args &a) {
  const int64_t kt = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int64_t numKT = (a.LK + KEYS - 1) / KEYS;
  attnc_ctx c = {a.B, a.HQ, a.HKV, a.LQ, a.LK, a.D, a.DV, b, h,
                 h / (a.HQ / a.HKV), a.inputs, a.error};
  const int64_t k0 = kt * KEYS, k1 = (k0 + KEYS < a.LK ? k0 + KEYS : a.LK) - 1;
  __shared__ long long red[2][4];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int j = 0; j < S::ids; ++j) {
    // A tile that reaches past the ids' extent (an [LQ] id tensor read at
    // kv) gets every id, so it stays PARTIAL and the mask reports the read.
    const bool inside = k1 < S::kvid_extent(c, j);
    long long lo = inside ? INT64_MAX : INT64_MIN, hi = inside ? INT64_MIN : INT64_MAX;
    for (int64_t p = k0 + threadIdx.x; inside && p <= k1; p += blockDim.x) {
      long long id = S::kvid(c, j, p);
      lo = id < lo ? id : lo;
      hi = id > hi ? id : hi;
    }
    for (int o = 16; o > 0; o /= 2) {
      long long l2 = __shfl_xor_sync(0xffffffffu, lo, o), h2 = __shfl_xor_sync(0xffffffffu, hi, o);
      lo = l2 < lo ? l2 : lo;
      hi = h2 > hi ? h2 : hi;
    }
    if (lane == 0) { red[0][warp] = lo; red[1][warp] = hi; }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < 4; ++w) {
        lo = red[0][w] < lo ? red[0][w] : lo;
        hi = red[1][w] > hi ? red[1][w] : hi;
      }
      int64_t *out = a.scratch + ((b * a.HQ + h) * numKT + kt) * (2 * S::ids);
      out[2 * j] = lo;
      out[2 * j + 1] = hi;
    }
    __syncthreads();
  }
}

// The pre-pass entry of spec S (NAME: attnc_prepass_<n>) and its launch
// record: grid (ceil(LK / KEYS), HQ, B) of 128 threads, 2 * S::ids scratch
// words per tile.
#define ATTNC_PREPASS_ENTRY(NAME, S, KEYS)                                                         \
  extern "C" __constant__ int NAME##__launch[ATTNC_LAUNCH_WORDS] = {KEYS, 128, 0, 0, 2 * S::ids,  \
                                                                    0, KEYS, 0};                   \
  extern "C" __global__ void __launch_bounds__(128) NAME(attnc_cuda_args a) {                      \
    attnc_prepass_body<S, KEYS>(a);                                                                \
  }

#ifdef ATTNC_NVCC_HOST
// Runs the pre-pass entry `kernel` when the caller gave scratch (B * HQ *
// ceil(LK / KEYS) * 2 * ids words); without it the forward kernel scans
// the ids itself. Returns 0 or a cudaError_t.
template <int KEYS>
static int attnc_run_prepass(void (*kernel)(attnc_cuda_args), const attnc_cuda_args *a, cudaStream_t stream) {
  if (!kernel || !a->scratch) return 0;
  int64_t tiles = (a->LK + KEYS - 1) / KEYS;
  if (tiles == 0) return 0;
  kernel<<<dim3((unsigned)tiles, (unsigned)a->HQ, (unsigned)a->B), 128, 0, stream>>>(*a);
  return (int)cudaGetLastError();
}
#endif
#endif // ATTNC_PREPASS_CUH
