//===- attnc_sm90.cuh - The sm_90a flash kernel (TMA, mbarrier, wgmma) ----===//
//
// A FlashAttention-3 style forward kernel, a template over the spec's struct
// S (attnc_spec_<n>, the contract in CudaModule.h), the storage type T and
// the head dims HD, HDV. The emitted .cu pastes this file after the
// element code and writes only the spec struct and the instantiations
// (ATTNC_SM90_ENTRY, the host table); see codegen/lib/CudaModule.cpp.
//   One CTA per (query tile of 128 rows, h, b), three warpgroups:
//   warpgroup 0 is the producer (setmaxnreg.dec to 40 registers): one
//   thread issues TMA loads (cp.async.bulk.tensor, the tensor maps of
//   CudaABI.h, 128-byte swizzle) of Q once and of K and V per non-EMPTY key
//   tile into a ring of stages; each load completes on an mbarrier
//   (arrive.expect_tx + complete_tx), and a stage is refilled only after
//   the consumers released it (an "empty" mbarrier per stage, K and V apart);
//   warpgroups 1 and 2 are consumers (setmaxnreg.inc to 232), 64 query rows
//   each: S = Q K^T with wgmma.mma_async m64n128k16 (both operands in shared
//   memory), the element code and the online softmax in registers (sigmoid:
//   no running max or sum), then O += P V with wgmma m64n<DV>k16, P taken
//   from registers (as FlashAttention-3 does) and V from shared memory
//   through a transposed (MN-major) descriptor. S of tile i is issued before
//   P V of tile i - 1, the softmax runs while P V does (wait_group 1), and
//   the two consumer warpgroups ping-pong on named barriers 1 and 2.
//   EMPTY key tiles are skipped by producer and consumers alike (never
//   loaded), FULL tiles run a copy of the tile code with no mask code and
//   no bounds checks, PARTIAL tiles run S::element<true>.
// HD and HDV are 64 or 128 (the entries of other head dims pad to these:
// TMA zero-fills the padding columns, which are not stored). wgmma and
// setmaxnreg exist only on sm_90a: attnc_sm90_entry holds the kernel under
// __CUDA_ARCH_FEAT_SM90_ALL and traps when built for anything else (nvcc
// -arch=sm_90a also compiles a compute_90 PTX, which must assemble).
// Ran on an H200 (scripts/gpu-check.sh run; docs/cuda-backend.md) as
// emitter text, before it became this template; the template compiles to
// the same instruction counts and passes the CPU emulation, and has not run
// on a GPU. The output is stored from registers.
//
// Layout reasoning (PTX ISA 9.7.15.5.1 "Register fragments and shared
// memory matrix layouts", CUTLASS cute/arch/mma_sm90_desc.hpp, FA3 hopper/):
// * TMA with SWIZZLE_128B and a box (64, rows) of 16-bit elements writes
//   row r of the box (128 bytes) at r * 128, its 16-byte chunk j at chunk
//   j ^ (r % 8): exactly the 128B swizzle atom of wgmma (8 rows x 128 bytes,
//   Swizzle<3,4,3>), provided the block starts on a 1024-byte boundary (then
//   the descriptor's base offset is 0). A head dim of 128 is two boxes, two
//   blocks of rows x 128 bytes.
// * Q (A of S = Q K^T, M x K) and K (B, N x K) are K-major: canonical layout
//   ((8,m),(T,2k)):((8T,SBO),(1,T)), T = 8 elements: SBO = 1024 (the next 8
//   rows), LBO unused for swizzled K-major (encoded as 1). A k16 step is 32
//   bytes along the row: the descriptor's start address advances by 32 per
//   step inside a 64-column block (the hardware applies the swizzle to the
//   final address), by a block for steps 4..7 (DeepGEMM, FA3 do the same).
// * V (B of O = P V, K = keys, N = DV) is stored key-major (rows = keys, dv
//   contiguous), i.e. MN-major: imm-trans-b = 1 and canonical layout
//   ((T,8,m),(8,k)):((1,T,LBO),(8T,SBO)): LBO = offset between 64-column
//   blocks of dv (= rows * 128 bytes), SBO = 1024 (the next 8 keys); a k16
//   step is 16 keys = 2048 bytes.
// * Descriptor bits: [0,14) start >> 4, [16,30) LBO >> 4, [32,46) SBO >> 4,
//   [49,52) base offset (0 here), [62,64) swizzle (1 = 128B).
// * Accumulator of m64nNk16 (f32): warp w of the warpgroup holds rows
//   16w..16w+15; d[4j + {0,1}] is row lane/4, columns 8j + 2(lane%4) + {0,1},
//   d[4j + {2,3}] the same columns of row lane/4 + 8 (as mma.sync m16n8).
//   The A register fragment of m64nNk16 is mma.sync m16n8k16's per warp:
//   a0 = (row g, k 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 =
//   (g+8, 2t+8..), so P's A fragment for keys 16kk..16kk+15 is d[8kk..8kk+7]
//   packed in pairs, no shuffles.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_SM90_CUH
#define ATTNC_SM90_CUH
#ifndef ATTNC_CU_EMBEDDED
#include "attnc_element.cuh"
#include "attnc_storage.cuh"
#include "attnc_prepass.cuh"
#include "attnc_flash.cuh"
#endif

