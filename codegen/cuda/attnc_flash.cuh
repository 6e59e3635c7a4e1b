//===- attnc_flash.cuh - What the sm_80 and sm_90a flash kernels share ----===//
//
// Part of every .cu attnc emits, before the arch's kernel: the end of a
// flash kernel's rows (out and lse), the same for both fragment layouts.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_FLASH_CUH
#define ATTNC_FLASH_CUH
#ifndef ATTNC_CU_EMBEDDED
#include "attnc_element.cuh"
#include "attnc_storage.cuh"
#endif

// The key tiles one CTA visits: [first, last], the hull of its rows' kept
// keys in tiles of BN, and each tile's kind (0 EMPTY, 1 FULL, 2 PARTIAL),
// from the pre-pass's words for this (b, h) when the caller ran it. Every
// thread computes the same values, so the threads that load tiles and those
// that use them walk the same non-EMPTY tiles in the same order.
template <class S, int BN> struct attnc_key_tiles {
  typename S::rowset rows;
  int64_t first, last, LK;
  const int64_t *pre0;
  __device__ __forceinline__ attnc_key_tiles(const attnc_cuda_args &a, const attnc_ctx &c, int64_t q0, int64_t q1)
      : rows(S::rows(c, q0, q1)) {
    first = rows.hullLo <= rows.hullHi ? rows.hullLo / BN : 0;
    last = rows.hullLo <= rows.hullHi ? rows.hullHi / BN : -1;
    LK = a.LK;
    pre0 = S::ids > 0 && a.scratch ? a.scratch + (c.b * a.HQ + c.h) * ((a.LK + BN - 1) / BN) * (2 * S::ids)
                                   : nullptr;
  }
  __device__ __forceinline__ int kind(const attnc_ctx &c, int64_t kt) const {
    const int64_t k0 = kt * BN, k1 = (k0 + BN < LK ? k0 + BN : LK) - 1;
    return S::tile_kind(c, rows, k0, k1, pre0 ? pre0 + kt * (2 * S::ids) : nullptr);
  }
};

// S's elements of one key tile [k0, k1] made P's logits (log2 units) or P:
// first the u.pre multiply of a raw logit whose scale cannot fold into the
// exponent, then S::element on every element. The fragment is mma.sync
// m16n8's C layout per warp (sm_90a's m64nNk16 accumulator is the same per
// warp): acc(nb, r) is row row[r / 2] (lane / 4, + 8 for r >= 2; rows past
// LQ read as row q1: computed, never stored) and key k0 + 8 nb +
// 2 (lane % 4) + r % 2. Keys past LK (zero-filled) are dropped; the regions
// see them as key k1, so every read is in range.
template <class S, bool PARTIAL, int BN, typename Acc>
__device__ __forceinline__ void attnc_tile_elements(const attnc_ctx &c, const attnc_uniforms &u, int k0, int k1,
                                                    int lane, const int (&row)[2], Acc acc) {
  if constexpr (S::prescale)
    if (u.pre != 1.f)
#pragma unroll
      for (int nb = 0; nb < BN / 8; ++nb)
#pragma unroll
        for (int r = 0; r < 4; ++r)
          acc(nb, r) *= u.pre;
#pragma unroll
  for (int nb = 0; nb < BN / 8; ++nb)
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int q = row[r / 2], key = k0 + nb * 8 + (lane % 4) * 2 + (r % 2);
      const bool inb = !PARTIAL || key <= k1;
      const int kv = inb ? key : k1;
      float &x = acc(nb, r);
      x = S::template element<PARTIAL>(c, u, q, kv, inb, x);
    }
}

// softmax(dropout = p) as the kernels take it from S: has_dropout,
// dropout_threshold (Dropout.h's floor(p 2^32)) and dropout_scale
// (1 / (1 - p)). A spec struct without has_dropout (the hand-written ones
// of the template tests) has no dropout.
template <class S, class = void> struct attnc_dropout_of {
  static constexpr bool on = false;
  static constexpr unsigned threshold = 0;
  static constexpr float scale = 1.f;
};
template <class S> struct attnc_dropout_of<S, decltype(void(S::has_dropout))> {
  static constexpr bool on = S::has_dropout;
  static constexpr unsigned threshold = S::dropout_threshold;
  static constexpr float scale = S::dropout_scale;
};

