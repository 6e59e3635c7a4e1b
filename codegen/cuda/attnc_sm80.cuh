//===- attnc_sm80.cuh - The sm_80 flash kernel (mma.sync, cp.async) -------===//
//
// A FlashAttention-2 style forward kernel, a template over the spec's
// struct S (attnc_spec_<n>, the contract in CudaModule.h), the storage type
// T and the head dims HD, HDV. The emitted .cu pastes this file after the
// element code and writes only the spec struct and the instantiations
// (ATTNC_SM80_ENTRY, the host table); see codegen/lib/CudaModule.cpp.
//   One CTA per (query tile of 64 rows, h, b), 4 warps of 16 rows;
//   key tiles of 64 from the mask schedule's range; EMPTY tiles are skipped
//   before any load, FULL tiles run a copy of the tile code without mask
//   code or bounds checks, PARTIAL tiles run S::element<true>;
//   K/V in a 2-stage cp.async ring: the next non-EMPTY tile is in flight
//   while the current one computes (Q joins the first group);
//   fragments with ldmatrix (.trans for V), S = Q K^T and O += P V with
//   mma.sync m16n8k16 (bf16 or f16 in, f32 accumulate), the online softmax
//   in registers (quad shuffles for row max and sum); sigmoid without
//   running max or sum.
// HD is a multiple of 16 and HDV of 8, up to 128 (the entries of other
// head dims pad D to a multiple of 16: cp.async zero-fills the padding);
// rows with unit stride along D. Ran on an H200 as sm_80 PTX
// (scripts/gpu-check.sh run) as emitter text, before it became this
// template; the template compiles to the same code (docs/cuda-backend.md)
// and passes the CPU emulation, and has not run on a GPU.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_SM80_CUH
#define ATTNC_SM80_CUH
#ifndef ATTNC_CU_EMBEDDED
#include "attnc_element.cuh"
#include "attnc_storage.cuh"
#include "attnc_prepass.cuh"
#include "attnc_flash.cuh"
#endif

// The kernel's shape: query rows and keys per tile, the row padding of
// shared memory (16 bytes keep ldmatrix free of bank conflicts), the ring's
// stages, threads, and the dynamic shared memory: Q [64][D + 8],
// K [2][64][D + 8], V [2][64][DV + 8].
constexpr int kAttncSm80Rows = 64, kAttncSm80Keys = 64, kAttncSm80Pad = 8, kAttncSm80Stages = 2,
              kAttncSm80Threads = 128;
ATTNC_HD constexpr int attnc_sm80_smem(int hd, int hdv) {
  return 2 * (kAttncSm80Rows * (hd + kAttncSm80Pad) + kAttncSm80Stages * kAttncSm80Keys * (hd + kAttncSm80Pad) +
              kAttncSm80Stages * kAttncSm80Keys * (hdv + kAttncSm80Pad));
}
// The instantiated D for a real one (ldmatrix and mma take k16 steps).
ATTNC_HD constexpr int attnc_sm80_pad_hd(int x) { return (x + 15) / 16 * 16; }

