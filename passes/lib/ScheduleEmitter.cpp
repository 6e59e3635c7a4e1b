//===- ScheduleEmitter.cpp - The mask schedule as generated code ----------===//
//
// Mirrors MaskSchedule.cpp node for node (see the math there):
//   bound ranges:  constants, symbols (and reads, ids->read) -> points;
//                  q -> [q0, q1]; a read at q -> [min, max] over the rows
//                  (ids->range); a read beyond +-kMaxBoundRead -> unknown;
//                  a + b -> [lo+lo, hi+hi]; a * p, a floordiv p,
//                  a ceildiv p (p a point) -> monotone, swapped if p < 0;
//                  a mod p (p > 0) -> exact if no wrap, else [0, p-1];
//                  an unknown flag where the host returns "unknown".
//   hull:          kv >= T -> [max(min T, 0), LK-1]; kv <= T -> [0,
//                  min(max T, LK-1)]; T >= 0 -> all or none; all_of
//                  intersects; any_of takes the hull of the non-empty terms.
//   tile flags:    (any, all) per node, AND / OR over all_of / any_of.
// Every value is i64 within +-2^62, so sums never overflow; products are
// formed in i128 and clamped, as the host does.
//
//===----------------------------------------------------------------------===//
#include "attnc/Passes/ScheduleEmitter.h"
#include "attnc/Passes/MaskSchedule.h"

using namespace mlir;
using namespace mlir::attn;
using P = arith::CmpIPredicate;

namespace {
constexpr int64_t kLimit = int64_t(1) << 62;

struct IntBuilder {
  OpBuilder &b;
  Location loc;
  Value c(int64_t v) { return arith::ConstantIntOp::create(b, loc, b.getI64Type(), v); }
  Value bit(bool v) { return arith::ConstantIntOp::create(b, loc, b.getI1Type(), v); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, loc, x, y); }
  Value min(Value x, Value y) { return arith::MinSIOp::create(b, loc, x, y); }
  Value max(Value x, Value y) { return arith::MaxSIOp::create(b, loc, x, y); }
  Value cmp(P p, Value x, Value y) { return arith::CmpIOp::create(b, loc, p, x, y); }
  Value sel(Value c, Value x, Value y) { return arith::SelectOp::create(b, loc, c, x, y); }
  Value andI(Value x, Value y) { return arith::AndIOp::create(b, loc, x, y); }
  Value orI(Value x, Value y) { return arith::OrIOp::create(b, loc, x, y); }
  Value notI(Value x) { return arith::XOrIOp::create(b, loc, x, bit(true)); }
  Value clamp(Value x) { return min(max(x, c(-kLimit)), c(kLimit)); }
  /// x * p clamped to +-2^62, computed in i128.
  Value mulSat(Value x, Value p) {
    Type i128 = b.getIntegerType(128);
    Value xw = arith::ExtSIOp::create(b, loc, i128, x);
    Value pw = arith::ExtSIOp::create(b, loc, i128, p);
    Value prod = arith::MulIOp::create(b, loc, xw, pw);
    // Sign-extended explicitly: an int64 given for an i128 constant would
    // be zero-extended.
    auto wide = [&](int64_t v) -> Value {
      return arith::ConstantOp::create(
          b, loc, IntegerAttr::get(i128, APInt(128, v, /*isSigned=*/true)));
    };
    Value lo = wide(-kLimit), hi = wide(kLimit);
    prod = arith::MinSIOp::create(b, loc, arith::MaxSIOp::create(b, loc, prod, lo), hi);
    return arith::TruncIOp::create(b, loc, b.getI64Type(), prod);
  }
};

