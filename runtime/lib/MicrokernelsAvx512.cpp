//===- MicrokernelsAvx512.cpp - AVX-512 register-tiled tile kernels -------===//
//
// Compiled with -mavx512f/-mavx512dq/-mfma (see runtime/CMakeLists.txt) and
// only called after a CPUID check (Microkernels.cpp). On purpose it
// includes nothing but <immintrin.h> and <stdint.h>: an inline function of
// a standard header instantiated here would be AVX-512 code that the linker
// may pick for the whole program.
//
//   QK:  a block of 8 x 32 outputs in 16 zmm accumulators; per d, 2 loads of
//        the (transposed) right operand, 8 broadcasts of the left, 16 FMAs
//        (the backward's accumulating variant adds them to the output).
//        Full blocks use plain loads: masked loads are slow on Zen 4.
//   PV:  4 rows x 64 columns of acc in 16 zmm accumulators; per key, 4 loads
//        of v, 4 broadcasts of p, 16 FMAs.
//   The loops over a block's rows and column vectors are unrolled by
//   pragma: GCC otherwise keeps the accumulator array in memory and stores
//   it on every step.
//   softmax: 16 attention rows per vector (the logits are stored
//        transposed, one key per row), so no horizontal reductions.
//   Few rows (tq <= 4, decode): qk_bf16 takes one dot product per (key,
//        row) along D (vdpbf16ps, 32 bf16 each), and the softmax 16 keys of
//        one row per vector (gather, scatter), instead of vectors across
//        rows that they leave idle; pv_t_bf16_in_place reads V as stored,
//        64 columns of one key widened per step, without the pair-packed
//        copy the many-row kernel reads.
//   exp: x clamped to [-110, 88.7], 2^n * p(r) with r = x - n ln 2 and a
//        degree-6 polynomial (Cephes expf coefficients), scalef for 2^n;
//        exp(-inf) and anything below -103 give exactly 0.
//
//===----------------------------------------------------------------------===//
#include <immintrin.h>
#include <stdint.h>

namespace {

inline __mmask16 tailMask(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u);
}

/// Up to this many query rows (a decode step, or the last rows of a
/// tile), qk and the softmax update work along the keys or D instead of
/// across the rows.
constexpr int64_t kFewRows = 4;

// Masked loads are slow on some CPUs (Zen 4): full blocks use plain ones.
template <bool Full>
inline __m512 load(__mmask16 m, const float *p) {
  return Full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}

// Acc: s += scale * (q kt) instead of s = scale * (q kt).
template <int R, bool Full, bool Acc = false>
inline void qkBlock(const float *q, int64_t ldq, const float *kt, int64_t ldkt,
                    float *s, int64_t lds, int64_t n, int64_t d, float scale) {
  // n <= 32 keys: two vectors, masked at the tail.
  __mmask16 m0 = tailMask(n), m1 = tailMask(n - 16 > 0 ? n - 16 : 0);
  __m512 acc[R][2];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < d; ++k) {
    const float *row = kt + k * ldkt;
    __m512 b0 = load<Full>(m0, row);
    __m512 b1 = load<Full>(m1, row + 16);
    #pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      __m512 a = _mm512_set1_ps(q[r * ldq + k]);
      acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
    }
  }
  __m512 sc = _mm512_set1_ps(scale);
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float *row = s + r * lds;
    if (Acc) {
      _mm512_mask_storeu_ps(row, m0, _mm512_fmadd_ps(acc[r][0], sc,
                                                     load<Full>(m0, row)));
      _mm512_mask_storeu_ps(row + 16, m1,
                            _mm512_fmadd_ps(acc[r][1], sc,
                                            load<Full>(m1, row + 16)));
    } else {
      _mm512_mask_storeu_ps(row, m0, _mm512_mul_ps(acc[r][0], sc));
      _mm512_mask_storeu_ps(row + 16, m1, _mm512_mul_ps(acc[r][1], sc));
    }
  }
}

