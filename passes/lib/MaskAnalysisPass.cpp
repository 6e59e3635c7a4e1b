//===- MaskAnalysisPass.cpp - Attach the mask formula to each spec --------===//
//
// The pass wrapper of MaskAnalysis.h: stores analyzeMask(spec) as the
// spec's `mask_schedule` attribute, its column view (analyzeMaskColumns,
// the transposed mask) as `mask_schedule_columns`, and the grid view of a mask over a
// row-major grid (analyzeGridMask) as `attn.grid = {width, columns}`.
//
//===----------------------------------------------------------------------===//
#include "attnc/Passes/MaskAnalysis.h"
#include "attnc/Passes/Passes.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNMASKANALYSISPASS
#include "attnc/Passes/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {
struct AttnMaskAnalysis
    : public mlir::attn::impl::AttnMaskAnalysisPassBase<AttnMaskAnalysis> {
  void runOnOperation() override {
    getOperation().walk([](SpecOp spec) {
      spec.setMaskScheduleAttr(analyzeMask(spec));
      spec.setMaskScheduleColumnsAttr(analyzeMaskColumns(spec));
      spec->removeAttr(kGridAttrName);
      if (std::optional<GridMask> grid = analyzeGridMask(spec)) {
        Builder b(spec.getContext());
        spec->setAttr(kGridAttrName,
                      b.getDictionaryAttr({b.getNamedAttr("columns", grid->columns),
                                           b.getNamedAttr("width", b.getI64IntegerAttr(
                                                                       grid->width))}));
      }
    });
  }
};
} // namespace
