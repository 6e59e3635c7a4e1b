/*===- Microkernels.h - Register-tiled tile kernels for generated code -*- C -*-===//
 *
 * The hot loops of a CPU attention kernel, called by the generated code on
 * f32 tiles (the IREE "ukernel" habit): S^T = scale * K Q^T (from the query
 * tile transposed once per task, so key tiles need no transposition), the
 * online softmax update on S^T, and acc = alpha * acc + P V. Each runs the
 * implementation of one path, picked at run time for the CPU it runs on
 * (AVX-512: 8 x 32 and 4 x 64 register tiles; AVX2 + FMA: 6 x 16 tiles;
 * both with a polynomial exp, and with few-row paths for tq <= 4, a decode
 * step, that vectorise along D or the keys; generic: portable loops, vectorised by the
 * compiler: JIT-compiled for the host, or built-in copies), so a kernel
 * compiled for one CPU runs correctly on another. ATTNC_CPU_ISA=avx512|
 * avx2|generic forces a path (CpuIsa.h reports one this CPU lacks).
 * Plain C ABI: generated code (JIT or AOT objects) calls these symbols; AOT
 * programs link libAttncRuntime.a.
 *
 *===----------------------------------------------------------------------===*/
#ifndef ATTNC_RUNTIME_MICROKERNELS_H
#define ATTNC_RUNTIME_MICROKERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* s[i * lds + j] = scale * sum_d q[i * ldq + d] * kt[d * ldkt + j]
 * for i < tq, j < tk (kt is the key tile transposed: D x TK). */
void attnc_uk_qk_f32(const float *q, int64_t ldq, const float *kt,
                     int64_t ldkt, float *s, int64_t lds, int64_t tq,
                     int64_t tk, int64_t d, float scale);

/* As attnc_uk_qk_f32 but accumulating (the backward's dq += dDot K):
 * s[i * lds + j] += scale * sum_d q[i * ldq + d] * kt[d * ldkt + j]. */
void attnc_uk_qk_acc_f32(const float *q, int64_t ldq, const float *kt,
                         int64_t ldkt, float *s, int64_t lds, int64_t tq,
                         int64_t tk, int64_t d, float scale);

/* The online softmax update of a tile of logits stored transposed, S^T:
 * s(i, j) = st[j * ldst + i] for query row i < tq and key j < tk:
 *   m' = max(m[i], max_j s(i, j));  z = (m' == -inf ? 0 : m')
 *   alpha[i] = exp(m[i] - z);  s(i, j) = exp(s(i, j) - z)
 *   l[i] = alpha[i] * l[i] + sum_j s(i, j);  m[i] = m'
 * exp(-inf) is exactly 0, so masked logits (-inf) contribute nothing and a
 * row with nothing kept keeps m = -inf, l = 0. */
void attnc_uk_softmax_t_f32(float *st, int64_t ldst, int64_t tq, int64_t tk,
                            float *m, float *l, float *alpha);

/* With P stored transposed, p(i, j) = pt[j * ldpt + i]:
 * acc[i * ldacc + c] = (alpha ? alpha[i] : 1) * acc[i * ldacc + c]
 *                      + sum_j p(i, j) * v[j * ldv + c]
 * for i < tq, c < dv, j < tk. */
void attnc_uk_pv_t_f32(const float *pt, int64_t ldpt, const float *v,
                       int64_t ldv, float *acc, int64_t ldacc, int64_t tq,
                       int64_t tk, int64_t dv, const float *alpha);

/* bfloat16 storage (AVX512_BF16 dot products where the CPU has them, each
 * instruction multiplying pairs along the reduced dimension):
 *   st[j * ldst + i] = scale * sum_d k[j * ldk + d] * q(i, d)
 * for j < tk, i < tq, d < 2 * dpairs, where the query tile is stored in
 * pairs, q(i, d) = qt2[(d / 2) * ldq2 + 2 * i + d % 2] (ldq2 >= 2 * tq), and
 * k rows hold 2 * dpairs elements (zero-padded when D is odd). */
void attnc_uk_qk_bf16(const uint16_t *k, int64_t ldk, const uint16_t *qt2,
                      int64_t ldq2, float *st, int64_t ldst, int64_t tk,
                      int64_t tq, int64_t dpairs, float scale);

/* As attnc_uk_pv_t_f32 with v in bfloat16 pairs, v(j, c) =
 * v2[(j / 2) * ldv2 + 2 * c + j % 2] (ldv2 >= 2 * dv; when tk is odd the
 * pair of the last key holds 0 for key tk). P is rounded to bfloat16. */
void attnc_uk_pv_t_bf16(const float *pt, int64_t ldpt, const uint16_t *v2,
                        int64_t ldv2, float *acc, int64_t ldacc, int64_t tq,
                        int64_t tk, int64_t dv, const float *alpha);

/* Packs a bfloat16 tile of `rows` x `cols` (element (r, c) at
 * src[r * ldr + c * ldc]) into the pair layout of attnc_uk_pv_t_bf16:
 * dst[(r / 2) * 2 * cols + 2 * c + r % 2], with zeros for row `rows` when
 * `rows` is odd. */
void attnc_uk_pack_pairs_bf16(const uint16_t *src, int64_t ldr, int64_t ldc,
                              int64_t rows, int64_t cols, uint16_t *dst);

