//===- Tile.cpp - attn-tile: analysed spec -> attn.flash (the tiled form) -===//
//
// The tiling decisions, and nothing of any target's code: the tile sizes
// (attn.tiles, from attn-choose-tiles), the storage type, 2-D grid patches
// for grid masks (GridSchedule.h), and the facts both back ends act on
// (FlashOp::wrap derives them). attn-lower-cpu and the CUDA emitter take it
// from here.
//
//===----------------------------------------------------------------------===//
#include "attnc/Passes/GridSchedule.h"
#include "attnc/Passes/Passes.h"
#include "attnc/Passes/TileChoice.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNTILEPASS
#include "attnc/Passes/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {
struct AttnTile : public mlir::attn::impl::AttnTilePassBase<AttnTile> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    Type storageType = parseStorageOption(&getContext(), storage);
    if (!storageType) {
      module.emitError("attn-tile: storage must be f32, f16 or bf16, got '")
          << storage << "'";
      return signalPassFailure();
    }
    for (SpecOp spec : llvm::to_vector(module.getOps<SpecOp>()))
      if (failed(tile(spec, storageType)))
        return signalPassFailure();
  }

  LogicalResult tile(SpecOp spec, Type storageType) {
    if (!spec.getMaskScheduleAttr())
      return spec.emitError("attn-tile needs the mask analysis: run "
                            "attn-mask-analysis first");
    auto tiles = dyn_cast_or_null<DenseI64ArrayAttr>(spec->getAttr(kTilesAttrName));
    if (!tiles)
      return spec.emitError("attn-tile needs the spec's tile sizes (")
             << kTilesAttrName << "): run attn-choose-tiles first";
    if (tiles.size() != 2 || tiles[0] <= 0 || tiles[1] <= 0)
      return spec.emitError("attn-tile: ")
             << kTilesAttrName << " must be array<i64: Q, K> with positive "
             << "sizes, got " << tiles;
    int64_t tileQ = tiles[0], tileK = tiles[1];
    DenseI64ArrayAttr patch;
    OpBuilder b(spec);
    if (gridPatches)
      if (std::optional<GridTiling> g = chooseGridTiling(spec, tileQ, tileK))
        patch = b.getDenseI64ArrayAttr({g->width, g->patchRows, g->patchCols});
    spec->removeAttr(kTilesAttrName); // the flash op holds them now
    FlashOp::wrap(b, spec, tileQ, tileK, storageType, patch);
    return success();
  }
};
} // namespace