template <bool Full, bool Acc = false>
inline void qkRows(const float *q, int64_t ldq, const float *kt, int64_t ldkt,
                   float *s, int64_t lds, int64_t tq, int64_t n, int64_t d,
                   float scale) {
  int64_t i0 = 0;
  for (; i0 + 8 <= tq; i0 += 8)
    qkBlock<8, Full, Acc>(q + i0 * ldq, ldq, kt, ldkt, s + i0 * lds, lds, n, d, scale);
  const float *qi = q + i0 * ldq;
  float *si = s + i0 * lds;
  switch (tq - i0) {
  case 7: qkBlock<7, Full, Acc>(qi, ldq, kt, ldkt, si, lds, n, d, scale); break;
  case 6: qkBlock<6, Full, Acc>(qi, ldq, kt, ldkt, si, lds, n, d, scale); break;
  case 5: qkBlock<5, Full, Acc>(qi, ldq, kt, ldkt, si, lds, n, d, scale); break;
  case 4: qkBlock<4, Full, Acc>(qi, ldq, kt, ldkt, si, lds, n, d, scale); break;
  case 3: qkBlock<3, Full, Acc>(qi, ldq, kt, ldkt, si, lds, n, d, scale); break;
  case 2: qkBlock<2, Full, Acc>(qi, ldq, kt, ldkt, si, lds, n, d, scale); break;
  case 1: qkBlock<1, Full, Acc>(qi, ldq, kt, ldkt, si, lds, n, d, scale); break;
  default: break;
  }
}

template <int R, int X, bool Full>
inline void pvBlock(const float *p, int64_t ldp, const float *v, int64_t ldv,
                    float *acc, int64_t ldacc, int64_t tk, int64_t n,
                    const float *alpha) {
  // n <= 16 * X columns.
  __mmask16 mask[X];
  #pragma GCC unroll 8
  for (int x = 0; x < X; ++x) {
    int64_t rem = n - 16 * x;
    mask[x] = tailMask(rem > 0 ? rem : 0);
  }
  __m512 c[R][X];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    __m512 a = _mm512_set1_ps(alpha ? alpha[r] : 1.0f);
    #pragma GCC unroll 8
    for (int x = 0; x < X; ++x)
      c[r][x] = _mm512_mul_ps(a, load<Full>(mask[x], acc + r * ldacc + 16 * x));
  }
  for (int64_t j = 0; j < tk; ++j) {
    __m512 b[X];
    #pragma GCC unroll 8
    for (int x = 0; x < X; ++x)
      b[x] = load<Full>(mask[x], v + j * ldv + 16 * x);
    #pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      __m512 a = _mm512_set1_ps(p[j * ldp + r]);
      #pragma GCC unroll 8
      for (int x = 0; x < X; ++x)
        c[r][x] = _mm512_fmadd_ps(a, b[x], c[r][x]);
    }
  }
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 8
    for (int x = 0; x < X; ++x)
      _mm512_mask_storeu_ps(acc + r * ldacc + 16 * x, mask[x], c[r][x]);
}

template <int R>
inline void pvRows(const float *p, int64_t ldp, const float *v, int64_t ldv,
                   float *acc, int64_t ldacc, int64_t tk, int64_t dv,
                   const float *alpha) {
  int64_t c0 = 0;
  for (; c0 + 64 <= dv; c0 += 64)
    pvBlock<R, 4, true>(p, ldp, v + c0, ldv, acc + c0, ldacc, tk, 64, alpha);
  int64_t rest = dv - c0;
  if (rest == 48)
    pvBlock<R, 3, true>(p, ldp, v + c0, ldv, acc + c0, ldacc, tk, rest, alpha);
  else if (rest == 32)
    pvBlock<R, 2, true>(p, ldp, v + c0, ldv, acc + c0, ldacc, tk, rest, alpha);
  else if (rest == 16)
    pvBlock<R, 1, true>(p, ldp, v + c0, ldv, acc + c0, ldacc, tk, rest, alpha);
  else if (rest > 48)
    pvBlock<R, 4, false>(p, ldp, v + c0, ldv, acc + c0, ldacc, tk, rest, alpha);
  else if (rest > 32)
    pvBlock<R, 3, false>(p, ldp, v + c0, ldv, acc + c0, ldacc, tk, rest, alpha);
  else if (rest > 16)
    pvBlock<R, 2, false>(p, ldp, v + c0, ldv, acc + c0, ldacc, tk, rest, alpha);
  else if (rest > 0)
    pvBlock<R, 1, false>(p, ldp, v + c0, ldv, acc + c0, ldacc, tk, rest, alpha);
}