EmittedBound boundOf(IntBuilder &e, AffineExpr expr, Value q0, Value q1,
                     ArrayRef<EmittedBound> syms) {
  switch (expr.getKind()) {
  case AffineExprKind::Constant: {
    Value v = e.c(cast<AffineConstantExpr>(expr).getValue());
    return {v, v, e.bit(true)};
  }
  case AffineExprKind::DimId:
    return {q0, q1, e.bit(true)};
  case AffineExprKind::SymbolId: {
    unsigned pos = cast<AffineSymbolExpr>(expr).getPosition();
    if (pos < syms.size())
      return syms[pos];
    Value zero = e.c(0);
    return {zero, zero, e.bit(true)};
  }
  default:
    break;
  }
  auto bin = cast<AffineBinaryOpExpr>(expr);
  EmittedBound a = boundOf(e, bin.getLHS(), q0, q1, syms);
  EmittedBound r = boundOf(e, bin.getRHS(), q0, q1, syms);
  Value known = e.andI(a.known, r.known);
  if (expr.getKind() == AffineExprKind::Add)
    return {e.clamp(e.add(a.lo, r.lo)), e.clamp(e.add(a.hi, r.hi)), known};
  // The other operations need a point on the right.
  Value p = r.lo;
  known = e.andI(known, e.cmp(P::eq, r.lo, r.hi));
  switch (expr.getKind()) {
  case AffineExprKind::Mul: {
    Value x = e.mulSat(a.lo, p), y = e.mulSat(a.hi, p);
    return {e.min(x, y), e.max(x, y), known};
  }
  case AffineExprKind::FloorDiv:
  case AffineExprKind::CeilDiv: {
    Value nonZero = e.cmp(P::ne, p, e.c(0));
    Value safeP = e.sel(nonZero, p, e.c(1));
    auto div = [&](Value v) -> Value {
      if (expr.getKind() == AffineExprKind::FloorDiv)
        return arith::FloorDivSIOp::create(e.b, e.loc, v, safeP);
      return arith::CeilDivSIOp::create(e.b, e.loc, v, safeP);
    };
    Value x = div(a.lo), y = div(a.hi);
    return {e.min(x, y), e.max(x, y), e.andI(known, nonZero)};
  }
  case AffineExprKind::Mod: {
    Value positive = e.cmp(P::sgt, p, e.c(0));
    Value safeP = e.sel(positive, p, e.c(1));
    Value dLo = arith::FloorDivSIOp::create(e.b, e.loc, a.lo, safeP);
    Value dHi = arith::FloorDivSIOp::create(e.b, e.loc, a.hi, safeP);
    Value noWrap = e.cmp(P::eq, dLo, dHi);
    Value mLo = e.sub(a.lo, arith::MulIOp::create(e.b, e.loc, dLo, safeP));
    Value mHi = e.sub(a.hi, arith::MulIOp::create(e.b, e.loc, dHi, safeP));
    return {e.sel(noWrap, mLo, e.c(0)), e.sel(noWrap, mHi, e.sub(safeP, e.c(1))),
            e.andI(known, positive)};
  }
  default:
    return {e.c(0), e.c(0), e.bit(false)};
  }
}

/// The values of an atom's read ([input, b | h | hkv | q...]): one
/// element (ids.read), or read at q its min and max over the rows
/// (ids.range, a scan); unknown beyond +-kMaxBoundRead, as on the host.
EmittedBound readRange(IntBuilder &e, ArrayAttr read, Value q0, Value q1,
                       const IdsContext &ids) {
  Value lo, hi;
  if (llvm::is_contained(read.getValue().drop_front(),
                         StringAttr::get(read.getContext(), "q"))) {
    std::tie(lo, hi) = ids.range(read, q0, q1);
  } else {
    lo = hi = ids.read(read);
  }
  Value inRange = e.andI(e.cmp(P::sge, lo, e.c(-kMaxBoundRead)),
                         e.cmp(P::sle, hi, e.c(kMaxBoundRead)));
  return {lo, hi, inRange};
}

struct Hull {
  Value lo, hi;
};

Hull hullOf(IntBuilder &e, MaskAttr node, Value q0, Value q1,
            ArrayRef<Value> syms, Value lk, EmittedRows &rows,
            const IdsContext *ids) {
  Value lkm1 = e.sub(lk, e.c(1));
  Hull all{e.c(0), lkm1}, none{e.c(0), e.c(-1)};
  switch (node.getKind()) {
  case MaskKind::always:
  case MaskKind::opaque:
    return all;
  case MaskKind::never:
    return none;
  case MaskKind::ids_eq: {
    // The ids of the rows: [min, max] of X over [q0, q1].
    if (!ids) {
      rows.atoms.push_back({e.c(0), e.c(0), e.bit(false)});
    } else {
      auto [lo, hi] = ids->range(cast<ArrayAttr>(node.getTerms()[0]), q0, q1);
      rows.atoms.push_back({lo, hi, e.bit(true)});
    }
    return all;
  }
  case MaskKind::kv_ge:
  case MaskKind::kv_le:
  case MaskKind::q_pred: {
    // The bound's reads (kv_len[b], len[q]) are symbols after the ten.
    SmallVector<EmittedBound> withReads;
    for (Value v : syms)
      withReads.push_back({v, v, e.bit(true)});
    bool readable = true;
    for (Attribute r : node.getTerms()) {
      readable = readable && ids && ids->read && ids->range;
      withReads.push_back(readable ? readRange(e, cast<ArrayAttr>(r), q0, q1, *ids)
                                   : EmittedBound{e.c(0), e.c(0), e.bit(false)});
    }
    EmittedBound r = boundOf(e, node.getBoundExpr(), q0, q1, withReads);
    if (!readable)
      r.known = e.bit(false);
    rows.atoms.push_back(r);
    Hull h;
    if (node.getKind() == MaskKind::kv_ge) {
      h = {e.max(r.lo, e.c(0)), lkm1};
    } else if (node.getKind() == MaskKind::kv_le) {
      h = {e.c(0), e.min(r.hi, lkm1)};
    } else {
      Value some = e.cmp(P::sge, r.hi, e.c(0));
      h = {e.c(0), e.sel(some, lkm1, e.c(-1))};
    }
    return {e.sel(r.known, h.lo, all.lo), e.sel(r.known, h.hi, all.hi)};
  }
  case MaskKind::all_of:
  case MaskKind::any_of: {
    bool isAnd = node.getKind() == MaskKind::all_of;
    Hull acc = isAnd ? all : none;
    for (Attribute t : node.getTerms()) {
      Hull h = hullOf(e, cast<MaskAttr>(t), q0, q1, syms, lk, rows, ids);
      if (isAnd) {
        acc = {e.max(acc.lo, h.lo), e.min(acc.hi, h.hi)};
        continue;
      }
      Value hNonEmpty = e.cmp(P::sle, h.lo, h.hi);
      Value accEmpty = e.cmp(P::sgt, acc.lo, acc.hi);
      Value uLo = e.sel(accEmpty, h.lo, e.min(acc.lo, h.lo));
      Value uHi = e.sel(accEmpty, h.hi, e.max(acc.hi, h.hi));
      acc = {e.sel(hNonEmpty, uLo, acc.lo), e.sel(hNonEmpty, uHi, acc.hi)};
    }
    return acc;
  }
  }
  return all;
}

