//===- SpecInterpreter.cpp - Evaluate spec regions on the host ------------===//
//
// Walks the single block of a spec region once per element, op by op, with a
// map from SSA values to scalars. Slow, simple and obviously right: it is the
// reference, not the fast path.
//
//===----------------------------------------------------------------------===//
#include "attnc/Passes/SpecInterpreter.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;

SpecInterpreter::SpecInterpreter(SpecOp spec, ProblemSizes sizes,
                                 InputReader inputs)
    : spec(spec), sizes(sizes), inputs(std::move(inputs)) {}

namespace {
int64_t floorDiv(int64_t a, int64_t b) {
  if (b == -1)
    return a == INT64_MIN ? INT64_MIN : -a; // wraps like the hardware
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0)))
    --q;
  return q;
}
int64_t floorMod(int64_t a, int64_t b) {
  if (b == -1)
    return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0)))
    r += b;
  return r;
}
int64_t wrapAdd(int64_t a, int64_t b) {
  return int64_t(uint64_t(a) + uint64_t(b));
}
int64_t wrapSub(int64_t a, int64_t b) {
  return int64_t(uint64_t(a) - uint64_t(b));
}
int64_t wrapMul(int64_t a, int64_t b) {
  return int64_t(uint64_t(a) * uint64_t(b));
}
} // namespace