// One call's dropout (CudaABI.h's fields) for the CTA's (b, h): the Philox
// key, counter words 2 (bh = (dropout_batch + b) HQ + h) and 3, and whether
// the call drops at all (a call without a seed does not). Constant and
// unused for a spec without dropout.
struct attnc_dropout_call {
  unsigned long long seed, bh;
  unsigned offset;
  bool on;
};
template <class S>
__device__ __forceinline__ attnc_dropout_call attnc_dropout_call_of(const attnc_cuda_args &a, const attnc_ctx &c) {
  if constexpr (attnc_dropout_of<S>::on)
    return {(unsigned long long)a.dropout_seed, (unsigned long long)((a.dropout_batch + c.b) * a.HQ + c.h),
            a.dropout_offset, a.dropout != 0};
  else
    return {0ull, 0ull, 0u, false};
}

// Dropout on one key tile's P, after P joined the row sums l and before
// P V: P(q, kv) becomes P * dropout_scale or 0 as Dropout.h's
// attnc_dropout_keep says, so out = sum P keep V / (1 - p) / l with l, m
// and lse those of the whole P. The fragment is attnc_tile_elements's:
// acc(nb, r) is row row[r / 2], key key0 + r % 2 with key0 = k0 + 8 nb +
// 2 (lane % 4). k0 is a multiple of 8, so key0 is even and both keys are
// in Philox group key0 / 4, whose four keys lanes lane and lane ^ 1 hold
// (words 2 (lane % 2) + {0, 1}) for the same two rows. Each lane draws the
// group for row[lane % 2] and trades its 4 keep bits with lane ^ 1: one
// Philox call per 4 keys. Rows past LQ (row q1) and keys past LK (P = 0)
// draw bits nothing stores. All 32 lanes run it (the shuffle): d.on is
// the same in every thread.
template <class S, int BN, typename Acc>
__device__ __forceinline__ void attnc_tile_dropout(const attnc_dropout_call &d, int k0, int lane,
                                                   const int (&row)[2], Acc acc) {
  using DR = attnc_dropout_of<S>;
  if constexpr (DR::on) {
    if (!d.on)
      return;
    const int par = lane & 1;
    const unsigned q = (unsigned)(par ? row[1] : row[0]); // a select: no dynamic index into row
#pragma unroll
    for (int nb = 0; nb < BN / 8; ++nb) {
      const unsigned key0 = (unsigned)(k0 + nb * 8 + (lane % 4) * 2);
      const unsigned ctr[4] = {key0 >> 2, q, (unsigned)d.bh, d.offset};
      unsigned w[4];
      attnc_philox4x32_10(ctr, (unsigned)d.seed, (unsigned)(d.seed >> 32), w);
      const unsigned mine = unsigned(w[0] >= DR::threshold) | unsigned(w[1] >= DR::threshold) << 1 |
                            unsigned(w[2] >= DR::threshold) << 2 | unsigned(w[3] >= DR::threshold) << 3;
      const unsigned other = __shfl_xor_sync(0xffffffff, mine, 1);
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const unsigned bits = (i == par ? mine : other) >> (2 * par);
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          float &x = acc(nb, 2 * i + j);
          x = (bits >> j) & 1u ? x * DR::scale : 0.f;
        }
      }
    }
  }
}

