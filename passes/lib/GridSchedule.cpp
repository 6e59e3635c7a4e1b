//===- GridSchedule.cpp - 2-D query patches for grid masks, on the host ---===//
//
// See GridSchedule.h; the arithmetic is TileGrid.cpp's, step for step.
//
//===----------------------------------------------------------------------===//
#include "attnc/Passes/GridSchedule.h"

#include <algorithm>
#include <functional>

using namespace mlir;
using namespace mlir::attn;

namespace {
int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; } // a >= 0, b > 0
bool hasIdsAtom(MaskAttr m) {
  if (m.getKind() == MaskKind::ids_eq)
    return true;
  if (m.getKind() == MaskKind::all_of || m.getKind() == MaskKind::any_of)
    for (Attribute t : m.getTerms())
      if (hasIdsAtom(cast<MaskAttr>(t)))
        return true;
  return false;
}
} // namespace

std::optional<GridTiling> mlir::attn::chooseGridTiling(SpecOp spec, int64_t tileQ,
                                                       int64_t tileK) {
  std::optional<GridMask> grid = getGridMask(spec);
  MaskAttr mask = spec.getMaskScheduleAttr();
  // Patches of 8 columns: W must be a multiple of 8 (so patches never
  // straddle grid rows) and wide enough for a patch to be narrower than a
  // row.
  constexpr int64_t kPatchCols = 8;
  if (!grid || !mask || hasIdsAtom(mask) || grid->width % kPatchCols != 0 ||
      grid->width < 2 * kPatchCols || tileQ % kPatchCols != 0 ||
      tileQ < 2 * kPatchCols || tileK < kPatchCols)
    return std::nullopt;
  return GridTiling{grid->width, tileQ / kPatchCols, kPatchCols, grid->columns};
}

GridPatch mlir::attn::gridPatch(const GridTiling &g, int64_t qt, int64_t LQ) {
  int64_t band = g.patchRows * g.width, TQ = g.patchRows * g.patchCols;
  int64_t n0 = qt * TQ, numBands = LQ / g.width / g.patchRows;
  GridPatch p;
  p.isPatch = n0 < numBands * band;
  int64_t qr0 = n0 / band * g.patchRows;
  p.qc0 = n0 % band / TQ * g.patchCols;
  p.qc1 = p.qc0 + g.patchCols - 1;
  p.qMin = qr0 * g.width + p.qc0;
  p.qMax = (qr0 + g.patchRows - 1) * g.width + p.qc1;
  return p;
}

int64_t mlir::attn::gridQuery(const GridTiling &g, const GridPatch &p, int64_t qt,
                              int64_t i) {
  int64_t TQ = g.patchRows * g.patchCols;
  if (!p.isPatch)
    return qt * TQ + i;
  int64_t qr0 = p.qMin / g.width;
  return (qr0 + i / g.patchCols) * g.width + p.qc0 + i % g.patchCols;
}

std::vector<std::vector<int64_t>>
mlir::attn::gridKeyTiles(MaskAttr mask, const GridTiling &g, const GridPatch &p,
                         const ProblemSizes &sizes, int64_t tileK) {
  RowBlock rows = evaluateRows(mask, sizes, p.qMin, p.qMax);
  RowBlock cols = evaluateRows(g.columns, sizes, p.qc0, p.qc1);
  int64_t W = g.width;
  int64_t hLo = std::max<int64_t>(rows.hullLo, 0), hHi = std::min(rows.hullHi, sizes.LK - 1);
  int64_t cLo = std::max<int64_t>(cols.hullLo, 0), cHi = std::min(cols.hullHi, W - 1);
  std::vector<std::vector<int64_t>> tiles;
  if (hLo > hHi || cLo > cHi)
    return tiles;
  int64_t krLo = hLo / W, krHi = hHi / W, numRows = krHi - krLo + 1;
  int64_t segLen = cHi - cLo + 1;
  bool isShort = segLen <= tileK;
  int64_t fit = std::max<int64_t>(tileK / segLen, 1);
  int64_t rowsPerTile = isShort ? std::max<int64_t>(
                                      ceilDiv(numRows, std::max<int64_t>(ceilDiv(numRows, fit), 1)), 1)
                                : 1;
  int64_t pieces = isShort ? 1 : ceilDiv(segLen, tileK);
  int64_t pieceLen = isShort ? segLen : tileK;
  int64_t numTiles = ceilDiv(numRows, rowsPerTile) * pieces;
  for (int64_t t = 0; t < numTiles; ++t) {
    int64_t r0 = krLo + t / pieces * rowsPerTile;
    int64_t r1 = std::min(krHi, r0 + rowsPerTile - 1);
    int64_t c0 = cLo + t % pieces * pieceLen, c1 = std::min(cHi, c0 + pieceLen - 1);
    std::vector<int64_t> keys;
    for (int64_t r = r0; r <= r1; ++r)
      for (int64_t c = c0; c <= c1; ++c)
        if (int64_t kv = r * W + c; kv >= hLo && kv <= hHi)
          keys.push_back(kv);
    if (!keys.empty())
      tiles.push_back(std::move(keys));
  }
  return tiles;
}