/// exp(x); NaN stays NaN (max/min return their second operand when one is
/// NaN), so a NaN or +inf score makes the row's sum NaN, not 0.
inline __m512 expPs(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-110.0f), x);
  x = _mm512_min_ps(_mm512_set1_ps(88.7f), x);
  __m512 n = _mm512_roundscale_ps(
      _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  __m512 r2 = _mm512_mul_ps(r, r);
  y = _mm512_fmadd_ps(y, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, n);
}

} // namespace

extern "C" void attnc_uk_qk_f32_avx512(const float *q, int64_t ldq,
                                       const float *kt, int64_t ldkt, float *s,
                                       int64_t lds, int64_t tq, int64_t tk,
                                       int64_t d, float scale) {
  for (int64_t j0 = 0; j0 < tk; j0 += 32) {
    int64_t n = tk - j0 < 32 ? tk - j0 : 32;
    if (n == 32)
      qkRows<true>(q, ldq, kt + j0, ldkt, s + j0, lds, tq, n, d, scale);
    else
      qkRows<false>(q, ldq, kt + j0, ldkt, s + j0, lds, tq, n, d, scale);
  }
}

extern "C" void attnc_uk_qk_acc_f32_avx512(const float *q, int64_t ldq,
                                           const float *kt, int64_t ldkt,
                                           float *s, int64_t lds, int64_t tq,
                                           int64_t tk, int64_t d, float scale) {
  for (int64_t j0 = 0; j0 < tk; j0 += 32) {
    int64_t n = tk - j0 < 32 ? tk - j0 : 32;
    if (n == 32)
      qkRows<true, true>(q, ldq, kt + j0, ldkt, s + j0, lds, tq, n, d, scale);
    else
      qkRows<false, true>(q, ldq, kt + j0, ldkt, s + j0, lds, tq, n, d, scale);
  }
}

extern "C" void attnc_uk_pv_t_f32_avx512(const float *p, int64_t ldp,
                                       const float *v, int64_t ldv, float *acc,
                                       int64_t ldacc, int64_t tq, int64_t tk,
                                       int64_t dv, const float *alpha) {
  int64_t i0 = 0;
  for (; i0 + 4 <= tq; i0 += 4)
    pvRows<4>(p + i0, ldp, v, ldv, acc + i0 * ldacc, ldacc, tk, dv,
              alpha ? alpha + i0 : nullptr);
  const float *pi = p + i0;
  float *ai = acc + i0 * ldacc;
  const float *al = alpha ? alpha + i0 : nullptr;
  switch (tq - i0) {
  case 3: pvRows<3>(pi, ldp, v, ldv, ai, ldacc, tk, dv, al); break;
  case 2: pvRows<2>(pi, ldp, v, ldv, ai, ldacc, tk, dv, al); break;
  case 1: pvRows<1>(pi, ldp, v, ldv, ai, ldacc, tk, dv, al); break;
  default: break;
  }
}

namespace {

/// The softmax update of one attention row i (a column of st), 16 keys
/// per vector through gathers: for the few rows of a decode step, where a
/// vector across rows would leave most of its lanes idle.
void softmaxOneRow(float *st, int64_t ldst, int64_t i, int64_t tk, float *m,
                   float *l, float *alpha) {
  const __m512 negInf = _mm512_set1_ps(-__builtin_inff());
  const __m512i step = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
      _mm512_set1_epi32(int32_t(ldst)));
  float *col = st + i;
  __m512 mx = negInf;
  for (int64_t j0 = 0; j0 < tk; j0 += 16) {
    __mmask16 k = tailMask(tk - j0);
    mx = _mm512_max_ps(mx, _mm512_mask_i32gather_ps(negInf, k, step, col + j0 * ldst, 4));
  }
  const float tileMax = _mm512_reduce_max_ps(mx);
  const float mNew = m[i] > tileMax ? m[i] : tileMax;
  const float z = mNew == -__builtin_inff() ? 0.0f : mNew;
  const __m512 zv = _mm512_set1_ps(z);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j0 = 0; j0 < tk; j0 += 16) {
    __mmask16 k = tailMask(tk - j0);
    float *at = col + j0 * ldst;
    __m512 e = expPs(_mm512_sub_ps(_mm512_mask_i32gather_ps(negInf, k, step, at, 4), zv));
    e = _mm512_maskz_mov_ps(k, e);
    _mm512_mask_i32scatter_ps(at, k, step, e, 4);
    sum = _mm512_add_ps(sum, e);
  }
  const float a = _mm512_cvtss_f32(expPs(_mm512_set1_ps(m[i] - z)));
  alpha[i] = a;
  l[i] = a * l[i] + _mm512_reduce_add_ps(sum);
  m[i] = mNew;
}

} // namespace

