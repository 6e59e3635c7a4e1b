//===- CudaKernelSm80.cpp - The sm_80 flash kernel around the element code ===//
//
// `attnc compile --target=cuda --arch=sm_80 --emit=cuda` writes one
// self-contained .cu (CUDA toolkit headers only): the element code of
// CudaElementCode.cpp plus a FlashAttention-2 style kernel:
//   one CTA per (query tile of 64 rows, h, b), 4 warps of 16 rows;
//   key tiles of 64 from the mask schedule's range; EMPTY tiles skipped,
//   FULL tiles without mask code, PARTIAL tiles call attnc_mask_<n>;
//   Q/K/V tiles copied to shared memory with cp.async (zero-filled past
//   the ends), fragments with ldmatrix (.trans for V), S = Q K^T and O += P V
//   with mma.sync m16n8k16 (bf16 or f16 in, f32 accumulate), the online
//   softmax in registers (quad shuffles for row max and sum); sigmoid
//   without running max or sum;
//   a host launcher attnc_cuda_launch_<n>(const attnc_cuda_args *, stream).
// Head dims 64 and 128 (D and DV each), rows with unit stride along D.
// NOT YET RUN ON A GPU: this task had none. The K/V loads are single-stage
// (load, wait, compute), not yet a multi-stage cp.async pipeline.
//
//===----------------------------------------------------------------------===//
#include "attnc/Codegen/CudaElementCode.h"

#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::attn;

namespace {
const char *kKernelTemplate = R"CU(
// ---- @NAME@: the sm_80 flash kernel ----
template <typename T, int HD, int HDV>
__global__ void __launch_bounds__(128)
attnc_fwd_@NAME@(attnc_cuda_args a) {
  constexpr int BM = 64, BN = 64, PAD = 8;
  extern __shared__ __align__(16) unsigned char attnc_smem[];
  T *Qs = reinterpret_cast<T *>(attnc_smem);           // [BM][HD + PAD]
  T *Ks = Qs + BM * (HD + PAD);                        // [BN][HD + PAD]
  T *Vs = Ks + BN * (HD + PAD);                        // [BN][HDV + PAD]
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int64_t qt = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  attnc_ctx c = {a.B, a.HQ, a.HKV, a.LQ, a.LK, a.D, a.DV, b, h,
                 h / (a.HQ / a.HKV), a.inputs, a.error};
  const int64_t q0 = qt * BM, q1 = (q0 + BM < a.LQ ? q0 + BM : a.LQ) - 1;
  const T *qg = reinterpret_cast<const T *>(a.q) + b * a.qs[0] + h * a.qs[1];
  const T *kg = reinterpret_cast<const T *>(a.k) + b * a.ks[0] + c.hkv * a.ks[1];
  const T *vg = reinterpret_cast<const T *>(a.v) + b * a.vs[0] + c.hkv * a.vs[1];

  // Copies rows [r0, r0 + 64) of a [rows x cols] tile (row stride ld) to
  // shared memory, 16 bytes per cp.async; rows past `limit` are zero-filled.
  auto load = [&](T *dst, const T *src, int64_t ld, int64_t r0, int64_t limit, int cols) {
    const int chunks = cols / 8;
    for (int i = tid; i < 64 * chunks; i += 128) {
      int r = i / chunks, ch = i % chunks;
      bool in = r0 + r < limit;
      const T *s = src + (in ? (r0 + r) * ld : 0) + ch * 8;
      unsigned d = (unsigned)__cvta_generic_to_shared(dst + r * (cols + PAD) + ch * 8);
      asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
                   :: "r"(d), "l"(s), "r"(in ? 16 : 0));
    }
  };
  load(Qs, qg, a.qs[2], q0, a.LQ, HD);
  asm volatile("cp.async.commit_group;\n");

  float scale = attnc_scale_@NAME@(c, 0, 0);
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  (void)m;
  float o[HDV / 8][4];
  for (int nd = 0; nd < HDV / 8; ++nd)
    o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.f;
  const int64_t row[2] = {q0 + warp * 16 + lane / 4, q0 + warp * 16 + lane / 4 + 8};

