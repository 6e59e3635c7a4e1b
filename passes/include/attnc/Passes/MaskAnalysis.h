//===- MaskAnalysis.h - Mask region -> #attn.mask formula -------*- C++ -*-===//
//
// The symbolic half of the mask analysis: derives, from a spec's mask region,
// a formula of key-position bounds. Sound by construction: whatever it cannot
// analyse becomes `opaque`. MaskSchedule.h evaluates the formula per tile.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_PASSES_MASKANALYSIS_H
#define ATTNC_PASSES_MASKANALYSIS_H

#include "attnc/Dialect/AttnDialect.h"

namespace mlir::attn {
/// The formula of `spec`'s mask region. Params that have values are read as
/// constants; unbound params make the comparisons that use them opaque.
MaskAttr analyzeMask(SpecOp spec);
} // namespace mlir::attn

#endif // ATTNC_PASSES_MASKANALYSIS_H
