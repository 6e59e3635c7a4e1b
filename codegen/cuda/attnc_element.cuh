//===- attnc_element.cuh - Helpers of the element code and the schedule ---===//
//
// Part of every .cu attnc emits, after CudaABI.h: the context the spec
// regions read (attnc_ctx), the per-CTA uniforms of the kernels, the error
// word, the language's integer arithmetic, the fast math of the element
// code and the saturating interval arithmetic of the tile schedule. Plain
// C++ on the host when ATTNC_HD is defined empty (CudaElementCodeTest).
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_HD
#define ATTNC_HD __host__ __device__
#endif
#ifndef ATTNC_CU_EMBEDDED // the emitted .cu pastes these before this
#include "attnc/Runtime/CudaABI.h"
#include "attnc/Runtime/Dropout.h"
#endif
#ifndef ATTNC_ELEMENT_PRELUDE
#define ATTNC_ELEMENT_PRELUDE
#ifdef __CUDACC_RTC__
// NVRTC has no C library headers: what the element code takes from them.
typedef unsigned char uint8_t;
#define INT64_C(x) x##LL
#define INT64_MAX 9223372036854775807LL
#define INT64_MIN (-INT64_MAX - 1)
#define INFINITY __int_as_float(0x7f800000)
#define NAN __int_as_float(0x7fffffff)
#else
#include <math.h>
#endif

struct attnc_ctx {
  int64_t B, HQ, HKV, LQ, LK, D, DV;
  int64_t b, h, hkv;
  const attnc_input *inputs;
  int64_t *error; // 4 words as KernelABI.h's status; the first error stays
};

// Per-CTA constants of the kernels' element code (CudaModule.cpp): the
// uniform scale and sigmoid bias, and softmax's fold / pre factors.
struct attnc_uniforms {
  float scale, bias, fold, pre;
};

