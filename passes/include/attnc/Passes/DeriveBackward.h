//===- DeriveBackward.h - Reverse-mode derivatives of spec regions -*- C++ -*-===//
//
// What attn-derive-backward builds (Passes.td), callable without the pass:
// the gradient regions score_grad, scale_grad and bias_grad of a spec
// (AttnOps.td), and the float inputs that get a gradient.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_PASSES_DERIVEBACKWARD_H
#define ATTNC_PASSES_DERIVEBACKWARD_H

#include "attnc/Dialect/AttnDialect.h"

namespace mlir::attn {

/// Replaces the gradient regions of `spec` by the derivatives of its
/// current primal regions. Fails, after a located error, on a float op it
/// has no rule for (the spec is then left without gradient regions).
LogicalResult deriveBackward(SpecOp spec);

/// The float inputs that get a gradient, in declaration order: those that
/// the score region, a non-uniform scale region, a sigmoid bias or a
/// softmax sink read.
/// Their gradient is 0 wherever no `attn.accumulate` reaches them (e.g. a
/// read through floor()).
SmallVector<InputAttr> differentiableInputs(SpecOp spec);

} // namespace mlir::attn

#endif // ATTNC_PASSES_DERIVEBACKWARD_H
