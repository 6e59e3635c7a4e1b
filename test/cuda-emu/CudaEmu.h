//===- CudaEmu.h - Run emitted CUDA kernels on the CPU (tests) --*- C++ -*-===//
//
// Force-included (-include) before a .cu (sm_80 or sm_90a) that attnc emitted, compiled
// as C++ with -DATTNC_CUDA_EMULATION: it supplies what nvcc would, so the
// kernels run on the CPU, one thread block at a time, each CUDA thread a
// fiber (CudaEmu.cpp):
//   - the CUDA keywords and built-ins (threadIdx, __syncthreads, __shfl_*);
//   - the helpers the emitter keeps behind ATTNC_CUDA_HELPERS, ATTNC_MMA_SM80
//     and ATTNC_SM90_HELPERS (every PTX instruction the kernels use); for
//     sm_80: cvt, ldmatrix
//     (x4, x2, x2.trans), cp.async (landing in shared memory only at the
//     cp.async.wait_group that covers it), and mma.sync m16n8k16 with the
//     fragment layouts of the PTX ISA, the warp's lanes exchanging their
//     registers through a warp-wide barrier as the hardware does; for
//     sm_90a: mbarriers, TMA loads and wgmma (see the section below).
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
/// bar.sync (wait) / bar.arrive on named barrier `id` of `count` threads.
void namedBarrier(unsigned id, unsigned count, bool wait);
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

// ---- ATTNC_SM90_HELPERS: mbarriers, TMA, wgmma (the sm_90a kernel) ----
// mbarriers keep a phase, pending arrivals and a transaction count; a wait
// yields until the phase of its parity has completed. A TMA load copies the
// box at once (zeros out of range) into shared memory in the 128-byte
// swizzle (16-byte chunk index ^ row % 8 within each 1024 bytes) and
// completes its bytes on the mbarrier. wgmma decodes its descriptors as the
// hardware does (start, LBO, SBO; K-major or, with trans-b, N-major 128B
// swizzled) and reads shared memory through the same swizzle; the register
// A operand is exchanged within the warp. A wgmma runs at the wait_group
// that covers it, reading its registers and shared memory then: a kernel
// that reads the accumulator before that wait, or changes the A registers
// or the shared operands in between, computes a wrong result.
// Named barriers (bar.sync / bar.arrive) count arrivals per id. fences and
// setmaxnreg do nothing.
#define __grid_constant__
#define __CUDA_ARCH_FEAT_SM90_ALL 1
#define ATTNC_SM90_HELPERS
#define ATTNC_DYNAMIC_SMEM90(name, align) unsigned char *name = ::attnc_emu::sharedMemory()
struct attnc_tensor_map;
namespace attnc_emu {
void mbarInit(unsigned bar, unsigned count);
void mbarExpectTx(unsigned bar, unsigned bytes);
void mbarArrive(unsigned bar);
void mbarWait(unsigned bar, unsigned parity);
void tmaLoad(unsigned dst, const void *map, unsigned bar, int d, int l, int h, int b);
void wgmmaSS(float *d, int n, uint64_t a, uint64_t b, int accumulate, bool bf16);
void wgmmaRS(float *d, int n, const unsigned *a, uint64_t b, int accumulate, bool bf16);
void wgmmaCommit();
/// Completes every wgmma group but the `groups` newest (wait_group N).
void wgmmaWait(unsigned groups);
} // namespace attnc_emu
inline void attnc_fence_mbar_init() {}
template <int R> inline void attnc_setmaxnreg_dec() {}
template <int R> inline void attnc_setmaxnreg_inc() {}
inline uint64_t attnc_gmma_desc(unsigned addr, unsigned lbo, unsigned sbo) {
  return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)((lbo & 0x3FFFF) >> 4) << 16) |
         ((uint64_t)((sbo & 0x3FFFF) >> 4) << 32) | ((uint64_t)1 << 62);
}
inline void attnc_mbar_init(unsigned bar, unsigned count) { attnc_emu::mbarInit(bar, count); }
inline void attnc_mbar_expect_tx(unsigned bar, unsigned bytes) { attnc_emu::mbarExpectTx(bar, bytes); }
inline void attnc_mbar_arrive(unsigned bar) { attnc_emu::mbarArrive(bar); }
inline void attnc_mbar_wait(unsigned bar, unsigned parity) { attnc_emu::mbarWait(bar, parity); }
inline void attnc_tma_load(unsigned dst, const struct attnc_tensor_map *map, unsigned bar,
                           int d, int l, int h, int b) {
  attnc_emu::tmaLoad(dst, map, bar, d, l, h, b);
}
inline void attnc_wgmma_fence() {}
inline void attnc_wgmma_commit() { attnc_emu::wgmmaCommit(); }
inline void attnc_wgmma_wait0() { attnc_emu::wgmmaWait(0); }
inline void attnc_wgmma_wait1() { attnc_emu::wgmmaWait(1); }
inline void attnc_bar_sync(unsigned id, unsigned count) { attnc_emu::namedBarrier(id, count, true); }
inline void attnc_bar_arrive(unsigned id, unsigned count) { attnc_emu::namedBarrier(id, count, false); }
template <int N> inline void attnc_acc_fence(float (&)[N]) {}
template <typename T> inline void attnc_wgmma_ss_n128(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {
  attnc_emu::wgmmaSS(d, 128, a, b, accumulate, attnc_dt<T>::bf16);
}
template <typename T> inline void attnc_wgmma_ss_n128_zero(float (&d)[64], uint64_t a, uint64_t b) {
  attnc_emu::wgmmaSS(d, 128, a, b, 0, attnc_dt<T>::bf16);
}
template <typename T> inline void attnc_wgmma_rs_n64(float (&d)[32], const unsigned (&a)[4], uint64_t b, int accumulate) {
  attnc_emu::wgmmaRS(d, 64, a, b, accumulate, attnc_dt<T>::bf16);
}
template <typename T> inline void attnc_wgmma_rs_n128(float (&d)[64], const unsigned (&a)[4], uint64_t b, int accumulate) {
  attnc_emu::wgmmaRS(d, 128, a, b, accumulate, attnc_dt<T>::bf16);
}
template <typename T, int N> inline void attnc_wgmma_rs(float (&d)[N / 2], const unsigned (&a)[4], uint64_t b, int accumulate) {
  if constexpr (N == 64) attnc_wgmma_rs_n64<T>(d, a, b, accumulate);
  else attnc_wgmma_rs_n128<T>(d, a, b, accumulate);
}

#endif // ATTNC_CUDA_EMU_H
