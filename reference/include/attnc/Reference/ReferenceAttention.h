//===- ReferenceAttention.h - Float64 reference of a spec -------*- C++ -*-===//
//
// The oracle of every numerical test: the attention a spec defines, computed
// directly from DESIGN.md's semantics in double precision, element by
// element, through the SpecInterpreter. Quadratic and slow on purpose.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_REFERENCE_REFERENCEATTENTION_H
#define ATTNC_REFERENCE_REFERENCEATTENTION_H

#include "attnc/Reference/SpecInterpreter.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mlir::attn {

/// Dense row-major tensors in double: q [B, HQ, LQ, D], k [B, HKV, LK, D],
/// v [B, HKV, LK, DV].
struct ReferenceProblem {
  ProblemSizes sizes; // b and h are ignored
  const double *q = nullptr, *k = nullptr, *v = nullptr;
  InputReader inputs;
  /// When set, only the rows (b, h, q) it accepts are computed, e.g. to
  /// check a sample of a problem too big for this quadratic reference; the
  /// other rows of out and lse are NaN.
  std::function<bool(int64_t b, int64_t h, int64_t q)> rows;
  /// When set, receives the number of kept (b, h, q, kv) pairs (mask true)
  /// over the computed rows.
  int64_t *keptPairs = nullptr;
  /// referenceBackward only: the forward's output [B, HQ, LQ, DV] as a
  /// kernel stored it (e.g. rounded to bfloat16). When set, the softmax's
  /// delta is rowsum(dout * forwardOut), as a kernel given that output
  /// computes it, instead of the exact sum_kv P dP; this separates the
  /// backward's error from the rounding of the forward's output.
  const double *forwardOut = nullptr;
  /// For a spec with softmax(dropout = p): the call's seed and offset. When
  /// set, pair (b, h, q, kv) keeps its P scaled by 1 / (1 - p) iff
  /// runtime/include/attnc/Runtime/Dropout.h's attnc_dropout_keep says so
  /// (with b + dropoutBatch, and the problem's q and kv), else drops it;
  /// the row's sum and lse stay those of the undropped P. Unset: no
  /// dropout, as a call without a seed.
  struct Dropout {
    uint64_t seed = 0;
    uint32_t offset = 0;
    int64_t batch = 0; // the global number of sequence b = 0
  };
  std::optional<Dropout> dropout;
};

/// The factor of pair (b, h, q, kv)'s P under \p problem's dropout: 1
/// without one, else 0 (dropped) or 1 / (1 - p).
double dropoutFactor(SpecOp spec, const ReferenceProblem &problem, int64_t b,
                     int64_t h, int64_t q, int64_t kv);

/// out [B, HQ, LQ, DV] and lse [B, HQ, LQ] (natural log; softmax only: a
/// sigmoid spec has no row sum and its lse is NaN). A row with no kept pair
/// gives 0 and lse -inf; a softmax row with a NaN or +inf score on a kept
/// pair gives NaN and lse NaN. Returns "" or the reason the spec could not be
/// evaluated (an unbound param, an out-of-range input read, ...).
std::string referenceAttention(SpecOp spec, const ReferenceProblem &problem,
                               std::vector<double> &out,
                               std::vector<double> &lse);

} // namespace mlir::attn

#endif // ATTNC_REFERENCE_REFERENCEATTENTION_H
