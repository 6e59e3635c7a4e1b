//===- MicrokernelsAvx2.cpp - AVX2+FMA register-tiled tile kernels --------===//
//
// Compiled with -mavx2/-mfma/-mf16c (see runtime/CMakeLists.txt) and only
// called after a CPUID check (Microkernels.cpp). Like the AVX-512 file it
// includes nothing but C headers: an inline function of a C++ standard
// header instantiated here would be AVX2 code that the linker may pick for
// the whole program.
//
//   QK:  a block of 6 x 16 outputs in 12 ymm accumulators (the Haswell
//        SGEMM shape: 12 accumulators, 2 loads of the right operand, one
//        broadcast, 15 of the 16 registers); per d, 2 loads, 6 broadcasts,
//        12 FMAs.
//   PV:  6 rows x 16 columns of acc in 12 ymm accumulators; per key, 2
//        loads of v, 6 broadcasts of p, 12 FMAs.
//   softmax: 8 attention rows per vector (the logits are stored transposed,
//        one key per row), so no horizontal reductions.
//   Few rows (tq <= 4, decode): qk_bf16 takes one dot product per (key,
//        row) along D, two keys at a time (2 tq FMA chains, summed by one
//        hadd tree), the softmax 8 keys of one row per vector (gathers),
//        and pv_bf16 reads V's pairs in place, instead of vectors across
//        rows that they leave idle and a widened copy of V;
//        pv_t_bf16_in_place reads V as stored, with no pairs packed.
//   exp: x clamped to [-87.3, 88.37], 2^n * p(r) with r = x - n ln 2 and
//        the degree-6 Cephes polynomial of the AVX-512 file, 2^n built in
//        the exponent bits; below -87.3 (and exp(-inf)) exactly 0.
//   The loops over a block's rows are unrolled by pragma: GCC otherwise
//   keeps the accumulator array in memory and stores it on every step.
//   bf16: AVX2 has no bf16 dot products. Each call widens 64 x 64 chunks
//        of its bf16 operands into f32 scratch on the stack (a shift per
//        element: O((tq + tk) D) work beside the O(tq tk D) products) and
//        runs the f32 blocks on them. P stays f32: unlike the AVX512_BF16
//        kernel, this one does not round it to bf16.
//
//===----------------------------------------------------------------------===//
#include <immintrin.h>
#include <stdint.h>

namespace {

/// Lanes i < n set (none when n <= 0).
inline __m256i laneMask(int64_t n) {
  const int32_t c = n > 8 ? 8 : n < 0 ? 0 : int32_t(n);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(c),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <bool Full> inline __m256 load(__m256i m, const float *p) {
  return Full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}

template <bool Full> inline void store(__m256i m, float *p, __m256 x) {
  if (Full)
    _mm256_storeu_ps(p, x);
  else
    _mm256_maskstore_ps(p, m, x);
}

// Acc: s += scale * (q kt) instead of s = scale * (q kt).
template <int R, bool Full, bool Acc>
inline void qkBlock(const float *q, int64_t ldq, const float *kt, int64_t ldkt,
                    float *s, int64_t lds, int64_t n, int64_t d, float scale) {
  // n <= 16 columns: two vectors, masked at the tail.
  const __m256i m0 = laneMask(n), m1 = laneMask(n - 8);
  __m256 acc[R][2];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < d; ++k) {
    const float *row = kt + k * ldkt;
    const __m256 b0 = load<Full>(m0, row), b1 = load<Full>(m1, row + 8);
    #pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(q + r * ldq + k);
      acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
    }
  }
  const __m256 sc = _mm256_set1_ps(scale);
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float *row = s + r * lds;
    if (Acc) {
      store<Full>(m0, row, _mm256_fmadd_ps(acc[r][0], sc, load<Full>(m0, row)));
      store<Full>(m1, row + 8, _mm256_fmadd_ps(acc[r][1], sc, load<Full>(m1, row + 8)));
    } else {
      store<Full>(m0, row, _mm256_mul_ps(acc[r][0], sc));
      store<Full>(m1, row + 8, _mm256_mul_ps(acc[r][1], sc));
    }
  }
}

