//===- MaskAnalysis.h - Mask region -> #attn.mask formula -------*- C++ -*-===//
//
// The symbolic half of the mask analysis: derives, from a spec's mask region,
// a formula of key-position bounds (and, transposed, of query-position
// bounds: the column view). Sound by construction: whatever it cannot
// analyse becomes `opaque`. MaskSchedule.h evaluates the formula per tile.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_PASSES_MASKANALYSIS_H
#define ATTNC_PASSES_MASKANALYSIS_H

#include "attnc/Dialect/AttnDialect.h"

#include <optional>

namespace mlir::attn {
/// The formula of `spec`'s mask region. Params that have values are read as
/// constants; unbound params make the comparisons that use them opaque.
MaskAttr analyzeMask(SpecOp spec);

/// Why part of a mask is `opaque` (decided per element: its key tiles are
/// PARTIAL at best): the operation of the mask region at fault, e.g. the
/// comparison that cannot be solved for kv, and the value in it that the
/// analysis cannot bound (an input read at q, `kv % c`, a float
/// comparison). One entry per operation, in the order the analysis meets
/// them (the formula's); empty when the
/// mask has no opaque part or when its grid view (analyzeGridMask) bounds
/// the keys instead. `attnc compile` and `attnc show` print them as notes.
struct OpaqueNote {
  Location loc;
  std::string reason;
};
SmallVector<OpaqueNote> explainOpaqueMask(SpecOp spec);

/// The column view of `spec`'s mask, which the backward dK/dV pass walks
/// (per key tile, the query tiles it meets): analyzeMask of the transposed
/// mask, in which q and kv and the sizes LQ and LK are exchanged (in a
/// temporary copy of the mask region; `spec` is not modified). Read the
/// result with the roles exchanged: its `q` is the key position, its `kv`
/// the query position, its symbol LQ the key length and LK the query
/// length; ids_eq atoms read the key-side input first. MaskSchedule.h's
/// computeColumnSchedule evaluates it.
MaskAttr analyzeMaskColumns(SpecOp spec);

/// The column view of a mask over a row-major grid of `width` columns, as
/// in 2-D neighbourhood attention: with q = qr * W + qc and
/// kv = kr * W + kc (0 <= qc, kc < W), `columns` is the formula of the mask
/// over (d0 = qc, d1 = kc) in which every other use of q or kv is opaque,
/// so it over-approximates the mask: if (q, kv) is kept, then
/// (q mod W, kv mod W) satisfies `columns`. Together with the ordinary
/// formula (which bounds kv by whole grid rows) it bounds the keys of a 2-D
/// block of queries by a rectangle of the grid.
struct GridMask {
  int64_t width;
  MaskAttr columns;
};
/// The grid view of `spec`'s mask when it reads both `q mod W` and
/// `kv mod W` for one constant W > 1 and that bounds the key column;
/// nothing otherwise.
std::optional<GridMask> analyzeGridMask(SpecOp spec);

/// The spec attribute where attn-mask-analysis stores the grid view:
/// `attn.grid = {columns = #attn.mask<...>, width = W : i64}`.
constexpr const char kGridAttrName[] = "attn.grid";
/// The grid view stored on `spec` by attn-mask-analysis, if any.
std::optional<GridMask> getGridMask(SpecOp spec);
} // namespace mlir::attn

#endif // ATTNC_PASSES_MASKANALYSIS_H
