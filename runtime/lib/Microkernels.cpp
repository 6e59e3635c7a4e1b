//===- Microkernels.cpp - Tile kernels: dispatch and portable versions ----===//
//
// See Microkernels.h. The AVX-512 versions live in MicrokernelsAvx512.cpp
// (built with AVX-512 flags); here a CPUID check picks them once, and the
// portable loops below serve every other CPU (and the tests of this path,
// through attnc_uk_set_portable). The portable softmax uses std::exp, so it
// is exact to float rounding.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/Microkernels.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <cmath>
#include <limits>

extern "C" {
void attnc_uk_qk_f32_avx512(const float *, int64_t, const float *, int64_t,
                            float *, int64_t, int64_t, int64_t, int64_t, float);
void attnc_uk_qk_acc_f32_avx512(const float *, int64_t, const float *, int64_t,
                                float *, int64_t, int64_t, int64_t, int64_t,
                                float);
void attnc_uk_softmax_t_f32_avx512(float *, int64_t, int64_t, int64_t, float *,
                                   float *, float *);
void attnc_uk_qk_bf16_avx512(const uint16_t *, int64_t, const uint16_t *,
                             int64_t, float *, int64_t, int64_t, int64_t,
                             int64_t, float);
void attnc_uk_pv_t_bf16_avx512(const float *, int64_t, const uint16_t *,
                               int64_t, float *, int64_t, int64_t, int64_t,
                               int64_t, const float *);
void attnc_uk_pack_pairs_bf16_avx512(const uint16_t *, int64_t, int64_t,
                                     int64_t, uint16_t *);
void attnc_uk_pv_t_f32_avx512(const float *, int64_t, const float *, int64_t,
                            float *, int64_t, int64_t, int64_t, int64_t,
                            const float *);
}

namespace {
std::atomic<int> forcePortable{0};

bool useAvx512() {
#if defined(__x86_64__) && defined(ATTNC_HAVE_AVX512_UKERNELS)
  static const bool has = __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512dq");
  return has && !forcePortable.load(std::memory_order_relaxed);
#else
  return false;
#endif
}

bool useAvx512Bf16() {
#if defined(__x86_64__) && defined(ATTNC_HAVE_AVX512_UKERNELS)
  static const bool has = __builtin_cpu_supports("avx512bf16");
  return has && useAvx512();
#else
  return false;
#endif
}

float bf16ToFloat(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void qkPortable(const float *q, int64_t ldq, const float *kt, int64_t ldkt,
                float *s, int64_t lds, int64_t tq, int64_t tk, int64_t d,
                float scale) {
  for (int64_t i = 0; i < tq; ++i) {
    float *row = s + i * lds;
    std::fill(row, row + tk, 0.0f);
    for (int64_t k = 0; k < d; ++k) {
      float a = q[i * ldq + k];
      const float *b = kt + k * ldkt;
      for (int64_t j = 0; j < tk; ++j)
        row[j] += a * b[j];
    }
    for (int64_t j = 0; j < tk; ++j)
      row[j] *= scale;
  }
}

/// s += scale * (q kt), the scale applied to each q element.
void qkAccPortable(const float *q, int64_t ldq, const float *kt, int64_t ldkt,
                   float *s, int64_t lds, int64_t tq, int64_t tk, int64_t d,
                   float scale) {
  for (int64_t i = 0; i < tq; ++i) {
    float *row = s + i * lds;
    for (int64_t k = 0; k < d; ++k) {
      float a = scale * q[i * ldq + k];
      const float *b = kt + k * ldkt;
      for (int64_t j = 0; j < tk; ++j)
        row[j] += a * b[j];
    }
  }
}

void softmaxPortable(float *st, int64_t ldst, int64_t tq, int64_t tk,
                     float *m, float *l, float *alpha) {
  const float negInf = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < tq; ++i) {
    float mNew = m[i];
    for (int64_t j = 0; j < tk; ++j)
      mNew = std::max(mNew, st[j * ldst + i]);
    float z = mNew == negInf ? 0.0f : mNew;
    float sum = 0;
    for (int64_t j = 0; j < tk; ++j)
      sum += (st[j * ldst + i] = std::exp(st[j * ldst + i] - z));
    alpha[i] = std::exp(m[i] - z);
    l[i] = alpha[i] * l[i] + sum;
    m[i] = mNew;
  }
}

void pvPortable(const float *pt, int64_t ldpt, const float *v, int64_t ldv,
                float *acc, int64_t ldacc, int64_t tq, int64_t tk, int64_t dv,
                const float *alpha) {
  for (int64_t i = 0; i < tq; ++i) {
    float *out = acc + i * ldacc;
    if (alpha)
      for (int64_t c = 0; c < dv; ++c)
        out[c] *= alpha[i];
    for (int64_t j = 0; j < tk; ++j) {
      float a = pt[j * ldpt + i];
      const float *b = v + j * ldv;
      for (int64_t c = 0; c < dv; ++c)
        out[c] += a * b[c];
    }
  }
}
} // namespace

