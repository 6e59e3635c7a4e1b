//===- MaskSchedule.h - Evaluate #attn.mask per tile ------------*- C++ -*-===//
//
// Run-time side of the mask analysis, in C++ for the host (attnc show, the
// tests, and the runtime's dispatch): given the sizes and a block of query
// rows, a mask formula yields in O(formula) the key positions some row may
// keep and the key positions every row keeps; tiles follow from those. The
// column view (a block of keys, its query positions) is the same evaluation
// of the transposed formula with the sizes exchanged.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_PASSES_MASKSCHEDULE_H
#define ATTNC_PASSES_MASKSCHEDULE_H

#include "attnc/Dialect/AttnDialect.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

namespace mlir::attn {

/// Values of the coordinates and sizes that a mask bound may read (the
/// symbols of MaskAttr, in order). hkv is derived from h, HQ and HKV.
struct ProblemSizes {
  int64_t B = 1, HQ = 1, HKV = 1, LQ = 1, LK = 1, D = 64, DV = 64;
  int64_t b = 0, h = 0;
  int64_t hkv() const { return HKV > 0 && HQ >= HKV ? h / (HQ / HKV) : 0; }
  std::vector<int64_t> symbols() const {
    return {b, h, hkv(), B, HQ, HKV, LQ, LK, D, DV};
  }
};

/// The range of a mask bound T(q) over a block of query rows, or unknown
/// (an expression the evaluation does not bound, e.g. a division by zero).
struct BoundRange {
  int64_t lo = 0, hi = 0;
  bool known = false;
};

/// Reads element `indices` of int input `name` (for ids_eq atoms, and the
/// reads of atoms' bounds such as kv_len[b] or len[q]); nullopt if it cannot, e.g.
/// an index past the input's extent (an [LQ] id tensor read at kv): the
/// range is then unknown, as the kernels make it. Without a reader, ids_eq
/// atoms and atoms with reads classify like opaque.
using IdsReader = std::function<std::optional<int64_t>(
    llvm::StringRef name, llvm::ArrayRef<int64_t> indices)>;

/// Bounds of every atom of a formula (in pre-order) over query rows
/// [q0, q1]: computed once per query tile, then reused for each key tile.
/// For an ids_eq atom the "bound" is the min/max of its q-side input over
/// the rows.
struct RowBlock {
  std::vector<BoundRange> atoms;
  /// Hull of the keys some row may keep, clipped to [0, LK-1]; empty when
  /// hullLo > hullHi.
  int64_t hullLo = 0, hullHi = -1;
  /// For ids_eq atoms and atoms with reads: the reader and the
  /// coordinates (null: opaque).
  const IdsReader *ids = nullptr;
  ProblemSizes sizes;
};

/// The range of one affine bound over q in [q0, q1] (interval arithmetic,
/// in int64; exact for the monotone bounds the analysis produces when every
/// symbol is a point). `symbols` are the ranges of MaskAttr's symbols: the
/// ten coordinates and sizes (points), then the atom's reads (points, or
/// for a read at q its min and max over the rows).
BoundRange boundRange(AffineExpr bound, llvm::ArrayRef<BoundRange> symbols,
                      int64_t q0, int64_t q1);

/// An atom's read whose value lies outside +-kMaxBoundRead makes the atom
/// unknown (its tiles PARTIAL), on the host and in every kernel, so that
/// the bound's sums stay far from int64's ends.
constexpr int64_t kMaxBoundRead = int64_t(1) << 40;

RowBlock evaluateRows(MaskAttr mask, const ProblemSizes &sizes, int64_t q0,
                      int64_t q1, const IdsReader *ids = nullptr);

enum class TileKind : uint8_t { Empty, Full, Partial };
char tileKindChar(TileKind k); // '.', '#', '+'

/// The classification of every (query tile, key tile) of one (b, h).
struct TileSchedule {
  int64_t tileQ = 0, tileK = 0, numQ = 0, numK = 0;
  std::vector<TileKind> kinds; // numQ * numK, row-major
  /// Per query tile, the key tiles the hull reaches: [hullLo / tileK,
  /// hullHi / tileK], a closed form (first > last when the hull is empty).
  std::vector<std::pair<int64_t, int64_t>> keyTileRange;
  TileKind at(int64_t qt, int64_t kt) const { return kinds[qt * numK + kt]; }
};

/// Classifies key tile [k0, k1] for the rows of `rows`:
///   node (some row may keep a key of the tile, every row keeps every key)
///   kv >= T:  (k1 >= min T, k0 >= max T)     kv <= T: (k0 <= max T, k1 <= min T)
///   T >= 0:   (max T >= 0, min T >= 0)        opaque:  (true, false)
///   X[q] == Y[kv] (ids_eq), with [xlo, xhi] the ids of the rows and
///   [ylo, yhi] those of the keys: (the ranges meet, xlo == xhi == ylo == yhi)
///   all_of / any_of: AND / OR of both flags;  an unknown T: (true, false).
/// EMPTY if the tile misses the hull or no key may be kept, FULL if every
/// key is kept, else PARTIAL. The generated kernels compute exactly this.
TileKind classifyTile(MaskAttr mask, const RowBlock &rows, int64_t k0,
                      int64_t k1);

/// tileQ, tileK > 0; sizes.LQ, sizes.LK >= 0.
TileSchedule computeSchedule(MaskAttr mask, const ProblemSizes &sizes,
                             int64_t tileQ, int64_t tileK,
                             const IdsReader *ids = nullptr);

/// The sizes as the column view (analyzeMaskColumns) reads them: LQ and LK
/// exchanged. B, HQ, HKV, D, DV and the coordinates b and h are unchanged,
/// so hkv(), derived from h, HQ and HKV, is too.
ProblemSizes transposedSizes(const ProblemSizes &sizes);

/// The column schedule of one (b, h): `columns` is the column view of the
/// mask (analyzeMaskColumns, the spec's mask_schedule_columns), `sizes` the
/// ordinary (untransposed) sizes, tileQ and tileK the query and key tile
/// sizes (> 0). The result is computeSchedule on the transposed problem, so
/// its fields read with the roles exchanged, indexed [key tile][query tile]:
///   tileQ = tileK (keys per key tile), numQ = ceil(LK / tileK) key tiles,
///   tileK = tileQ (queries per query tile), numK = ceil(LQ / tileQ),
///   at(kt, qt) = kinds[kt * numK + qt], the kind of (query tile qt, key
///   tile kt), and keyTileRange[kt] = the query tiles the hull of key tile
///   kt reaches, [hullLo / tileQ, hullHi / tileQ] (first > last if empty).
/// `ids` reads the inputs of ids_eq atoms by name and indices, as for the
/// row view (the transposed atom reads the key-side input at the key tile).
TileSchedule computeColumnSchedule(MaskAttr columns, const ProblemSizes &sizes,
                                   int64_t tileQ, int64_t tileK,
                                   const IdsReader *ids = nullptr);

/// The range of the ids that `read` ([input, coordinates...], an ids_eq
/// term) takes when its q or kv coordinate runs over [p0, p1]; unknown if
/// `ids` is null or a read fails.
BoundRange idsRange(ArrayAttr read, const IdsReader *ids,
                    const ProblemSizes &sizes, int64_t p0, int64_t p1);

} // namespace mlir::attn

#endif // ATTNC_PASSES_MASKSCHEDULE_H
