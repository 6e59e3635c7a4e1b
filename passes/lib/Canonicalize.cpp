//===- Canonicalize.cpp - Fold params and simplify spec regions -----------===//
//
// The spec-level canonicalisation: the greedy driver with the folders and
// canonicalisation patterns of every loaded dialect and op, applied to the
// regions of each attn.spec. attn.param folds to its value (AttnOps.cpp),
// attn.floormod folds with the divisor's sign; arith supplies constant
// folding and predicate simplification.
//
//===----------------------------------------------------------------------===//
#include "attnc/Passes/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Rewrite/FrozenRewritePatternSet.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNCANONICALIZEPASS
#include "attnc/Passes/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {
struct AttnCanonicalize
    : public mlir::attn::impl::AttnCanonicalizePassBase<AttnCanonicalize> {
  LogicalResult initialize(MLIRContext *ctx) override {
    RewritePatternSet set(ctx);
    for (Dialect *dialect : ctx->getLoadedDialects())
      dialect->getCanonicalizationPatterns(set);
    for (RegisteredOperationName op : ctx->getRegisteredOperations())
      op.getCanonicalizationPatterns(set, ctx);
    patterns = FrozenRewritePatternSet(std::move(set));
    return success();
  }

  void runOnOperation() override {
    getOperation().walk([&](SpecOp spec) {
      for (Region &region : spec->getRegions())
        (void)applyPatternsGreedily(region, patterns);
    });
  }

  FrozenRewritePatternSet patterns;
};
} // namespace