  attnc_rowset_@NAME@ rows = attnc_rows_@NAME@(c, q0, q1);
  int64_t first = rows.hullLo <= rows.hullHi ? rows.hullLo / BN : 0;
  int64_t last = rows.hullLo <= rows.hullHi ? rows.hullHi / BN : -1;
  for (int64_t kt = first; kt <= last; ++kt) {
    const int64_t k0 = kt * BN, k1 = (k0 + BN < a.LK ? k0 + BN : a.LK) - 1;
    const int kind = attnc_tile_kind_@NAME@(c, rows, k0, k1); // same for the CTA
    if (kind == 0)
      continue; // EMPTY
    __syncthreads(); // the previous tile's K/V are no longer read
    load(Ks, kg, a.ks[2], k0, a.LK, HD);
    load(Vs, vg, a.vs[2], k0, a.LK, HDV);
    asm volatile("cp.async.commit_group;\n");
    asm volatile("cp.async.wait_group 0;\n");
    __syncthreads();

    // S = Q K^T: 16 rows x 64 keys per warp, 8 m16n8 blocks.
    float s[BN / 8][4];
    for (int nb = 0; nb < BN / 8; ++nb)
      s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;
    for (int kk = 0; kk < HD / 16; ++kk) {
      unsigned af[4];
      unsigned qa = (unsigned)__cvta_generic_to_shared(
          Qs + (warp * 16 + lane % 16) * (HD + PAD) + kk * 16 + (lane / 16) * 8);
      asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                   : "=r"(af[0]), "=r"(af[1]), "=r"(af[2]), "=r"(af[3]) : "r"(qa));
      for (int nb = 0; nb < BN / 8; ++nb) {
        unsigned bf[2];
        unsigned ka = (unsigned)__cvta_generic_to_shared(
            Ks + (nb * 8 + lane % 8) * (HD + PAD) + kk * 16 + ((lane / 8) % 2) * 8);
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                     : "=r"(bf[0]), "=r"(bf[1]) : "r"(ka));
        attnc_mma_16816<T>(s[nb], af, bf);
      }
    }
    // Scale, score, mask (PARTIAL tiles only), keys past LK.
    for (int nb = 0; nb < BN / 8; ++nb)
      for (int r = 0; r < 4; ++r) {
        const int64_t q = row[r / 2], kv = k0 + nb * 8 + (lane % 4) * 2 + (r % 2);
        float x = s[nb][r] * scale;
        (void)q;
@SCORE@
        if (kv > k1) x = -INFINITY;
@MASK@
        s[nb][r] = x;
      }
@NORMALIZE@
    // O += P V: P from the S accumulators (two m16n8 blocks = one A
    // fragment), V fragments with ldmatrix.trans.
    for (int kk = 0; kk < BN / 16; ++kk) {
      unsigned pa[4] = {attnc_pack<T>(s[2 * kk][0], s[2 * kk][1]),
                        attnc_pack<T>(s[2 * kk][2], s[2 * kk][3]),
                        attnc_pack<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                        attnc_pack<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
      for (int nd = 0; nd < HDV / 8; ++nd) {
        unsigned bf[2];
        unsigned va = (unsigned)__cvta_generic_to_shared(
            Vs + (kk * 16 + lane % 16) * (HDV + PAD) + nd * 8);
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                     : "=r"(bf[0]), "=r"(bf[1]) : "r"(va));
        attnc_mma_16816<T>(o[nd], pa, bf);
      }
    }
  }
  // Finalise: the quad's partial sums, out = o / l (0 for an empty row).
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffff, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffff, l[i], 2);
  }
  for (int i = 0; i < 2; ++i) {
    if (row[i] >= a.LQ)
      continue;
@FINAL_SCALE@
    T *og = reinterpret_cast<T *>(a.out) + b * a.os[0] + h * a.os[1] + row[i] * a.os[2];
    for (int nd = 0; nd < HDV / 8; ++nd) {
      int col = nd * 8 + (lane % 4) * 2;
      og[col * a.os[3]] = attnc_from_float<T>(o[nd][2 * i] * inv);
      og[(col + 1) * a.os[3]] = attnc_from_float<T>(o[nd][2 * i + 1] * inv);
    }
@LSE@
  }
}

