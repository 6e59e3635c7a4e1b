//===- Microkernels.cpp - Tile kernels: dispatch and portable versions ----===//
//
// See Microkernels.h. Three implementations of each microkernel, one table
// of function pointers per path: AVX-512 (MicrokernelsAvx512.cpp), AVX2 +
// FMA (MicrokernelsAvx2.cpp), each built with its own code generation
// flags, and the generic path's portable C++ (MicrokernelsPortable.inc),
// built for the baseline target and, on x86-64, also for AVX2 and AVX-512:
// the copy for the widest vectors this CPU has runs, unless the JIT has
// compiled that C++ for this very host (attnc_uk_set_generic_kernels,
// api/lib/HostMicrokernels.cpp). The path is the best
// one CPUID finds, or the one ATTNC_CPU_ISA names (when this CPU has it),
// or the one attnc_uk_set_isa forced.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/Microkernels.h"

#include <atomic>
#include <initializer_list>
#include <cstdlib>
#include <cstring>

// One set of declarations per implementation: attnc_uk_*_avx512, _avx2,
// and the generic path's builds, _generic_base, _generic_avx2, ...
#define ATTNC_UK_DECLARE(suffix)                                              \
  void attnc_uk_qk_f32_##suffix(const float *, int64_t, const float *,        \
                                int64_t, float *, int64_t, int64_t, int64_t,  \
                                int64_t, float);                              \
  void attnc_uk_qk_acc_f32_##suffix(const float *, int64_t, const float *,    \
                                    int64_t, float *, int64_t, int64_t,       \
                                    int64_t, int64_t, float);                 \
  void attnc_uk_softmax_t_f32_##suffix(float *, int64_t, int64_t, int64_t,    \
                                       float *, float *, float *);            \
  void attnc_uk_pv_t_f32_##suffix(const float *, int64_t, const float *,      \
                                  int64_t, float *, int64_t, int64_t,         \
                                  int64_t, int64_t, const float *);           \
  void attnc_uk_qk_bf16_##suffix(const uint16_t *, int64_t, const uint16_t *, \
                                 int64_t, float *, int64_t, int64_t, int64_t, \
                                 int64_t, float);                             \
  void attnc_uk_pv_t_bf16_##suffix(const float *, int64_t, const uint16_t *,  \
                                   int64_t, float *, int64_t, int64_t,        \
                                   int64_t, int64_t, const float *);
#if defined(__x86_64__) && defined(ATTNC_HAVE_X86_UKERNELS)
#define ATTNC_X86_UKERNELS 1
extern "C" {
ATTNC_UK_DECLARE(avx512)
ATTNC_UK_DECLARE(avx2)
ATTNC_UK_DECLARE(generic_avx512)
ATTNC_UK_DECLARE(generic_avx2)
void attnc_uk_pack_pairs_bf16_avx512(const uint16_t *, int64_t, int64_t,
                                     int64_t, uint16_t *);
void attnc_uk_pv_t_bf16_in_place_avx512(const float *, int64_t,
                                        const uint16_t *, int64_t, float *,
                                        int64_t, int64_t, int64_t, int64_t,
                                        const float *);
void attnc_uk_pv_t_bf16_in_place_avx2(const float *, int64_t, const uint16_t *,
                                      int64_t, float *, int64_t, int64_t,
                                      int64_t, int64_t, const float *);
}
#endif
extern "C" {
ATTNC_UK_DECLARE(generic_base)
}
#undef ATTNC_UK_DECLARE

