//===- MaskSchedule.cpp - Evaluate #attn.mask per tile --------------------===//
//
// Math. For a block of query rows [q0, q1], each atom's bound T(q) gets a
// range [min T, max T] by interval arithmetic in int64:
//   constants, symbols: a point;  q: [q0, q1];  a + b: [lo+lo, hi+hi];
//   a read at q (len[q]): [min, max] of the input over the rows;
//   a * p, a floordiv p, a ceildiv p (p a point): monotone, swapped if p < 0;
//   a mod p (p > 0): [lo mod p, hi mod p] if no wrap inside, else [0, p-1];
//   anything else, or p == 0: unknown.
// The hull of the keys some row may keep is an interval: kv >= T gives
// [min T, LK-1], kv <= T gives [0, max T], all_of intersects, any_of takes
// the hull of the union. Key tiles outside it are EMPTY; inside, the
// two-flag evaluation of classifyTile decides. The generated kernels emit
// the same arithmetic (passes/lib/ScheduleEmitter.cpp), so host and kernel
// agree tile for tile.
//
//===----------------------------------------------------------------------===//
#include "attnc/Passes/MaskSchedule.h"

#include <algorithm>

using namespace mlir;
using namespace mlir::attn;

namespace {
/// Operations on ranges saturate far from int64's ends, so that no
/// expression over realistic sizes can overflow.
constexpr int64_t kLimit = int64_t(1) << 62;
int64_t clampToLimit(__int128 v) {
  return int64_t(std::clamp<__int128>(v, -kLimit, kLimit));
}
int64_t floorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
int64_t ceilDiv(int64_t a, int64_t b) { return -floorDiv(-a, b); }
int64_t floorMod(int64_t a, int64_t b) { return a - b * floorDiv(a, b); }
} // namespace

BoundRange mlir::attn::boundRange(AffineExpr e, ArrayRef<BoundRange> syms,
                                  int64_t q0, int64_t q1) {
  switch (e.getKind()) {
  case AffineExprKind::Constant: {
    int64_t c = cast<AffineConstantExpr>(e).getValue();
    return {c, c, true};
  }
  case AffineExprKind::DimId:
    return {q0, q1, true};
  case AffineExprKind::SymbolId: {
    unsigned pos = cast<AffineSymbolExpr>(e).getPosition();
    return pos < syms.size() ? syms[pos] : BoundRange{0, 0, true};
  }
  default:
    break;
  }
  auto bin = cast<AffineBinaryOpExpr>(e);
  BoundRange a = boundRange(bin.getLHS(), syms, q0, q1);
  BoundRange b = boundRange(bin.getRHS(), syms, q0, q1);
  if (!a.known || !b.known)
    return {};
  if (e.getKind() == AffineExprKind::Add)
    return {clampToLimit(__int128(a.lo) + b.lo),
            clampToLimit(__int128(a.hi) + b.hi), true};
  // The other operations need a point on one side: MLIR keeps constants and
  // symbolic factors on the right.
  if (b.lo != b.hi)
    return {};
  int64_t p = b.lo;
  switch (e.getKind()) {
  case AffineExprKind::Mul: {
    int64_t x = clampToLimit(__int128(a.lo) * p);
    int64_t y = clampToLimit(__int128(a.hi) * p);
    return {std::min(x, y), std::max(x, y), true};
  }
  case AffineExprKind::FloorDiv:
  case AffineExprKind::CeilDiv: {
    if (p == 0)
      return {};
    auto div = e.getKind() == AffineExprKind::FloorDiv ? floorDiv : ceilDiv;
    int64_t x = div(a.lo, p), y = div(a.hi, p);
    return {std::min(x, y), std::max(x, y), true};
  }
  case AffineExprKind::Mod:
    if (p <= 0)
      return {};
    if (floorDiv(a.lo, p) == floorDiv(a.hi, p))
      return {floorMod(a.lo, p), floorMod(a.hi, p), true};
    return {0, p - 1, true};
  default:
    return {};
  }
}

BoundRange mlir::attn::idsRange(ArrayAttr read, const IdsReader *ids,
                                const ProblemSizes &sizes, int64_t p0,
                                int64_t p1) {
  if (!ids || !*ids || p0 > p1)
    return {};
  StringRef name = cast<StringAttr>(read[0]).getValue();
  SmallVector<int64_t> idx(read.size() - 1, 0);
  int pos = -1;
  for (auto [i, c] : llvm::enumerate(read.getValue().drop_front())) {
    StringRef v = cast<StringAttr>(c).getValue();
    idx[i] = v == "b" ? sizes.b : v == "h" ? sizes.h : v == "hkv" ? sizes.hkv() : 0;
    if (v == "q" || v == "kv")
      pos = int(i);
  }
  if (pos < 0)
    return {};
  BoundRange r{INT64_MAX, INT64_MIN, true};
  for (int64_t p = p0; p <= p1; ++p) {
    idx[pos] = p;
    std::optional<int64_t> v = (*ids)(name, idx);
    if (!v)
      return {};
    r.lo = std::min(r.lo, *v);
    r.hi = std::max(r.hi, *v);
  }
  return r;
}