extern "C" int attnc_cuda_launch_@NAME@(const attnc_cuda_args *a, cudaStream_t stream) {
  if (a->HKV <= 0 || a->HQ % a->HKV != 0) return 1;
  // cp.async copies 16-byte chunks of rows: unit stride along D, rows and
  // bases 16-byte aligned.
  const int64_t *st[] = {a->qs, a->ks, a->vs};
  const void *base[] = {a->q, a->k, a->v};
  for (int i = 0; i < 3; ++i)
    if (st[i][3] != 1 || st[i][2] % 8 != 0 || st[i][1] % 8 != 0 || st[i][0] % 8 != 0 ||
        (reinterpret_cast<uintptr_t>(base[i]) & 15) != 0)
      return 2;
  int64_t mq = (a->LQ + 63) / 64;
  if (mq == 0) return 0;
  dim3 grid((unsigned)mq, (unsigned)a->HQ, (unsigned)a->B), block(128);
#define ATTNC_LAUNCH(TY, HD, HDV)                                              \
  {                                                                            \
    size_t smem = sizeof(TY) * (64 * (HD + 8) * 2 + 64 * (HDV + 8));           \
    cudaError_t e = cudaFuncSetAttribute(attnc_fwd_@NAME@<TY, HD, HDV>,        \
        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);               \
    if (e != cudaSuccess) return (int)e;                                       \
    attnc_fwd_@NAME@<TY, HD, HDV><<<grid, block, smem, stream>>>(*a);          \
    return (int)cudaGetLastError();                                            \
  }
#define ATTNC_DIMS(TY)                                                         \
  if (a->D == 64 && a->DV == 64) ATTNC_LAUNCH(TY, 64, 64)                      \
  if (a->D == 128 && a->DV == 128) ATTNC_LAUNCH(TY, 128, 128)                  \
  if (a->D == 64 && a->DV == 128) ATTNC_LAUNCH(TY, 64, 128)                    \
  if (a->D == 128 && a->DV == 64) ATTNC_LAUNCH(TY, 128, 64)
  if (a->dtype == 1) { ATTNC_DIMS(__nv_bfloat16) }
  if (a->dtype == 0) { ATTNC_DIMS(__half) }
#undef ATTNC_DIMS
#undef ATTNC_LAUNCH
  return -1; // unsupported dtype or head dims
}
)CU";

const char *kCudaPrelude = R"CU(// Generated by attnc: CUDA kernels (sm_80 path). Not yet run on a GPU.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#ifndef ATTNC_CUDA_PRELUDE
#define ATTNC_CUDA_PRELUDE
struct attnc_input;
struct attnc_cuda_args {
  const void *q, *k, *v; void *out; float *lse; // lse may be null
  int64_t qs[4], ks[4], vs[4], os[4], ls[3];    // strides in elements
  int64_t B, HQ, HKV, LQ, LK, D, DV;
  int dtype;                                    // 0: float16, 1: bfloat16
  const attnc_input *inputs;                    // device memory
  int64_t *error;                               // device, 4 words
};
#endif
)CU";

const char *kMmaHelpers = R"CU(
#ifndef ATTNC_MMA_HELPERS
#define ATTNC_MMA_HELPERS
template <typename T> __device__ inline void attnc_mma_16816(float *d, const unsigned *a, const unsigned *b);
template <> __device__ inline void attnc_mma_16816<__nv_bfloat16>(float *d, const unsigned *a, const unsigned *b) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
               "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <> __device__ inline void attnc_mma_16816<__half>(float *d, const unsigned *a, const unsigned *b) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
               "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <typename T> __device__ inline unsigned attnc_pack(float lo, float hi);