struct Flags {
  Value any, all;
};

Flags flagsOf(IntBuilder &e, MaskAttr node, const EmittedRows &rows,
              size_t &atom, unsigned &idsAtom, Value k0, Value k1,
              const IdsContext *ids) {
  switch (node.getKind()) {
  case MaskKind::always:
    return {e.bit(true), e.bit(true)};
  case MaskKind::never:
    return {e.bit(false), e.bit(false)};
  case MaskKind::opaque:
    return {e.bit(true), e.bit(false)};
  case MaskKind::ids_eq: {
    // (the id ranges of rows and keys meet, both are one and the same id)
    const EmittedBound &x = rows.atoms[atom++];
    unsigned n = idsAtom++;
    if (!ids)
      return {e.bit(true), e.bit(false)};
    auto [ylo, yhi] = ids->keyRange(n, k0, k1);
    Value meet = e.andI(e.cmp(P::sle, x.lo, yhi), e.cmp(P::sle, ylo, x.hi));
    Value one = e.andI(e.andI(e.cmp(P::eq, x.lo, x.hi), e.cmp(P::eq, ylo, yhi)),
                       e.cmp(P::eq, x.lo, ylo));
    return {meet, one};
  }
  case MaskKind::all_of:
  case MaskKind::any_of: {
    bool isAnd = node.getKind() == MaskKind::all_of;
    Flags acc{e.bit(isAnd), e.bit(isAnd)};
    for (Attribute t : node.getTerms()) {
      Flags f = flagsOf(e, cast<MaskAttr>(t), rows, atom, idsAtom, k0, k1, ids);
      acc = isAnd ? Flags{e.andI(acc.any, f.any), e.andI(acc.all, f.all)}
                  : Flags{e.orI(acc.any, f.any), e.orI(acc.all, f.all)};
    }
    return acc;
  }
  default: {
    const EmittedBound &r = rows.atoms[atom++];
    Flags f;
    if (node.getKind() == MaskKind::kv_ge)
      f = {e.cmp(P::sge, k1, r.lo), e.cmp(P::sge, k0, r.hi)};
    else if (node.getKind() == MaskKind::kv_le)
      f = {e.cmp(P::sle, k0, r.hi), e.cmp(P::sle, k1, r.lo)};
    else
      f = {e.cmp(P::sge, r.hi, e.c(0)), e.cmp(P::sge, r.lo, e.c(0))};
    // Unknown: (true, false).
    return {e.orI(f.any, e.notI(r.known)), e.andI(f.all, r.known)};
  }
  }
}
} // namespace

EmittedRows mlir::attn::emitRowBlock(OpBuilder &b, Location loc, MaskAttr mask,
                                     Value q0, Value q1,
                                     ArrayRef<Value> symbols,
                                     const IdsContext *ids) {
  IntBuilder e{b, loc};
  EmittedRows rows;
  Hull h = hullOf(e, mask, q0, q1, symbols, symbols[7], rows, ids);
  rows.hullLo = h.lo;
  rows.hullHi = h.hi;
  return rows;
}

Value mlir::attn::emitTileKind(OpBuilder &b, Location loc, MaskAttr mask,
                               const EmittedRows &rows, Value k0, Value k1,
                               const IdsContext *ids) {
  IntBuilder e{b, loc};
  size_t atom = 0;
  unsigned idsAtom = 0;
  Flags f = flagsOf(e, mask, rows, atom, idsAtom, k0, k1, ids);
  Value outside = e.orI(e.cmp(P::slt, k1, rows.hullLo),
                        e.cmp(P::sgt, k0, rows.hullHi));
  Value empty = e.orI(outside, e.notI(f.any));
  Value kind = e.sel(f.all, e.c(kTileFull), e.c(kTilePartial));
  return e.sel(empty, e.c(kTileEmpty), kind);
}