namespace {
bool isAtom(MaskKind k) {
  return k == MaskKind::kv_ge || k == MaskKind::kv_le ||
         k == MaskKind::q_pred || k == MaskKind::ids_eq;
}

struct Hull {
  int64_t lo, hi; // empty if lo > hi
};

/// The values `read` ([input, b | h | hkv | q...]) takes for these
/// sizes' b and h: one element, or read at q the min and max over rows
/// [q0, q1]; unknown without a reader, when a read fails, or beyond
/// +-kMaxBoundRead.
BoundRange readRange(ArrayAttr read, const IdsReader *ids,
                     const ProblemSizes &sizes, int64_t q0, int64_t q1) {
  if (!ids || !*ids)
    return {};
  BoundRange r;
  if (llvm::is_contained(read.getValue().drop_front(),
                         StringAttr::get(read.getContext(), "q"))) {
    r = idsRange(read, ids, sizes, q0, q1);
  } else {
    SmallVector<int64_t> idx;
    for (Attribute c : read.getValue().drop_front()) {
      StringRef v = cast<StringAttr>(c).getValue();
      idx.push_back(v == "b" ? sizes.b : v == "h" ? sizes.h : sizes.hkv());
    }
    std::optional<int64_t> v = (*ids)(cast<StringAttr>(read[0]).getValue(), idx);
    r = v ? BoundRange{*v, *v, true} : BoundRange{};
  }
  if (r.known && (r.lo < -kMaxBoundRead || r.hi > kMaxBoundRead))
    return {};
  return r;
}

/// Fills `rows.atoms` in pre-order and returns the node's hull.
Hull hullOf(MaskAttr node, const std::vector<int64_t> &syms, int64_t q0,
            int64_t q1, int64_t lk, RowBlock &rows) {
  Hull all{0, lk - 1}, none{0, -1};
  switch (node.getKind()) {
  case MaskKind::always:
  case MaskKind::opaque:
    return all;
  case MaskKind::never:
    return none;
  case MaskKind::ids_eq:
    rows.atoms.push_back(idsRange(cast<ArrayAttr>(node.getTerms()[0]),
                                  rows.ids, rows.sizes, q0, q1));
    return all;
  case MaskKind::kv_ge:
  case MaskKind::kv_le:
  case MaskKind::q_pred: {
    // The bound's reads (kv_len[b], len[q]) are symbols after the ten; one
    // the reader cannot give makes the atom unknown.
    std::vector<BoundRange> withReads;
    for (int64_t v : syms)
      withReads.push_back({v, v, true});
    bool readable = true;
    for (Attribute t : node.getTerms()) {
      BoundRange v = readRange(cast<ArrayAttr>(t), rows.ids, rows.sizes, q0, q1);
      readable = readable && v.known;
      withReads.push_back(v);
    }
    BoundRange r = readable ? boundRange(node.getBoundExpr(), withReads, q0, q1)
                            : BoundRange{};
    rows.atoms.push_back(r);
    if (!r.known)
      return all;
    if (node.getKind() == MaskKind::kv_ge)
      return {std::max<int64_t>(r.lo, 0), lk - 1};
    if (node.getKind() == MaskKind::kv_le)
      return {0, std::min(r.hi, lk - 1)};
    return r.hi >= 0 ? all : none;
  }
  case MaskKind::all_of:
  case MaskKind::any_of: {
    bool isAnd = node.getKind() == MaskKind::all_of;
    Hull acc = isAnd ? all : none;
    for (Attribute t : node.getTerms()) {
      Hull h = hullOf(cast<MaskAttr>(t), syms, q0, q1, lk, rows);
      if (isAnd) {
        acc = {std::max(acc.lo, h.lo), std::min(acc.hi, h.hi)};
      } else if (h.lo <= h.hi) {
        acc = acc.lo > acc.hi ? h
                              : Hull{std::min(acc.lo, h.lo),
                                     std::max(acc.hi, h.hi)};
      }
    }
    return acc;
  }
  }
  return all;
}

struct Flags {
  bool any, all;
};

Flags flagsOf(MaskAttr node, const RowBlock &rows, size_t &atom, int64_t k0,
              int64_t k1) {
  switch (node.getKind()) {
  case MaskKind::always:
    return {true, true};
  case MaskKind::never:
    return {false, false};
  case MaskKind::opaque:
    return {true, false};
  case MaskKind::ids_eq: {
    const BoundRange &x = rows.atoms[atom++];
    BoundRange y = idsRange(cast<ArrayAttr>(node.getTerms()[1]), rows.ids,
                            rows.sizes, k0, k1);
    if (!x.known || !y.known)
      return {true, false};
    return {x.lo <= y.hi && y.lo <= x.hi,
            x.lo == x.hi && y.lo == y.hi && x.lo == y.lo};
  }
  case MaskKind::all_of:
  case MaskKind::any_of: {
    bool isAnd = node.getKind() == MaskKind::all_of;
    Flags acc{isAnd, isAnd};
    for (Attribute t : node.getTerms()) {
      Flags f = flagsOf(cast<MaskAttr>(t), rows, atom, k0, k1);
      acc = isAnd ? Flags{acc.any && f.any, acc.all && f.all}
                  : Flags{acc.any || f.any, acc.all || f.all};
    }
    return acc;
  }
  default: {
    const BoundRange &r = rows.atoms[atom++];
    if (!r.known)
      return {true, false};
    if (node.getKind() == MaskKind::kv_ge)
      return {k1 >= r.lo, k0 >= r.hi};
    if (node.getKind() == MaskKind::kv_le)
      return {k0 <= r.hi, k1 <= r.lo};
    return {r.hi >= 0, r.lo >= 0};
  }
  }
}
} // namespace

