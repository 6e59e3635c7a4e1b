//===- CudaEmu.h - Run emitted sm_80 kernels on the CPU (tests) -*- C++ -*-===//
//
// Force-included (-include) before an sm_80 .cu that attnc emitted, compiled
// as C++ with -DATTNC_CUDA_EMULATION: it supplies what nvcc would, so the
// kernels run on the CPU, one thread block at a time, each CUDA thread a
// fiber (CudaEmu.cpp):
//   - the CUDA keywords and built-ins (threadIdx, __syncthreads, __shfl_*);
//   - the sm_80 helpers the emitter keeps behind ATTNC_CUDA_HELPERS and
//     ATTNC_MMA_SM80 (every PTX instruction the kernel uses): cvt, ldmatrix
//     (x4, x2, x2.trans), cp.async (landing in shared memory only at the
//     cp.async.wait_group that covers it), and mma.sync m16n8k16 with the
//     fragment layouts of the PTX ISA, the warp's lanes exchanging their
//     registers through a warp-wide barrier as the hardware does.
// What this proves: the kernel's indexing, schedule, pipeline order, masks,
// tails and fragment bookkeeping, under the PTX ISA's documented semantics.
// What it cannot: timing, races the sequential fibers hide, and whether
// real hardware matches the ISA text.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_CUDA_EMU_H
#define ATTNC_CUDA_EMU_H

#include <cmath>
#include <cstdint>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __constant__
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__ __restrict

namespace attnc_emu {
struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};
/// The running thread's indices and the launch's dimensions.
const Dim3 &threadIndex();
const Dim3 &blockIndex();
const Dim3 &blockDims();
const Dim3 &gridDims();
void syncthreads();
/// Warp collectives: every lane of the calling thread's warp deposits
/// `bytes` bytes, all wait, then `gather` reads any lane's deposit; a second
/// barrier ends the exchange.
void warpDeposit(const void *data, unsigned bytes);
const void *warpPeek(unsigned lane);
void warpEnd();
unsigned laneId();
/// The block's dynamic shared memory (what `extern __shared__` names).
unsigned char *sharedMemory();
} // namespace attnc_emu

#define threadIdx (::attnc_emu::threadIndex())
#define blockIdx (::attnc_emu::blockIndex())
#define blockDim (::attnc_emu::blockDims())
#define gridDim (::attnc_emu::gridDims())
#define __syncthreads() ::attnc_emu::syncthreads()

template <typename T> inline T __shfl_xor_sync(unsigned, T v, int laneMask) {
  attnc_emu::warpDeposit(&v, sizeof v);
  T r;
  std::memcpy(&r, attnc_emu::warpPeek(attnc_emu::laneId() ^ unsigned(laneMask)), sizeof r);
  attnc_emu::warpEnd();
  return r;
}
inline float __expf(float x) { return std::exp(x); }
[[noreturn]] inline void __trap() { __builtin_trap(); }


// ---- ATTNC_CUDA_HELPERS: storage types and conversions (cvt.rn) ----
#define ATTNC_CUDA_HELPERS
struct attnc_bf16 { unsigned short x; };
struct attnc_f16 { unsigned short x; };
namespace attnc_emu {
unsigned short floatToBf16(float x); // round to nearest even
unsigned short floatToF16(float x);
float bf16ToFloat(unsigned short h);
float f16ToFloat(unsigned short h);
} // namespace attnc_emu
template <typename T> struct attnc_dt;
template <> struct attnc_dt<attnc_bf16> {
  static constexpr bool bf16 = true;
  static unsigned pack(float lo, float hi) {
    return unsigned(attnc_emu::floatToBf16(lo)) | unsigned(attnc_emu::floatToBf16(hi)) << 16;
  }
  static unsigned short one(float x) { return attnc_emu::floatToBf16(x); }
};
template <> struct attnc_dt<attnc_f16> {
  static constexpr bool bf16 = false;
  static unsigned pack(float lo, float hi) {
    return unsigned(attnc_emu::floatToF16(lo)) | unsigned(attnc_emu::floatToF16(hi)) << 16;
  }
  static unsigned short one(float x) { return attnc_emu::floatToF16(x); }
};
// Shared addresses are offsets into the block's buffer.
inline unsigned attnc_smem_addr(const void *p) {
  return unsigned(static_cast<const unsigned char *>(p) - attnc_emu::sharedMemory());
}

// ---- ATTNC_MMA_SM80: ldmatrix, cp.async, mma.sync ----
#define ATTNC_MMA_SM80
#define ATTNC_DYNAMIC_SMEM(name, align) unsigned char *name = ::attnc_emu::sharedMemory()
namespace attnc_emu {
void ldmatrix(unsigned *r, int count, bool trans, const void *p);
void mma16816(float *d, const unsigned *a, const unsigned *b, bool bf16);
// cp.async as the hardware may run it: the source is read at once, shared
// memory is written only when a cp.async.wait_group covers the copy's
// group (`keepNewest` newest committed groups may stay pending), so a read
// before the wait sees the NaN poison.
void cpAsync(void *dst, const void *src, int bytes);
void cpCommit();
void cpWait(int keepNewest);
} // namespace attnc_emu
inline void attnc_ldsm_x4(unsigned (&r)[4], const void *p) { attnc_emu::ldmatrix(r, 4, false, p); }
inline void attnc_ldsm_x2(unsigned (&r)[2], const void *p) { attnc_emu::ldmatrix(r, 2, false, p); }
inline void attnc_ldsm_x2_trans(unsigned (&r)[2], const void *p) { attnc_emu::ldmatrix(r, 2, true, p); }
inline void attnc_cp_async16(void *dst, const void *src, int bytes) {
  attnc_emu::cpAsync(dst, src, bytes);
}
inline void attnc_cp_commit() { attnc_emu::cpCommit(); }
inline void attnc_cp_wait_all_but_newest() { attnc_emu::cpWait(1); }
inline void attnc_cp_wait_all() { attnc_emu::cpWait(0); }
template <typename T> inline void attnc_mma_16816(float *d, const unsigned *a, const unsigned *b) {
  attnc_emu::mma16816(d, a, b, attnc_dt<T>::bf16);
}

#endif // ATTNC_CUDA_EMU_H