template <bool Full, bool Acc>
inline void qkRows(const float *q, int64_t ldq, const float *kt, int64_t ldkt,
                   float *s, int64_t lds, int64_t tq, int64_t n, int64_t d,
                   float scale) {
  int64_t i0 = 0;
  for (; i0 + 6 <= tq; i0 += 6)
    qkBlock<6, Full, Acc>(q + i0 * ldq, ldq, kt, ldkt, s + i0 * lds, lds, n, d, scale);
  const float *qi = q + i0 * ldq;
  float *si = s + i0 * lds;
  switch (tq - i0) {
  case 5: qkBlock<5, Full, Acc>(qi, ldq, kt, ldkt, si, lds, n, d, scale); break;
  case 4: qkBlock<4, Full, Acc>(qi, ldq, kt, ldkt, si, lds, n, d, scale); break;
  case 3: qkBlock<3, Full, Acc>(qi, ldq, kt, ldkt, si, lds, n, d, scale); break;
  case 2: qkBlock<2, Full, Acc>(qi, ldq, kt, ldkt, si, lds, n, d, scale); break;
  case 1: qkBlock<1, Full, Acc>(qi, ldq, kt, ldkt, si, lds, n, d, scale); break;
  default: break;
  }
}

/// s (tq x tk) = or += scale * q kt, column blocks of 16 outer so that the
/// block of kt (d x 16) stays in L1 across the row blocks.
template <bool Acc>
inline void qk(const float *q, int64_t ldq, const float *kt, int64_t ldkt,
               float *s, int64_t lds, int64_t tq, int64_t tk, int64_t d,
               float scale) {
  for (int64_t j0 = 0; j0 < tk; j0 += 16) {
    const int64_t n = tk - j0 < 16 ? tk - j0 : 16;
    if (n == 16)
      qkRows<true, Acc>(q, ldq, kt + j0, ldkt, s + j0, lds, tq, n, d, scale);
    else
      qkRows<false, Acc>(q, ldq, kt + j0, ldkt, s + j0, lds, tq, n, d, scale);
  }
}

template <int R, bool Full>
inline void pvBlock(const float *p, int64_t ldp, const float *v, int64_t ldv,
                    float *acc, int64_t ldacc, int64_t tk, int64_t n,
                    const float *alpha) {
  // n <= 16 columns.
  const __m256i m0 = laneMask(n), m1 = laneMask(n - 8);
  __m256 c[R][2];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m256 a = _mm256_set1_ps(alpha ? alpha[r] : 1.0f);
    c[r][0] = _mm256_mul_ps(a, load<Full>(m0, acc + r * ldacc));
    c[r][1] = _mm256_mul_ps(a, load<Full>(m1, acc + r * ldacc + 8));
  }
  for (int64_t j = 0; j < tk; ++j) {
    const __m256 b0 = load<Full>(m0, v + j * ldv), b1 = load<Full>(m1, v + j * ldv + 8);
    #pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(p + j * ldp + r);
      c[r][0] = _mm256_fmadd_ps(a, b0, c[r][0]);
      c[r][1] = _mm256_fmadd_ps(a, b1, c[r][1]);
    }
  }
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    store<Full>(m0, acc + r * ldacc, c[r][0]);
    store<Full>(m1, acc + r * ldacc + 8, c[r][1]);
  }
}

template <int R>
inline void pvRows(const float *p, int64_t ldp, const float *v, int64_t ldv,
                   float *acc, int64_t ldacc, int64_t tk, int64_t dv,
                   const float *alpha) {
  int64_t c0 = 0;
  for (; c0 + 16 <= dv; c0 += 16)
    pvBlock<R, true>(p, ldp, v + c0, ldv, acc + c0, ldacc, tk, 16, alpha);
  if (c0 < dv)
    pvBlock<R, false>(p, ldp, v + c0, ldv, acc + c0, ldacc, tk, dv - c0, alpha);
}