namespace {

/// One path's microkernels.
struct Kernels {
  decltype(&attnc_uk_qk_f32_generic_base) qk, qkAcc;
  decltype(&attnc_uk_softmax_t_f32_generic_base) softmax;
  decltype(&attnc_uk_pv_t_f32_generic_base) pv;
  decltype(&attnc_uk_qk_bf16_generic_base) qkBf16;
  decltype(&attnc_uk_pv_t_bf16_generic_base) pvBf16;
};

#define ATTNC_UK_TABLE(suffix)                                                 \
  Kernels {                                                                    \
    attnc_uk_qk_f32_##suffix, attnc_uk_qk_acc_f32_##suffix,                    \
        attnc_uk_softmax_t_f32_##suffix, attnc_uk_pv_t_f32_##suffix,           \
        attnc_uk_qk_bf16_##suffix, attnc_uk_pv_t_bf16_##suffix                 \
  }
const Kernels kGenericBase = ATTNC_UK_TABLE(generic_base);
#ifdef ATTNC_X86_UKERNELS
const Kernels kAvx2 = ATTNC_UK_TABLE(avx2);
const Kernels kAvx512Bf16 = ATTNC_UK_TABLE(avx512);
// Without AVX512_BF16 (Skylake-X, Ice Lake) the bf16 kernels widen to f32
// as the AVX2 ones do.
const Kernels kAvx512 = {attnc_uk_qk_f32_avx512,        attnc_uk_qk_acc_f32_avx512,
                         attnc_uk_softmax_t_f32_avx512, attnc_uk_pv_t_f32_avx512,
                         attnc_uk_qk_bf16_avx2,         attnc_uk_pv_t_bf16_avx2};
// The generic path's portable code, compiled for the widest vectors this
// CPU has.
const Kernels kGenericAvx2 = ATTNC_UK_TABLE(generic_avx2);
const Kernels kGenericAvx512 = ATTNC_UK_TABLE(generic_avx512);
#endif
#undef ATTNC_UK_TABLE

/// Whether this CPU has a path, by CPUID (the AVX-512 file is built with F,
/// DQ, BW and VL; the AVX2 one with AVX2, FMA and F16C).
bool cpuHas(int isa) {
  if (isa == ATTNC_ISA_GENERIC)
    return true;
#ifdef ATTNC_X86_UKERNELS
  static const bool avx2 = __builtin_cpu_supports("avx2") &&
                           __builtin_cpu_supports("fma") &&
                           __builtin_cpu_supports("f16c");
  static const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                             __builtin_cpu_supports("avx512dq") &&
                             __builtin_cpu_supports("avx512bw") &&
                             __builtin_cpu_supports("avx512vl");
  if (isa == ATTNC_ISA_AVX2)
    return avx2;
  if (isa == ATTNC_ISA_AVX512)
    return avx512;
#endif
  return false;
}

int bestIsa() {
  return cpuHas(ATTNC_ISA_AVX512) ? ATTNC_ISA_AVX512
         : cpuHas(ATTNC_ISA_AVX2) ? ATTNC_ISA_AVX2
                                  : ATTNC_ISA_GENERIC;
}

/// ATTNC_CPU_ISA when it names a path this CPU has, else the best one (the
/// runtime's entry points report a bad ATTNC_CPU_ISA before any kernel
/// runs: CpuIsa.h).
int initialIsa() {
  const char *env = std::getenv("ATTNC_CPU_ISA");
  int isa = env && *env ? attnc_uk_isa_from_name(env) : -1;
  return isa >= 0 && cpuHas(isa) ? isa : bestIsa();
}

std::atomic<int> activeIsa{-1};

int currentIsa() {
  int v = activeIsa.load(std::memory_order_relaxed);
  if (v >= 0)
    return v;
  int expected = -1;
  activeIsa.compare_exchange_strong(expected, initialIsa(),
                                    std::memory_order_relaxed);
  return activeIsa.load(std::memory_order_relaxed);
}

/// The generic path's built-in copy for the widest vectors this CPU has.
const Kernels &builtinGeneric(const char **name = nullptr) {
#ifdef ATTNC_X86_UKERNELS
  if (cpuHas(ATTNC_ISA_AVX512))
    return name ? (*name = "built-in avx512", kGenericAvx512) : kGenericAvx512;
  if (cpuHas(ATTNC_ISA_AVX2))
    return name ? (*name = "built-in avx2", kGenericAvx2) : kGenericAvx2;
#endif
  if (name)
    *name = "built-in baseline";
  return kGenericBase;
}

/// attnc_uk_set_generic_kernels' table (one per process: the JIT builds it
/// once) and its name.
Kernels hostGenericTable;
std::atomic<const Kernels *> hostGeneric{nullptr};
std::atomic<const char *> hostGenericName{nullptr};

const Kernels &kernels() {
#ifdef ATTNC_X86_UKERNELS
  static const bool bf16 = __builtin_cpu_supports("avx512bf16");
  switch (currentIsa()) {
  case ATTNC_ISA_AVX512: return bf16 ? kAvx512Bf16 : kAvx512;
  case ATTNC_ISA_AVX2: return kAvx2;
  default: break;
  }
#endif
  if (const Kernels *host = hostGeneric.load(std::memory_order_acquire))
    return *host;
  return builtinGeneric();
}
} // namespace