// The end of a warp's rows row[0], row[1]: the quad's partial
// sums, out = o / l (0 for an empty row; sigmoid: out = o) and, for
// softmax, lse = m ln 2 + ln l. `acc(nd, r)` points at o's register of
// columns nd * 8 + 2 (lane % 4) + r % 2 and row row[r / 2]. l = 0: no kept
// pair (out 0, lse -inf); l = NaN: a NaN or +inf score (2^NaN, 2^(inf -
// inf)) makes out and lse NaN. With a sink s (S::has_sink; m is in log2
// units, so s is too): m' = max(m, s), c = 2^(m - m'), l = c l + 2^(s - m'),
// out = c o / l; an empty row gets out 0 and lse = s.
template <class S, typename T, int HDV, typename Acc>
__device__ __forceinline__ void attnc_store_rows(const attnc_cuda_args &a, const attnc_ctx &c, const int64_t (&row)[2],
                                                 int lane, const float (&m)[2], float (&l)[2], Acc acc) {
  const int64_t b = c.b, h = c.h;
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffff, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffff, l[r], 2);
  }
  for (int r = 0; r < 2; ++r) {
    if (row[r] >= a.LQ)
      continue;
    float inv = 1.f, mr = m[r], keep = 1.f;
    if constexpr (!S::sigmoid && S::has_sink) {
      const float s2 = S::sink(c, row[r]) * 1.4426950408889634f;
      if (s2 != -INFINITY) {
        const float mn = fmaxf(mr, s2) == -INFINITY ? 0.f : fmaxf(mr, s2);
        keep = exp2f(mr - mn);
        l[r] = l[r] * keep + exp2f(s2 - mn);
        mr = s2 != s2 ? s2 : mn; // a NaN sink makes the row NaN
      }
    }
    if constexpr (!S::sigmoid)
      inv = l[r] == 0.f ? 0.f : keep / l[r];
    unsigned short *og = reinterpret_cast<unsigned short *>(a.out) + b * a.os[0] + h * a.os[1] + row[r] * a.os[2];
#pragma unroll
    for (int nd = 0; nd < HDV / 8; ++nd) {
      int col = nd * 8 + (lane % 4) * 2;
      if (col >= a.DV)
        break; // padding columns (DV < HDV)
      og[col * a.os[3]] = attnc_dt<T>::one(*acc(nd, 2 * r) * inv);
      og[(col + 1) * a.os[3]] = attnc_dt<T>::one(*acc(nd, 2 * r + 1) * inv);
    }
    if constexpr (!S::sigmoid)
      if (a.lse && lane % 4 == 0)
        a.lse[b * a.ls[0] + h * a.ls[1] + row[r] * a.ls[2]] =
            l[r] == 0.f ? -INFINITY : mr * 0.6931471805599453f + logf(l[r]);
  }
}
// The entries every .cu has are head dims (D, DV) in {64, 128}^2, bf16 and
// f16 (CudaModule.cpp's kHeadDims). Under -DATTNC_ONLY_DT/HD/HDV with any
// other D, DV (multiples of 8 from 8 to 128) the .cu has one more entry,
// with CudaABI.h's name ATTNC_GEN_NAME(<n>) and storage ATTNC_GEN_T; the
// arch pads the dims it instantiates (attnc_sm80_pad_hd, attnc_sm90_pad)
// and takes the real D and DV from the arguments (padding columns load as
// zeros and are not stored).
#if defined(ATTNC_ONLY_DT) && defined(ATTNC_ONLY_HD) && defined(ATTNC_ONLY_HDV) &&                  \
    !((ATTNC_ONLY_HD == 64 || ATTNC_ONLY_HD == 128) && (ATTNC_ONLY_HDV == 64 || ATTNC_ONLY_HDV == 128))
#define ATTNC_GEN_ENTRY 1
#if ATTNC_ONLY_HD % 8 != 0 || ATTNC_ONLY_HDV % 8 != 0 || ATTNC_ONLY_HD < 8 || ATTNC_ONLY_HDV < 8 ||   \
    ATTNC_ONLY_HD > 128 || ATTNC_ONLY_HDV > 128
#error "attnc: the CUDA kernels take head dims D and DV that are multiples of 8 from 8 to 128"
#endif
#define ATTNC_CAT5_(a, b, c, d, e) a##b##c##d##e
#define ATTNC_CAT5(a, b, c, d, e) ATTNC_CAT5_(a, b, c, d, e)
#if ATTNC_ONLY_DT == 1
#define ATTNC_GEN_T attnc_bf16
#define ATTNC_GEN_NAME(n) ATTNC_CAT5(attnc_fwd_##n, __bf16_, ATTNC_ONLY_HD, _, ATTNC_ONLY_HDV)
#else
#define ATTNC_GEN_T attnc_f16
#define ATTNC_GEN_NAME(n) ATTNC_CAT5(attnc_fwd_##n, __f16_, ATTNC_ONLY_HD, _, ATTNC_ONLY_HDV)
#endif
#endif

#ifdef ATTNC_NVCC_HOST
// A row of a host launcher's entry table: the storage code and real head
// dims it serves, the dims it was instantiated for, the kernel.
struct attnc_host_entry {
  int dtype, d, dv, hd, hdv;
  const void *fn;
};
// The row serving `a`'s dtype and head dims in a table ended by a null fn.
static const attnc_host_entry *attnc_find_entry(const attnc_host_entry *e, const attnc_cuda_args *a) {
  for (; e->fn; ++e)
    if (e->dtype == a->dtype && e->d == a->D && e->dv == a->DV)
      return e;
  return nullptr;
}
#endif
#endif // ATTNC_FLASH_CUH