extern "C" void attnc_uk_softmax_t_f32_avx512(float *st, int64_t ldst,
                                              int64_t tq, int64_t tk, float *m,
                                              float *l, float *alpha) {
  // A few rows (decode): each row's keys in vectors. 32-bit gather offsets
  // bound the stride.
  if (tq <= kFewRows && ldst * 16 < (int64_t(1) << 31)) {
    for (int64_t i = 0; i < tq; ++i)
      softmaxOneRow(st, ldst, i, tk, m, l, alpha);
    return;
  }
  // 16 attention rows (columns of st) at a time: no horizontal reductions.
  const __m512 negInf = _mm512_set1_ps(-__builtin_inff());
  for (int64_t i0 = 0; i0 < tq; i0 += 16) {
    bool full = i0 + 16 <= tq;
    __mmask16 k = tailMask(tq - i0);
    auto ld = [&](const float *p) {
      return full ? _mm512_loadu_ps(p) : _mm512_mask_loadu_ps(negInf, k, p);
    };
    __m512 mOld = ld(m + i0);
    __m512 mx = mOld;
    for (int64_t j = 0; j < tk; ++j)
      mx = _mm512_max_ps(mx, ld(st + j * ldst + i0));
    __mmask16 empty = _mm512_cmp_ps_mask(mx, negInf, _CMP_EQ_OQ);
    __m512 z = _mm512_mask_mov_ps(mx, empty, _mm512_setzero_ps());
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < tk; ++j) {
      float *row = st + j * ldst + i0;
      __m512 e = expPs(_mm512_sub_ps(ld(row), z));
      if (full)
        _mm512_storeu_ps(row, e);
      else
        _mm512_mask_storeu_ps(row, k, e);
      sum = _mm512_add_ps(sum, e);
    }
    __m512 a = expPs(_mm512_sub_ps(mOld, z));
    __m512 lNew = _mm512_fmadd_ps(a, full ? _mm512_loadu_ps(l + i0)
                                          : _mm512_maskz_loadu_ps(k, l + i0),
                                  sum);
    if (full) {
      _mm512_storeu_ps(alpha + i0, a);
      _mm512_storeu_ps(l + i0, lNew);
      _mm512_storeu_ps(m + i0, mx);
    } else {
      _mm512_mask_storeu_ps(alpha + i0, k, a);
      _mm512_mask_storeu_ps(l + i0, k, lNew);
      _mm512_mask_storeu_ps(m + i0, k, mx);
    }
  }
}

//===----------------------------------------------------------------------===//
// bfloat16 (needs AVX512_BF16: vdpbf16ps multiplies bf16 pairs and adds both
// products into each f32 lane, so one instruction does two FMAs' work).
//===----------------------------------------------------------------------===//

namespace {

template <int R, bool Full>
__attribute__((target("avx512bf16"))) inline void
qkBf16Block(const uint16_t *k, int64_t ldk, const uint16_t *qt2, int64_t ldq2,
            float *st, int64_t ldst, int64_t n, int64_t dpairs, float scale) {
  // R key rows x n <= 32 query columns; a qt2 pair-row holds 2 bf16 per
  // column, so 16 columns per zmm.
  __mmask16 m0 = tailMask(n), m1 = tailMask(n - 16 > 0 ? n - 16 : 0);
  __m512 acc[R][2];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < dpairs; ++p) {
    const uint16_t *row = qt2 + p * ldq2;
    __m512bh b0 = (__m512bh)(Full ? _mm512_loadu_si512(row)
                                  : _mm512_maskz_loadu_epi32(m0, row));
    __m512bh b1 = (__m512bh)(Full ? _mm512_loadu_si512(row + 32)
                                  : _mm512_maskz_loadu_epi32(m1, row + 32));
    #pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      int32_t pair;
      __builtin_memcpy(&pair, k + r * ldk + 2 * p, 4);
      __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
    }
  }
  __m512 sc = _mm512_set1_ps(scale);
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    _mm512_mask_storeu_ps(st + r * ldst, m0, _mm512_mul_ps(acc[r][0], sc));
    _mm512_mask_storeu_ps(st + r * ldst + 16, m1, _mm512_mul_ps(acc[r][1], sc));
  }
}