extern "C" int attnc_uk_isa_from_name(const char *name) {
  for (int isa : {ATTNC_ISA_GENERIC, ATTNC_ISA_AVX2, ATTNC_ISA_AVX512})
    if (name && !std::strcmp(name, attnc_uk_isa_name(isa)))
      return isa;
  return -1;
}

extern "C" const char *attnc_uk_isa_name(int isa) {
  switch (isa) {
  case ATTNC_ISA_GENERIC: return "generic";
  case ATTNC_ISA_AVX2: return "avx2";
  case ATTNC_ISA_AVX512: return "avx512";
  default: return "unknown";
  }
}

extern "C" int attnc_uk_isa_supported(int isa) { return cpuHas(isa) ? 1 : 0; }

extern "C" void attnc_uk_set_generic_kernels(const attnc_uk_generic_kernels *k,
                                             const char *build) {
  if (!k) {
    hostGeneric.store(nullptr, std::memory_order_release);
    hostGenericName.store(nullptr, std::memory_order_release);
    return;
  }
  hostGeneric.store(nullptr, std::memory_order_release);
  hostGenericTable = {k->qk_f32,  k->qk_acc_f32, k->softmax_t_f32,
                      k->pv_t_f32, k->qk_bf16,   k->pv_t_bf16};
  hostGenericName.store(build ? build : "host", std::memory_order_release);
  hostGeneric.store(&hostGenericTable, std::memory_order_release);
}

extern "C" const char *attnc_uk_generic_build(void) {
  if (hostGeneric.load(std::memory_order_acquire))
    if (const char *name = hostGenericName.load(std::memory_order_acquire))
      return name;
  const char *name = nullptr;
  builtinGeneric(&name);
  return name;
}

extern "C" int attnc_uk_isa(void) { return currentIsa(); }

extern "C" int attnc_uk_set_isa(int isa) {
  if (!cpuHas(isa))
    return -1;
  activeIsa.store(isa, std::memory_order_relaxed);
  return 0;
}

extern "C" void attnc_uk_qk_f32(const float *q, int64_t ldq, const float *kt,
                                int64_t ldkt, float *s, int64_t lds,
                                int64_t tq, int64_t tk, int64_t d,
                                float scale) {
  kernels().qk(q, ldq, kt, ldkt, s, lds, tq, tk, d, scale);
}

extern "C" void attnc_uk_qk_acc_f32(const float *q, int64_t ldq,
                                    const float *kt, int64_t ldkt, float *s,
                                    int64_t lds, int64_t tq, int64_t tk,
                                    int64_t d, float scale) {
  kernels().qkAcc(q, ldq, kt, ldkt, s, lds, tq, tk, d, scale);
}

extern "C" void attnc_uk_softmax_t_f32(float *st, int64_t ldst, int64_t tq,
                                       int64_t tk, float *m, float *l,
                                       float *alpha) {
  kernels().softmax(st, ldst, tq, tk, m, l, alpha);
}

extern "C" void attnc_uk_pv_t_f32(const float *pt, int64_t ldpt,
                                  const float *v, int64_t ldv, float *acc,
                                  int64_t ldacc, int64_t tq, int64_t tk,
                                  int64_t dv, const float *alpha) {
  kernels().pv(pt, ldpt, v, ldv, acc, ldacc, tq, tk, dv, alpha);
}

extern "C" void attnc_uk_qk_bf16(const uint16_t *k, int64_t ldk,
                                 const uint16_t *qt2, int64_t ldq2, float *st,
                                 int64_t ldst, int64_t tk, int64_t tq,
                                 int64_t dpairs, float scale) {
  kernels().qkBf16(k, ldk, qt2, ldq2, st, ldst, tk, tq, dpairs, scale);
}