extern "C" void attnc_uk_set_portable(int portable) {
  forcePortable.store(portable ? 1 : 0, std::memory_order_relaxed);
}

extern "C" void attnc_uk_qk_f32(const float *q, int64_t ldq, const float *kt,
                                int64_t ldkt, float *s, int64_t lds,
                                int64_t tq, int64_t tk, int64_t d,
                                float scale) {
  if (useAvx512())
    return attnc_uk_qk_f32_avx512(q, ldq, kt, ldkt, s, lds, tq, tk, d, scale);
  qkPortable(q, ldq, kt, ldkt, s, lds, tq, tk, d, scale);
}

extern "C" void attnc_uk_qk_acc_f32(const float *q, int64_t ldq,
                                    const float *kt, int64_t ldkt, float *s,
                                    int64_t lds, int64_t tq, int64_t tk,
                                    int64_t d, float scale) {
  if (useAvx512())
    return attnc_uk_qk_acc_f32_avx512(q, ldq, kt, ldkt, s, lds, tq, tk, d,
                                      scale);
  qkAccPortable(q, ldq, kt, ldkt, s, lds, tq, tk, d, scale);
}

extern "C" void attnc_uk_softmax_t_f32(float *st, int64_t ldst, int64_t tq,
                                       int64_t tk, float *m, float *l,
                                       float *alpha) {
  if (useAvx512())
    return attnc_uk_softmax_t_f32_avx512(st, ldst, tq, tk, m, l, alpha);
  softmaxPortable(st, ldst, tq, tk, m, l, alpha);
}

extern "C" void attnc_uk_pv_t_f32(const float *pt, int64_t ldpt,
                                  const float *v, int64_t ldv, float *acc,
                                  int64_t ldacc, int64_t tq, int64_t tk,
                                  int64_t dv, const float *alpha) {
  if (useAvx512())
    return attnc_uk_pv_t_f32_avx512(pt, ldpt, v, ldv, acc, ldacc, tq, tk, dv,
                                    alpha);
  pvPortable(pt, ldpt, v, ldv, acc, ldacc, tq, tk, dv, alpha);
}

extern "C" void attnc_uk_qk_bf16(const uint16_t *k, int64_t ldk,
                                 const uint16_t *qt2, int64_t ldq2, float *st,
                                 int64_t ldst, int64_t tk, int64_t tq,
                                 int64_t dpairs, float scale) {
  if (useAvx512Bf16())
    return attnc_uk_qk_bf16_avx512(k, ldk, qt2, ldq2, st, ldst, tk, tq,
                                   dpairs, scale);
  for (int64_t j = 0; j < tk; ++j)
    for (int64_t i = 0; i < tq; ++i) {
      float sum = 0;
      for (int64_t d = 0; d < 2 * dpairs; ++d)
        sum += bf16ToFloat(k[j * ldk + d]) *
               bf16ToFloat(qt2[(d / 2) * ldq2 + 2 * i + d % 2]);
      st[j * ldst + i] = scale * sum;
    }
}

extern "C" void attnc_uk_pv_t_bf16(const float *pt, int64_t ldpt,
                                   const uint16_t *v2, int64_t ldv2,
                                   float *acc, int64_t ldacc, int64_t tq,
                                   int64_t tk, int64_t dv, const float *alpha) {
  if (useAvx512Bf16())
    return attnc_uk_pv_t_bf16_avx512(pt, ldpt, v2, ldv2, acc, ldacc, tq, tk,
                                     dv, alpha);
  for (int64_t i = 0; i < tq; ++i) {
    float *out = acc + i * ldacc;
    if (alpha)
      for (int64_t c = 0; c < dv; ++c)
        out[c] *= alpha[i];
    for (int64_t j = 0; j < tk; ++j) {
      float p = pt[j * ldpt + i];
      for (int64_t c = 0; c < dv; ++c)
        out[c] += p * bf16ToFloat(v2[(j / 2) * ldv2 + 2 * c + j % 2]);
    }
  }
}

extern "C" void attnc_uk_pack_pairs_bf16(const uint16_t *src, int64_t ldr,
                                         int64_t ldc, int64_t rows,
                                         int64_t cols, uint16_t *dst) {
  if (ldc == 1 && useAvx512())
    return attnc_uk_pack_pairs_bf16_avx512(src, ldr, rows, cols, dst);
  for (int64_t r = 0; r < rows + (rows % 2); ++r)
    for (int64_t c = 0; c < cols; ++c)
      dst[(r / 2) * 2 * cols + 2 * c + r % 2] =
          r < rows ? src[r * ldr + c * ldc] : uint16_t(0);
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