/// acc = alpha acc + P V, rows of P (columns of pt) in blocks of 6.
inline void pv(const float *p, int64_t ldp, const float *v, int64_t ldv,
               float *acc, int64_t ldacc, int64_t tq, int64_t tk, int64_t dv,
               const float *alpha) {
  int64_t i0 = 0;
  for (; i0 + 6 <= tq; i0 += 6)
    pvRows<6>(p + i0, ldp, v, ldv, acc + i0 * ldacc, ldacc, tk, dv,
              alpha ? alpha + i0 : nullptr);
  const float *pi = p + i0;
  float *ai = acc + i0 * ldacc;
  const float *al = alpha ? alpha + i0 : nullptr;
  switch (tq - i0) {
  case 5: pvRows<5>(pi, ldp, v, ldv, ai, ldacc, tk, dv, al); break;
  case 4: pvRows<4>(pi, ldp, v, ldv, ai, ldacc, tk, dv, al); break;
  case 3: pvRows<3>(pi, ldp, v, ldv, ai, ldacc, tk, dv, al); break;
  case 2: pvRows<2>(pi, ldp, v, ldv, ai, ldacc, tk, dv, al); break;
  case 1: pvRows<1>(pi, ldp, v, ldv, ai, ldacc, tk, dv, al); break;
  default: break;
  }
}

/// exp(x); NaN stays NaN (max/min return their second operand when one is
/// NaN, and a NaN n gives the finite scale 1.0), exp(-inf) = 0.
inline __m256 expPs(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3365478515625f);
  const __m256 tiny = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_max_ps(lo, x);
  x = _mm256_min_ps(_mm256_set1_ps(88.3762626647949f), x);
  const __m256 n = _mm256_round_ps(
      _mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n for n in [-126, 127]: (n + 127) in the exponent field.
  const __m256i e = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(tiny, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

/// 8 bf16 (the high halves of f32) widened to f32.
inline __m256 widenBf16(const uint16_t *p) {
  const __m128i h = _mm_loadu_si128((const __m128i *)p);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

inline float bf16ToFloat(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

/// Chunks of the bf16 kernels: 64 x 64 f32 (16 KiB) on the stack.
constexpr int64_t kChunk = 64;

/// dst[r * kChunk + c] = src[r * ld + c] widened, r < rows, c < cols.
inline void widenRows(const uint16_t *src, int64_t ld, int64_t rows,
                      int64_t cols, float *dst) {
  for (int64_t r = 0; r < rows; ++r) {
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8)
      _mm256_storeu_ps(dst + r * kChunk + c, widenBf16(src + r * ld + c));
    for (; c < cols; ++c)
      dst[r * kChunk + c] = bf16ToFloat(src[r * ld + c]);
  }
}

/// Splits bf16 pair rows (element (2p + h, c) at src[p * ld + 2c + h]) into
/// f32 rows: dst[(2p + h) * kChunk + c] for 2p + h < rows, c < cols.
inline void widenPairs(const uint16_t *src, int64_t ld, int64_t rows,
                       int64_t cols, float *dst) {
  const __m256i hiMask = _mm256_set1_epi32(int32_t(0xFFFF0000u));
  for (int64_t p = 0; 2 * p < rows; ++p) {
    const uint16_t *in = src + p * ld;
    float *lo = dst + 2 * p * kChunk;
    float *hi = lo + kChunk;
    const bool hasHi = 2 * p + 1 < rows;
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8) {
      const __m256i v = _mm256_loadu_si256((const __m256i *)(in + 2 * c));
      _mm256_storeu_ps(lo + c, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
      if (hasHi)
        _mm256_storeu_ps(hi + c, _mm256_castsi256_ps(_mm256_and_si256(v, hiMask)));
    }
    for (; c < cols; ++c) {
      lo[c] = bf16ToFloat(in[2 * c]);
      if (hasHi)
        hi[c] = bf16ToFloat(in[2 * c + 1]);
    }
  }
}

inline int64_t minI(int64_t a, int64_t b) { return a < b ? a : b; }

/// Up to this many query rows (a decode step, or a tile's last rows), qk
/// and the softmax update work along D or the keys instead of across rows.
constexpr int64_t kFewRows = 4;

inline float hsum(__m256 x) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax(__m256 x) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/// The sums of the lanes of a[0] .. a[7], as the lanes of one vector.
inline __m256 laneSums8(const __m256 a[8]) {
  // hadd pairs, then quads (per 128-bit half); the halves then add up.
  const __m256 h03 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]),
                                    _mm256_hadd_ps(a[2], a[3]));
  const __m256 h47 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]),
                                    _mm256_hadd_ps(a[6], a[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(h03, h47, 0x20),
                       _mm256_permute2f128_ps(h03, h47, 0x31));
}