RowBlock mlir::attn::evaluateRows(MaskAttr mask, const ProblemSizes &sizes,
                                  int64_t q0, int64_t q1,
                                  const IdsReader *ids) {
  RowBlock rows;
  rows.ids = ids;
  rows.sizes = sizes;
  Hull h = hullOf(mask, sizes.symbols(), q0, q1, sizes.LK, rows);
  rows.hullLo = h.lo;
  rows.hullHi = h.hi;
  return rows;
}

TileKind mlir::attn::classifyTile(MaskAttr mask, const RowBlock &rows,
                                  int64_t k0, int64_t k1) {
  if (k1 < rows.hullLo || k0 > rows.hullHi)
    return TileKind::Empty;
  size_t atom = 0;
  Flags f = flagsOf(mask, rows, atom, k0, k1);
  if (!f.any)
    return TileKind::Empty;
  return f.all ? TileKind::Full : TileKind::Partial;
}

char mlir::attn::tileKindChar(TileKind k) {
  switch (k) {
  case TileKind::Empty:
    return '.';
  case TileKind::Full:
    return '#';
  case TileKind::Partial:
    return '+';
  }
  return '?';
}

TileSchedule mlir::attn::computeSchedule(MaskAttr mask,
                                         const ProblemSizes &sizes,
                                         int64_t tileQ, int64_t tileK,
                                         const IdsReader *ids) {
  TileSchedule s;
  s.tileQ = tileQ;
  s.tileK = tileK;
  s.numQ = (std::max<int64_t>(sizes.LQ, 0) + tileQ - 1) / tileQ;
  s.numK = (std::max<int64_t>(sizes.LK, 0) + tileK - 1) / tileK;
  s.kinds.assign(s.numQ * s.numK, TileKind::Empty);
  for (int64_t qt = 0; qt < s.numQ; ++qt) {
    int64_t q0 = qt * tileQ, q1 = std::min(q0 + tileQ, sizes.LQ) - 1;
    RowBlock rows = evaluateRows(mask, sizes, q0, q1, ids);
    if (rows.hullLo > rows.hullHi) {
      s.keyTileRange.push_back({0, -1});
      continue;
    }
    s.keyTileRange.push_back({rows.hullLo / tileK, rows.hullHi / tileK});
    auto [first, last] = s.keyTileRange.back();
    for (int64_t kt = first; kt <= last; ++kt) {
      int64_t k0 = kt * tileK, k1 = std::min(k0 + tileK, sizes.LK) - 1;
      s.kinds[qt * s.numK + kt] = classifyTile(mask, rows, k0, k1);
    }
  }
  return s;
}

ProblemSizes mlir::attn::transposedSizes(const ProblemSizes &sizes) {
  ProblemSizes t = sizes;
  std::swap(t.LQ, t.LK);
  return t;
}

TileSchedule mlir::attn::computeColumnSchedule(MaskAttr columns,
                                               const ProblemSizes &sizes,
                                               int64_t tileQ, int64_t tileK,
                                               const IdsReader *ids) {
  // Rows of the transposed problem are keys, so its "query" tiles are key
  // tiles of tileK keys and its "key" tiles query tiles of tileQ queries.
  return computeSchedule(columns, transposedSizes(sizes), /*tileQ=*/tileK,
                         /*tileK=*/tileQ, ids);
}
