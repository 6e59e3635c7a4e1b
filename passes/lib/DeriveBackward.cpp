//===- DeriveBackward.cpp - Reverse-mode derivatives of spec regions ------===//
//
// attn-derive-backward: for each spec, the gradient regions (AttnOps.td).
// A gradient region is its primal region's ops, cloned, followed by the
// adjoint sweep in reverse order: every float value v gets
//   adj(v) = sum over its uses u of adj(u) * d u / d v,
// starting from adj(z) = attn.adjoint for the primal's result z. The score
// region yields adj(attn.score) = dL/ds; a float input read gets
// attn.accumulate of its adjoint.
//
// The evaluation rule (DESIGN.md) carries over: only the chosen arm of
// `c ? a : b` is evaluated. A value used only on an arm is "guarded" by the
// arm's condition, and every contribution it sends on is
// select(guard, contribution, 0): a derivative of an arm that is not taken
// (1 / x at x = 0, a read out of range) is then neither evaluated by the
// lowering nor able to turn a zero adjoint into NaN.
//
//===----------------------------------------------------------------------===//
#include "attnc/Passes/DeriveBackward.h"
#include "attnc/Passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/TypeSwitch.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNDERIVEBACKWARDPASS
#include "attnc/Passes/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {
/// ln 2: d exp2(x) = exp2(x) ln 2 dx, d log2(x) = dx / (x ln 2).
constexpr double kLn2 = 0.6931471805599453094;

bool isConstantFloat(Value v, double x) {
  FloatAttr attr;
  return matchPattern(v, m_Constant(&attr)) &&
         attr.getValueAsDouble() == x;
}

/// Builds one gradient region from its primal region.
class RegionDifferentiator {
public:
  RegionDifferentiator(Region &primal, Region &grad)
      : primal(primal), grad(grad),
        b(primal.getContext()), loc(primal.getLoc()) {}

  /// Fills `grad`; it yields dL/ds when `yieldScore`, nothing otherwise.
  LogicalResult run(bool yieldScore);

private:
  // Arithmetic that folds the constants 0 and 1 it is given.
  Value cst(double x) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(x));
  }
  Value mul(Value x, Value y) {
    if (isConstantFloat(x, 1))
      return y;
    if (isConstantFloat(y, 1))
      return x;
    return arith::MulFOp::create(b, loc, x, y);
  }
  Value div(Value x, Value y) { return arith::DivFOp::create(b, loc, x, y); }
  Value neg(Value x) { return arith::NegFOp::create(b, loc, x); }
  Value sub(Value x, Value y) { return arith::SubFOp::create(b, loc, x, y); }
  Value cmp(arith::CmpFPredicate p, Value x, Value y) {
    return arith::CmpFOp::create(b, loc, p, x, y);
  }
  Value select(Value c, Value x, Value y) {
    return arith::SelectOp::create(b, loc, c, x, y);
  }
  Value notOf(Value c) {
    return arith::XOrIOp::create(
        b, loc, c, arith::ConstantOp::create(b, loc, b.getBoolAttr(true)));
  }
  /// Guards: a null Value is "always".
  Value andGuard(Value g, Value c) {
    return g ? arith::AndIOp::create(b, loc, g, c).getResult() : c;
  }

  /// adj(v) += contribution; guard(v) |= guard.
  void send(Value v, Value contribution, Value guard);
  /// Sends x * derivative of op (a non-linear rule), under op's guard.
  void sendScaled(Operation *op, Value operand, Value contribution);
  LogicalResult visit(Operation *op, Value adj);
  bool visitSigmoid(arith::DivFOp div, Value adj);
  LogicalResult sendPowExponent(math::PowFOp pow, Value adj);
  /// Marks the float values that depend on attn.score or a float read.
  void findActive(Block &block);

  Region &primal, &grad;
  OpBuilder b;
  Location loc;
  DenseMap<Value, Value> adjoints;
  /// Per value with an adjoint: the condition under which it is evaluated
  /// on a path to the result (absent: always).
  DenseMap<Value, Value> guards;
  DenseSet<Value> alwaysEvaluated;
  /// Values whose adjoint is wanted (findActive); others get none.
  DenseSet<Value> active;
  SmallVector<Value> scoreAdjoints;
};

void RegionDifferentiator::send(Value v, Value contribution, Value guard) {
  auto [it, inserted] = adjoints.try_emplace(v, contribution);
  if (!inserted)
    it->second = arith::AddFOp::create(b, loc, it->second, contribution);
  if (!guard || alwaysEvaluated.contains(v)) {
    alwaysEvaluated.insert(v);
    guards.erase(v);
    return;
  }
  auto [g, first] = guards.try_emplace(v, guard);
  if (!first)
    g->second = arith::OrIOp::create(b, loc, g->second, guard);
}