/// st[j * ldst + t] = scale * k_j . q_t for T <= kFewRows rows: one dot
/// product per (key, row) along D, 8 widened bf16 per FMA, for the few rows
/// of a decode step (the chunked f32 blocks are built for many rows). Keys
/// go two at a time: 2T independent FMA chains hide the FMA latency that
/// T chains leave exposed, and one hadd tree sums the 2T dot products.
template <int T>
void qkBf16FewRows(const uint16_t *k, int64_t ldk, const uint16_t *qt2,
                   int64_t ldq2, float *st, int64_t ldst, int64_t tk,
                   int64_t dpairs, float scale) {
  static_assert(T <= 4, "laneSums8 holds two keys of at most four rows");
  const int64_t d = 2 * dpairs, d8 = d / 8 * 8;
  float rows[T][d];
  for (int t = 0; t < T; ++t)
    for (int64_t x = 0; x < d; ++x)
      rows[t][x] = bf16ToFloat(qt2[(x / 2) * ldq2 + 2 * t + x % 2]);
  int64_t j = 0;
  for (; j + 2 <= tk; j += 2) {
    const uint16_t *k0 = k + j * ldk, *k1 = k0 + ldk;
    __m256 acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i)
      acc[i] = _mm256_setzero_ps();
    for (int64_t x = 0; x < d8; x += 8) {
      const __m256 a = widenBf16(k0 + x), b = widenBf16(k1 + x);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        const __m256 qv = _mm256_loadu_ps(&rows[t][x]);
        acc[t] = _mm256_fmadd_ps(a, qv, acc[t]);
        acc[4 + t] = _mm256_fmadd_ps(b, qv, acc[4 + t]);
      }
    }
    float sums[8];
    _mm256_storeu_ps(sums, laneSums8(acc));
    for (int t = 0; t < T; ++t) {
      float s0 = sums[t], s1 = sums[4 + t];
      for (int64_t x = d8; x < d; ++x) {
        s0 += bf16ToFloat(k0[x]) * rows[t][x];
        s1 += bf16ToFloat(k1[x]) * rows[t][x];
      }
      st[j * ldst + t] = scale * s0;
      st[(j + 1) * ldst + t] = scale * s1;
    }
  }
  for (; j < tk; ++j) {
    const uint16_t *kr = k + j * ldk;
    __m256 acc[T];
    for (int t = 0; t < T; ++t)
      acc[t] = _mm256_setzero_ps();
    for (int64_t x = 0; x < d8; x += 8) {
      const __m256 kv = widenBf16(kr + x);
      for (int t = 0; t < T; ++t)
        acc[t] = _mm256_fmadd_ps(kv, _mm256_loadu_ps(&rows[t][x]), acc[t]);
    }
    for (int t = 0; t < T; ++t) {
      float sum = hsum(acc[t]);
      for (int64_t x = d8; x < d; ++x)
        sum += bf16ToFloat(kr[x]) * rows[t][x];
      st[j * ldst + t] = scale * sum;
    }
  }
}

