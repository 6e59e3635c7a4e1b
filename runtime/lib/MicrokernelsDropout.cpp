//===- MicrokernelsDropout.cpp - The dropout mask on a transposed P tile --===//
//
// attnc_uk_dropout_t_f32 (Microkernels.h): softmax(dropout = p)'s mask
// (Dropout.h) applied to a tile of P stored transposed, one Philox call per
// row and 4 keys. The AVX-512 and AVX2 versions run 16 or 8 rows at once,
// the 32 x 32 -> 64-bit products as two vpmuludq (even and odd lanes); the
// portable one calls Dropout.h's attnc_philox4x32_10. All three give the
// same bits; which runs follows attnc_uk_isa() (ATTNC_CPU_ISA forces it).
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/Dropout.h"
#include "attnc/Runtime/Microkernels.h"

#include <algorithm>
#include <cstdint>

#if defined(__x86_64__) && defined(ATTNC_HAVE_X86_UKERNELS)
#include <immintrin.h>
#define ATTNC_DROPOUT_X86 1
#endif

namespace {

/// The arguments of one call, and the counters of a block of rows.
struct DropoutTile {
  float *st;
  int64_t ldst, tq, tk, firstKey, r0, rowsPerHead, qPos, bh0;
  uint64_t seed;
  uint32_t offset, threshold;
  float scale;

  /// Counter words 1 and 2 (q, b HQ + h) of rows i0 .. i0 + n - 1.
  void rowCounters(int64_t i0, int64_t n, uint32_t *q, uint32_t *bh) const {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = r0 + i0 + i;
      q[i] = uint32_t(qPos + r % rowsPerHead);
      bh[i] = uint32_t(bh0 + r / rowsPerHead);
    }
  }
  /// The groups of 4 keys 4g + w (w in [0, 4)) the tile meets: g in
  /// [firstGroup(), lastGroup()].
  int64_t firstGroup() const { return firstKey >> 2; }
  int64_t lastGroup() const { return (firstKey + tk - 1) >> 2; }
};

/// Group g's keys in the tile: w in [w0, w1), at local key base + w.
struct KeyGroup {
  int64_t base, w0, w1;
  KeyGroup(const DropoutTile &t, int64_t g)
      : base(4 * g - t.firstKey), w0(std::max<int64_t>(0, -base)),
        w1(std::min<int64_t>(4, t.tk - base)) {}
};

void dropoutPortable(const DropoutTile &t) {
  constexpr int64_t kRows = 64;
  uint32_t q[kRows], bh[kRows];
  for (int64_t i0 = 0; i0 < t.tq; i0 += kRows) {
    const int64_t n = std::min(kRows, t.tq - i0);
    t.rowCounters(i0, n, q, bh);
    for (int64_t g = t.firstGroup(); g <= t.lastGroup(); ++g) {
      const KeyGroup kg(t, g);
      for (int64_t i = 0; i < n; ++i) {
        const unsigned c[4] = {unsigned(g), q[i], bh[i], t.offset};
        unsigned r[4];
        attnc_philox4x32_10(c, unsigned(t.seed), unsigned(t.seed >> 32), r);
        for (int64_t w = kg.w0; w < kg.w1; ++w) {
          float &p = t.st[(kg.base + w) * t.ldst + i0 + i];
          p = r[w] >= t.threshold ? p * t.scale : 0.0f;
        }
      }
    }
  }
}

#ifdef ATTNC_DROPOUT_X86
#define ATTNC_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define ATTNC_TARGET_AVX2 __attribute__((target("avx2,fma")))

/// lo and hi of a * m per 32-bit lane (m broadcast).
ATTNC_TARGET_AVX512 inline __m512i mulHiLo512(__m512i a, __m512i m, __m512i &hi) {
  const __m512i even = _mm512_mul_epu32(a, m);
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  return _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}

ATTNC_TARGET_AVX512 void dropoutAvx512(const DropoutTile &t) {
  constexpr int64_t kRows = 256;
  alignas(64) uint32_t q[kRows], bh[kRows];
  const __m512i m0 = _mm512_set1_epi32(int(ATTNC_PHILOX_M0));
  const __m512i m1 = _mm512_set1_epi32(int(ATTNC_PHILOX_M1));
  const __m512 scale = _mm512_set1_ps(t.scale);
  const __m512i threshold = _mm512_set1_epi32(int(t.threshold));
  for (int64_t i0 = 0; i0 < t.tq; i0 += kRows) {
    const int64_t n = std::min(kRows, t.tq - i0);
    t.rowCounters(i0, n, q, bh);
    for (int64_t g = t.firstGroup(); g <= t.lastGroup(); ++g) {
      const KeyGroup kg(t, g);
      for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 rows = n - i >= 16 ? 0xFFFF : __mmask16((1u << (n - i)) - 1);
        __m512i c0 = _mm512_set1_epi32(int(uint32_t(g)));
        __m512i c1 = _mm512_maskz_loadu_epi32(rows, q + i);
        __m512i c2 = _mm512_maskz_loadu_epi32(rows, bh + i);
        __m512i c3 = _mm512_set1_epi32(int(t.offset));
        uint32_t k0 = uint32_t(t.seed), k1 = uint32_t(t.seed >> 32);
        for (int round = 0; round < 10; ++round) {
          __m512i hi0, hi1;
          const __m512i lo0 = mulHiLo512(c0, m0, hi0);
          const __m512i lo1 = mulHiLo512(c2, m1, hi1);
          c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32(int(k0)));
          c1 = lo1;
          c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32(int(k1)));
          c3 = lo0;
          k0 += ATTNC_PHILOX_W0;
          k1 += ATTNC_PHILOX_W1;
        }
        const __m512i words[4] = {c0, c1, c2, c3};
        for (int64_t w = kg.w0; w < kg.w1; ++w) {
          float *p = t.st + (kg.base + w) * t.ldst + i0 + i;
          const __mmask16 keep = _mm512_cmpge_epu32_mask(words[w], threshold);
          const __m512 v = _mm512_maskz_loadu_ps(rows, p);
          _mm512_mask_storeu_ps(p, rows, _mm512_maskz_mul_ps(keep, v, scale));
        }
      }
    }
  }
}