void RegionDifferentiator::sendScaled(Operation *op, Value operand,
                                      Value contribution) {
  Value g = guards.lookup(op->getResult(0));
  if (g)
    contribution = select(g, contribution, cst(0));
  send(operand, contribution, g);
}

/// sigmoid(x) is expanded to 1 / (1 + exp(-x)) (MLIRGen.cpp); its chain
/// rule through exp overflows (0 * inf) for x < -88, so it gets its own:
/// d sigmoid(x) / dx = s sigmoid(-x), with sigmoid(-x) = 1 / (1 + exp(x))
/// rather than 1 - s, which loses every digit in float32 where s is near 1.
bool RegionDifferentiator::visitSigmoid(arith::DivFOp div, Value adj) {
  if (!isConstantFloat(div.getLhs(), 1))
    return false;
  auto add = div.getRhs().getDefiningOp<arith::AddFOp>();
  if (!add)
    return false;
  Value other = isConstantFloat(add.getLhs(), 1)   ? add.getRhs()
                : isConstantFloat(add.getRhs(), 1) ? add.getLhs()
                                                   : Value();
  auto exp = other ? other.getDefiningOp<math::ExpOp>() : math::ExpOp();
  auto negx = exp ? exp.getOperand().getDefiningOp<arith::NegFOp>()
                  : arith::NegFOp();
  if (!negx)
    return false;
  Value s = div.getResult(), x = negx.getOperand();
  Value ex = math::ExpOp::create(b, loc, x);
  Value sNeg = this->div(cst(1), arith::AddFOp::create(b, loc, cst(1), ex));
  sendScaled(div, x, mul(adj, mul(s, sNeg)));
  return true;
}

/// d x^y / dy = x^y ln x, 0 where x == 0 and y >= 0 (PyTorch's choice).
LogicalResult RegionDifferentiator::sendPowExponent(math::PowFOp o, Value adj) {
  using P = arith::CmpFPredicate;
  Value x = o.getLhs(), y = o.getRhs();
  if (!active.contains(y))
    return success();
  Value py = mul(o.getResult(), math::LogOp::create(b, loc, x));
  Value edge = arith::AndIOp::create(b, loc, cmp(P::OEQ, x, cst(0)),
                                     cmp(P::OGE, y, cst(0)));
  sendScaled(o, y, mul(adj, select(edge, cst(0), py)));
  return success();
}

void RegionDifferentiator::findActive(Block &block) {
  for (Operation &op : block) {
    if (op.getNumResults() != 1 || !op.getResult(0).getType().isF32())
      continue;
    bool source = isa<ScoreOp, ReadOp>(op);
    bool fromActive = llvm::any_of(op.getOperands(), [&](Value v) {
      return active.contains(v);
    });
    if (source || fromActive)
      active.insert(op.getResult(0));
  }
}

