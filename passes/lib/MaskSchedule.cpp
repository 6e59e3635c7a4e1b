//===- MaskSchedule.cpp - Evaluate #attn.mask per tile --------------------===//
//
// Math. A bound T(q) is evaluated over q in [q0, q1] by interval arithmetic
// (exact for the monotone expressions the analysis produces: sums, constant
// multiples, floor/ceil divisions by constants; sound for the rest). Then
//   kv >= T:  some = [min T, LK-1],  every = [max T, LK-1]
//   kv <= T:  some = [0, max T],     every = [0, min T]
//   T >= 0:   all keys if min T >= 0, none if max T < 0, else some = all,
//             every = none
//   opaque:   some = all, every = none
// all_of intersects, any_of unites both sets. Arithmetic is in long double
// (64-bit mantissa: exact on int64) with infinities for unknown ends.
//
//===----------------------------------------------------------------------===//
#include "attnc/Passes/MaskSchedule.h"

#include <algorithm>
#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::attn;

namespace {
using Real = long double;
constexpr Real kInf = std::numeric_limits<Real>::infinity();

struct Range {
  Real lo, hi;
  bool single() const { return lo == hi && std::isfinite(lo); }
};

Real mulReal(Real a, Real b) {
  if (a == 0 || b == 0)
    return 0; // 0 * inf is 0 here: an unknown factor times zero is zero
  return a * b;
}

Range evalRange(AffineExpr e, Range q, const std::vector<int64_t> &syms) {
  switch (e.getKind()) {
  case AffineExprKind::Constant: {
    Real c = cast<AffineConstantExpr>(e).getValue();
    return {c, c};
  }
  case AffineExprKind::DimId:
    return q;
  case AffineExprKind::SymbolId: {
    unsigned pos = cast<AffineSymbolExpr>(e).getPosition();
    Real v = pos < syms.size() ? Real(syms[pos]) : 0;
    return {v, v};
  }
  default:
    break;
  }
  auto bin = cast<AffineBinaryOpExpr>(e);
  Range a = evalRange(bin.getLHS(), q, syms);
  Range b = evalRange(bin.getRHS(), q, syms);
  switch (e.getKind()) {
  case AffineExprKind::Add:
    return {a.lo + b.lo, a.hi + b.hi};
  case AffineExprKind::Mul: {
    Real p[] = {mulReal(a.lo, b.lo), mulReal(a.lo, b.hi), mulReal(a.hi, b.lo),
                mulReal(a.hi, b.hi)};
    return {*std::min_element(p, p + 4), *std::max_element(p, p + 4)};
  }
  case AffineExprKind::FloorDiv:
  case AffineExprKind::CeilDiv: {
    if (!b.single() || b.lo == 0)
      return {-kInf, kInf};
    auto f = [&](Real x) {
      Real r = x / b.lo;
      return e.getKind() == AffineExprKind::FloorDiv ? std::floor(r)
                                                     : std::ceil(r);
    };
    Real x = f(a.lo), y = f(a.hi);
    return {std::min(x, y), std::max(x, y)};
  }
  case AffineExprKind::Mod: {
    if (!b.single() || b.lo <= 0)
      return {-kInf, kInf};
    Real d = b.lo;
    if (std::isfinite(a.lo) && std::isfinite(a.hi) &&
        std::floor(a.lo / d) == std::floor(a.hi / d))
      return {a.lo - d * std::floor(a.lo / d), a.hi - d * std::floor(a.hi / d)};
    return {0, d - 1};
  }
  default:
    return {-kInf, kInf};
  }
}

/// [lo, hi] of reals clipped to the keys [0, LK-1] as integers.
KeySet keyRange(Real lo, Real hi, int64_t lk) {
  lo = std::max<Real>(std::ceil(lo), 0);
  hi = std::min<Real>(std::floor(hi), Real(lk - 1));
  if (lk <= 0 || lo > hi)
    return {};
  return KeySet{{{int64_t(lo), int64_t(hi)}}};
}

RowBlockKeys eval(MaskAttr node, const ProblemSizes &s, Range q,
                  const std::vector<int64_t> &syms) {
  KeySet all = keyRange(0, Real(s.LK - 1), s.LK);
  switch (node.getKind()) {
  case MaskKind::always:
    return {all, all};
  case MaskKind::never:
    return {};
  case MaskKind::opaque:
    return {all, {}};
  case MaskKind::kv_ge: {
    Range t = evalRange(node.getBoundExpr(), q, syms);
    return {keyRange(t.lo, kInf, s.LK), keyRange(t.hi, kInf, s.LK)};
  }
  case MaskKind::kv_le: {
    Range t = evalRange(node.getBoundExpr(), q, syms);
    return {keyRange(-kInf, t.hi, s.LK), keyRange(-kInf, t.lo, s.LK)};
  }
  case MaskKind::q_pred: {
    Range t = evalRange(node.getBoundExpr(), q, syms);
    if (t.lo >= 0)
      return {all, all};
    if (t.hi < 0)
      return {};
    return {all, {}};
  }
  case MaskKind::all_of:
  case MaskKind::any_of: {
    bool isAnd = node.getKind() == MaskKind::all_of;
    RowBlockKeys acc;
    bool first = true;
    for (Attribute a : node.getTerms()) {
      RowBlockKeys t = eval(cast<MaskAttr>(a), s, q, syms);
      if (first) {
        acc = t;
        first = false;
      } else if (isAnd) {
        acc = {KeySet::intersect(acc.some, t.some),
               KeySet::intersect(acc.every, t.every)};
      } else {
        acc = {KeySet::unite(acc.some, t.some),
               KeySet::unite(acc.every, t.every)};
      }
    }
    return acc;
  }
  }
  return {all, {}};
}
} // namespace