std::optional<Scalar> SpecInterpreter::run(Region &region, Element e,
                                           double scoreValue) {
  if (region.empty()) {
    errorMessage = "empty region";
    return std::nullopt;
  }
  DenseMap<Value, Scalar> env;
  auto get = [&](Value v) { return env.lookup(v); };
  auto fail = [&](const std::string &msg) -> std::optional<Scalar> {
    errorMessage = msg;
    return std::nullopt;
  };
  for (Operation &op : region.front()) {
    if (auto y = dyn_cast<YieldOp>(op))
      return get(y.getValue());
    Scalar r;
    bool ok = true;
    std::string err;
    auto I = [&](unsigned k) { return get(op.getOperand(k)).i; };
    auto F = [&](unsigned k) { return get(op.getOperand(k)).f; };
    auto B = [&](unsigned k) { return get(op.getOperand(k)).b; };
    llvm::TypeSwitch<Operation *>(&op)
        .Case([&](arith::ConstantOp c) {
          Attribute v = c.getValue();
          if (auto b = dyn_cast<BoolAttr>(v))
            r = Scalar::ofBool(b.getValue());
          else if (auto i = dyn_cast<IntegerAttr>(v))
            r = i.getType().isInteger(1) ? Scalar::ofBool(i.getInt() != 0)
                                         : Scalar::ofInt(i.getInt());
          else if (auto f = dyn_cast<FloatAttr>(v))
            r = Scalar::ofFloat(f.getValueAsDouble());
          else
            ok = false, err = "unsupported constant";
        })
        .Case([&](IndexOp x) {
          switch (x.getVar()) {
          case IndexVar::b: r = Scalar::ofInt(sizes.b); break;
          case IndexVar::h: r = Scalar::ofInt(sizes.h); break;
          case IndexVar::hkv: r = Scalar::ofInt(sizes.hkv()); break;
          case IndexVar::q: r = Scalar::ofInt(e.q); break;
          case IndexVar::kv: r = Scalar::ofInt(e.kv); break;
          }
        })
        .Case([&](DimOp x) {
          std::vector<int64_t> syms = sizes.symbols();
          r = Scalar::ofInt(syms[3 + static_cast<unsigned>(x.getVar())]);
        })
        .Case([&](ParamOp x) {
          ParamAttr decl = spec.lookupParam(x.getName());
          TypedAttr v = decl ? decl.getValue() : TypedAttr();
          if (!v) {
            ok = false;
            err = "param '" + x.getName().str() + "' has no value";
          } else if (auto b = dyn_cast<BoolAttr>(v)) {
            r = Scalar::ofBool(b.getValue());
          } else if (auto i = dyn_cast<IntegerAttr>(v)) {
            r = Scalar::ofInt(i.getInt());
          } else {
            r = Scalar::ofFloat(cast<FloatAttr>(v).getValueAsDouble());
          }
        })
        .Case([&](ScoreOp) { r = Scalar::ofFloat(scoreValue); })
        .Case([&](ReadOp x) {
          SmallVector<int64_t> idx;
          for (Value v : x.getIndices())
            idx.push_back(get(v).i);
          std::optional<Scalar> v =
              inputs ? inputs(x.getInput(), idx) : std::nullopt;
          if (!v) {
            ok = false;
            err = "cannot read input '" + x.getInput().str() +
                  "' at the index given";
          } else {
            r = *v;
          }
        })
        .Case([&](arith::AddIOp) { r = Scalar::ofInt(wrapAdd(I(0), I(1))); })
        .Case([&](arith::SubIOp) { r = Scalar::ofInt(wrapSub(I(0), I(1))); })
        .Case([&](arith::MulIOp) { r = Scalar::ofInt(wrapMul(I(0), I(1))); })
        .Case([&](arith::FloorDivSIOp) {
          if (I(1) == 0)
            ok = false, err = "integer division by zero";
          else
            r = Scalar::ofInt(floorDiv(I(0), I(1)));
        })
        .Case([&](FloorModOp) {
          if (I(1) == 0)
            ok = false, err = "integer modulo by zero";
          else
            r = Scalar::ofInt(floorMod(I(0), I(1)));
        })
        .Case([&](arith::MinSIOp) { r = Scalar::ofInt(std::min(I(0), I(1))); })
        .Case([&](arith::MaxSIOp) { r = Scalar::ofInt(std::max(I(0), I(1))); })
        .Case([&](math::AbsIOp) {
          r = Scalar::ofInt(I(0) < 0 ? wrapSub(0, I(0)) : I(0));
        })
        .Case([&](arith::AddFOp) { r = Scalar::ofFloat(F(0) + F(1)); })
        .Case([&](arith::SubFOp) { r = Scalar::ofFloat(F(0) - F(1)); })
        .Case([&](arith::MulFOp) { r = Scalar::ofFloat(F(0) * F(1)); })
        .Case([&](arith::DivFOp) { r = Scalar::ofFloat(F(0) / F(1)); })
        .Case([&](arith::RemFOp) { r = Scalar::ofFloat(std::fmod(F(0), F(1))); })
        .Case([&](arith::NegFOp) { r = Scalar::ofFloat(-F(0)); })
        .Case([&](arith::MinimumFOp) {
          double a = F(0), b = F(1);
          r = Scalar::ofFloat(std::isnan(a) || std::isnan(b) ? NAN
                                                             : std::min(a, b));
        })
        .Case([&](arith::MaximumFOp) {
          double a = F(0), b = F(1);
          r = Scalar::ofFloat(std::isnan(a) || std::isnan(b) ? NAN
                                                             : std::max(a, b));
        })
        .Case([&](math::ExpOp) { r = Scalar::ofFloat(std::exp(F(0))); })
        .Case([&](math::LogOp) { r = Scalar::ofFloat(std::log(F(0))); })
        .Case([&](math::SqrtOp) { r = Scalar::ofFloat(std::sqrt(F(0))); })
        .Case([&](math::TanhOp) { r = Scalar::ofFloat(std::tanh(F(0))); })
        .Case([&](math::SinOp) { r = Scalar::ofFloat(std::sin(F(0))); })
        .Case([&](math::CosOp) { r = Scalar::ofFloat(std::cos(F(0))); })
        .Case([&](math::FloorOp) { r = Scalar::ofFloat(std::floor(F(0))); })
        .Case([&](math::CeilOp) { r = Scalar::ofFloat(std::ceil(F(0))); })
        .Case([&](math::AbsFOp) { r = Scalar::ofFloat(std::fabs(F(0))); })
        .Case([&](math::PowFOp) { r = Scalar::ofFloat(std::pow(F(0), F(1))); })
        .Case([&](arith::SIToFPOp) { r = Scalar::ofFloat(double(I(0))); })
        .Case([&](arith::UIToFPOp) { r = Scalar::ofFloat(B(0) ? 1.0 : 0.0); })
        .Case([&](arith::ExtUIOp) { r = Scalar::ofInt(B(0) ? 1 : 0); })
        .Case([&](arith::FPToSIOp) {
          // Truncation toward zero; out-of-range values saturate (the
          // generated code must agree: it clamps before converting).
          double v = F(0);
          if (std::isnan(v))
            r = Scalar::ofInt(0);
          else if (v >= 9.2233720368547758e18)
            r = Scalar::ofInt(INT64_MAX);
          else if (v <= -9.2233720368547758e18)
            r = Scalar::ofInt(INT64_MIN);
          else
            r = Scalar::ofInt(int64_t(v));
        })
        .Case([&](arith::CmpIOp c) {
          bool res = false;
          if (c.getLhs().getType().isInteger(1)) {
            bool a = B(0), b = B(1);
            res = c.getPredicate() == arith::CmpIPredicate::eq ? a == b
                                                                : a != b;
          } else {
            int64_t a = I(0), b = I(1);
            switch (c.getPredicate()) {
            case arith::CmpIPredicate::eq: res = a == b; break;
            case arith::CmpIPredicate::ne: res = a != b; break;
            case arith::CmpIPredicate::slt: res = a < b; break;
            case arith::CmpIPredicate::sle: res = a <= b; break;
            case arith::CmpIPredicate::sgt: res = a > b; break;
            case arith::CmpIPredicate::sge: res = a >= b; break;
            case arith::CmpIPredicate::ult: res = uint64_t(a) < uint64_t(b); break;
            case arith::CmpIPredicate::ule: res = uint64_t(a) <= uint64_t(b); break;
            case arith::CmpIPredicate::ugt: res = uint64_t(a) > uint64_t(b); break;
            case arith::CmpIPredicate::uge: res = uint64_t(a) >= uint64_t(b); break;
            }
          }
          r = Scalar::ofBool(res);
        })
        .Case([&](arith::CmpFOp c) {
          double a = F(0), b = F(1);
          bool unordered = std::isnan(a) || std::isnan(b);
          bool res = false;
          switch (c.getPredicate()) {
          case arith::CmpFPredicate::OEQ: res = !unordered && a == b; break;
          case arith::CmpFPredicate::ONE: res = !unordered && a != b; break;
          case arith::CmpFPredicate::OLT: res = !unordered && a < b; break;
          case arith::CmpFPredicate::OLE: res = !unordered && a <= b; break;
          case arith::CmpFPredicate::OGT: res = !unordered && a > b; break;
          case arith::CmpFPredicate::OGE: res = !unordered && a >= b; break;
          case arith::CmpFPredicate::UNE: res = unordered || a != b; break;
          case arith::CmpFPredicate::UEQ: res = unordered || a == b; break;
          case arith::CmpFPredicate::ULT: res = unordered || a < b; break;
          case arith::CmpFPredicate::ULE: res = unordered || a <= b; break;
          case arith::CmpFPredicate::UGT: res = unordered || a > b; break;
          case arith::CmpFPredicate::UGE: res = unordered || a >= b; break;
          case arith::CmpFPredicate::ORD: res = !unordered; break;
          case arith::CmpFPredicate::UNO: res = unordered; break;
          case arith::CmpFPredicate::AlwaysTrue: res = true; break;
          case arith::CmpFPredicate::AlwaysFalse: res = false; break;
          }
          r = Scalar::ofBool(res);
        })
        .Case([&](arith::AndIOp) { r = Scalar::ofBool(B(0) && B(1)); })
        .Case([&](arith::OrIOp) { r = Scalar::ofBool(B(0) || B(1)); })
        .Case([&](arith::XOrIOp) { r = Scalar::ofBool(B(0) != B(1)); })
        .Case([&](arith::SelectOp s) {
          r = B(0) ? get(s.getTrueValue()) : get(s.getFalseValue());
        })
        .Default([&](Operation *other) {
          ok = false;
          err = "the interpreter does not support '" +
                other->getName().getStringRef().str() + "'";
        });
    if (!ok)
      return fail(err);
    env[op.getResult(0)] = r;
  }
  return fail("region does not end in attn.yield");
}

std::optional<bool> SpecInterpreter::mask(Element e) {
  std::optional<Scalar> v = run(spec.getMask(), e, 0);
  return v ? std::optional<bool>(v->b) : std::nullopt;
}
std::optional<double> SpecInterpreter::scale(Element e) {
  std::optional<Scalar> v = run(spec.getScale(), e, 0);
  return v ? std::optional<double>(v->f) : std::nullopt;
}
std::optional<double> SpecInterpreter::score(Element e, double scaledLogit) {
  std::optional<Scalar> v = run(spec.getScore(), e, scaledLogit);
  return v ? std::optional<double>(v->f) : std::nullopt;
}
std::optional<double> SpecInterpreter::bias(Element e) {
  std::optional<Scalar> v = run(spec.getBias(), e, 0);
  return v ? std::optional<double>(v->f) : std::nullopt;
}