/// The chain rule of one op: what it sends to each active float operand.
LogicalResult RegionDifferentiator::visit(Operation *op, Value adj) {
  Value g = guards.lookup(op->getResult(0));
  auto on = [&](Value v) { return active.contains(v); };
  auto linear = [&](Value v, Value c) { send(v, c, g); };
  using P = arith::CmpFPredicate;
  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](arith::AddFOp o) {
        if (on(o.getLhs()))
          linear(o.getLhs(), adj);
        if (on(o.getRhs()))
          linear(o.getRhs(), adj);
        return success();
      })
      .Case([&](arith::SubFOp o) {
        if (on(o.getLhs()))
          linear(o.getLhs(), adj);
        if (on(o.getRhs()))
          linear(o.getRhs(), neg(adj));
        return success();
      })
      .Case([&](arith::NegFOp o) {
        linear(o.getOperand(), neg(adj));
        return success();
      })
      .Case([&](arith::MulFOp o) {
        if (on(o.getLhs()))
          sendScaled(o, o.getLhs(), mul(adj, o.getRhs()));
        if (on(o.getRhs()))
          sendScaled(o, o.getRhs(), mul(adj, o.getLhs()));
        return success();
      })
      .Case([&](arith::DivFOp o) {
        if (visitSigmoid(o, adj))
          return success();
        // d(x / y) = dx / y - (x / y) dy / y
        if (on(o.getLhs()))
          sendScaled(o, o.getLhs(), div(adj, o.getRhs()));
        if (on(o.getRhs()))
          sendScaled(o, o.getRhs(),
                     neg(div(mul(adj, o.getResult()), o.getRhs())));
        return success();
      })
      .Case([&](arith::RemFOp o) {
        // fmod(x, y) = x - trunc(x / y) y
        if (on(o.getLhs()))
          linear(o.getLhs(), adj);
        if (!on(o.getRhs()))
          return success();
        Value t = math::TruncOp::create(b, loc, div(o.getLhs(), o.getRhs()));
        sendScaled(o, o.getRhs(), neg(mul(adj, t)));
        return success();
      })
      .Case<arith::MinimumFOp, arith::MaximumFOp>([&](auto o) {
        // The selected operand gets it; a tie selects the first.
        bool isMin = isa<arith::MinimumFOp>(o.getOperation());
        Value first = cmp(isMin ? P::OLE : P::OGE, o.getLhs(), o.getRhs());
        if (on(o.getLhs()))
          linear(o.getLhs(), select(first, adj, cst(0)));
        if (on(o.getRhs()))
          linear(o.getRhs(), select(first, cst(0), adj));
        return success();
      })
      .Case([&](arith::SelectOp o) {
        // Only the chosen arm is evaluated: guard each arm by its condition.
        Value c = o.getCondition();
        if (on(o.getTrueValue()))
          send(o.getTrueValue(), select(c, adj, cst(0)), andGuard(g, c));
        if (on(o.getFalseValue()))
          send(o.getFalseValue(), select(c, cst(0), adj),
               andGuard(g, notOf(c)));
        return success();
      })
      .Case([&](math::ExpOp o) {
        sendScaled(o, o.getOperand(), mul(adj, o.getResult()));
        return success();
      })
      .Case([&](math::LogOp o) {
        sendScaled(o, o.getOperand(), div(adj, o.getOperand()));
        return success();
      })
      .Case([&](math::Exp2Op o) {
        sendScaled(o, o.getOperand(), mul(adj, mul(o.getResult(), cst(kLn2))));
        return success();
      })
      .Case([&](math::Log2Op o) {
        sendScaled(o, o.getOperand(), div(adj, mul(o.getOperand(), cst(kLn2))));
        return success();
      })
      .Case([&](math::SqrtOp o) {
        sendScaled(o, o.getOperand(), div(mul(adj, cst(0.5)), o.getResult()));
        return success();
      })
      .Case([&](math::TanhOp o) {
        // 1 - tanh(x)^2 is 0 in float32 once tanh(x) rounds to +-1 (|x| > 9),
        // where the true value is still ~1e-8; sech^2 x = 4u / (1 + u)^2
        // with u = exp(-2|x|) in (0, 1] keeps its digits and cannot overflow.
        Value x = o.getOperand();
        Value u = math::ExpOp::create(
            b, loc, mul(cst(-2), math::AbsFOp::create(b, loc, x)));
        Value onePlusU = arith::AddFOp::create(b, loc, cst(1), u);
        Value sech2 = div(mul(cst(4), u), mul(onePlusU, onePlusU));
        sendScaled(o, x, mul(adj, sech2));
        return success();
      })
      .Case([&](math::SinOp o) {
        Value c = math::CosOp::create(b, loc, o.getOperand());
        sendScaled(o, o.getOperand(), mul(adj, c));
        return success();
      })
      .Case([&](math::CosOp o) {
        Value s = math::SinOp::create(b, loc, o.getOperand());
        sendScaled(o, o.getOperand(), neg(mul(adj, s)));
        return success();
      })
      .Case([&](math::AbsFOp o) {
        // sign(x), 0 at 0 (as PyTorch).
        Value x = o.getOperand();
        Value s = select(cmp(P::OGT, x, cst(0)), adj,
                         select(cmp(P::OLT, x, cst(0)), neg(adj), cst(0)));
        sendScaled(o, x, s);
        return success();
      })
      .Case([&](math::PowFOp o) {
        // d/dx = y x^(y-1), 0 where y == 0 (PyTorch's choice).
        Value x = o.getLhs(), y = o.getRhs();
        if (!on(x))
          return sendPowExponent(o, adj);
        Value px = mul(y, math::PowFOp::create(b, loc, x, sub(y, cst(1))));
        px = select(cmp(P::OEQ, y, cst(0)), cst(0), px);
        sendScaled(o, x, mul(adj, px));
        return sendPowExponent(o, adj);
      })
      .Case([&](ReadOp o) {
        AccumulateOp::create(b, loc, o.getResult(), adj);
        return success();
      })
      .Case([&](ScoreOp) {
        scoreAdjoints.push_back(adj);
        return success();
      })
      // Piecewise constant or from ints: zero derivative.
      .Case<math::FloorOp, math::CeilOp, math::RoundOp, math::TruncOp, arith::SIToFPOp,
            arith::UIToFPOp, arith::ConstantOp, ParamOp>(
          [](Operation *) { return success(); })
      .Default([&](Operation *other) {
        return other->emitOpError()
               << "has no derivative rule (attn-derive-backward)";
      });
}