// Every PTX instruction of the sm_80 kernel is in these helpers, behind one
// guard: a harness that defines ATTNC_MMA_SM80 first can supply its own
// versions (test/cuda-emu runs the kernels on the CPU that way).
#ifndef ATTNC_MMA_SM80
#define ATTNC_MMA_SM80
// The block's dynamic shared memory, as an array named `name`.
#define ATTNC_DYNAMIC_SMEM(name, align) extern __shared__ __align__(align) unsigned char name[]
// ldmatrix: four (x4) or two (x2) 8x8 b16 matrices from shared memory, the
// row addresses from lanes 0-31 (x4) or 0-15 (x2); .trans transposes each.
__device__ __forceinline__ void attnc_ldsm_x4(unsigned (&r)[4], const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(attnc_smem_addr(p)));
}
__device__ __forceinline__ void attnc_ldsm_x2(unsigned (&r)[2], const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1]) : "r"(attnc_smem_addr(p)));
}
__device__ __forceinline__ void attnc_ldsm_x2_trans(unsigned (&r)[2], const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1]) : "r"(attnc_smem_addr(p)));
}
// cp.async of 16 bytes; `bytes` (0 or 16) are read, the rest zero-filled.
__device__ __forceinline__ void attnc_cp_async16(void *dst, const void *src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
               :: "r"(attnc_smem_addr(dst)), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void attnc_cp_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
__device__ __forceinline__ void attnc_cp_wait_all_but_newest() {
  asm volatile("cp.async.wait_group 1;\n" ::: "memory");
}
__device__ __forceinline__ void attnc_cp_wait_all() {
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}
template <typename T> __device__ __forceinline__ void attnc_mma_16816(float *d, const unsigned *a, const unsigned *b) {
  if constexpr (attnc_dt<T>::bf16)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

// One key tile [k0, k1] whose K and V are in shared memory (Kst, Vst):
// S = Q K^T, element code, softmax update, O += P V, for the 16 rows of
// this warp. PARTIAL is a template flag: FULL tiles that end before LK get
// a copy with neither mask code nor bounds checks; PARTIAL tiles and the
// tile holding LK - 1 check both. Inlined, so m, l and o stay in registers.
// `dr`: the call's dropout (attnc_flash.cuh), applied to P after the row
// sum; no code for a spec without dropout.
template <class S, typename T, int HD, int HDV, bool PARTIAL>
__device__ __forceinline__ void attnc_tile80(const attnc_ctx &c, const T *Qs, const T *Kst, const T *Vst, int k0,
                                             int k1, int warp, int lane, const int (&row)[2],
                                             const attnc_uniforms &u, const attnc_dropout_call &dr, float (&m)[2],
                                             float (&l)[2], float (&o)[HDV / 8][4]) {
  constexpr int BN = kAttncSm80Keys, LDQ = HD + kAttncSm80Pad, LDV = HDV + kAttncSm80Pad;
  (void)c; (void)u; (void)m;
  // S: 16 rows x 64 keys per warp, 8 m16n8 blocks.
  float s[BN / 8][4];
  for (int nb = 0; nb < BN / 8; ++nb)
    s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) {
    unsigned af[4];
    attnc_ldsm_x4(af, Qs + (warp * 16 + lane % 16) * LDQ + kk * 16 + (lane / 16) * 8);
#pragma unroll
    for (int nb = 0; nb < BN / 8; ++nb) {
      unsigned bf[2];
      attnc_ldsm_x2(bf, Kst + (nb * 8 + lane % 8) * LDQ + kk * 16 + ((lane / 8) % 2) * 8);
      attnc_mma_16816<T>(s[nb], af, bf);
    }
  }
  // Element code on the C fragments of m16n8: s[nb][r] (attnc_flash.cuh).
  attnc_tile_elements<S, PARTIAL, BN>(c, u, k0, k1, lane, row, [&](int nb, int r) -> float & { return s[nb][r]; });
  if constexpr (!S::sigmoid) {
    // Online softmax in log2 units (the logit of S times u.fold, u.fold > 0):
    // m' = max(m, u.fold rowmax S), z = (m' == -inf ? 0 : m'),
    // alpha = 2^(m - z), P = 2^(S u.fold - z) (one FFMA and one ex2),
    // l = alpha l + rowsum P, O *= alpha. Sigmoid: P is final, no running
    // max, no row sum.
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      float mx = -INFINITY;
      for (int nb = 0; nb < BN / 8; ++nb)
        mx = fmaxf(mx, fmaxf(s[nb][2 * i], s[nb][2 * i + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 2));
      mx = fmaxf(m[i], mx * u.fold);
      const float z = mx == -INFINITY ? 0.f : mx;
      float alpha = attnc_ex2(m[i] - z), sum = 0.f;
      for (int nb = 0; nb < BN / 8; ++nb) {
        s[nb][2 * i] = attnc_ex2(fmaf(s[nb][2 * i], u.fold, -z));
        s[nb][2 * i + 1] = attnc_ex2(fmaf(s[nb][2 * i + 1], u.fold, -z));
        sum += s[nb][2 * i] + s[nb][2 * i + 1];
      }
      l[i] = alpha * l[i] + sum;
      m[i] = mx;
      for (int nd = 0; nd < HDV / 8; ++nd) {
        o[nd][2 * i] *= alpha;
        o[nd][2 * i + 1] *= alpha;
      }
    }
  }
  // softmax(dropout = p): P V takes the dropped P, l keeps the whole P.
  attnc_tile_dropout<S, BN>(dr, k0, lane, row, [&](int nb, int r) -> float & { return s[nb][r]; });
  // O += P V: P from the S accumulators (two m16n8 C blocks make one A
  // fragment of m16n8k16), V fragments with ldmatrix.trans.
#pragma unroll
  for (int kk = 0; kk < BN / 16; ++kk) {
    unsigned pa[4] = {attnc_dt<T>::pack(s[2 * kk][0], s[2 * kk][1]),
                      attnc_dt<T>::pack(s[2 * kk][2], s[2 * kk][3]),
                      attnc_dt<T>::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                      attnc_dt<T>::pack(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
    for (int nd = 0; nd < HDV / 8; ++nd) {
      unsigned bf[2];
      attnc_ldsm_x2_trans(bf, Vst + (kk * 16 + lane % 16) * LDV + nd * 8);
      attnc_mma_16816<T>(o[nd], pa, bf);
    }
  }
}

// The kernel body of spec S.
template <class S, typename T, int HD, int HDV>
__device__ __forceinline__ void attnc_fwd80(const attnc_cuda_args &a) {
  constexpr int BM = kAttncSm80Rows, BN = kAttncSm80Keys, LDQ = HD + kAttncSm80Pad, LDV = HDV + kAttncSm80Pad,
                NT = kAttncSm80Threads;
  ATTNC_DYNAMIC_SMEM(attnc_smem, 16);
  T *Qs = reinterpret_cast<T *>(attnc_smem);
  T *Ks = Qs + BM * LDQ;
  T *Vs = Ks + kAttncSm80Stages * BN * LDQ;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  // The last query tiles first: under causal-like masks they have the most
  // key tiles, so the short ones fill the tail of the grid.
  const int64_t qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  attnc_ctx c = {a.B, a.HQ, a.HKV, a.LQ, a.LK, a.D, a.DV, b, h,
                 h / (a.HQ / a.HKV), a.inputs, a.error};
  const int64_t q0 = qt * BM, q1 = (q0 + BM < a.LQ ? q0 + BM : a.LQ) - 1;
  const T *qg = reinterpret_cast<const T *>(a.q) + b * a.qs[0] + h * a.qs[1];
  const T *kg = reinterpret_cast<const T *>(a.k) + b * a.ks[0] + c.hkv * a.ks[1];
  const T *vg = reinterpret_cast<const T *>(a.v) + b * a.vs[0] + c.hkv * a.vs[1];

  // Copies rows [r0, r0 + 64) of a tile with `cols` columns (row stride ld)
  // to shared memory, 16 bytes per cp.async; rows past `limit` and columns
  // past `real` (padding of D or DV) are zero-filled (src-size 0), their
  // source address clamped to the row's start.
  auto load = [&](T *dst, const T *src, int64_t ld, int64_t r0, int64_t limit, int cols, int lds,
                  int64_t real) {
    const int chunks = cols / 8;
    for (int i = tid; i < 64 * chunks; i += NT) {
      int r = i / chunks, ch = i % chunks;
      bool in = r0 + r < limit && ch * 8 < real;
      const T *src16 = src + (in ? (r0 + r) * ld + ch * 8 : 0);
      attnc_cp_async16(dst + r * lds + ch * 8, src16, in ? 16 : 0);
    }
  };

  const attnc_uniforms u = S::uniforms(c);
  const attnc_dropout_call dr = attnc_dropout_call_of<S>(a, c);
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  float o[HDV / 8][4];
  for (int nd = 0; nd < HDV / 8; ++nd)
    o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.f;
  const int64_t row[2] = {q0 + warp * 16 + lane / 4, q0 + warp * 16 + lane / 4 + 8};
  const int rowc[2] = {(int)(row[0] < q1 ? row[0] : q1), (int)(row[1] < q1 ? row[1] : q1)};

  // The schedule: the non-EMPTY key tiles, the same in every thread.
  const attnc_key_tiles<S, BN> tiles(a, c, q0, q1);
  const int64_t first = tiles.first, last = tiles.last;
  auto kindOf = [&](int64_t kt) { return tiles.kind(c, kt); };
  // The first non-EMPTY tile at or after kt (its kind in `kind`), or last + 1:
  // EMPTY tiles are never loaded.
  auto nextTile = [&](int64_t kt, int &kind) {
    for (; kt <= last; ++kt)
      if ((kind = kindOf(kt)) != 0) // 0: EMPTY
        return kt;
    return kt;
  };

  // The pipeline. Group 0 holds Q and the first non-EMPTY tile (stage 0).
  // Each step first issues the NEXT non-EMPTY tile into the other stage
  // (an empty group when there is none, so the group count stays uniform),
  // then waits for all but that newest group, i.e. for the current tile.
  load(Qs, qg, a.qs[2], q0, a.LQ, HD, LDQ, a.D);
  int kind = 0;
  int64_t cur = nextTile(first, kind);
  if (cur <= last) {
    load(Ks, kg, a.ks[2], cur * BN, a.LK, HD, LDQ, a.D);
    load(Vs, vg, a.vs[2], cur * BN, a.LK, HDV, LDV, a.DV);
  }
  attnc_cp_commit();
  for (int st = 0; cur <= last; st ^= 1) {
    int nextKind = 0;
    const int64_t nxt = nextTile(cur + 1, nextKind);
    if (nxt <= last) { // stage st ^ 1 was released by the barrier ending the last step
      load(Ks + (st ^ 1) * BN * LDQ, kg, a.ks[2], nxt * BN, a.LK, HD, LDQ, a.D);
      load(Vs + (st ^ 1) * BN * LDV, vg, a.vs[2], nxt * BN, a.LK, HDV, LDV, a.DV);
    }
    attnc_cp_commit();
    attnc_cp_wait_all_but_newest();
    __syncthreads(); // every thread's copies of the current tile are visible
    const int k0 = (int)(cur * BN), k1 = (int)((k0 + BN < a.LK ? k0 + BN : a.LK) - 1);
    const T *Kst = Ks + st * BN * LDQ, *Vst = Vs + st * BN * LDV;
    if (kind == 2 || k1 - k0 + 1 < BN) // PARTIAL, or the tile of LK - 1
      attnc_tile80<S, T, HD, HDV, true>(c, Qs, Kst, Vst, k0, k1, warp, lane, rowc, u, dr, m, l, o);
    else // FULL: no mask code, no bounds
      attnc_tile80<S, T, HD, HDV, false>(c, Qs, Kst, Vst, k0, k1, warp, lane, rowc, u, dr, m, l, o);
    __syncthreads(); // stage st is read; the next step refills it
    cur = nxt;
    kind = nextKind;
  }
  attnc_cp_wait_all();
  attnc_store_rows<S, T, HDV>(a, c, row, lane, m, l, [&](int nd, int r) { return &o[nd][r]; });
}

// One entry of CudaABI.h: the launch record NAME__launch and the kernel
// NAME(attnc_cuda_args) of spec S for T, HD, HDV. NAME may be a macro (the
// entry of other head dims): ATTNC_SM80_ENTRY expands it.
// __launch_bounds__(128, 2): without a CTA count ptxas sometimes caps a
// variant at 128 registers and spills (causal_cross, D = 64); 2 CTAs of
// 128 threads leave it all 255 and still fit an SM's shared memory.
#define ATTNC_SM80_ENTRY(NAME, S, T, HD, HDV) ATTNC_SM80_ENTRY_(NAME, S, T, HD, HDV)
#define ATTNC_SM80_ENTRY_(NAME, S, T, HD, HDV)                                                      \
  extern "C" __constant__ int NAME##__launch[ATTNC_LAUNCH_WORDS] = {                                 \
      kAttncSm80Rows, kAttncSm80Threads, attnc_sm80_smem(HD, HDV), 0, 0, 0, kAttncSm80Keys, 0};     \
  extern "C" __global__ void __launch_bounds__(kAttncSm80Threads, 2) NAME(attnc_cuda_args a) {      \
    attnc_fwd80<S, T, HD, HDV>(a);                                                                  \
  }

#ifdef ATTNC_NVCC_HOST
// The host launcher of one spec (nvcc builds only): the same entries as
// the runtime's NVRTC path, found in `entries` (ended by a null fn), after
// the spec's pre-pass when it has one. Returns 0, a cudaError_t, -1 (no
// entry for this dtype / head dims in this build) or 1, 2 (bad heads /
// strides).
static int attnc_sm80_launch(const attnc_cuda_args *a, cudaStream_t stream, const attnc_host_entry *entries,
                             void (*prepass)(attnc_cuda_args)) {
  if (a->HKV <= 0 || a->HQ % a->HKV != 0) return 1;
  // cp.async copies 16-byte chunks of rows: unit stride along D, rows and
  // bases 16-byte aligned.
  const int64_t *st[] = {a->qs, a->ks, a->vs};
  const void *base[] = {a->q, a->k, a->v};
  for (int i = 0; i < 3; ++i)
    if (st[i][3] != 1 || st[i][2] % 8 != 0 || st[i][1] % 8 != 0 || st[i][0] % 8 != 0 ||
        (reinterpret_cast<uintptr_t>(base[i]) & 15) != 0)
      return 2;
  const attnc_host_entry *e = attnc_find_entry(entries, a);
  if (!e) return -1;
  const int smem = attnc_sm80_smem(e->hd, e->hdv);
  int64_t mq = (a->LQ + kAttncSm80Rows - 1) / kAttncSm80Rows;
  if (mq == 0 || a->HQ == 0 || a->B == 0) return 0;
  if (int pe = attnc_run_prepass<kAttncSm80Keys>(prepass, a, stream)) return pe;
  cudaError_t err = cudaFuncSetAttribute(e->fn, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return (int)err;
  void *args[] = {const_cast<attnc_cuda_args *>(a)};
  err = cudaLaunchKernel(e->fn, dim3((unsigned)mq, (unsigned)a->HQ, (unsigned)a->B), dim3(kAttncSm80Threads), args,
                         (size_t)smem, stream);
  return (int)err;
}
#endif // ATTNC_NVCC_HOST
#endif // ATTNC_SM80_CUH