template <bool Full>
__attribute__((target("avx512bf16"))) inline void
qkBf16Rows(const uint16_t *k, int64_t ldk, const uint16_t *qt2, int64_t ldq2,
           float *st, int64_t ldst, int64_t tk, int64_t n, int64_t dpairs,
           float scale) {
  int64_t j0 = 0;
  for (; j0 + 8 <= tk; j0 += 8)
    qkBf16Block<8, Full>(k + j0 * ldk, ldk, qt2, ldq2, st + j0 * ldst, ldst, n, dpairs, scale);
  const uint16_t *kj = k + j0 * ldk;
  float *sj = st + j0 * ldst;
  switch (tk - j0) {
  case 7: qkBf16Block<7, Full>(kj, ldk, qt2, ldq2, sj, ldst, n, dpairs, scale); break;
  case 6: qkBf16Block<6, Full>(kj, ldk, qt2, ldq2, sj, ldst, n, dpairs, scale); break;
  case 5: qkBf16Block<5, Full>(kj, ldk, qt2, ldq2, sj, ldst, n, dpairs, scale); break;
  case 4: qkBf16Block<4, Full>(kj, ldk, qt2, ldq2, sj, ldst, n, dpairs, scale); break;
  case 3: qkBf16Block<3, Full>(kj, ldk, qt2, ldq2, sj, ldst, n, dpairs, scale); break;
  case 2: qkBf16Block<2, Full>(kj, ldk, qt2, ldq2, sj, ldst, n, dpairs, scale); break;
  case 1: qkBf16Block<1, Full>(kj, ldk, qt2, ldq2, sj, ldst, n, dpairs, scale); break;
  default: break;
  }
}

template <int R, int X, bool Full>
__attribute__((target("avx512bf16"))) inline void
pvBf16Block(const int32_t *pq, int64_t ldpq, const uint16_t *v2, int64_t ldv2,
            float *acc, int64_t ldacc, int64_t pairs, int64_t n,
            const float *alpha) {
  // R rows x n <= 16 * X columns; pq[q * ldpq + r] holds the bf16 pair
  // (p(r, 2q), p(r, 2q + 1)).
  __mmask16 mask[X];
  #pragma GCC unroll 8
  for (int x = 0; x < X; ++x) {
    int64_t rem = n - 16 * x;
    mask[x] = tailMask(rem > 0 ? rem : 0);
  }
  __m512 c[R][X];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    __m512 a = _mm512_set1_ps(alpha ? alpha[r] : 1.0f);
    #pragma GCC unroll 8
    for (int x = 0; x < X; ++x)
      c[r][x] = _mm512_mul_ps(a, load<Full>(mask[x], acc + r * ldacc + 16 * x));
  }
  for (int64_t q = 0; q < pairs; ++q) {
    __m512bh b[X];
    #pragma GCC unroll 8
    for (int x = 0; x < X; ++x)
      b[x] = (__m512bh)(Full ? _mm512_loadu_si512(v2 + q * ldv2 + 32 * x)
                             : _mm512_maskz_loadu_epi32(mask[x], v2 + q * ldv2 + 32 * x));
    #pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      __m512bh a = (__m512bh)_mm512_set1_epi32(pq[q * ldpq + r]);
      #pragma GCC unroll 8
      for (int x = 0; x < X; ++x)
        c[r][x] = _mm512_dpbf16_ps(c[r][x], a, b[x]);
    }
  }
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 8
    for (int x = 0; x < X; ++x)
      _mm512_mask_storeu_ps(acc + r * ldacc + 16 * x, mask[x], c[r][x]);
}