LogicalResult RegionDifferentiator::run(bool yieldScore) {
  Block *block = new Block();
  grad.push_back(block);
  b.setInsertionPointToEnd(block);
  IRMapping map;
  Block &body = primal.front();
  for (Operation &op : body.without_terminator())
    b.clone(op, map);
  Value result = map.lookupOrDefault(SpecOp::getYielded(primal));
  findActive(*block);
  Value seed = AdjointOp::create(b, loc);
  if (active.contains(result))
    send(result, seed, Value());

  // Reverse order: every use of a value is visited before its definition.
  SmallVector<Operation *> ops;
  for (Operation &op : *block)
    ops.push_back(&op);
  for (Operation *op : llvm::reverse(ops)) {
    if (op->getNumResults() != 1 || !op->getResult(0).getType().isF32())
      continue;
    Value adj = adjoints.lookup(op->getResult(0));
    if (adj && failed(visit(op, adj)))
      return failure();
  }
  if (yieldScore) {
    Value total;
    for (Value a : scoreAdjoints)
      total = total ? arith::AddFOp::create(b, loc, total, a).getResult() : a;
    YieldOp::create(b, loc, total ? total : cst(0));
  } else {
    YieldOp::create(b, loc, Value());
  }
  // The primal ops that only led to the primal result are dead now.
  for (Operation &op : llvm::make_early_inc_range(llvm::reverse(*block)))
    if (isOpTriviallyDead(&op))
      op.erase();
  return success();
}

bool readsFloatInput(Region &region) {
  if (region.empty())
    return false;
  WalkResult r = region.walk([](ReadOp read) {
    return read.getType().isF32() ? WalkResult::interrupt()
                                  : WalkResult::advance();
  });
  return r.wasInterrupted();
}

void clearRegion(Region &region) {
  region.dropAllReferences();
  region.getBlocks().clear();
}

struct AttnDeriveBackward
    : public mlir::attn::impl::AttnDeriveBackwardPassBase<AttnDeriveBackward> {
  void runOnOperation() override {
    WalkResult r = getOperation().walk([](SpecOp spec) {
      return failed(deriveBackward(spec)) ? WalkResult::interrupt()
                                          : WalkResult::advance();
    });
    if (r.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace

LogicalResult mlir::attn::deriveBackward(SpecOp spec) {
  Region *grads[] = {&spec.getScoreGrad(), &spec.getScaleGrad(),
                     &spec.getBiasGrad(), &spec.getSinkGrad()};
  for (Region *g : grads)
    clearRegion(*g);
  bool ok = succeeded(RegionDifferentiator(spec.getScore(), spec.getScoreGrad())
                          .run(/*yieldScore=*/true));
  if (ok && readsFloatInput(spec.getScale()))
    ok = succeeded(RegionDifferentiator(spec.getScale(), spec.getScaleGrad())
                       .run(/*yieldScore=*/false));
  if (ok && spec.getNormalize() == NormalizeKind::sigmoid &&
      readsFloatInput(spec.getBias()))
    ok = succeeded(RegionDifferentiator(spec.getBias(), spec.getBiasGrad())
                       .run(/*yieldScore=*/false));
  if (ok && readsFloatInput(spec.getSink()))
    ok = succeeded(RegionDifferentiator(spec.getSink(), spec.getSinkGrad())
                       .run(/*yieldScore=*/false));
  if (ok)
    return success();
  for (Region *g : grads)
    clearRegion(*g);
  return failure();
}

SmallVector<InputAttr> mlir::attn::differentiableInputs(SpecOp spec) {
  llvm::DenseSet<StringRef> read;
  Region *regions[] = {&spec.getScore(), &spec.getScale(), &spec.getBias(),
                       &spec.getSink()};
  for (Region *r : regions)
    r->walk([&](ReadOp op) {
      if (op.getType().isF32())
        read.insert(op.getInput());
    });
  SmallVector<InputAttr> out;
  if (ArrayAttr inputs = spec.getInputsAttr())
    for (Attribute a : inputs) {
      auto in = cast<InputAttr>(a);
      if (read.contains(in.getName().getValue()))
        out.push_back(in);
    }
  return out;
}