// The kernel's shape: query rows and keys per tile, threads (a producer
// and two consumer warpgroups), the register split (128 * 40 + 256 * 232
// <= 65536), the ring's stages and the dynamic shared memory: 1024 bytes
// for aligning the base to the swizzle pattern, then Q, the K and V stages
// and the mbarriers (Q, K full, V full, K empty, V empty).
constexpr int kAttncSm90Rows = 128, kAttncSm90Keys = 128, kAttncSm90Threads = 384;
// (An enum: a target without sm_90a traps and never reads them.)
enum : int { kAttncSm90ProducerRegs = 40, kAttncSm90ConsumerRegs = 232 };
ATTNC_HD constexpr int attnc_sm90_stages(int hd, int hdv) { return hd + hdv <= 128 ? 3 : 2; }
ATTNC_HD constexpr int attnc_sm90_smem(int hd, int hdv) {
  return 1024 + 2 * (kAttncSm90Rows * hd + attnc_sm90_stages(hd, hdv) * kAttncSm90Keys * (hd + hdv)) +
         8 * (1 + 4 * attnc_sm90_stages(hd, hdv));
}
// The instantiated head dim for a real one (multiple of 8 up to 128).
ATTNC_HD constexpr int attnc_sm90_pad(int x) { return x <= 64 ? 64 : 128; }

#ifndef ATTNC_SM90_HELPERS
#define ATTNC_SM90_HELPERS
// Every PTX instruction of the sm_90a kernel is in these helpers, behind one
// guard (test/cuda-emu supplies CPU versions).
#define ATTNC_DYNAMIC_SMEM90(name, align) extern __shared__ __align__(align) unsigned char name[]
__device__ __forceinline__ void attnc_fence_mbar_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
template <int R> __device__ __forceinline__ void attnc_setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" :: "n"(R));
}
template <int R> __device__ __forceinline__ void attnc_setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" :: "n"(R));
}
// wgmma matrix descriptor of a 128B-swizzled operand (see the .cpp's notes):
// start, LBO and SBO in bytes, encoded as (x & 0x3FFFF) >> 4.
__device__ __forceinline__ uint64_t attnc_gmma_desc(unsigned addr, unsigned lbo, unsigned sbo) {
  return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)((lbo & 0x3FFFF) >> 4) << 16) |
         ((uint64_t)((sbo & 0x3FFFF) >> 4) << 32) | ((uint64_t)1 << 62);
}
__device__ __forceinline__ void attnc_mbar_init(unsigned bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" :: "r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void attnc_mbar_expect_tx(unsigned bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" :: "r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void attnc_mbar_arrive(unsigned bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" :: "r"(bar) : "memory");
}
// Returns once the phase of parity `parity` has completed.
__device__ __forceinline__ void attnc_mbar_wait(unsigned bar, unsigned parity) {
  unsigned done = 0;
  do {
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                 "selp.u32 %0, 1, 0, p;\n}\n" : "=r"(done) : "r"(bar), "r"(parity) : "memory");
  } while (!done);
}
// One TMA box (64, rows, 1, 1) at coordinates (d, l, h, b) of a rank-4 map;
// the bytes complete_tx on `bar`. `map` is the generic address of a
// __grid_constant__ parameter.
__device__ __forceinline__ void attnc_tma_load(unsigned dst, const attnc_tensor_map *map, unsigned bar,
                                               int d, int l, int h, int b) {
  asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
               " [%0], [%1, {%2, %3, %4, %5}], [%6];\n"
               :: "r"(dst), "l"((uint64_t)map), "r"(d), "r"(l), "r"(h), "r"(b), "r"(bar) : "memory");
}
__device__ __forceinline__ void attnc_wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void attnc_wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void attnc_wgmma_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
__device__ __forceinline__ void attnc_wgmma_wait1() { asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); }
// Named barriers (id 1..15; 0 is __syncthreads) of `count` threads.
__device__ __forceinline__ void attnc_bar_sync(unsigned id, unsigned count) {
  asm volatile("bar.sync %0, %1;\n" :: "r"(id), "r"(count) : "memory");
}
__device__ __forceinline__ void attnc_bar_arrive(unsigned id, unsigned count) {
  asm volatile("bar.arrive %0, %1;\n" :: "r"(id), "r"(count) : "memory");
}
template <int N> __device__ __forceinline__ void attnc_acc_fence(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
    asm volatile("" : "+f"(d[i]) :: "memory");
}
// The accumulator operands of a wgmma with N = 64 or 128 (N / 2 registers),
// C the constraint ("+f" to accumulate, "=f" for a fresh accumulator).
#define ATTNC_WG_REGS32 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define ATTNC_WG_REGS64 ATTNC_WG_REGS32 ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define ATTNC_WG_ACC32(C) \
  C(d[0]), C(d[1]), C(d[2]), C(d[3]), C(d[4]), C(d[5]), C(d[6]), C(d[7]), \
  C(d[8]), C(d[9]), C(d[10]), C(d[11]), C(d[12]), C(d[13]), C(d[14]), C(d[15]), \
  C(d[16]), C(d[17]), C(d[18]), C(d[19]), C(d[20]), C(d[21]), C(d[22]), C(d[23]), \
  C(d[24]), C(d[25]), C(d[26]), C(d[27]), C(d[28]), C(d[29]), C(d[30]), C(d[31])
