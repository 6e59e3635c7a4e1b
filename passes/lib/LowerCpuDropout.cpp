//===- LowerCpuDropout.cpp - attn-lower-cpu: the dropout mask as arith ----===//
//
// softmax(dropout = p) draws its mask from Philox4x32-10 exactly as
// runtime/include/attnc/Runtime/Dropout.h defines it (the CUDA kernels
// paste that file; the float64 reference calls it), so one seed gives one
// mask on every back end:
//   key = (seed lo, seed hi), counter = (kv >> 2, q, (batch + b) HQ + h,
//   offset); r = word (kv & 3) of philox4x32_10(counter, key);
//   factor = r >= floor(p 2^32) ? 1 / (1 - p) : 0
// Each round: (hi0, lo0) = M0 c0, (hi1, lo1) = M1 c2 (32 x 32 -> 64 bits,
// arith.mului_extended); c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
// k += (W0, W1).
//
//===----------------------------------------------------------------------===//
#include "FlashBuilder.h"

#include "attnc/Runtime/Dropout.h"

#include <array>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::flash;

DropoutCall mlir::attn::flash::loadDropoutCall(FlashBuilder &f, Value meta) {
  std::optional<APFloat> p = f.spec.getDropout();
  DropoutCall d;
  if (!p || p->convertToDouble() == 0)
    return d;
  OpBuilder &b = f.b;
  Location loc = f.loc;
  Type i32 = b.getI32Type();
  auto metaAt = [&](int64_t slot) { return f.load(meta, f.cx(slot)); };
  auto lo32 = [&](Value v) { return arith::TruncIOp::create(b, loc, i32, v).getResult(); };
  d.on = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, metaAt(kMetaDropout),
                               f.ci(0));
  d.seed = metaAt(kMetaDropoutSeed);
  d.seedLo = lo32(d.seed);
  d.seedHi = lo32(arith::ShRUIOp::create(b, loc, d.seed, f.ci(32)));
  d.offset64 = metaAt(kMetaDropoutOffset);
  d.offset = lo32(d.offset64);
  d.batch = metaAt(kMetaDropoutBatch);
  double prob = p->convertToDouble();
  d.threshold = arith::ConstantIntOp::create(b, loc, i32,
                                             int64_t(attnc_dropout_threshold(prob)));
  d.scale = f.cf(1.0 / (1.0 - prob));
  return d;
}

std::array<Value, 4> mlir::attn::flash::emitPhilox(FlashBuilder &f, const DropoutCall &d,
                                                   Value group, Value q, Value bh) {
  OpBuilder &b = f.b;
  Location loc = f.loc;
  Type i32 = b.getI32Type();
  auto c32 = [&](uint32_t v) {
    return arith::ConstantIntOp::create(b, loc, i32, int64_t(v)).getResult();
  };
  auto lo32 = [&](Value v) { return arith::TruncIOp::create(b, loc, i32, v).getResult(); };
  auto xorI = [&](Value x, Value y) { return arith::XOrIOp::create(b, loc, x, y).getResult(); };
  std::array<Value, 4> c = {lo32(group), lo32(q), lo32(bh), d.offset};
  Value k0 = d.seedLo, k1 = d.seedHi;
  Value m0 = c32(ATTNC_PHILOX_M0), m1 = c32(ATTNC_PHILOX_M1);
  Value w0 = c32(ATTNC_PHILOX_W0), w1 = c32(ATTNC_PHILOX_W1);
  for (int round = 0; round < 10; ++round) {
    auto p0 = arith::MulUIExtendedOp::create(b, loc, m0, c[0]);
    auto p1 = arith::MulUIExtendedOp::create(b, loc, m1, c[2]);
    c = {xorI(xorI(p1.getHigh(), c[1]), k0), p1.getLow(), xorI(xorI(p0.getHigh(), c[3]), k1),
         p0.getLow()};
    if (round < 9) {
      k0 = arith::AddIOp::create(b, loc, k0, w0);
      k1 = arith::AddIOp::create(b, loc, k1, w1);
    }
  }
  return c;
}

Value mlir::attn::flash::emitDropoutWordFactor(FlashBuilder &f, const DropoutCall &d,
                                               Value word) {
  Value keep = arith::CmpIOp::create(f.b, f.loc, arith::CmpIPredicate::uge, word, d.threshold);
  return arith::SelectOp::create(f.b, f.loc, keep, d.scale, f.cf(0.0));
}

Value mlir::attn::flash::dropoutCounterBh(FlashBuilder &f, const DropoutCall &d, Value HQ,
                                          const RegionEnv &el) {
  return f.add(f.mul(f.add(d.batch, el.b), HQ), el.h);
}

Value mlir::attn::flash::emitDropoutFactor(FlashBuilder &f, const DropoutCall &d, Value HQ,
                                           const RegionEnv &el) {
  OpBuilder &b = f.b;
  Location loc = f.loc;
  Type i32 = b.getI32Type();
  std::array<Value, 4> c =
      emitPhilox(f, d, arith::ShRUIOp::create(b, loc, el.kv, f.ci(2)), el.q,
                 dropoutCounterBh(f, d, HQ, el));
  // Word kv & 3 of the four.
  Value lane = arith::TruncIOp::create(b, loc, i32,
                                       arith::AndIOp::create(b, loc, el.kv, f.ci(3)));
  auto is = [&](int64_t v) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, lane,
                                 arith::ConstantIntOp::create(b, loc, i32, v))
        .getResult();
  };
  Value r = arith::SelectOp::create(
      b, loc, is(0), c[0],
      arith::SelectOp::create(b, loc, is(1), c[1],
                              arith::SelectOp::create(b, loc, is(2), c[2], c[3])));
  return emitDropoutWordFactor(f, d, r);
}
