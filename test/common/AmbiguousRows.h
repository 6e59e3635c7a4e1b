//===- AmbiguousRows.h - Rows whose gradient a rounding can flip -*- C++ -*-===//
//
// A spec with min, max, abs, clamp or a float comparison on differentiated
// values has two valid derivatives where the compared values tie. A kernel
// computing scores in float32 and the float64 reference can then take
// different branches for a pair that is within rounding of a tie, and both
// are right. The backward tests give such rows no upstream gradient, so that
// they contribute nothing to dq, dk or the input gradients.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TEST_COMMON_AMBIGUOUSROWS_H
#define ATTNC_TEST_COMMON_AMBIGUOUSROWS_H

#include "RandomTensors.h"

#include "attnc/Reference/ReferenceBackward.h"

namespace attnc::test {

/// Zeroes the rows of `dout` [B, HQ, LQ, DV] (the tensor and the reference's
/// values) whose ReferenceGradients::rowBranchMargin is below `margin`, and
/// returns how many. Kernel scores differ from the reference's by about
/// 1e-6 relative, so the default leaves a wide berth; a spec with no branch
/// on differentiated values has no such row.
inline int64_t removeAmbiguousRows(const mlir::attn::ReferenceGradients &grads,
                                   Operand &dout, double margin = 1e-4) {
  const int64_t rows = int64_t(grads.rowBranchMargin.size());
  if (rows == 0)
    return 0;
  const int64_t dv = dout.tensor.numel() / rows;
  int64_t removed = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (!(grads.rowBranchMargin[size_t(r)] < margin))
      continue;
    ++removed;
    for (int64_t i = r * dv; i < (r + 1) * dv; ++i) {
      dout.tensor.setFromDouble(i, 0.0);
      dout.values[size_t(i)] = 0.0;
    }
  }
  return removed;
}

} // namespace attnc::test

#endif // ATTNC_TEST_COMMON_AMBIGUOUSROWS_H