#define ATTNC_WG_ACC64(C) ATTNC_WG_ACC32(C), \
  C(d[32]), C(d[33]), C(d[34]), C(d[35]), C(d[36]), C(d[37]), C(d[38]), C(d[39]), \
  C(d[40]), C(d[41]), C(d[42]), C(d[43]), C(d[44]), C(d[45]), C(d[46]), C(d[47]), \
  C(d[48]), C(d[49]), C(d[50]), C(d[51]), C(d[52]), C(d[53]), C(d[54]), C(d[55]), \
  C(d[56]), C(d[57]), C(d[58]), C(d[59]), C(d[60]), C(d[61]), C(d[62]), C(d[63])
// wgmma wrappers: SS (A and B from shared memory, K-major both) and RS (A
// from registers, B MN-major: imm-trans-b = 1). The accumulator registers
// are "+f" operands; attnc_acc_fence keeps the compiler from moving their
// uses across wgmma.wait_group (CUTLASS's warpgroup_fence_operand). The
// _zero form starts a fresh accumulator (scale-d 0): its registers are
// outputs only ("=f"), so the values they held before (the last tile's P)
// are not live into it; with "+f" the compiler may copy them into place
// between wgmmas, which makes ptxas serialize every wgmma of the kernel
// (its warning C7514).
template <typename T>
__device__ __forceinline__ void attnc_wgmma_ss_n128(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {
#define ATTNC_WGMMA_(TY)                                                                            \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                         \
               "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " {" ATTNC_WG_REGS64 "}, "  \
               "%64, %65, p, 1, 1, 0, 0;\n}\n"                                                      \
               : ATTNC_WG_ACC64("+f") : "l"(a), "l"(b), "r"(accumulate) : "memory")
  if constexpr (attnc_dt<T>::bf16) ATTNC_WGMMA_("bf16"); else ATTNC_WGMMA_("f16");
#undef ATTNC_WGMMA_
}
template <typename T>
__device__ __forceinline__ void attnc_wgmma_ss_n128_zero(float (&d)[64], uint64_t a, uint64_t b) {
#define ATTNC_WGMMA_(TY)                                                                            \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 0, 0;\n"                                           \
               "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " {" ATTNC_WG_REGS64 "}, "  \
               "%64, %65, p, 1, 1, 0, 0;\n}\n"                                                      \
               : ATTNC_WG_ACC64("=f") : "l"(a), "l"(b) : "memory")
  if constexpr (attnc_dt<T>::bf16) ATTNC_WGMMA_("bf16"); else ATTNC_WGMMA_("f16");