template <> __device__ inline unsigned attnc_pack<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<unsigned *>(&v);
}
template <> __device__ inline unsigned attnc_pack<__half>(float lo, float hi) {
  __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<unsigned *>(&v);
}
template <typename T> __device__ inline T attnc_from_float(float x);
template <> __device__ inline __nv_bfloat16 attnc_from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ inline __half attnc_from_float<__half>(float x) { return __float2half_rn(x); }
#endif
)CU";

void replaceAll(std::string &s, const std::string &from, const std::string &to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
}
} // namespace

namespace attnc {
runtime::Expected<std::string> emitCudaSm80(SpecOp spec) {
  auto element = emitCudaElementCode(spec);
  if (!element.ok())
    return element.status();
  std::string n = spec.getSymName().str();
  bool sigmoid = spec.getNormalize() == NormalizeKind::sigmoid;
  bool identityScore =
      isa_and_nonnull<ScoreOp>(SpecOp::getYielded(spec.getScore()).getDefiningOp());
  MaskAttr mask = spec.getMaskScheduleAttr();
  bool maskCode = mask.getKind() != MaskKind::always && mask.getKind() != MaskKind::never;

  std::string k = kKernelTemplate;
  replaceAll(k, "@SCORE@", identityScore ? "" : "        x = attnc_score_" + n + "(c, x, q, kv);");
  replaceAll(k, "@MASK@",
             maskCode ? "        if (kind == 2 && !attnc_mask_" + n + "(c, q, kv)) x = -INFINITY; // PARTIAL only"
                      : "");
  if (!sigmoid) {
    replaceAll(k, "@NORMALIZE@", R"(    // Online softmax: m' = max(m, rowmax S), z = (m' == -inf ? 0 : m'),
    // alpha = exp(m - z), P = exp(S - z), l = alpha l + rowsum P, O *= alpha.
    for (int i = 0; i < 2; ++i) {
      float mx = m[i];
      for (int nb = 0; nb < BN / 8; ++nb)
        mx = fmaxf(mx, fmaxf(s[nb][2 * i], s[nb][2 * i + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 2));
      float z = mx == -INFINITY ? 0.f : mx;
      float alpha = __expf(m[i] - z), sum = 0.f;
      for (int nb = 0; nb < BN / 8; ++nb) {
        s[nb][2 * i] = __expf(s[nb][2 * i] - z);
        s[nb][2 * i + 1] = __expf(s[nb][2 * i + 1] - z);
        sum += s[nb][2 * i] + s[nb][2 * i + 1];
      }
      l[i] = alpha * l[i] + sum;
      m[i] = mx;
      for (int nd = 0; nd < HDV / 8; ++nd) {
        o[nd][2 * i] *= alpha;
        o[nd][2 * i + 1] *= alpha;
      }
    })");
    replaceAll(k, "@FINAL_SCALE@", "    float inv = l[i] > 0.f ? 1.f / l[i] : 0.f;");
    replaceAll(k, "@LSE@", R"(    if (a.lse && lane % 4 == 0)
      a.lse[b * a.ls[0] + h * a.ls[1] + row[i] * a.ls[2]] =
          l[i] > 0.f ? m[i] + logf(l[i]) : -INFINITY;)");
  } else {
    replaceAll(k, "@NORMALIZE@", "    // Sigmoid: P = sigmoid(S + bias), no running max or sum.\n"
                                 "    for (int nb = 0; nb < BN / 8; ++nb)\n"
                                 "      for (int r = 0; r < 4; ++r) {\n"
                                 "        const int64_t q = row[r / 2], kv = k0 + nb * 8 + (lane % 4) * 2 + (r % 2);\n"
                                 "        s[nb][r] = 1.f / (1.f + __expf(-(s[nb][r] + attnc_bias_" + n + "(c, q, kv))));\n"
                                 "      }");
    replaceAll(k, "@FINAL_SCALE@", "    float inv = 1.f;");
    replaceAll(k, "@LSE@", "");
  }
  replaceAll(k, "@NAME@", n);
  return std::string(kCudaPrelude) + cudaElementPrelude() + kMmaHelpers + *element + k;
}
} // namespace attnc
