//===- ExpandMath.cpp - attn-expand-math: exp and tanh as arith code -----===//
//
// The pass of Passes.td (why: libm calls in the pair loops) and expF32,
// the polynomial exp that attn-lower-cpu's backward helper also uses for
// its normalisation.
//
//===----------------------------------------------------------------------===//
#include "LowerCpu.h"
#include "attnc/Passes/Passes.h"

#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <limits>

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNEXPANDMATHPASS
#include "attnc/Passes/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn::flash;

Value mlir::attn::flash::expF32(OpBuilder &b, Location loc, Value x,
                                bool fullRange) {
  Type f32 = b.getF32Type();
  auto cf = [&](double v) {
    return arith::ConstantOp::create(b, loc, FloatAttr::get(f32, v)).getResult();
  };
  auto fm = arith::FastMathFlagsAttr::get(b.getContext(),
                                          arith::FastMathFlags::contract);
  auto mul = [&](Value a, Value c) { return arith::MulFOp::create(b, loc, a, c, fm).getResult(); };
  auto add = [&](Value a, Value c) { return arith::AddFOp::create(b, loc, a, c, fm).getResult(); };
  auto sub = [&](Value a, Value c) { return arith::SubFOp::create(b, loc, a, c, fm).getResult(); };
  const double overflow = 88.72283935546875;
  const double lo = fullRange ? -103.97 : -87.33;
  const double hi = fullRange ? overflow : 88.37;
  Value xc = arith::MinNumFOp::create(b, loc, x, cf(hi));
  xc = arith::MaxNumFOp::create(b, loc, xc, cf(lo));
  Value n = math::RoundEvenOp::create(b, loc, mul(xc, cf(1.44269504088896341)));
  Value r = sub(xc, mul(n, cf(0.693359375)));
  r = sub(r, mul(n, cf(-2.12194440e-4)));
  Value y = cf(1.9875691500e-4);
  for (double c : {1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                   1.6666665459e-1, 5.0000001201e-1})
    y = add(mul(y, r), cf(c));
  y = add(mul(y, mul(r, r)), add(r, cf(1)));
  Type i32 = b.getI32Type();
  auto i32c = [&](int64_t v) { return arith::ConstantIntOp::create(b, loc, i32, v); };
  auto pow2 = [&](Value k) { // 2^k for k in [-126, 127]
    Value bits = arith::AddIOp::create(b, loc, k, i32c(127));
    bits = arith::ShLIOp::create(b, loc, bits, i32c(23));
    return arith::BitcastOp::create(b, loc, f32, bits).getResult();
  };
  Value k = arith::FPToSIOp::create(b, loc, i32, n);
  Value e;
  if (fullRange) {
    Value k1 = arith::ShRSIOp::create(b, loc, k, i32c(1));
    Value k2 = arith::SubIOp::create(b, loc, k, k1);
    e = arith::MulFOp::create(b, loc, arith::MulFOp::create(b, loc, y, pow2(k1)),
                              pow2(k2));
  } else {
    e = mul(y, pow2(k));
  }
  using P = arith::CmpFPredicate;
  auto select = [&](P pred, double bound, Value then, Value otherwise) {
    Value c = arith::CmpFOp::create(b, loc, pred, x, cf(bound));
    return arith::SelectOp::create(b, loc, c, then, otherwise).getResult();
  };
  e = select(P::OLT, lo, cf(0), e);
  e = select(P::OGT, overflow, cf(std::numeric_limits<double>::infinity()), e);
  Value nan = arith::CmpFOp::create(b, loc, P::UNO, x, x);
  return arith::SelectOp::create(b, loc, nan, x, e);
}


namespace {
struct AttnExpandMath
    : public mlir::attn::impl::AttnExpandMathPassBase<AttnExpandMath> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<math::ExpOp> exps;
    module.walk([&](math::ExpOp op) {
      if (op.getType().isF32())
        exps.push_back(op);
    });
    for (math::ExpOp op : exps) {
      OpBuilder b(op);
      op.replaceAllUsesWith(
          expF32(b, op.getLoc(), op.getOperand(), /*fullRange=*/true));
      op.erase();
    }
    RewritePatternSet patterns(module.getContext());
    populatePolynomialApproximateTanhPattern(patterns);
    if (failed(applyPatternsGreedily(module, std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