#undef ATTNC_WGMMA_
}
template <typename T>
__device__ __forceinline__ void attnc_wgmma_rs_n64(float (&d)[32], const unsigned (&a)[4], uint64_t b, int accumulate) {
#define ATTNC_WGMMA_(TY)                                                                            \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                         \
               "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " {" ATTNC_WG_REGS32 "}, "   \
               "{%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"                                        \
               : ATTNC_WG_ACC32("+f")                                                               \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate) : "memory")
  if constexpr (attnc_dt<T>::bf16) ATTNC_WGMMA_("bf16"); else ATTNC_WGMMA_("f16");
#undef ATTNC_WGMMA_
}
template <typename T>
__device__ __forceinline__ void attnc_wgmma_rs_n128(float (&d)[64], const unsigned (&a)[4], uint64_t b, int accumulate) {
#define ATTNC_WGMMA_(TY)                                                                            \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                                         \
               "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " {" ATTNC_WG_REGS64 "}, "  \
               "{%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"                                        \
               : ATTNC_WG_ACC64("+f")                                                               \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate) : "memory")
  if constexpr (attnc_dt<T>::bf16) ATTNC_WGMMA_("bf16"); else ATTNC_WGMMA_("f16");
#undef ATTNC_WGMMA_
}
// O += P V for DV = N: the wrapper of that N.
template <typename T, int N>
__device__ __forceinline__ void attnc_wgmma_rs(float (&d)[N / 2], const unsigned (&a)[4], uint64_t b, int accumulate) {
  if constexpr (N == 64) attnc_wgmma_rs_n64<T>(d, a, b, accumulate);
  else attnc_wgmma_rs_n128<T>(d, a, b, accumulate);
}
#endif // ATTNC_SM90_HELPERS

// S = Q K^T of one key tile for the 64 rows of consumer warpgroup `cw`,
// issued (wgmma from shared memory, committed as one group), not waited for.
template <typename T, int HD>
__device__ __forceinline__ void attnc_qk90(unsigned sQ, unsigned sK, int cw, float (&s)[kAttncSm90Keys / 2]) {
  constexpr int BM = kAttncSm90Rows, BN = kAttncSm90Keys;
  constexpr unsigned QBLK = BM * 128, KBLK = BN * 128; // one 64-column block
  // Q rows 64 cw.. of this warpgroup: 64 * 128 bytes into each block. The
  // descriptors of the k16 steps differ in the start address only (its
  // bits 0..13 hold address / 16 and no step carries out of them), so each
  // is the first one plus a constant.
  const uint64_t da0 = attnc_gmma_desc(sQ + cw * 64 * 128, 16, 1024);
  const uint64_t db0 = attnc_gmma_desc(sK, 16, 1024);
  attnc_wgmma_fence();
  attnc_acc_fence(s);
  attnc_wgmma_ss_n128_zero<T>(s, da0, db0);
#pragma unroll
  for (int kk = 1; kk < HD / 16; ++kk)
    attnc_wgmma_ss_n128<T>(s, da0 + ((kk / 4) * QBLK + (kk % 4) * 32) / 16,
                           db0 + ((kk / 4) * KBLK + (kk % 4) * 32) / 16, 1);
  attnc_wgmma_commit();
}

// O += P V for the P of one key tile (registers, the A operand layout) and
// its V in shared memory, issued and committed, not waited for.
template <typename T, int HDV>
__device__ __forceinline__ void attnc_pv90(unsigned sV, const unsigned (&p)[kAttncSm90Keys / 16][4],
                                           float (&o)[HDV / 2]) {
  constexpr int BN = kAttncSm90Keys;
  constexpr unsigned KBLK = BN * 128;
  // V MN-major: LBO = the next 64 dv columns (a block), SBO = next 8 keys;
  // a k16 step is 16 keys further (start address + 2048).
  const uint64_t dv0 = attnc_gmma_desc(sV, KBLK, 1024);
  attnc_wgmma_fence();
  attnc_acc_fence(o);
#pragma unroll
  for (int kk = 0; kk < BN / 16; ++kk)
    attnc_wgmma_rs<T, HDV>(o, p[kk], dv0 + kk * 16 * 128 / 16, 1);
  attnc_wgmma_commit();
}

// The element code and the normalisation of one key tile [k0, k1] on S (in
// registers, after its wgmma completed): S becomes P in place; `alpha` is
// the factor O must be scaled by before this P V is added (softmax;
// sigmoid: 1). PARTIAL is a template flag: FULL tiles that end before LK
// get a copy with neither mask code nor bounds checks; PARTIAL tiles and
// the tile holding LK - 1 check both.
template <class S, typename T, bool PARTIAL>
__device__ __forceinline__ void attnc_scores90(const attnc_ctx &c, int k0, int k1, int lane, const int (&row)[2],
                                               const attnc_uniforms &u, float (&s)[kAttncSm90Keys / 2],
                                               float (&m)[2], float (&l)[2], float (&alpha)[2]) {
  constexpr int BN = kAttncSm90Keys;
  (void)c; (void)u; (void)m; (void)l; (void)alpha;
  // Element code on the accumulator fragment: s[4 nb + r] (attnc_flash.cuh).
  attnc_tile_elements<S, PARTIAL, BN>(c, u, k0, k1, lane, row, [&](int nb, int r) -> float & { return s[4 * nb + r]; });
  if constexpr (!S::sigmoid) {
    // Online softmax in log2 units (the logit of S times u.fold, u.fold > 0):
    // m' = max(m, u.fold rowmax S), z = (m' == -inf ? 0 : m'),
    // alpha = 2^(m - z), P = 2^(S u.fold - z) (one FFMA and one ex2),
    // l = alpha l + rowsum P; O *= alpha comes just before this tile's P V
    // is issued. Sigmoid: P is final, no running max, no row sum.
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      float mx = -INFINITY;
#pragma unroll
      for (int nb = 0; nb < BN / 8; ++nb)
        mx = fmaxf(mx, fmaxf(s[4 * nb + 2 * i], s[4 * nb + 2 * i + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 2));
      mx = fmaxf(m[i], mx * u.fold);
      const float z = mx == -INFINITY ? 0.f : mx;
      float sum = 0.f;
      alpha[i] = attnc_ex2(m[i] - z);
#pragma unroll
      for (int nb = 0; nb < BN / 8; ++nb) {
        s[4 * nb + 2 * i] = attnc_ex2(fmaf(s[4 * nb + 2 * i], u.fold, -z));
        s[4 * nb + 2 * i + 1] = attnc_ex2(fmaf(s[4 * nb + 2 * i + 1], u.fold, -z));
        sum += s[4 * nb + 2 * i] + s[4 * nb + 2 * i + 1];
      }
      l[i] = alpha[i] * l[i] + sum;
      m[i] = mx;
    }
  }
}

// The producer: one thread issues every TMA load, K of each non-EMPTY tile
// one tile ahead of its V, as the consumers use them (S of tile i before
// P V of tile i - 1); a stage is refilled once its empty barrier says the
// consumers released it.
template <typename T, int HD, int HDV, typename KindOf, typename Bar>
__device__ __forceinline__ void attnc_produce90(const attnc_tma_maps &maps, unsigned sQ, unsigned sK, unsigned sV,
                                                unsigned barQ, Bar bar, int64_t q0, int64_t h, int64_t hkv,
                                                int64_t b, int64_t first, int64_t last, KindOf kindOf) {
  constexpr int BM = kAttncSm90Rows, BN = kAttncSm90Keys, ST = attnc_sm90_stages(HD, HDV);
  constexpr unsigned QBLK = BM * 128, KBLK = BN * 128;
  constexpr unsigned QBYTES = BM * HD * 2, KBYTES = BN * HD * 2, VBYTES = BN * HDV * 2;
  attnc_mbar_expect_tx(barQ, QBYTES);
  for (int blk = 0; blk < HD / 64; ++blk)
    attnc_tma_load(sQ + blk * QBLK, &maps.q, barQ, blk * 64, (int)q0, (int)h, (int)b);
  auto loadK = [&](int i, int64_t kt) {
    const int st = i % ST;
    if (i >= ST) // wait until the consumers released K of this stage's last use
      attnc_mbar_wait(bar.ek(st), (unsigned)((i / ST - 1) & 1));
    attnc_mbar_expect_tx(bar.k(st), KBYTES);
    for (int blk = 0; blk < HD / 64; ++blk)
      attnc_tma_load(sK + st * KBYTES + blk * KBLK, &maps.k, bar.k(st), blk * 64, (int)(kt * BN), (int)hkv,
                     (int)b);
  };
  auto loadV = [&](int i, int64_t kt) {
    const int st = i % ST;
    if (i >= ST)
      attnc_mbar_wait(bar.ev(st), (unsigned)((i / ST - 1) & 1));
    attnc_mbar_expect_tx(bar.v(st), VBYTES);
    for (int blk = 0; blk < HDV / 64; ++blk)
      attnc_tma_load(sV + st * VBYTES + blk * KBLK, &maps.v, bar.v(st), blk * 64, (int)(kt * BN), (int)hkv,
                     (int)b);
  };
  int i = 0;
  int64_t prev = -1;
  for (int64_t kt = first; kt <= last; ++kt) {
    if (kindOf(kt) == 0)
      continue; // EMPTY: never loaded
    loadK(i, kt);
    if (i > 0)
      loadV(i - 1, prev);
    prev = kt;
    ++i;
  }
  if (i > 0)
    loadV(i - 1, prev);
}

// The mbarriers after the stages: Q full; K full [ST]; V full [ST]; K
// empty [ST]; V empty [ST]. K and V are released apart: K right after
// S = Q K^T, V after O += P V.
template <int ST> struct attnc_bars90 {
  unsigned base;
  __device__ __forceinline__ unsigned q() const { return base; }
  __device__ __forceinline__ unsigned k(int st) const { return base + 8u * (1 + st); }
  __device__ __forceinline__ unsigned v(int st) const { return base + 8u * (1 + ST + st); }
  __device__ __forceinline__ unsigned ek(int st) const { return base + 8u * (1 + 2 * ST + st); }
  __device__ __forceinline__ unsigned ev(int st) const { return base + 8u * (1 + 3 * ST + st); }
};

// A consumer warpgroup (cw 0 or 1): rows 64 cw .. 64 cw + 63 of the tile,
// S, the element code and softmax, P V over the non-EMPTY key tiles, then
// out (and lse) of its rows.
template <class S, typename T, int HD, int HDV, typename KindOf>
__device__ __forceinline__ void attnc_consume90(const attnc_cuda_args &a, const attnc_ctx &c, unsigned sQ,
                                                unsigned sK, unsigned sV, attnc_bars90<attnc_sm90_stages(HD, HDV)> bar,
                                                int cw, int64_t q0, int64_t q1, int64_t first, int64_t last,
                                                KindOf kindOf) {
  constexpr int BN = kAttncSm90Keys, ST = attnc_sm90_stages(HD, HDV);
  constexpr unsigned KBYTES = BN * HD * 2, VBYTES = BN * HDV * 2;
  const int tid = threadIdx.x, lane = tid % 32, warp = (tid % 128) / 32;
  const int64_t row[2] = {q0 + cw * 64 + warp * 16 + lane / 4, q0 + cw * 64 + warp * 16 + lane / 4 + 8};
  const int rowc[2] = {(int)(row[0] < q1 ? row[0] : q1), (int)(row[1] < q1 ? row[1] : q1)};
  const attnc_uniforms u = S::uniforms(c);
  const attnc_dropout_call dr = attnc_dropout_call_of<S>(a, c);
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, alpha[2] = {1.f, 1.f};
  float o[HDV / 2];
#pragma unroll
  for (int i = 0; i < HDV / 2; ++i)
    o[i] = 0.f;
  float s[BN / 2];
  unsigned p[BN / 16][4];
  // Ping-pong (FlashAttention-3): named barriers 1 and 2 order the two
  // warpgroups' GEMMs, so one's tensor-core work runs while the other does
  // its softmax. Warpgroup 2 lets warpgroup 1 go first.
  if (cw == 1)
    attnc_bar_arrive(1, 256);
  attnc_mbar_wait(bar.q(), 0);
  // The element code and softmax of key tile kt (kind 1 FULL, 2 PARTIAL) on
  // S, then S = P packed into `p`.
  auto scores = [&](int kind, int64_t kt) {
    const int k0 = (int)(kt * BN), k1 = (int)((k0 + BN < a.LK ? k0 + BN : a.LK) - 1);
    if (kind == 2 || k1 - k0 + 1 < BN) // PARTIAL, or the tile of LK - 1
      attnc_scores90<S, T, true>(c, k0, k1, lane, rowc, u, s, m, l, alpha);
    else // FULL: no mask code, no bounds
      attnc_scores90<S, T, false>(c, k0, k1, lane, rowc, u, s, m, l, alpha);
  };
  // P of key tile kt as the A operand of m64nNk16: keys 16kk..16kk+15 are
  // s[8kk..8kk+7]. First softmax(dropout = p) (attnc_flash.cuh): P V takes
  // the dropped P, l (summed in scores) the whole P. Here, not in scores:
  // the previous P V is done and its registers (p) are free, so Philox
  // does not add to the registers live across the in-flight wgmma.
  auto pack = [&](int64_t kt) {
    attnc_tile_dropout<S, BN>(dr, (int)(kt * BN), lane, rowc, [&](int nb, int r) -> float & { return s[4 * nb + r]; });
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk)
#pragma unroll
      for (int j = 0; j < 4; ++j)
        p[kk][j] = attnc_dt<T>::pack(s[8 * kk + 2 * j], s[8 * kk + 2 * j + 1]);
  };
  // O *= alpha before the next P V is added (softmax only).
  auto rescale = [&]() {
    if constexpr (!S::sigmoid) {
#pragma unroll
      for (int nd = 0; nd < HDV / 8; ++nd)
#pragma unroll
        for (int r = 0; r < 4; ++r)
          o[4 * nd + r] *= alpha[r / 2];
    }
  };
  // The first non-EMPTY tile at or after kt (its kind in `kind`), or last + 1.
  auto nextTile = [&](int64_t kt, int &kind) {
    for (; kt <= last; ++kt)
      if ((kind = kindOf(kt)) != 0) // 0: EMPTY, skipped before any load as the producer does
        return kt;
    return kt;
  };
  int kind = 0;
  int64_t kt = nextTile(first, kind);
  if (kt <= last) {
    // Tile 0: S alone.
    attnc_mbar_wait(bar.k(0), 0);
    attnc_bar_sync(1 + cw, 256);
    attnc_qk90<T, HD>(sQ, sK, cw, s);
    attnc_bar_arrive(2 - cw, 256);
    attnc_wgmma_wait0();
    attnc_acc_fence(s);
    if (lane == 0)
      attnc_mbar_arrive(bar.ek(0)); // this warp no longer reads K (8 arrivals free it)
    scores(kind, kt);
    pack(kt);
    // Step i issues S of tile i and then P V of tile i - 1 (both async),
    // waits for S only, runs the element code and softmax of tile i while
    // P V runs, then waits for P V: one warpgroup's softmax overlaps its
    // own GEMMs, and the ping-pong overlaps it with the other's.
    int i = 1;
    for (kt = nextTile(kt + 1, kind); kt <= last; kt = nextTile(kt + 1, kind), ++i) {
      const int st = i % ST, stPrev = (i - 1) % ST;
      attnc_mbar_wait(bar.k(st), (unsigned)((i / ST) & 1));
      attnc_bar_sync(1 + cw, 256);
      attnc_qk90<T, HD>(sQ, sK + st * KBYTES, cw, s);
      rescale();
      attnc_mbar_wait(bar.v(stPrev), (unsigned)(((i - 1) / ST) & 1));
      attnc_pv90<T, HDV>(sV + stPrev * VBYTES, p, o);
      attnc_bar_arrive(2 - cw, 256);
      attnc_wgmma_wait1(); // S done; P V may still run
      attnc_acc_fence(s);
      if (lane == 0)
        attnc_mbar_arrive(bar.ek(st));
      scores(kind, kt);
      attnc_wgmma_wait0(); // P V done: its registers (p) and V are free
      attnc_acc_fence(o);
      if (lane == 0)
        attnc_mbar_arrive(bar.ev(stPrev));
      pack(kt);
    }
    // P V of the last tile.
    const int stPrev = (i - 1) % ST;
    rescale();
    attnc_mbar_wait(bar.v(stPrev), (unsigned)(((i - 1) / ST) & 1));
    attnc_pv90<T, HDV>(sV + stPrev * VBYTES, p, o);
    attnc_wgmma_wait0();
    attnc_acc_fence(o);
  }
  attnc_store_rows<S, T, HDV>(a, c, row, lane, m, l, [&](int nd, int r) { return &o[4 * nd + r]; });
}

// The kernel body of spec S: shared memory, the schedule and the split
// into the producer and the two consumers.
template <class S, typename T, int HD, int HDV>
__device__ __forceinline__ void attnc_fwd90(const attnc_cuda_args &a, const attnc_tma_maps &maps) {
  constexpr int BM = kAttncSm90Rows, BN = kAttncSm90Keys, ST = attnc_sm90_stages(HD, HDV);
  constexpr unsigned QBYTES = BM * HD * 2, KBYTES = BN * HD * 2, VBYTES = BN * HDV * 2;
  ATTNC_DYNAMIC_SMEM90(attnc_smem90, 1024); // not attnc_smem: sm_80 declares it 16-aligned
  // The swizzle pattern repeats every 1024 bytes: every block starts on
  // such a boundary (the record's smem has 1024 bytes of slack for this).
  const unsigned sQ = (attnc_smem_addr(attnc_smem90) + 1023u) & ~1023u;
  const unsigned sK = sQ + QBYTES, sV = sK + ST * KBYTES;
  const attnc_bars90<ST> bar = {sV + ST * VBYTES};

  const int tid = threadIdx.x, wg = tid / 128;
  // The last query tiles first: under causal-like masks they have the most
  // key tiles, so the short ones fill the tail of the grid.
  const int64_t qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  attnc_ctx c = {a.B, a.HQ, a.HKV, a.LQ, a.LK, a.D, a.DV, b, h,
                 h / (a.HQ / a.HKV), a.inputs, a.error};
  const int64_t q0 = qt * BM, q1 = (q0 + BM < a.LQ ? q0 + BM : a.LQ) - 1;
  // The schedule: the non-EMPTY key tiles, the same in every thread.
  const attnc_key_tiles<S, BN> tiles(a, c, q0, q1);
  const int64_t first = tiles.first, last = tiles.last;
  auto kindOf = [&](int64_t kt) { return tiles.kind(c, kt); };

  if (tid == 0) {
    attnc_mbar_init(bar.q(), 1);
    for (int st = 0; st < ST; ++st) {
      attnc_mbar_init(bar.k(st), 1); // the producer's arrive.expect_tx
      attnc_mbar_init(bar.v(st), 1);
      attnc_mbar_init(bar.ek(st), 8); // lane 0 of each of the 8 consumer warps
      attnc_mbar_init(bar.ev(st), 8);
    }
    attnc_fence_mbar_init();
  }
  __syncthreads();

  if (wg == 0) {
    // Producer warpgroup: gives registers to the consumers; one thread loads.
    attnc_setmaxnreg_dec<kAttncSm90ProducerRegs>();
    if (tid == 0)
      attnc_produce90<T, HD, HDV>(maps, sQ, sK, sV, bar.q(), bar, q0, h, c.hkv, b, first, last, kindOf);
    return;
  }
  attnc_setmaxnreg_inc<kAttncSm90ConsumerRegs>();
  attnc_consume90<S, T, HD, HDV>(a, c, sQ, sK, sV, bar, wg - 1, q0, q1, first, last, kindOf);
}

// What an entry runs: the kernel on sm_90a, a trap on any other target.
template <class S, typename T, int HD, int HDV>
__device__ __forceinline__ void attnc_sm90_entry(const attnc_cuda_args &a, const attnc_tma_maps &maps) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  attnc_fwd90<S, T, HD, HDV>(a, maps);
#elif defined(__CUDA_ARCH__)
  (void)a; (void)maps;
  __trap(); // built for a target without sm_90a's wgmma / setmaxnreg
#else
  (void)a; (void)maps;
#endif
}

