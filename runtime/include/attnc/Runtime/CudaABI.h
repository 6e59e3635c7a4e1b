/*===- CudaABI.h - What emitted CUDA kernels and the runtime agree on -*- C -*-===//
 *
 * The contract between a .cu written by `attnc compile --target=cuda` and
 * whoever launches it: the nvcc-built host launcher in the same file, the
 * runtime's NVRTC + driver-API path (runtime/cuda), or a test harness.
 * Plain C, no CUDA headers, so that the runtime builds it without CUDA and
 * the emitter pastes this text into each .cu (which must stay
 * self-contained). Under NVRTC (__CUDACC_RTC__) there is no <stdint.h>.
 *
 * Entry points of a .cu for spec <n> (extern "C", so no name mangling):
 *   __global__ void attnc_fwd_<n>__<dt>_<HD>_<HDV>(attnc_cuda_args a)
 *       for each supported storage type dt (bf16, f16) and head dims;
 *       grid = (ceil(LQ / rows), HQ, B), block = threads, dynamic shared
 *       memory = smem bytes, all three from the entry's launch record:
 *   __constant__ int attnc_fwd_<n>__<dt>_<HD>_<HDV>__launch[ATTNC_LAUNCH_WORDS]
 *   __global__ void attnc_prepass_<n>(attnc_cuda_args a)   (only for specs
 *       whose mask reads input ids) with attnc_prepass_<n>__launch: grid =
 *       (ceil(LK / rows), HQ, B); it fills a.scratch, which holds
 *       ATTNC_LAUNCH_SCRATCH words per (b, h, key tile); run it first.
 * An entry whose record has ATTNC_LAUNCH_TMA = 1 (the sm_90a path) takes a
 * second parameter, `const __grid_constant__ attnc_tma_maps m`: three
 * CUtensorMaps the launcher encodes with cuTensorMapEncodeTiled for q, k
 * and v, each as a rank-4 tensor of the storage type (CU_TENSOR_MAP_DATA_
 * TYPE_BFLOAT16 / FLOAT16) with dims (D or DV, L, H, B) innermost first,
 * byte strides (l, h, b) from the args (unit stride along d required),
 * box (64, rows, 1, 1) where rows = ATTNC_LAUNCH_ROWS for q and
 * ATTNC_LAUNCH_KEYS for k and v, element strides 1, no interleave,
 * CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B and
 * CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE (out-of-range rows read as zero).
 * Compiling with -DATTNC_ONLY_DT=<0|1> -DATTNC_ONLY_HD=<d> -DATTNC_ONLY_HDV=<dv>
 * keeps only that one forward entry (what the JIT does, for compile time).
 *
 *===----------------------------------------------------------------------===*/
#ifndef ATTNC_RUNTIME_CUDAABI_H
#define ATTNC_RUNTIME_CUDAABI_H

#ifdef __CUDACC_RTC__
typedef long long int64_t;
typedef unsigned long long uint64_t;
#else
#include <stdint.h>
#endif

/* One user input in device memory (int64_t, float or uint8_t elements, as
 * the spec declares it), up to 4 dims; strides in elements. */
struct attnc_input {
  const void *data;
  int64_t dims[4], strides[4];
};

/* The argument of every entry point, passed by value. All pointers are
 * device pointers; strides are in elements, in the order (b, h, l, d) for
 * q/k/v/out and (b, h, l) for lse. */
struct attnc_cuda_args {
  const void *q, *k, *v;
  void *out;
  float *lse;                /* may be null */
  int64_t qs[4], ks[4], vs[4], os[4], ls[3];
  int64_t B, HQ, HKV, LQ, LK, D, DV;
  int dtype;                 /* 0: float16, 1: bfloat16 */
  const struct attnc_input *inputs;
  int64_t *error;            /* 4 words, KernelABI.h's status; first error stays */
  int64_t *scratch;          /* pre-pass output; null when there is none */
  /* softmax(dropout = p) (Dropout.h): 1 when this call drops pairs (a
   * training step), 0 for none; the Philox key and counter word 3; and the
   * global number of sequence b = 0 (counter word 2 is (dropout_batch + b)
   * * HQ + h). Kernels of specs without dropout ignore them. */
  int dropout;
  unsigned dropout_offset;
  uint64_t dropout_seed;
  int64_t dropout_batch;
};

/* cuda.h's CUtensorMap: 128 opaque bytes, 64-byte aligned. */
typedef struct __attribute__((aligned(64))) attnc_tensor_map {
  uint64_t opaque[16];
} attnc_tensor_map;
struct attnc_tma_maps {
  attnc_tensor_map q, k, v;
};

/* Words of a launch record. */
enum attnc_launch_word {
  ATTNC_LAUNCH_ROWS = 0,    /* query rows per CTA (key rows for a pre-pass) */
  ATTNC_LAUNCH_THREADS = 1, /* threads per CTA */
  ATTNC_LAUNCH_SMEM = 2,    /* dynamic shared memory, bytes */
  ATTNC_LAUNCH_CLUSTER = 3, /* CTAs per cluster along x; 0 or 1: none */
  ATTNC_LAUNCH_SCRATCH = 4, /* pre-pass: int64 words per (b, h, key tile) */
  ATTNC_LAUNCH_TMA = 5,     /* 1: takes attnc_tma_maps as a 2nd parameter */
  ATTNC_LAUNCH_KEYS = 6,    /* key rows per tile (the k/v TMA box rows) */
  ATTNC_LAUNCH_WORDS = 8
};

#endif /* ATTNC_RUNTIME_CUDAABI_H */