/// lo and hi of a * m per 32-bit lane (m broadcast).
ATTNC_TARGET_AVX2 inline __m256i mulHiLo256(__m256i a, __m256i m, __m256i &hi) {
  const __m256i even = _mm256_mul_epu32(a, m);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  return _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}

ATTNC_TARGET_AVX2 void dropoutAvx2(const DropoutTile &t) {
  constexpr int64_t kRows = 256;
  alignas(32) uint32_t q[kRows + 8], bh[kRows + 8];
  const __m256i m0 = _mm256_set1_epi32(int(ATTNC_PHILOX_M0));
  const __m256i m1 = _mm256_set1_epi32(int(ATTNC_PHILOX_M1));
  const __m256 scale = _mm256_set1_ps(t.scale);
  // r >= threshold, unsigned, as a signed compare of both biased by 2^31.
  const __m256i bias = _mm256_set1_epi32(int(0x80000000u));
  const __m256i threshold = _mm256_set1_epi32(int(t.threshold ^ 0x80000000u));
  for (int64_t i0 = 0; i0 < t.tq; i0 += kRows) {
    const int64_t n = std::min(kRows, t.tq - i0);
    t.rowCounters(i0, n, q, bh);
    std::fill(q + n, q + n + 8, 0u); // the lanes past the rows: drawn, unused
    std::fill(bh + n, bh + n + 8, 0u);
    for (int64_t g = t.firstGroup(); g <= t.lastGroup(); ++g) {
      const KeyGroup kg(t, g);
      for (int64_t i = 0; i < n; i += 8) {
        const int64_t lanes = std::min<int64_t>(8, n - i);
        __m256i c0 = _mm256_set1_epi32(int(uint32_t(g)));
        __m256i c1 = _mm256_load_si256(reinterpret_cast<const __m256i *>(q + i));
        __m256i c2 = _mm256_load_si256(reinterpret_cast<const __m256i *>(bh + i));
        __m256i c3 = _mm256_set1_epi32(int(t.offset));
        uint32_t k0 = uint32_t(t.seed), k1 = uint32_t(t.seed >> 32);
        for (int round = 0; round < 10; ++round) {
          __m256i hi0, hi1;
          const __m256i lo0 = mulHiLo256(c0, m0, hi0);
          const __m256i lo1 = mulHiLo256(c2, m1, hi1);
          c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(int(k0)));
          c1 = lo1;
          c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(int(k1)));
          c3 = lo0;
          k0 += ATTNC_PHILOX_W0;
          k1 += ATTNC_PHILOX_W1;
        }
        const __m256i words[4] = {c0, c1, c2, c3};
        for (int64_t w = kg.w0; w < kg.w1; ++w) {
          float *p = t.st + (kg.base + w) * t.ldst + i0 + i;
          const __m256i drop =
              _mm256_cmpgt_epi32(threshold, _mm256_xor_si256(words[w], bias));
          if (lanes == 8) {
            const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(p), scale);
            _mm256_storeu_ps(p, _mm256_andnot_ps(_mm256_castsi256_ps(drop), v));
            continue;
          }
          alignas(32) uint32_t dropped[8];
          _mm256_store_si256(reinterpret_cast<__m256i *>(dropped), drop);
          for (int64_t l = 0; l < lanes; ++l)
            p[l] = dropped[l] ? 0.0f : p[l] * t.scale;
        }
      }
    }
  }
}
#endif

} // namespace

extern "C" void attnc_uk_dropout_t_f32(float *st, int64_t ldst, int64_t tq, int64_t tk,
                                       int64_t firstKey, int64_t r0, int64_t rowsPerHead,
                                       int64_t qPos, int64_t bh0, int64_t seed, int64_t offset,
                                       int64_t threshold, float scale) {
  if (tq <= 0 || tk <= 0)
    return;
  const DropoutTile t{st,   ldst,      tq,  tk,           firstKey,        r0,
                      rowsPerHead, qPos, bh0, uint64_t(seed), uint32_t(offset),
                      uint32_t(threshold), scale};
#ifdef ATTNC_DROPOUT_X86
  const int isa = attnc_uk_isa();
  if (isa == ATTNC_ISA_AVX512)
    return dropoutAvx512(t);
  if (isa == ATTNC_ISA_AVX2)
    return dropoutAvx2(t);
#endif
  dropoutPortable(t);
}