/// acc(t, c0 .. c0 + 8X) = alpha acc + P V for T <= kFewRows rows, V read
/// in its bf16 pairs directly (no widened copy: with few rows the copy cost
/// more than the products).
template <int T, int X>
inline void pvBf16FewRowsBlock(const float *pt, int64_t ldpt, const uint16_t *v2,
                               int64_t ldv2, float *acc, int64_t ldacc,
                               int64_t tk, int64_t c0, const float *alpha) {
  const __m256i hiMask = _mm256_set1_epi32(int32_t(0xFFFF0000u));
  __m256 a[T][X];
  #pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    const __m256 al = _mm256_set1_ps(alpha ? alpha[t] : 1.0f);
    #pragma GCC unroll 4
    for (int x = 0; x < X; ++x)
      a[t][x] = _mm256_mul_ps(al, _mm256_loadu_ps(acc + t * ldacc + c0 + 8 * x));
  }
  for (int64_t p = 0; 2 * p < tk; ++p) {
    __m256 lo[X], hi[X];
    #pragma GCC unroll 4
    for (int x = 0; x < X; ++x) {
      const __m256i v = _mm256_loadu_si256(
          (const __m256i *)(v2 + p * ldv2 + 2 * (c0 + 8 * x)));
      lo[x] = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
      hi[x] = _mm256_castsi256_ps(_mm256_and_si256(v, hiMask));
    }
    const bool pairFull = 2 * p + 1 < tk;
    #pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const __m256 p0 = _mm256_set1_ps(pt[(2 * p) * ldpt + t]);
      const __m256 p1 = _mm256_set1_ps(pairFull ? pt[(2 * p + 1) * ldpt + t] : 0.0f);
      #pragma GCC unroll 4
      for (int x = 0; x < X; ++x)
        a[t][x] = _mm256_fmadd_ps(p1, hi[x], _mm256_fmadd_ps(p0, lo[x], a[t][x]));
    }
  }
  #pragma GCC unroll 4
  for (int t = 0; t < T; ++t)
    #pragma GCC unroll 4
    for (int x = 0; x < X; ++x)
      _mm256_storeu_ps(acc + t * ldacc + c0 + 8 * x, a[t][x]);
}

template <int T>
void pvBf16FewRows(const float *pt, int64_t ldpt, const uint16_t *v2,
                   int64_t ldv2, float *acc, int64_t ldacc, int64_t tk,
                   int64_t dv, const float *alpha) {
  int64_t c0 = 0;
  for (; c0 + 32 <= dv; c0 += 32)
    pvBf16FewRowsBlock<T, 4>(pt, ldpt, v2, ldv2, acc, ldacc, tk, c0, alpha);
  for (; c0 + 8 <= dv; c0 += 8)
    pvBf16FewRowsBlock<T, 1>(pt, ldpt, v2, ldv2, acc, ldacc, tk, c0, alpha);
  for (; c0 < dv; ++c0)
    for (int t = 0; t < T; ++t) {
      float sum = (alpha ? alpha[t] : 1.0f) * acc[t * ldacc + c0];
      for (int64_t j = 0; j < tk; ++j)
        sum += pt[j * ldpt + t] * bf16ToFloat(v2[(j / 2) * ldv2 + 2 * c0 + j % 2]);
      acc[t * ldacc + c0] = sum;
    }
}