bool KeySet::intersects(int64_t lo, int64_t hi) const {
  for (auto [a, b] : ranges)
    if (a <= hi && lo <= b)
      return true;
  return false;
}

bool KeySet::contains(int64_t lo, int64_t hi) const {
  for (auto [a, b] : ranges)
    if (a <= lo && hi <= b)
      return true;
  return false;
}

KeySet KeySet::intersect(const KeySet &x, const KeySet &y) {
  KeySet r;
  size_t i = 0, j = 0;
  while (i < x.ranges.size() && j < y.ranges.size()) {
    int64_t lo = std::max(x.ranges[i].first, y.ranges[j].first);
    int64_t hi = std::min(x.ranges[i].second, y.ranges[j].second);
    if (lo <= hi)
      r.ranges.push_back({lo, hi});
    if (x.ranges[i].second < y.ranges[j].second)
      ++i;
    else
      ++j;
  }
  return r;
}

KeySet KeySet::unite(const KeySet &x, const KeySet &y) {
  std::vector<std::pair<int64_t, int64_t>> all = x.ranges;
  all.insert(all.end(), y.ranges.begin(), y.ranges.end());
  std::sort(all.begin(), all.end());
  KeySet r;
  for (auto rg : all) {
    // Merge overlapping and adjacent ranges of integers.
    if (!r.ranges.empty() && rg.first <= r.ranges.back().second + 1)
      r.ranges.back().second = std::max(r.ranges.back().second, rg.second);
    else
      r.ranges.push_back(rg);
  }
  return r;
}

RowBlockKeys mlir::attn::evaluateMask(MaskAttr mask, const ProblemSizes &sizes,
                                      int64_t q0, int64_t q1) {
  std::vector<int64_t> syms = sizes.symbols();
  return eval(mask, sizes, Range{Real(q0), Real(q1)}, syms);
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
                                         int64_t tileQ, int64_t tileK) {
  TileSchedule s;
  s.tileQ = tileQ;
  s.tileK = tileK;
  s.numQ = (std::max<int64_t>(sizes.LQ, 0) + tileQ - 1) / tileQ;
  s.numK = (std::max<int64_t>(sizes.LK, 0) + tileK - 1) / tileK;
  s.kinds.assign(s.numQ * s.numK, TileKind::Empty);
  for (int64_t qt = 0; qt < s.numQ; ++qt) {
    int64_t q0 = qt * tileQ, q1 = std::min(q0 + tileQ, sizes.LQ) - 1;
    RowBlockKeys keys = evaluateMask(mask, sizes, q0, q1);
    // Closed form of the row's key-tile range, from the `some` set.
    if (keys.some.ranges.empty())
      s.keyTileRange.push_back({0, -1});
    else
      s.keyTileRange.push_back({keys.some.ranges.front().first / tileK,
                                keys.some.ranges.back().second / tileK});
    auto [first, last] = s.keyTileRange.back();
    for (int64_t kt = first; kt <= last; ++kt) {
      int64_t k0 = kt * tileK, k1 = std::min(k0 + tileK, sizes.LK) - 1;
      TileKind kind = TileKind::Partial;
      if (!keys.some.intersects(k0, k1))
        kind = TileKind::Empty;
      else if (keys.every.contains(k0, k1))
        kind = TileKind::Full;
      s.kinds[qt * s.numK + kt] = kind;
    }
  }
  return s;
}