template <int R>
__attribute__((target("avx512bf16"))) inline void
pvBf16Rows(const int32_t *pq, int64_t ldpq, const uint16_t *v2, int64_t ldv2,
           float *acc, int64_t ldacc, int64_t pairs, int64_t dv,
           const float *alpha) {
  int64_t c0 = 0;
  for (; c0 + 64 <= dv; c0 += 64)
    pvBf16Block<R, 4, true>(pq, ldpq, v2 + 2 * c0, ldv2, acc + c0, ldacc, pairs, 64, alpha);
  int64_t rest = dv - c0;
  const uint16_t *v = v2 + 2 * c0;
  float *a = acc + c0;
  if (rest > 48)
    pvBf16Block<R, 4, false>(pq, ldpq, v, ldv2, a, ldacc, pairs, rest, alpha);
  else if (rest > 32)
    pvBf16Block<R, 3, false>(pq, ldpq, v, ldv2, a, ldacc, pairs, rest, alpha);
  else if (rest > 16)
    pvBf16Block<R, 2, false>(pq, ldpq, v, ldv2, a, ldacc, pairs, rest, alpha);
  else if (rest > 0)
    pvBf16Block<R, 1, false>(pq, ldpq, v, ldv2, a, ldacc, pairs, rest, alpha);
}

} // namespace

namespace {

/// st[j * ldst + t] = scale * k_j . q_t for T <= kFewRows query rows: one
/// dot product per (key, row) along D, 32 bf16 per vdpbf16ps, for the few
/// rows of a decode step (the blocks above broadcast key pairs across up
/// to 32 query columns, which one row leaves 31/32 idle).
template <int T>
__attribute__((target("avx512bf16"))) void
qkBf16FewRows(const uint16_t *k, int64_t ldk, const uint16_t *qt2, int64_t ldq2,
              float *st, int64_t ldst, int64_t tk, int64_t dpairs, float scale) {
  // The rows' pairs in D order, 16 pairs (a zmm) per chunk, zero-padded.
  const int64_t chunks = (dpairs + 15) / 16;
  int32_t rows[T][chunks * 16];
  for (int t = 0; t < T; ++t)
    for (int64_t p = 0; p < chunks * 16; ++p) {
      int32_t pair = 0;
      if (p < dpairs)
        __builtin_memcpy(&pair, qt2 + p * ldq2 + 2 * t, 4);
      rows[t][p] = pair;
    }
  const __mmask16 last = tailMask(dpairs - 16 * (chunks - 1));
  for (int64_t j = 0; j < tk; ++j) {
    const uint16_t *kr = k + j * ldk;
    __m512 acc[T];
    for (int t = 0; t < T; ++t)
      acc[t] = _mm512_setzero_ps();
    for (int64_t c = 0; c < chunks; ++c) {
      __m512bh kv = (__m512bh)(c + 1 < chunks
                                   ? _mm512_loadu_si512(kr + 32 * c)
                                   : _mm512_maskz_loadu_epi32(last, kr + 32 * c));
      for (int t = 0; t < T; ++t)
        acc[t] = _mm512_dpbf16_ps(acc[t], kv,
                                  (__m512bh)_mm512_loadu_si512(&rows[t][16 * c]));
    }
    for (int t = 0; t < T; ++t)
      st[j * ldst + t] = scale * _mm512_reduce_add_ps(acc[t]);
  }
}

} // namespace

extern "C" __attribute__((target("avx512bf16"))) void
attnc_uk_qk_bf16_avx512(const uint16_t *k, int64_t ldk, const uint16_t *qt2,
                        int64_t ldq2, float *st, int64_t ldst, int64_t tk,
                        int64_t tq, int64_t dpairs, float scale) {
  if (tq <= kFewRows && dpairs > 0) {
    switch (tq) {
    case 1: qkBf16FewRows<1>(k, ldk, qt2, ldq2, st, ldst, tk, dpairs, scale); return;
    case 2: qkBf16FewRows<2>(k, ldk, qt2, ldq2, st, ldst, tk, dpairs, scale); return;
    case 3: qkBf16FewRows<3>(k, ldk, qt2, ldq2, st, ldst, tk, dpairs, scale); return;
    case 4: qkBf16FewRows<4>(k, ldk, qt2, ldq2, st, ldst, tk, dpairs, scale); return;
    default: return; // tq <= 0: nothing
    }
  }
  for (int64_t i0 = 0; i0 < tq; i0 += 32) {
    int64_t n = tq - i0 < 32 ? tq - i0 : 32;
    if (n == 32)
      qkBf16Rows<true>(k, ldk, qt2 + 2 * i0, ldq2, st + i0, ldst, tk, n, dpairs, scale);
    else
      qkBf16Rows<false>(k, ldk, qt2 + 2 * i0, ldq2, st + i0, ldst, tk, n, dpairs, scale);
  }
}