// Many GPU threads may fail at once: the one whose compare-and-swap claims
// word 0 writes the other three, so the first error stays whole.
ATTNC_HD inline void attnc_set_error(const attnc_ctx &c, int64_t code,
                                     int64_t a, int64_t b, int64_t d) {
  if (!c.error) return;
#ifdef __CUDA_ARCH__
  if (atomicCAS(reinterpret_cast<unsigned long long *>(c.error), 0ull,
                (unsigned long long)code) == 0ull) {
    c.error[1] = a; c.error[2] = b; c.error[3] = d;
  }
#else
  if (c.error[0] == 0) {
    c.error[0] = code; c.error[1] = a; c.error[2] = b; c.error[3] = d;
  }
#endif
}
ATTNC_HD inline int64_t attnc_wadd(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
ATTNC_HD inline int64_t attnc_wsub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
ATTNC_HD inline int64_t attnc_wmul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
// Floor division / modulo as the language defines them; a zero divisor
// gives 0 (the region reports error 2 where the value is needed, see
// CudaRegionPrinter.h), and -1 never reaches the divide (INT64_MIN / -1).
ATTNC_HD inline int64_t attnc_fdiv(int64_t a, int64_t b) {
  if (b == -1) return attnc_wsub(0, a);
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
ATTNC_HD inline int64_t attnc_cdiv(int64_t a, int64_t b) { return -attnc_fdiv(-a, b); }
ATTNC_HD inline int64_t attnc_floordiv(int64_t a, int64_t b) {
  return b == 0 ? 0 : attnc_fdiv(a, b);
}
ATTNC_HD inline int64_t attnc_floormod(int64_t a, int64_t b) {
  if (b == 0 || b == -1) return 0;
  return a - b * attnc_fdiv(a, b);
}
// The same on values known to fit 32 bits (CudaRegionPrinter's ranges),
// for divisors that are constants other than 0.
ATTNC_HD inline int64_t attnc_fmod(int64_t a, int64_t b) { return b == -1 ? 0 : a - b * attnc_fdiv(a, b); }
ATTNC_HD inline int attnc_fdiv32(int a, int b) {
  int q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
ATTNC_HD inline int attnc_fmod32(int a, int b) { return a - b * attnc_fdiv32(a, b); }
ATTNC_HD inline int64_t attnc_absi(int64_t a) { return a < 0 ? attnc_wsub(0, a) : a; }
// Shifts on two's complement bits; a count outside [0, 63] gives 0 (the
// caller records ATTNC_STATUS_SHIFT_OUT_OF_RANGE where the value is needed).
ATTNC_HD inline int64_t attnc_shl(int64_t a, int64_t n) {
  return n < 0 || n > 63 ? 0 : int64_t(uint64_t(a) << n);
}
ATTNC_HD inline int64_t attnc_shr(int64_t a, int64_t n) { return n < 0 || n > 63 ? 0 : a >> n; }
ATTNC_HD inline int64_t attnc_fptosi(float x) {
  if (x != x) return 0;
  if (x >= 9.2233720368547758e18f) return INT64_MAX;
  if (x <= -9.2233720368547758e18f) return INT64_MIN;
  return (int64_t)x;
}
// signbit is a <math.h> macro; copysignf exists on the host and in NVRTC.
ATTNC_HD inline bool attnc_signbit(float a) { return copysignf(1.0f, a) < 0.0f; }
ATTNC_HD inline float attnc_minimumf(float a, float b) {
  if (a != a || b != b) return NAN;
  if (a == b) return attnc_signbit(a) ? a : b;
  return a < b ? a : b;
}
ATTNC_HD inline float attnc_maximumf(float a, float b) {
  if (a != a || b != b) return NAN;
  if (a == b) return attnc_signbit(a) ? b : a;
  return a > b ? a : b;
}
// The fast element code's math (CudaRegionPrinter.h): PTX's approximate
// instructions on the GPU (tanh.approx: max relative error 2^-10.99;
// ex2/lg2.approx.ftz: 2^-22.5 relative / 2^-22 absolute, per the PTX
// ISA), the precise library elsewhere (the host tests and the CPU
// emulation of the kernels, test/cuda-emu). ATTNC_PRECISE_MATH keeps the
// precise library on the GPU too.
#if defined(__CUDA_ARCH__) && !defined(ATTNC_PRECISE_MATH)
__device__ __forceinline__ float attnc_ex2(float x) {
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}
__device__ __forceinline__ float attnc_lg2(float x) {
  float r;
  asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}
__device__ __forceinline__ float attnc_tanh_fast(float x) {
  float r;
  asm("tanh.approx.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}
#else
ATTNC_HD inline float attnc_ex2(float x) { return exp2f(x); }
ATTNC_HD inline float attnc_lg2(float x) { return log2f(x); }
ATTNC_HD inline float attnc_tanh_fast(float x) { return tanhf(x); }
#endif
ATTNC_HD inline float attnc_exp_fast(float x) { return attnc_ex2(x * 1.4426950408889634f); }
ATTNC_HD inline float attnc_log_fast(float x) { return attnc_lg2(x) * 0.6931471805599453f; }
// Interval arithmetic of the schedule: results saturate at +-2^62, exactly
// as clamping the true (unbounded) sum or product; no __int128, which NVRTC
// accepts only with --device-int128.
ATTNC_HD inline int64_t attnc_sat62(int64_t v) {
  const int64_t lim = INT64_C(1) << 62;
  return v < -lim ? -lim : v > lim ? lim : v;
}
ATTNC_HD inline int64_t attnc_sadd62(int64_t a, int64_t b) {
  const int64_t lim = INT64_C(1) << 62;
  int64_t r = (int64_t)((uint64_t)a + (uint64_t)b);
  if ((a < 0) == (b < 0) && (r < 0) != (a < 0)) return a < 0 ? -lim : lim; // wrapped
  return attnc_sat62(r);
}
ATTNC_HD inline int64_t attnc_smul62(int64_t a, int64_t b) {
  const uint64_t lim = (uint64_t)1 << 62;
  if (a == 0 || b == 0) return 0;
  uint64_t ua = a < 0 ? 0 - (uint64_t)a : (uint64_t)a, ub = b < 0 ? 0 - (uint64_t)b : (uint64_t)b;
  bool neg = (a < 0) != (b < 0);
  if (ua > lim / ub) return neg ? -(int64_t)lim : (int64_t)lim; // |a b| > 2^62
  return neg ? -(int64_t)(ua * ub) : (int64_t)(ua * ub);
}
#endif // ATTNC_ELEMENT_PRELUDE