/// acc(t, c0 .. c0 + 8X) = alpha_t acc + sum_j p(j, t) v(j, c) for T <=
/// kFewRows rows, V read in place as stored (bf16 rows, unit column
/// stride) and widened in registers, so a decode step reads V once and
/// packs no pairs. P stays f32.
template <int T, int X>
inline void pvBf16InPlaceBlock(const float *pt, int64_t ldpt, const uint16_t *v,
                               int64_t ldv, float *acc, int64_t ldacc,
                               int64_t tk, int64_t c0, const float *alpha) {
  __m256 a[T][X];
  #pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    const __m256 al = _mm256_set1_ps(alpha ? alpha[t] : 1.0f);
    #pragma GCC unroll 4
    for (int x = 0; x < X; ++x)
      a[t][x] = _mm256_mul_ps(al, _mm256_loadu_ps(acc + t * ldacc + c0 + 8 * x));
  }
  for (int64_t j = 0; j < tk; ++j) {
    const uint16_t *r = v + j * ldv + c0;
    __m256 vv[X];
    #pragma GCC unroll 4
    for (int x = 0; x < X; ++x)
      vv[x] = widenBf16(r + 8 * x);
    #pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const __m256 p = _mm256_set1_ps(pt[j * ldpt + t]);
      #pragma GCC unroll 4
      for (int x = 0; x < X; ++x)
        a[t][x] = _mm256_fmadd_ps(p, vv[x], a[t][x]);
    }
  }
  #pragma GCC unroll 4
  for (int t = 0; t < T; ++t)
    #pragma GCC unroll 4
    for (int x = 0; x < X; ++x)
      _mm256_storeu_ps(acc + t * ldacc + c0 + 8 * x, a[t][x]);
}

/// Column blocks of 32 (16 with 3 or 4 rows: T X accumulators, X widened
/// keys and a broadcast stay within the 16 ymm registers), then of 8, then
/// a scalar tail.
template <int T>
void pvBf16InPlaceFewRows(const float *pt, int64_t ldpt, const uint16_t *v,
                          int64_t ldv, float *acc, int64_t ldacc, int64_t tk,
                          int64_t dv, const float *alpha) {
  constexpr int kWide = T <= 2 ? 4 : 2;
  int64_t c0 = 0;
  for (; c0 + 8 * kWide <= dv; c0 += 8 * kWide)
    pvBf16InPlaceBlock<T, kWide>(pt, ldpt, v, ldv, acc, ldacc, tk, c0, alpha);
  for (; c0 + 8 <= dv; c0 += 8)
    pvBf16InPlaceBlock<T, 1>(pt, ldpt, v, ldv, acc, ldacc, tk, c0, alpha);
  for (; c0 < dv; ++c0)
    for (int t = 0; t < T; ++t) {
      float sum = (alpha ? alpha[t] : 1.0f) * acc[t * ldacc + c0];
      for (int64_t j = 0; j < tk; ++j)
        sum += pt[j * ldpt + t] * bf16ToFloat(v[j * ldv + c0]);
      acc[t * ldacc + c0] = sum;
    }
}

/// The softmax update of one attention row i (a column of st), 8 keys per
/// vector through gathers, the exps stored back one by one (AVX2 has no
/// scatter).
void softmaxOneRow(float *st, int64_t ldst, int64_t i, int64_t tk, float *m,
                   float *l, float *alpha) {
  const __m256 negInf = _mm256_set1_ps(-__builtin_inff());
  const __m256i step = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                          _mm256_set1_epi32(int32_t(ldst)));
  float *col = st + i;
  __m256 mx = negInf;
  for (int64_t j0 = 0; j0 < tk; j0 += 8) {
    const __m256 k = _mm256_castsi256_ps(laneMask(tk - j0));
    mx = _mm256_max_ps(mx, _mm256_mask_i32gather_ps(negInf, col + j0 * ldst, step, k, 4));
  }
  const float tileMax = hmax(mx);
  const float mNew = m[i] > tileMax ? m[i] : tileMax;
  const float z = mNew == -__builtin_inff() ? 0.0f : mNew;
  const __m256 zv = _mm256_set1_ps(z);
  __m256 sum = _mm256_setzero_ps();
  float e8[8];
  for (int64_t j0 = 0; j0 < tk; j0 += 8) {
    const __m256 k = _mm256_castsi256_ps(laneMask(tk - j0));
    float *at = col + j0 * ldst;
    __m256 e = expPs(_mm256_sub_ps(_mm256_mask_i32gather_ps(negInf, at, step, k, 4), zv));
    e = _mm256_and_ps(e, k);
    _mm256_storeu_ps(e8, e);
    const int64_t n = tk - j0 < 8 ? tk - j0 : 8;
    for (int64_t x = 0; x < n; ++x)
      at[x * ldst] = e8[x];
    sum = _mm256_add_ps(sum, e);
  }
  const float a = _mm256_cvtss_f32(expPs(_mm256_set1_ps(m[i] - z)));
  alpha[i] = a;
  l[i] = a * l[i] + hsum(sum);
  m[i] = mNew;
}

} // namespace