extern "C" void attnc_uk_pv_t_bf16(const float *pt, int64_t ldpt,
                                   const uint16_t *v2, int64_t ldv2,
                                   float *acc, int64_t ldacc, int64_t tq,
                                   int64_t tk, int64_t dv, const float *alpha) {
  kernels().pvBf16(pt, ldpt, v2, ldv2, acc, ldacc, tq, tk, dv, alpha);
}

extern "C" void attnc_uk_pack_pairs_bf16(const uint16_t *src, int64_t ldr,
                                         int64_t ldc, int64_t rows,
                                         int64_t cols, uint16_t *dst) {
#ifdef ATTNC_X86_UKERNELS
  if (ldc == 1 && currentIsa() == ATTNC_ISA_AVX512)
    return attnc_uk_pack_pairs_bf16_avx512(src, ldr, rows, cols, dst);
#endif
  for (int64_t r = 0; r < rows + (rows % 2); ++r)
    for (int64_t c = 0; c < cols; ++c)
      dst[(r / 2) * 2 * cols + 2 * c + r % 2] =
          r < rows ? src[r * ldr + c * ldc] : uint16_t(0);
}

extern "C" void attnc_uk_pv_t_bf16_unpacked(const float *pt, int64_t ldpt,
                                            const uint16_t *v, int64_t ldvr,
                                            int64_t ldvc, float *acc,
                                            int64_t ldacc, int64_t tq,
                                            int64_t tk, int64_t dv,
                                            const float *alpha, uint16_t *v2) {
#ifdef ATTNC_X86_UKERNELS
  // A decode step's few rows: V read once, in place.
  if (tq >= 1 && tq <= 4 && ldvc == 1) {
    if (currentIsa() == ATTNC_ISA_AVX512)
      return attnc_uk_pv_t_bf16_in_place_avx512(pt, ldpt, v, ldvr, acc, ldacc,
                                                tq, tk, dv, alpha);
    if (currentIsa() == ATTNC_ISA_AVX2)
      return attnc_uk_pv_t_bf16_in_place_avx2(pt, ldpt, v, ldvr, acc, ldacc,
                                              tq, tk, dv, alpha);
  }
#endif
  attnc_uk_pack_pairs_bf16(v, ldvr, ldvc, tk, dv, v2);
  kernels().pvBf16(pt, ldpt, v2, 2 * dv, acc, ldacc, tq, tk, dv, alpha);
}

// Row gathers: memcpy per row (the rows are long and contiguous); the pair
// packing interleaves two gathered rows.
extern "C" void attnc_uk_gather_rows_f32(const float *src, int64_t ldr, const int64_t *idx,
                                         int64_t n, int64_t cols, float *dst, int64_t lddst) {
  for (int64_t j = 0; j < n; ++j)
    std::memcpy(dst + j * lddst, src + idx[j] * ldr, size_t(cols) * sizeof(float));
}

extern "C" void attnc_uk_gather_rows_bf16(const uint16_t *src, int64_t ldr, const int64_t *idx,
                                          int64_t n, int64_t cols, uint16_t *dst,
                                          int64_t lddst) {
  for (int64_t j = 0; j < n; ++j)
    std::memcpy(dst + j * lddst, src + idx[j] * ldr, size_t(cols) * sizeof(uint16_t));
}

extern "C" void attnc_uk_pack_pairs_gather_bf16(const uint16_t *src, int64_t ldr,
                                                const int64_t *idx, int64_t n, int64_t cols,
                                                uint16_t *dst) {
  for (int64_t j = 0; j < n; j += 2) {
    const uint16_t *r0 = src + idx[j] * ldr;
    const uint16_t *r1 = j + 1 < n ? src + idx[j + 1] * ldr : nullptr;
    uint16_t *out = dst + (j / 2) * 2 * cols;
    for (int64_t c = 0; c < cols; ++c) {
      out[2 * c] = r0[c];
      out[2 * c + 1] = r1 ? r1[c] : uint16_t(0);
    }
  }
}