// One entry of CudaABI.h: the launch record NAME__launch and the kernel
// NAME(attnc_cuda_args, attnc_tma_maps) of spec S for T, HD, HDV. NAME may
// be a macro (the entry of other head dims): ATTNC_SM90_ENTRY expands it.
#define ATTNC_SM90_ENTRY(NAME, S, T, HD, HDV) ATTNC_SM90_ENTRY_(NAME, S, T, HD, HDV)
#define ATTNC_SM90_ENTRY_(NAME, S, T, HD, HDV)                                                      \
  extern "C" __constant__ int NAME##__launch[ATTNC_LAUNCH_WORDS] = {                                 \
      kAttncSm90Rows, kAttncSm90Threads, attnc_sm90_smem(HD, HDV), 0, 0, 1, kAttncSm90Keys, 0};     \
  extern "C" __global__ void __launch_bounds__(kAttncSm90Threads, 1)                                \
      NAME(attnc_cuda_args a, const __grid_constant__ attnc_tma_maps m) {                           \
    attnc_sm90_entry<S, T, HD, HDV>(a, m);                                                          \
  }

#ifdef ATTNC_NVCC_HOST
static_assert(sizeof(attnc_tensor_map) == sizeof(CUtensorMap), "CudaABI.h's map is a CUtensorMap");
typedef CUresult (*attnc_encode_tiled_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *,
    const cuuint64_t *, const cuuint64_t *, const cuuint32_t *, const cuuint32_t *,
    CUtensorMapInterleave, CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
// cuTensorMapEncodeTiled through the runtime's driver entry point, so the
// program needs no -lcuda.
static attnc_encode_tiled_fn attnc_encode_tiled() {
  static attnc_encode_tiled_fn fn = nullptr;
  if (!fn) {
    void *p = nullptr;
    cudaDriverEntryPointQueryResult q;
#if CUDART_VERSION >= 12050
    cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q);
#else
    cudaError_t e = cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &p, cudaEnableDefault, &q);
#endif
    if (e != cudaSuccess || q != cudaDriverEntryPointSuccess) return nullptr;
    fn = (attnc_encode_tiled_fn)p;
  }
  return fn;
}
// One map as CudaABI.h says: dims (d, L, H, B) innermost first, byte
// strides (l, h, b), box (64, rows, 1, 1), 128B swizzle, zero fill.
static int attnc_encode_map(attnc_tensor_map *out, const void *base, int dtype, int64_t d, int64_t L,
                            int64_t H, int64_t B, const int64_t *st, int rows) {
  attnc_encode_tiled_fn fn = attnc_encode_tiled();
  if (!fn) return 3;
  if (st[3] != 1 || (reinterpret_cast<uintptr_t>(base) & 15) != 0) return 2;
  cuuint64_t dims[4] = {(cuuint64_t)d, (cuuint64_t)L, (cuuint64_t)H, (cuuint64_t)B};
  cuuint64_t strides[3] = {(cuuint64_t)st[2] * 2, (cuuint64_t)st[1] * 2, (cuuint64_t)st[0] * 2};
  for (int i = 0; i < 3; ++i)
    if (strides[i] % 16 != 0) return 2;
  cuuint32_t box[4] = {64, (cuuint32_t)rows, 1, 1}, estr[4] = {1, 1, 1, 1};
  CUresult r = fn(reinterpret_cast<CUtensorMap *>(out),
                  dtype == 1 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 4,
                  const_cast<void *>(base), dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
                  CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? 0 : 3;
}
// The host launcher of one spec (nvcc builds only): the same entries as
// the runtime's NVRTC path, found in `entries` (ended by a null fn), after
// the spec's pre-pass when it has one. Returns 0, a cudaError_t, -1 (no
// entry for this dtype / head dims in this build), 1 (bad heads), 2 (bad
// strides or alignment) or 3 (cuTensorMapEncodeTiled unavailable or
// failed).
static int attnc_sm90_launch(const attnc_cuda_args *a, cudaStream_t stream, const attnc_host_entry *entries,
                             void (*prepass)(attnc_cuda_args)) {
  if (a->HKV <= 0 || a->HQ % a->HKV != 0) return 1;
  const attnc_host_entry *e = attnc_find_entry(entries, a);
  if (!e) return -1;
  const int rows = kAttncSm90Rows, keys = kAttncSm90Keys, smem = attnc_sm90_smem(e->hd, e->hdv);
  int64_t mq = (a->LQ + rows - 1) / rows;
  if (mq == 0 || a->HQ == 0 || a->B == 0) return 0;
  attnc_tma_maps maps;
  if (int r = attnc_encode_map(&maps.q, a->q, a->dtype, a->D, a->LQ, a->HQ, a->B, a->qs, rows)) return r;
  if (int r = attnc_encode_map(&maps.k, a->k, a->dtype, a->D, a->LK, a->HKV, a->B, a->ks, keys)) return r;
  if (int r = attnc_encode_map(&maps.v, a->v, a->dtype, a->DV, a->LK, a->HKV, a->B, a->vs, keys)) return r;
  if (int pe = attnc_run_prepass<kAttncSm90Keys>(prepass, a, stream)) return pe;
  cudaError_t err = cudaFuncSetAttribute(e->fn, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return (int)err;
  void *args[] = {const_cast<attnc_cuda_args *>(a), &maps};
  err = cudaLaunchKernel(e->fn, dim3((unsigned)mq, (unsigned)a->HQ, (unsigned)a->B), dim3(kAttncSm90Threads), args,
                         (size_t)smem, stream);
  return (int)err;
}
#endif // ATTNC_NVCC_HOST
#endif // ATTNC_SM90_CUH
