//===- Baselines.h - What attn-bench compares the kernels with --*- C++ -*-===//
//
// The baselines attn-bench times beside a compiled kernel, all in float32:
//   - naive: a straightforward loop over (b, h, q, kv) that evaluates the
//     spec's mask, scale, score (and bias) per element through the
//     SpecInterpreter, then softmax (or sigmoid) and P V;
//   - unfused: attention on OpenBLAS the way a framework's math path does
//     it: per block of 256 query rows S = scale * Q K^T (cblas_sgemm),
//     the mask, a row softmax, O = P V (cblas_sgemm); tasks (b, h, query
//     block) on the bench's threads, OpenBLAS single-threaded inside. Only
//     for full and causal masks (recognised from the mask analysis), with
//     the plain score and the default scale; with it, the unfused
//     backward (the same blocks: P, dP, dS materialised, five sgemm);
//   - sgemm: one 2048^3 cblas_sgemm on OpenBLAS's own threads, the
//     reference point of the performance target.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TOOLS_ATTNBENCH_BASELINES_H
#define ATTNC_TOOLS_ATTNBENCH_BASELINES_H

#include "bench-common/BenchCommon.h"

#include "attnc/Dialect/AttnDialect.h"

#include <cstdint>
#include <string>
#include <vector>

namespace attnc::bench {

/// One problem in float32 (q [B,HQ,LQ,D], k [B,HKV,LK,D], v [B,HKV,LK,DV],
/// dense) with the spec it comes from.
struct BaselineProblem {
  Shape shape;
  const float *q = nullptr, *k = nullptr, *v = nullptr;
  mlir::attn::SpecOp spec;
  mlir::attn::InputReader inputs;
  int threads = 1;
};

/// Which masks the unfused baseline handles.
enum class MaskStructure { Full, Causal, Other };

/// Full if the analysed mask keeps every pair, Causal if it is exactly
/// kv <= q (top-left aligned), else Other.
MaskStructure maskStructure(mlir::attn::SpecOp spec);

/// Whether the unfused baseline can run the spec; if not, `why` says why.
bool unfusedSupports(mlir::attn::SpecOp spec, const Shape &s, std::string &why);

/// The naive loop, on the problem's threads. out [B,HQ,LQ,DV]. Returns ""
/// or an error (an interpreter failure).
std::string naiveAttention(const BaselineProblem &p, std::vector<float> &out);

/// The unfused OpenBLAS attention (call unfusedSupports first). Returns ""
/// or an error.
std::string unfusedAttention(const BaselineProblem &p, std::vector<float> &out);

/// The unfused OpenBLAS backward of the same problems (softmax, full or
/// causal, plain score, default scale: call unfusedSupports first), given
/// the forward's out and lse (float32 [B,HQ,LQ,DV], [B,HQ,LQ]) and dout:
/// per block of 256 query rows of each head, P = exp(scale Q K^T - lse)
/// and dP = dO V^T materialised (sgemm), dS = P (dP - rowsum(dO O)), then
/// dV += P^T dO, dK += scale dS^T Q, dQ = scale dS K (sgemm); tasks
/// (b, hkv) on the problem's threads, OpenBLAS single-threaded inside.
/// Fills dq, dk, dv (dense, the shapes of q, k, v). Returns "" or an error.
std::string unfusedBackward(const BaselineProblem &p, const float *out,
                            const float *lse, const float *dout,
                            std::vector<float> &dq, std::vector<float> &dk,
                            std::vector<float> &dv);

/// The median ms of `runs` 2048^3 SGEMMs (after one warm-up) on `threads`
/// OpenBLAS threads.
double sgemmMs(int threads, int runs, int n = 2048);

/// The median ms of `runs` reads (after one warm-up) of every byte of the
/// buffers \p parts on `threads` threads of the runtime's pool: the
/// STREAM-like bandwidth ceiling of a kernel that must read them once.
double streamReadMs(const std::vector<std::pair<const void *, size_t>> &parts,
                    int threads, int runs);

/// OpenBLAS's name for the kernels it picked ("Haswell", "SkylakeX", ...).
std::string openblasCoreName();

/// ||a - b|| / ||b|| (relative Frobenius error); NaN if a NaN shows up.
double relativeError(const std::vector<float> &a, const std::vector<float> &b);

} // namespace attnc::bench

#endif // ATTNC_TOOLS_ATTNBENCH_BASELINES_H