extern "C" __attribute__((target("avx512bf16"))) void
attnc_uk_pv_t_bf16_avx512(const float *pt, int64_t ldpt, const uint16_t *v2,
                          int64_t ldv2, float *acc, int64_t ldacc, int64_t tq,
                          int64_t tk, int64_t dv, const float *alpha) {
  // P^T (f32, key-major) to bf16 pairs along the keys, query-minor:
  // pq[q * tq + i] = (p(i, 2q), p(i, 2q + 1)), 0 past the last key.
  int64_t pairs = (tk + 1) / 2;
  int32_t pq[pairs * tq + 16];
  for (int64_t q = 0; q < pairs; ++q) {
    const float *lo = pt + (2 * q) * ldpt;
    const float *hi = 2 * q + 1 < tk ? pt + (2 * q + 1) * ldpt : nullptr;
    for (int64_t i0 = 0; i0 < tq; i0 += 16) {
      __mmask16 m = tailMask(tq - i0);
      __m512 a = _mm512_maskz_loadu_ps(m, lo + i0);
      __m512 b = hi ? _mm512_maskz_loadu_ps(m, hi + i0) : _mm512_setzero_ps();
      __m512i al = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(a));
      __m512i bl = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(b));
      _mm512_mask_storeu_epi32(pq + q * tq + i0, m,
                               _mm512_or_si512(al, _mm512_slli_epi32(bl, 16)));
    }
  }
  int64_t i0 = 0;
  for (; i0 + 4 <= tq; i0 += 4)
    pvBf16Rows<4>(pq + i0, tq, v2, ldv2, acc + i0 * ldacc, ldacc, pairs, dv,
                  alpha ? alpha + i0 : nullptr);
  const int32_t *pi = pq + i0;
  float *ai = acc + i0 * ldacc;
  const float *al = alpha ? alpha + i0 : nullptr;
  switch (tq - i0) {
  case 3: pvBf16Rows<3>(pi, tq, v2, ldv2, ai, ldacc, pairs, dv, al); break;
  case 2: pvBf16Rows<2>(pi, tq, v2, ldv2, ai, ldacc, pairs, dv, al); break;
  case 1: pvBf16Rows<1>(pi, tq, v2, ldv2, ai, ldacc, pairs, dv, al); break;
  default: break;
  }
}

