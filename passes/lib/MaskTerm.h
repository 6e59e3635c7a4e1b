//===- MaskTerm.h - Int values of a mask as min/max trees of affine leaves ===//
//
// The algebra of MaskAnalysis.cpp (see the math there): a Term is a tree of
// min/max over affine leaves in (q = d0, kv = d1) and MaskAttr's symbols,
// or opaque; negation, sums, constant factors and floor divisions push the
// min/max outwards. Terms too large to analyse (leaves, constants) become
// opaque, so that nothing overflows int64.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_PASSES_LIB_MASKTERM_H
#define ATTNC_PASSES_LIB_MASKTERM_H

#include "mlir/IR/AffineExpr.h"

#include <functional>
#include <optional>
#include <vector>

namespace mlir::attn::maskterm {

/// Constants beyond this magnitude are not analysed, so that affine
/// simplification never overflows int64.
inline constexpr int64_t kMaxConstant = int64_t(1) << 40;
/// Terms with more leaves than this are not analysed (min/max distribution
/// can grow them multiplicatively).
inline constexpr unsigned kMaxLeaves = 64;
inline constexpr unsigned kMaxDepth = 128;

struct Term {
  enum Kind { Leaf, Min, Max, Opaque } kind = Opaque;
  AffineExpr expr;          // Leaf
  std::vector<Term> parts; // Min / Max

  static Term leaf(AffineExpr e) { return Term{Leaf, e, {}}; }
  static Term opaque() { return Term{}; }
  unsigned numLeaves() const {
    if (kind == Leaf || kind == Opaque)
      return 1;
    unsigned n = 0;
    for (const Term &p : parts)
      n += p.numLeaves();
    return n;
  }
  bool isOpaque() const {
    if (kind == Opaque)
      return true;
    for (const Term &p : parts)
      if (p.isOpaque())
        return true;
    return false;
  }
};

inline bool constantTooLarge(AffineExpr e) {
  bool tooLarge = false;
  e.walk([&](AffineExpr sub) {
    if (auto c = dyn_cast<AffineConstantExpr>(sub))
      if (c.getValue() > kMaxConstant || c.getValue() < -kMaxConstant)
        tooLarge = true;
  });
  return tooLarge;
}

inline Term checked(Term t) {
  if (t.isOpaque() || t.numLeaves() > kMaxLeaves)
    return Term::opaque();
  bool tooLarge = false;
  std::function<void(const Term &)> scan = [&](const Term &x) {
    if (x.kind == Term::Leaf)
      tooLarge |= constantTooLarge(x.expr);
    for (const Term &p : x.parts)
      scan(p);
  };
  scan(t);
  return tooLarge ? Term::opaque() : t;
}

inline Term negate(const Term &t) {
  switch (t.kind) {
  case Term::Leaf:
    return Term::leaf(-t.expr);
  case Term::Opaque:
    return t;
  default: {
    Term r{t.kind == Term::Min ? Term::Max : Term::Min, {}, {}};
    for (const Term &p : t.parts)
      r.parts.push_back(negate(p));
    return r;
  }
  }
}

inline Term add(const Term &a, const Term &b) {
  if (a.kind == Term::Opaque || b.kind == Term::Opaque)
    return Term::opaque();
  if (a.kind == Term::Leaf && b.kind == Term::Leaf)
    return Term::leaf(a.expr + b.expr);
  const Term &mm = a.kind != Term::Leaf ? a : b;
  const Term &other = a.kind != Term::Leaf ? b : a;
  Term r{mm.kind, {}, {}};
  for (const Term &p : mm.parts)
    r.parts.push_back(add(p, other));
  return checked(r);
}

inline Term scale(const Term &t, int64_t c) {
  switch (t.kind) {
  case Term::Leaf:
    return Term::leaf(t.expr * c);
  case Term::Opaque:
    return t;
  default: {
    if (c == 0)
      return Term::leaf(getAffineConstantExpr(0, t.parts[0].expr.getContext()));
    Term r{c > 0 ? t.kind : (t.kind == Term::Min ? Term::Max : Term::Min),
           {}, {}};
    for (const Term &p : t.parts)
      r.parts.push_back(scale(p, c));
    return r;
  }
  }
}

/// floor(t / c) for a constant c != 0; monotone for c > 0.
inline Term floorDiv(const Term &t, int64_t c) {
  if (c < 0)
    return floorDiv(negate(t), -c);
  switch (t.kind) {
  case Term::Leaf:
    return Term::leaf(t.expr.floorDiv(c));
  case Term::Opaque:
    return t;
  default: {
    Term r{t.kind, {}, {}};
    for (const Term &p : t.parts)
      r.parts.push_back(floorDiv(p, c));
    return r;
  }
  }
}

inline std::optional<int64_t> constantOf(const Term &t) {
  if (t.kind == Term::Leaf)
    if (auto c = dyn_cast<AffineConstantExpr>(t.expr))
      return c.getValue();
  return std::nullopt;
}

inline Term combine(Term::Kind kind, Term a, Term b) {
  Term r{kind, {}, {}};
  for (Term *x : {&a, &b}) {
    if (x->kind == kind)
      r.parts.insert(r.parts.end(), x->parts.begin(), x->parts.end());
    else
      r.parts.push_back(*x);
  }
  return checked(r);
}

} // namespace mlir::attn::maskterm

#endif // ATTNC_PASSES_LIB_MASKTERM_H