/* As attnc_uk_pv_t_bf16 with V as stored, element (j, c) at
 * v[j * ldvr + c * ldvc]. A few rows (1 <= tq <= 4, a decode step) with
 * unit column stride on the avx2 and avx512 paths read V in place, widened
 * in registers, P kept f32. Otherwise V is packed into v2 (room for the
 * pair layout of tk x dv: 2 * ((tk + 1) / 2) * dv elements) for
 * attnc_uk_pv_t_bf16. */
void attnc_uk_pv_t_bf16_unpacked(const float *pt, int64_t ldpt,
                                 const uint16_t *v, int64_t ldvr, int64_t ldvc,
                                 float *acc, int64_t ldacc, int64_t tq,
                                 int64_t tk, int64_t dv, const float *alpha,
                                 uint16_t *v2);

/* Gathers rows for the grid tiling's key tiles (unit stride along the
 * row): dst[j * lddst + c] = src[idx[j] * ldr + c] for j < n, c < cols. */
void attnc_uk_gather_rows_f32(const float *src, int64_t ldr, const int64_t *idx,
                              int64_t n, int64_t cols, float *dst, int64_t lddst);
void attnc_uk_gather_rows_bf16(const uint16_t *src, int64_t ldr, const int64_t *idx,
                               int64_t n, int64_t cols, uint16_t *dst, int64_t lddst);
/* As attnc_uk_pack_pairs_bf16 for gathered rows (unit column stride):
 * dst[(j / 2) * 2 * cols + 2 * c + j % 2] = src[idx[j] * ldr + c], with
 * zeros for row n when n is odd. */
void attnc_uk_pack_pairs_gather_bf16(const uint16_t *src, int64_t ldr, const int64_t *idx,
                                     int64_t n, int64_t cols, uint16_t *dst);

/* softmax(dropout = p)'s mask (Dropout.h) on a tile of P stored
 * transposed, p(i, j) = st[j * ldst + i] for row i < tq and key j < tk:
 * p(i, j) = keep ? p(i, j) * scale : 0, where keep is attnc_dropout_keep
 * of key kv = firstKey + j (global) and row r = r0 + i of the task, whose
 * query is qPos + r % rowsPerHead and counter word 2 bh0 + r /
 * rowsPerHead; seed, offset and threshold as in Dropout.h (offset and
 * threshold below 2^32). One Philox call per row and 4 keys. */
void attnc_uk_dropout_t_f32(float *st, int64_t ldst, int64_t tq, int64_t tk,
                            int64_t firstKey, int64_t r0, int64_t rowsPerHead,
                            int64_t qPos, int64_t bh0, int64_t seed, int64_t offset,
                            int64_t threshold, float scale);

/* The paths (ATTNC_CPU_ISA names them "generic", "avx2", "avx512"). */
enum { ATTNC_ISA_GENERIC = 0, ATTNC_ISA_AVX2 = 1, ATTNC_ISA_AVX512 = 2 };

/* The path in use: the last one attnc_uk_set_isa set; before any, the one
 * ATTNC_CPU_ISA names if this CPU has it, else the best this CPU has. */
int attnc_uk_isa(void);
/* 1 if this CPU (and this build of the runtime) has the path, else 0. */
int attnc_uk_isa_supported(int isa);
/* Uses `isa` from now on (every thread); 0, or -1 with nothing changed
 * when this CPU lacks it. */
int attnc_uk_set_isa(int isa);
/* "generic", "avx2", "avx512" ("unknown" for anything else), and back (-1
 * for an unknown name). */
const char *attnc_uk_isa_name(int isa);
int attnc_uk_isa_from_name(const char *name);

/* The generic path's six kernels (its copy of attnc_uk_qk_f32 ... of
 * attnc_uk_pv_t_bf16, in that order), for attnc_uk_set_generic_kernels. */
typedef struct attnc_uk_generic_kernels {
  void (*qk_f32)(const float *, int64_t, const float *, int64_t, float *,
                 int64_t, int64_t, int64_t, int64_t, float);
  void (*qk_acc_f32)(const float *, int64_t, const float *, int64_t, float *,
                     int64_t, int64_t, int64_t, int64_t, float);
  void (*softmax_t_f32)(float *, int64_t, int64_t, int64_t, float *, float *,
                        float *);
  void (*pv_t_f32)(const float *, int64_t, const float *, int64_t, float *,
                   int64_t, int64_t, int64_t, int64_t, const float *);
  void (*qk_bf16)(const uint16_t *, int64_t, const uint16_t *, int64_t,
                  float *, int64_t, int64_t, int64_t, int64_t, float);
  void (*pv_t_bf16)(const float *, int64_t, const uint16_t *, int64_t,
                    float *, int64_t, int64_t, int64_t, int64_t,
                    const float *);
} attnc_uk_generic_kernels;

/* Makes the generic path run `k`: the portable kernels compiled for this
 * host by attnc's JIT (attnc::Compiler does this once per process when the
 * generic path is in use), instead of the copies built with the runtime
 * (for the baseline target and, on x86-64, AVX2 and AVX-512). `build` names
 * them for attnc_uk_generic_build; both must live as long as the process
 * (copied: no). NULL goes back to the built-in copies. Call it before
 * generic kernels run: a call that overlaps one mixes the two builds, which
 * round differently. */
void attnc_uk_set_generic_kernels(const attnc_uk_generic_kernels *k,
                                  const char *build);
/* Which code the generic path runs: the `build` of
 * attnc_uk_set_generic_kernels, else "built-in avx512", "built-in avx2"
 * or "built-in baseline" (the widest copy this CPU runs). */
const char *attnc_uk_generic_build(void);

#ifdef __cplusplus
}
#endif

#endif /* ATTNC_RUNTIME_MICROKERNELS_H */