extern "C" void attnc_uk_qk_f32_avx2(const float *q, int64_t ldq,
                                     const float *kt, int64_t ldkt, float *s,
                                     int64_t lds, int64_t tq, int64_t tk,
                                     int64_t d, float scale) {
  qk<false>(q, ldq, kt, ldkt, s, lds, tq, tk, d, scale);
}

extern "C" void attnc_uk_qk_acc_f32_avx2(const float *q, int64_t ldq,
                                         const float *kt, int64_t ldkt,
                                         float *s, int64_t lds, int64_t tq,
                                         int64_t tk, int64_t d, float scale) {
  qk<true>(q, ldq, kt, ldkt, s, lds, tq, tk, d, scale);
}

extern "C" void attnc_uk_pv_t_f32_avx2(const float *p, int64_t ldp,
                                       const float *v, int64_t ldv, float *acc,
                                       int64_t ldacc, int64_t tq, int64_t tk,
                                       int64_t dv, const float *alpha) {
  pv(p, ldp, v, ldv, acc, ldacc, tq, tk, dv, alpha);
}

extern "C" void attnc_uk_softmax_t_f32_avx2(float *st, int64_t ldst,
                                            int64_t tq, int64_t tk, float *m,
                                            float *l, float *alpha) {
  // A few rows (decode): each row's keys in vectors. 32-bit gather offsets
  // bound the stride.
  if (tq <= kFewRows && ldst * 8 < (int64_t(1) << 31)) {
    for (int64_t i = 0; i < tq; ++i)
      softmaxOneRow(st, ldst, i, tk, m, l, alpha);
    return;
  }
  const __m256 negInf = _mm256_set1_ps(-__builtin_inff());
  for (int64_t i0 = 0; i0 < tq; i0 += 8) {
    const bool full = i0 + 8 <= tq;
    const __m256i k = laneMask(tq - i0);
    // Lanes past the tail read as -inf: they keep nothing.
    auto ld = [&](const float *p) {
      return full ? _mm256_loadu_ps(p)
                  : _mm256_blendv_ps(negInf, _mm256_maskload_ps(p, k),
                                     _mm256_castsi256_ps(k));
    };
    auto st8 = [&](float *p, __m256 x) {
      if (full)
        _mm256_storeu_ps(p, x);
      else
        _mm256_maskstore_ps(p, k, x);
    };
    const __m256 mOld = ld(m + i0);
    __m256 mx = mOld;
    for (int64_t j = 0; j < tk; ++j)
      mx = _mm256_max_ps(mx, ld(st + j * ldst + i0));
    const __m256 empty = _mm256_cmp_ps(mx, negInf, _CMP_EQ_OQ);
    const __m256 z = _mm256_blendv_ps(mx, _mm256_setzero_ps(), empty);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t j = 0; j < tk; ++j) {
      float *row = st + j * ldst + i0;
      const __m256 e = expPs(_mm256_sub_ps(ld(row), z));
      st8(row, e);
      sum = _mm256_add_ps(sum, e);
    }
    const __m256 a = expPs(_mm256_sub_ps(mOld, z));
    const __m256 lOld = full ? _mm256_loadu_ps(l + i0) : _mm256_maskload_ps(l + i0, k);
    st8(alpha + i0, a);
    st8(l + i0, _mm256_fmadd_ps(a, lOld, sum));
    st8(m + i0, mx);
  }
}