namespace {

/// acc(t, c0 .. c0 + 64) = alpha_t acc + sum_j p(j, t) v(j, c) for T <=
/// kFewRows rows, V read in place as stored (bf16 rows, unit column stride)
/// and widened in registers: a decode step's V then crosses memory once,
/// with no pair-packed copy. P stays f32. With one or two rows the odd keys
/// go to a second set of accumulators, for two FMA chains per column
/// vector.
template <int T>
inline void pvBf16InPlaceBlock(const float *pt, int64_t ldpt, const uint16_t *v,
                               int64_t ldv, float *acc, int64_t ldacc,
                               int64_t tk, int64_t c0, int64_t n,
                               const float *alpha) {
  constexpr bool kTwoChains = T <= 2;
  __mmask16 m[4];
  #pragma GCC unroll 4
  for (int x = 0; x < 4; ++x)
    m[x] = n > 16 * x ? tailMask(n - 16 * x) : __mmask16(0);
  __m512 a[T][4], odd[kTwoChains ? T : 1][4];
  #pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    const __m512 al = _mm512_set1_ps(alpha ? alpha[t] : 1.0f);
    #pragma GCC unroll 4
    for (int x = 0; x < 4; ++x) {
      a[t][x] = _mm512_mul_ps(
          al, _mm512_maskz_loadu_ps(m[x], acc + t * ldacc + c0 + 16 * x));
      if (kTwoChains)
        odd[t][x] = _mm512_setzero_ps();
    }
  }
  auto widen = [&](const uint16_t *row, int x) {
    const __m256i h = _mm256_maskz_loadu_epi16(m[x], row + 16 * x);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  };
  int64_t j = 0;
  if (kTwoChains)
    for (; j + 2 <= tk; j += 2) {
      const uint16_t *r0 = v + j * ldv + c0, *r1 = r0 + ldv;
      #pragma GCC unroll 4
      for (int x = 0; x < 4; ++x) {
        const __m512 v0 = widen(r0, x), v1 = widen(r1, x);
        #pragma GCC unroll 4
        for (int t = 0; t < T; ++t) {
          a[t][x] = _mm512_fmadd_ps(_mm512_set1_ps(pt[j * ldpt + t]), v0, a[t][x]);
          odd[t][x] = _mm512_fmadd_ps(_mm512_set1_ps(pt[(j + 1) * ldpt + t]), v1,
                                      odd[t][x]);
        }
      }
    }
  for (; j < tk; ++j) {
    const uint16_t *r = v + j * ldv + c0;
    #pragma GCC unroll 4
    for (int x = 0; x < 4; ++x) {
      const __m512 vv = widen(r, x);
      #pragma GCC unroll 4
      for (int t = 0; t < T; ++t)
        a[t][x] = _mm512_fmadd_ps(_mm512_set1_ps(pt[j * ldpt + t]), vv, a[t][x]);
    }
  }
  #pragma GCC unroll 4
  for (int t = 0; t < T; ++t)
    #pragma GCC unroll 4
    for (int x = 0; x < 4; ++x)
      _mm512_mask_storeu_ps(acc + t * ldacc + c0 + 16 * x, m[x],
                            kTwoChains ? _mm512_add_ps(a[t][x], odd[t][x])
                                       : a[t][x]);
}

template <int T>
void pvBf16InPlaceFewRows(const float *pt, int64_t ldpt, const uint16_t *v,
                          int64_t ldv, float *acc, int64_t ldacc, int64_t tk,
                          int64_t dv, const float *alpha) {
  for (int64_t c0 = 0; c0 < dv; c0 += 64)
    pvBf16InPlaceBlock<T>(pt, ldpt, v, ldv, acc, ldacc, tk, c0,
                          dv - c0 < 64 ? dv - c0 : 64, alpha);
}

} // namespace

/// The few-row P V on V as stored (see pvBf16InPlaceBlock); tq <= kFewRows.
extern "C" void attnc_uk_pv_t_bf16_in_place_avx512(
    const float *pt, int64_t ldpt, const uint16_t *v, int64_t ldv, float *acc,
    int64_t ldacc, int64_t tq, int64_t tk, int64_t dv, const float *alpha) {
  switch (tq) {
  case 1: pvBf16InPlaceFewRows<1>(pt, ldpt, v, ldv, acc, ldacc, tk, dv, alpha); return;
  case 2: pvBf16InPlaceFewRows<2>(pt, ldpt, v, ldv, acc, ldacc, tk, dv, alpha); return;
  case 3: pvBf16InPlaceFewRows<3>(pt, ldpt, v, ldv, acc, ldacc, tk, dv, alpha); return;
  case 4: pvBf16InPlaceFewRows<4>(pt, ldpt, v, ldv, acc, ldacc, tk, dv, alpha); return;
  default: return; // the caller sends only 1..kFewRows rows
  }
}

extern "C" void attnc_uk_pack_pairs_bf16_avx512(const uint16_t *src,
                                                int64_t ldr, int64_t rows,
                                                int64_t cols, uint16_t *dst) {
  // Unit column stride: 16 columns of two rows become 16 32-bit pairs.
  for (int64_t r = 0; r < rows; r += 2) {
    const uint16_t *a = src + r * ldr;
    const uint16_t *b = r + 1 < rows ? src + (r + 1) * ldr : nullptr;
    uint16_t *out = dst + r * cols; // (r / 2) * 2 * cols
    int64_t c = 0;
    for (; c + 16 <= cols; c += 16) {
      __m512i lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(a + c)));
      __m512i hi = b ? _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(b + c)))
                     : _mm512_setzero_si512();
      _mm512_storeu_si512(out + 2 * c, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
    for (; c < cols; ++c) {
      out[2 * c] = a[c];
      out[2 * c + 1] = b ? b[c] : 0;
    }
  }
}
