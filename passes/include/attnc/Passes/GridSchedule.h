//===- GridSchedule.h - 2-D query patches for grid masks ---------*- C++ -*-===//
//
// The host side of attn-tile's grid tiling (passes/lib/LowerCpuGrid.cpp emits
// the same arithmetic into the kernels; see its header for the math): for
// a mask with a grid view (MaskAnalysis.h, attn.grid), which queries each
// task covers and which keys it gathers, tile by tile. The tests compare
// the kernels' traces with this, and `attnc show` can draw it.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_PASSES_GRIDSCHEDULE_H
#define ATTNC_PASSES_GRIDSCHEDULE_H

#include "attnc/Passes/MaskAnalysis.h"
#include "attnc/Passes/MaskSchedule.h"

#include <optional>
#include <vector>

namespace mlir::attn {

/// Patches of patchRows x patchCols queries of a grid `width` columns wide.
struct GridTiling {
  int64_t width, patchRows, patchCols;
  MaskAttr columns; // the column formula (GridMask::columns)
};

/// The grid tiling attn-tile uses for `spec` (after attn-mask-analysis)
/// with these tile sizes, or nothing: it needs a grid view, a width that is
/// a multiple of 8 and at least 16, tileQ a multiple of 8 and at least 16,
/// tileK >= 8, and no ids_eq atoms (those keep their pre-pass schedule).
std::optional<GridTiling> chooseGridTiling(SpecOp spec, int64_t tileQ, int64_t tileK);

/// The queries of task `qt` (of ceil(LQ / tileQ) per head): a patch, or
/// the contiguous rows [qt * tileQ, ...) of the tail.
struct GridPatch {
  bool isPatch = false;
  int64_t qMin = 0, qMax = 0, qc0 = 0, qc1 = 0; // meaningful for patches
};
GridPatch gridPatch(const GridTiling &g, int64_t qt, int64_t LQ);

/// The query of row i (< tileQ) of task qt.
int64_t gridQuery(const GridTiling &g, const GridPatch &p, int64_t qt, int64_t i);

/// The key tiles a patch gathers, in the kernel's order (each at most
/// tileK keys, none empty).
std::vector<std::vector<int64_t>> gridKeyTiles(MaskAttr mask, const GridTiling &g,
                                               const GridPatch &p,
                                               const ProblemSizes &sizes, int64_t tileK);

} // namespace mlir::attn

#endif // ATTNC_PASSES_GRIDSCHEDULE_H