/// st[j * ldst + i] = scale * sum_d k[j, d] q(i, d) by chunks of 64 keys x
/// 64 queries x 64 dims: K rows and the Q pairs widened, then the f32 block
/// (accumulating after the first chunk of d).
extern "C" void attnc_uk_qk_bf16_avx2(const uint16_t *k, int64_t ldk,
                                      const uint16_t *qt2, int64_t ldq2,
                                      float *st, int64_t ldst, int64_t tk,
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
  float kf[kChunk * kChunk], qf[kChunk * kChunk];
  const int64_t d = 2 * dpairs;
  for (int64_t j0 = 0; j0 < tk; j0 += kChunk)
    for (int64_t i0 = 0; i0 < tq; i0 += kChunk)
      for (int64_t d0 = 0; d0 < d; d0 += kChunk) {
        const int64_t nj = minI(kChunk, tk - j0), ni = minI(kChunk, tq - i0),
                      nd = minI(kChunk, d - d0);
        widenRows(k + j0 * ldk + d0, ldk, nj, nd, kf);
        widenPairs(qt2 + (d0 / 2) * ldq2 + 2 * i0, ldq2, nd, ni, qf);
        float *out = st + j0 * ldst + i0;
        if (d0 == 0)
          qk<false>(kf, kChunk, qf, kChunk, out, ldst, nj, ni, nd, scale);
        else
          qk<true>(kf, kChunk, qf, kChunk, out, ldst, nj, ni, nd, scale);
      }
  if (d == 0) // no products: the logits are 0
    qk<false>(kf, kChunk, qf, kChunk, st, ldst, tk, tq, 0, scale);
}

/// acc = alpha acc + P V with V in bf16 key pairs, by chunks of 64 columns x
/// 64 keys: V widened, then the f32 block (alpha only on the first chunk).
extern "C" void attnc_uk_pv_t_bf16_avx2(const float *pt, int64_t ldpt,
                                        const uint16_t *v2, int64_t ldv2,
                                        float *acc, int64_t ldacc, int64_t tq,
                                        int64_t tk, int64_t dv,
                                        const float *alpha) {
  if (tq <= kFewRows) {
    switch (tq) {
    case 1: pvBf16FewRows<1>(pt, ldpt, v2, ldv2, acc, ldacc, tk, dv, alpha); return;
    case 2: pvBf16FewRows<2>(pt, ldpt, v2, ldv2, acc, ldacc, tk, dv, alpha); return;
    case 3: pvBf16FewRows<3>(pt, ldpt, v2, ldv2, acc, ldacc, tk, dv, alpha); return;
    case 4: pvBf16FewRows<4>(pt, ldpt, v2, ldv2, acc, ldacc, tk, dv, alpha); return;
    default: return; // tq <= 0: nothing
    }
  }
  float vf[kChunk * kChunk];
  for (int64_t c0 = 0; c0 < dv; c0 += kChunk) {
    const int64_t nc = minI(kChunk, dv - c0);
    if (tk == 0)
      pv(pt, ldpt, vf, kChunk, acc + c0, ldacc, tq, 0, nc, alpha);
    for (int64_t j0 = 0; j0 < tk; j0 += kChunk) {
      const int64_t nj = minI(kChunk, tk - j0);
      widenPairs(v2 + (j0 / 2) * ldv2 + 2 * c0, ldv2, nj, nc, vf);
      pv(pt + j0 * ldpt, ldpt, vf, kChunk, acc + c0, ldacc, tq, nj, nc,
         j0 == 0 ? alpha : nullptr);
    }
  }
}

/// The few-row P V on V as stored (see pvBf16InPlaceBlock); tq <= kFewRows.
extern "C" void attnc_uk_pv_t_bf16_in_place_avx2(
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
