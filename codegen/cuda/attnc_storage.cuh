//===- attnc_storage.cuh - 16-bit storage types of the CUDA kernels -------===//
//
// Part of every .cu attnc emits (CudaModule.cpp pastes it; the emitted file
// must be self-contained for NVRTC). bf16 and f16 are raw 16-bit words,
// converted with PTX cvt (sm_80+), so neither nvcc nor NVRTC needs
// cuda_fp16.h / cuda_bf16.h. test/cuda-emu/CudaEmu.h defines the guard
// first and supplies CPU versions.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_CUDA_HELPERS
#define ATTNC_CUDA_HELPERS
struct attnc_bf16 { unsigned short x; };
struct attnc_f16 { unsigned short x; };
template <typename T> struct attnc_dt;
template <> struct attnc_dt<attnc_bf16> {
  static constexpr bool bf16 = true;
  // cvt.rn.bf16x2.f32 d, a, b puts a in the upper half, b in the lower.
  static __device__ __forceinline__ unsigned pack(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
  }
  static __device__ __forceinline__ unsigned short one(float x) {
    unsigned short r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(x));
    return r;
  }
};
template <> struct attnc_dt<attnc_f16> {
  static constexpr bool bf16 = false;
  static __device__ __forceinline__ unsigned pack(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
  }
  static __device__ __forceinline__ unsigned short one(float x) {
    unsigned short r;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r) : "f"(x));
    return r;
  }
};
__device__ __forceinline__ unsigned attnc_smem_addr(const void *p) {
  return (unsigned)__cvta_generic_to_shared(p);
}
#endif // ATTNC_CUDA_HELPERS
