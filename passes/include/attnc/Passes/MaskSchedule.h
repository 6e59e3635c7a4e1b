//===- MaskSchedule.h - Evaluate #attn.mask per tile ------------*- C++ -*-===//
//
// Run-time side of the mask analysis, in C++ for the host (attnc show, the
// tests, and the runtime's dispatch): given the sizes and a block of query
// rows, a mask formula yields in O(formula) the key positions some row may
// keep and the key positions every row keeps; tiles follow from those.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_PASSES_MASKSCHEDULE_H
#define ATTNC_PASSES_MASKSCHEDULE_H

#include "attnc/Dialect/AttnDialect.h"

#include <cstdint>
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

/// Sorted, disjoint, inclusive ranges of key positions.
struct KeySet {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  bool intersects(int64_t lo, int64_t hi) const;
  bool contains(int64_t lo, int64_t hi) const;
  static KeySet intersect(const KeySet &a, const KeySet &b);
  static KeySet unite(const KeySet &a, const KeySet &b);
};

/// For query rows [q0, q1]: `some` holds every key that some row may keep
/// (a superset), `every` only keys that every row keeps (a subset).
struct RowBlockKeys {
  KeySet some, every;
};

RowBlockKeys evaluateMask(MaskAttr mask, const ProblemSizes &sizes,
                          int64_t q0, int64_t q1);

enum class TileKind : uint8_t { Empty, Full, Partial };
char tileKindChar(TileKind k); // '.', '#', '+'

/// The classification of every (query tile, key tile) of one (b, h).
struct TileSchedule {
  int64_t tileQ = 0, tileK = 0, numQ = 0, numK = 0;
  std::vector<TileKind> kinds; // numQ * numK, row-major
  /// Per query tile, the first and last key tile that is not EMPTY
  /// (first > last when the whole row of tiles is EMPTY).
  std::vector<std::pair<int64_t, int64_t>> keyTileRange;
  TileKind at(int64_t qt, int64_t kt) const { return kinds[qt * numK + kt]; }
};

/// tileQ, tileK > 0; sizes.LQ, sizes.LK >= 0.
TileSchedule computeSchedule(MaskAttr mask, const ProblemSizes &sizes,
                             int64_t tileQ, int64_t tileK);

} // namespace mlir::attn

#endif // ATTNC_PASSES_MASKSCHEDULE_H
