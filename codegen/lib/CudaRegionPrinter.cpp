//===- CudaRegionPrinter.cpp - One spec region as CUDA C++ statements -----===//
//
// See CudaRegionPrinter.h. Every SSA value becomes a local of its C++ type;
// exact integer arithmetic wraps (through uint64_t) and floor division and
// modulo are checked helpers of the element prelude (CudaElementCode.cpp),
// so the exact form computes what the CPU kernels compute.
//
//===----------------------------------------------------------------------===//
#include "CudaRegionPrinter.h"

#include "attnc/Passes/RegionEmitter.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MathExtras.h"

#include <algorithm>
#include <cmath>

using namespace mlir;
using namespace mlir::attn;

namespace attnc::cudamod {
namespace {
constexpr int64_t kBig = int64_t(1) << 62; // ranges saturate here
constexpr int64_t kMaxLen = (int64_t(1) << 31) - 1;

int64_t sat(__int128 v) { return v < -kBig ? -kBig : v > kBig ? kBig : int64_t(v); }

/// The value of an arith.constant or of a param that has one.
TypedAttr constantValue(SpecOp spec, Value v) {
  Operation *d = v.getDefiningOp();
  if (auto c = dyn_cast_or_null<arith::ConstantOp>(d))
    return c.getValue();
  if (auto p = dyn_cast_or_null<ParamOp>(d))
    if (ParamAttr pa = spec.lookupParam(p.getName()))
      return pa.getValue();
  return {};
}

std::optional<int64_t> intConstant(SpecOp spec, Value v) {
  if (auto i = dyn_cast_or_null<IntegerAttr>(constantValue(spec, v)); i && i.getType().isInteger(64))
    return i.getInt();
  return std::nullopt;
}

std::optional<double> floatConstant(SpecOp spec, Value v) {
  if (auto f = dyn_cast_or_null<FloatAttr>(constantValue(spec, v)))
    return f.getValueAsDouble();
  return std::nullopt;
}

/// True if every index of `x` is the coordinate whose extent is the declared
/// dimension (b of B, h of HQ, hkv of HKV, q of LQ, kv of LK): such a read
/// is in range for every call forward accepts (RegionEmitter.cpp skips the
/// same checks on the CPU).
bool provenInRange(SpecOp spec, ReadOp x) {
  static const char *extents[] = {"B", "HQ", "HKV", "LQ", "LK"};
  for (Attribute a : spec.getInputsAttr()) {
    auto in = cast<InputAttr>(a);
    if (in.getName().getValue() != x.getInput())
      continue;
    ArrayRef<Attribute> dims = in.getShape().getValue();
    if (dims.size() != x.getIndices().size())
      return false;
    for (auto [d, v] : llvm::enumerate(x.getIndices())) {
      auto idx = v.getDefiningOp<IndexOp>();
      auto name = dyn_cast<StringAttr>(dims[d]);
      if (!idx || !name || name.getValue() != extents[static_cast<int>(idx.getVar())])
        return false;
    }
    return true;
  }
  return false;
}

/// Integer division or modulo whose divisor is a constant other than 0.
bool safeDivision(SpecOp spec, Value divisor) {
  std::optional<int64_t> c = intConstant(spec, divisor);
  return c && *c != 0;
}

/// A shift whose count is a constant in [0, 63].
bool safeShift(SpecOp spec, Value count) {
  std::optional<int64_t> c = intConstant(spec, count);
  return c && *c >= 0 && *c <= 63;
}
} // namespace

int64_t inputNumber(SpecOp spec, StringRef name) {
  for (auto [i, a] : llvm::enumerate(spec.getInputsAttr()))
    if (cast<InputAttr>(a).getName().getValue() == name)
      return int64_t(i);
  return 0;
}

std::string floatLiteral(double v) {
  if (std::isnan(v)) return "NAN";
  if (std::isinf(v)) return v > 0 ? "INFINITY" : "(-INFINITY)";
  std::string s;
  llvm::raw_string_ostream os(s);
  os << llvm::format("%af", float(v));
  return "(" + s + ")";
}

bool RegionPrinter::isPure(SpecOp spec, Region &region) {
  bool pure = true;
  region.walk([&](Operation *op) {
    if (auto r = dyn_cast<ReadOp>(op))
      pure = pure && provenInRange(spec, r);
    else if (isa<arith::FloorDivSIOp, FloorModOp>(op))
      pure = pure && safeDivision(spec, op->getOperand(1));
    else if (isa<arith::ShLIOp, arith::ShRSIOp>(op))
      pure = pure && safeShift(spec, op->getOperand(1));
  });
  return pure;
}

FailureOr<std::string> RegionPrinter::print(Region &region) {
  for (Operation &op : region.front()) {
    if (auto y = dyn_cast<YieldOp>(op)) {
      printTraps(region);
      return names.lookup(y.getValue());
    }
    if (failed(printOp(&op)))
      return failure();
  }
  return failure();
}

/// The evaluation rule (RegionEmitter.h's planNeeds): each trap reports its
/// error only where it failed and its value is needed, `nK` being the need
/// of op K (the region's own value is always needed: the kernels call a
/// region with an error path only on kept pairs).
void RegionPrinter::printTraps(Region &region) {
  if (traps.empty())
    return;
  llvm::DenseMap<Operation *, std::string> need;
  for (const NeedNode &n : planNeeds(region, [&](Operation *op) {
         return llvm::any_of(traps, [&](const Trap &t) { return t.op == op; });
       })) {
    std::string any;
    for (const NeedTerm &t : n.terms) {
      std::string term = t.user ? need.lookup(t.user) : "true";
      if (t.cond)
        term = "(" + term + " && " + (t.negated ? "!" : "") + at(t.cond) + ")";
      any += (any.empty() ? "" : " || ") + term;
    }
    std::string name = "n" + std::to_string(counter++);
    os << "  const bool " << name << " = " << (any.empty() ? "false" : any) << ";\n";
    need[n.op] = name;
  }
  for (const Trap &t : traps)
    os << "  if (" << need.lookup(t.op) << " && " << t.failed << ") " << t.report << "\n";
}

std::string RegionPrinter::fresh(Value v) {
  std::string n = "v" + std::to_string(counter++);
  names[v] = n;
  return n;
}

RegionPrinter::Range RegionPrinter::range(Value v) {
  auto it = ranges.find(v);
  return it == ranges.end() ? Range{-kBig, kBig} : it->second;
}

bool RegionPrinter::narrow(Value v) {
  if (!fast || !v.getType().isInteger(64))
    return false;
  Range r = range(v);
  return r.lo >= INT32_MIN && r.hi <= INT32_MAX;
}

std::string RegionPrinter::typeOf(Value v) {
  Type t = v.getType();
  if (t.isInteger(1)) return "bool";
  if (t.isInteger(64)) return narrow(v) ? "int" : "int64_t";
  return "float";
}

LogicalResult RegionPrinter::def(Operation *op, const std::string &expr) {
  Value r = op->getResult(0);
  std::string t = typeOf(r);
  os << "  " << t << " " << fresh(r) << " = " << expr << ";\n";
  return success();
}

LogicalResult RegionPrinter::fail(Operation *op) {
  error = "the CUDA emitter cannot print '" + op->getName().getStringRef().str() + "'";
  return failure();
}

LogicalResult RegionPrinter::printOp(Operation *op) {
  if (op->getNumResults() == 1 && op->getResult(0).getType().isInteger(64))
    return printInt(op);
  if (isa<arith::CmpIOp, arith::CmpFOp>(op))
    return printCompare(op);
  return printFloat(op);
}

/// The range of int-valued `op`'s result from its operands' ranges
/// (saturating at +-2^62; unknown: the whole range).
RegionPrinter::Range RegionPrinter::intRange(Operation *op) {
  Value res = op->getResult(0);
  auto opnd = [&](unsigned i) { return range(op->getOperand(i)); };
  Range r{-kBig, kBig};
  llvm::TypeSwitch<Operation *>(op)
      .Case([&](arith::ConstantOp c) {
        int64_t v = cast<IntegerAttr>(c.getValue()).getInt();
        r = {v, v};
      })
      .Case([&](ParamOp p) {
        if (std::optional<int64_t> v = intConstant(spec, res))
          r = {*v, *v};
      })
      .Case([&](IndexOp x) {
        bool pos = x.getVar() == IndexVar::q || x.getVar() == IndexVar::kv;
        r = {0, pos ? kMaxLen - 1 : 65534};
      })
      .Case([&](DimOp x) {
        int v = static_cast<int>(x.getVar());
        r = v <= 2 ? Range{1, 65535} : Range{0, kMaxLen};
      })
      .Case([&](arith::AddIOp) {
        r = {sat(__int128(opnd(0).lo) + opnd(1).lo), sat(__int128(opnd(0).hi) + opnd(1).hi)};
      })
      .Case([&](arith::SubIOp) {
        r = {sat(__int128(opnd(0).lo) - opnd(1).hi), sat(__int128(opnd(0).hi) - opnd(1).lo)};
      })
      .Case([&](arith::MulIOp) {
        Range a = opnd(0), b = opnd(1);
        __int128 p[] = {__int128(a.lo) * b.lo, __int128(a.lo) * b.hi, __int128(a.hi) * b.lo,
                        __int128(a.hi) * b.hi};
        r = {sat(*std::min_element(p, p + 4)), sat(*std::max_element(p, p + 4))};
      })
      .Case([&](arith::MinSIOp) {
        r = {std::min(opnd(0).lo, opnd(1).lo), std::min(opnd(0).hi, opnd(1).hi)};
      })
      .Case([&](arith::MaxSIOp) {
        r = {std::max(opnd(0).lo, opnd(1).lo), std::max(opnd(0).hi, opnd(1).hi)};
      })
      .Case([&](math::AbsIOp) {
        Range a = opnd(0);
        int64_t m = std::max(std::abs(a.lo), std::abs(a.hi));
        r = {a.lo >= 0 ? a.lo : a.hi <= 0 ? -a.hi : 0, m};
      })
      .Case([&](arith::FloorDivSIOp) {
        Range a = opnd(0);
        int64_t m = std::max(std::abs(a.lo), std::abs(a.hi));
        if (std::optional<int64_t> d = intConstant(spec, op->getOperand(1)); d && *d > 0)
          r = {a.lo >= 0 ? a.lo / *d : -((-a.lo + *d - 1) / *d), a.hi >= 0 ? a.hi / *d : -((-a.hi + *d - 1) / *d)};
        else
          r = {-m, m};
      })
      .Case([&](FloorModOp) {
        Range b = opnd(1);
        int64_t m = std::max(std::abs(b.lo), std::abs(b.hi));
        r = b.lo > 0 ? Range{0, b.hi - 1} : b.hi < 0 ? Range{b.lo + 1, 0} : Range{1 - m, m - 1};
      })
      .Case([&](arith::AndIOp) {
        Range a = opnd(0), b = opnd(1);
        if (a.lo >= 0 || b.lo >= 0)
          r = {0, a.lo >= 0 && b.lo >= 0 ? std::min(a.hi, b.hi) : a.lo >= 0 ? a.hi : b.hi};
      })
      .Case<arith::OrIOp, arith::XOrIOp>([&](Operation *) {
        Range a = opnd(0), b = opnd(1);
        if (a.lo >= 0 && b.lo >= 0 && std::max(a.hi, b.hi) < kBig / 2) // below the next power of two
          r = {0, int64_t(llvm::NextPowerOf2(uint64_t(std::max(a.hi, b.hi)))) - 1};
      })
      .Case([&](arith::ShRSIOp) {
        Range a = opnd(0); // moves toward 0 (or -1); a bad count gives 0
        r = {std::min<int64_t>(a.lo, 0), std::max<int64_t>(a.hi, 0)};
      })
      .Case([&](arith::ExtUIOp) { r = {0, 1}; })
      .Case([&](arith::SelectOp) {
        r = {std::min(opnd(1).lo, opnd(2).lo), std::max(opnd(1).hi, opnd(2).hi)};
      });
  return r;
}

/// Int-valued ops: the value's range first (what `narrow` decides on), then
/// the statement. Narrow results of narrow operands use plain `int`
/// arithmetic, which cannot overflow inside the range.
LogicalResult RegionPrinter::printInt(Operation *op) {
  Value res = op->getResult(0);
  ranges[res] = intRange(op);

  bool small = narrow(res);
  bool allSmall = llvm::all_of(op->getOperands(), [&](Value v) {
    return !v.getType().isInteger(64) || narrow(v);
  });
  std::string a = op->getNumOperands() > 0 ? at(op->getOperand(0)) : "";
  std::string b = op->getNumOperands() > 1 ? at(op->getOperand(1)) : "";
  // A value computed in int64_t that is known to fit.
  auto cast32 = [&](const std::string &e) { return small ? "(int)" + e : e; };
  auto arith = [&](const char *helper, const char *o) {
    if (small && allSmall)
      return def(op, "(" + a + " " + o + " " + b + ")");
    return def(op, cast32(std::string(helper) + "(" + a + ", " + b + ")"));
  };
  // A constant divisor > 0: the 32-bit helpers cannot overflow.
  auto positive = [&](unsigned i) {
    std::optional<int64_t> c = intConstant(spec, op->getOperand(i));
    return c && *c > 0;
  };
  auto literal = [&](int64_t v) {
    return small ? std::to_string(v) : "INT64_C(" + std::to_string(v) + ")";
  };
  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](arith::ConstantOp c) {
        return def(op, literal(cast<IntegerAttr>(c.getValue()).getInt()));
      })
      .Case([&](ParamOp x) -> LogicalResult {
        std::optional<int64_t> v = intConstant(spec, res);
        if (!v) {
          error = "param '" + x.getName().str() + "' has no value";
          return failure();
        }
        return def(op, literal(*v));
      })
      .Case([&](IndexOp x) {
        static const char *n[] = {"c.b", "c.h", "c.hkv", "q", "kv"};
        int v = static_cast<int>(x.getVar());
        return def(op, v >= 3 ? n[v] : cast32(n[v]));
      })
      .Case([&](DimOp x) {
        static const char *n[] = {"c.B", "c.HQ", "c.HKV", "c.LQ", "c.LK", "c.D", "c.DV"};
        return def(op, cast32(n[static_cast<int>(x.getVar())]));
      })
      .Case([&](ReadOp x) { return printRead(x); })
      .Case([&](arith::AddIOp) { return arith("attnc_wadd", "+"); })
      .Case([&](arith::SubIOp) { return arith("attnc_wsub", "-"); })
      .Case([&](arith::MulIOp) { return arith("attnc_wmul", "*"); })
      .Case([&](arith::FloorDivSIOp) {
        if (fast && safeDivision(spec, op->getOperand(1)))
          return def(op, cast32((small && allSmall && positive(1) ? "attnc_fdiv32(" : "attnc_fdiv(") + a + ", " + b + ")"));
        traps.push_back({op, "(" + b + " == 0)", "attnc_set_error(c, 2, 0, 0, 0);"});
        return def(op, cast32("attnc_floordiv(" + a + ", " + b + ")"));
      })
      .Case([&](FloorModOp) {
        if (fast && safeDivision(spec, op->getOperand(1)))
          return def(op, cast32((small && allSmall && positive(1) ? "attnc_fmod32(" : "attnc_fmod(") + a + ", " + b + ")"));
        traps.push_back({op, "(" + b + " == 0)", "attnc_set_error(c, 2, 0, 0, 0);"});
        return def(op, cast32("attnc_floormod(" + a + ", " + b + ")"));
      })
      .Case([&](arith::MinSIOp) { return def(op, cast32("(" + a + " < " + b + " ? " + a + " : " + b + ")")); })
      .Case([&](arith::MaxSIOp) { return def(op, cast32("(" + a + " > " + b + " ? " + a + " : " + b + ")")); })
      .Case([&](math::AbsIOp) { return def(op, cast32("attnc_absi(" + a + ")")); })
      .Case([&](arith::AndIOp) { return def(op, cast32("(" + a + " & " + b + ")")); })
      .Case([&](arith::OrIOp) { return def(op, cast32("(" + a + " | " + b + ")")); })
      .Case([&](arith::XOrIOp) { return def(op, cast32("(" + a + " ^ " + b + ")")); })
      .Case<arith::ShLIOp, arith::ShRSIOp>([&](Operation *) {
        if (!safeShift(spec, op->getOperand(1)))
          traps.push_back({op, "(" + b + " < 0 || " + b + " > 63)",
                           "attnc_set_error(c, 4, " + b + ", 0, 0);"});
        return def(op, cast32((isa<arith::ShLIOp>(op) ? "attnc_shl(" : "attnc_shr(") + a +
                              ", " + b + ")"));
      })
      .Case([&](arith::ExtUIOp) { return def(op, small ? "(int)" + a : "(int64_t)" + a); })
      .Case([&](arith::FPToSIOp) { return def(op, cast32("attnc_fptosi(" + a + ")")); })
      .Case([&](arith::SelectOp x) {
        return def(op, cast32("(" + at(x.getCondition()) + " ? " + at(x.getTrueValue()) + " : " +
                              at(x.getFalseValue()) + ")"));
      })
      .Default([&](Operation *o) { return fail(o); });
}

/// Whether `v` reaches a function with jumps (floor, ceil, int(), a
/// comparison, %): there a result one ulp off can move a whole step, so the
/// division keeps IEEE rounding.
static bool feedsJump(Value v) {
  // Each value once: lets make regions DAGs whose paths are exponential.
  SmallVector<Value> work{v};
  llvm::DenseSet<Value> seen{v};
  while (!work.empty()) {
    Value cur = work.pop_back_val();
    for (Operation *user : cur.getUsers()) {
      if (isa<math::FloorOp, math::CeilOp, math::RoundOp, arith::FPToSIOp, arith::CmpFOp,
              arith::RemFOp>(user))
        return true;
      if (user->getNumResults() == 1 && isa<FloatType>(user->getResult(0).getType()) &&
          seen.insert(user->getResult(0)).second)
        work.push_back(user->getResult(0));
    }
  }
  return false;
}

/// `a / b` in the fast form: a multiply by the reciprocal when b does not
/// vary per element (a constant: rounded here; otherwise computed where
/// the compiler can hoist it), IEEE division otherwise or where the
/// quotient reaches a jump.
std::string RegionPrinter::fastDivide(arith::DivFOp x) {
  std::string a = at(x.getLhs()), b = at(x.getRhs());
  if (feedsJump(x.getResult()))
    return "(" + a + " / " + b + ")";
  if (std::optional<double> c = floatConstant(spec, x.getRhs())) {
    double r = 1.0 / *c;
    if (std::isfinite(r) && r != 0 && std::isfinite(float(r)) && float(r) != 0)
      return "(" + a + " * " + floatLiteral(r) + ")";
    return "(" + a + " / " + b + ")";
  }
  bool varies = false;
  SmallVector<Value> work{x.getRhs()};
  while (!work.empty() && !varies) {
    Value v = work.pop_back_val();
    Operation *d = v.getDefiningOp();
    if (!d || isa<ScoreOp>(d))
      varies = true;
    else if (auto i = dyn_cast<IndexOp>(d))
      varies = i.getVar() == IndexVar::q || i.getVar() == IndexVar::kv;
    else
      work.append(d->operand_begin(), d->operand_end());
  }
  return varies ? "(" + a + " / " + b + ")" : "(" + a + " * (1.0f / " + b + "))";
}

LogicalResult RegionPrinter::printFloat(Operation *op) {
  auto a = [&](unsigned i) { return at(op->getOperand(i)); };
  auto bin = [&](const char *fn) { return def(op, std::string(fn) + "(" + a(0) + ", " + a(1) + ")"); };
  auto infix = [&](const char *o) { return def(op, "(" + a(0) + " " + o + " " + a(1) + ")"); };
  auto call = [&](const char *precise, const char *approx) {
    return def(op, std::string(fast && approx ? approx : precise) + "(" + a(0) + ")");
  };
  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](arith::ConstantOp c) -> LogicalResult {
        if (auto i = dyn_cast<IntegerAttr>(c.getValue()))
          return def(op, i.getValue().getBoolValue() ? "true" : "false");
        if (auto f = dyn_cast<FloatAttr>(c.getValue()))
          return def(op, floatLiteral(f.getValueAsDouble()));
        return fail(op);
      })
      .Case([&](ParamOp x) -> LogicalResult {
        ParamAttr p = spec.lookupParam(x.getName());
        TypedAttr v = p ? p.getValue() : TypedAttr();
        if (!v) {
          error = "param '" + x.getName().str() + "' has no value";
          return failure();
        }
        if (auto i = dyn_cast<IntegerAttr>(v))
          return def(op, i.getValue().getBoolValue() ? "true" : "false");
        return def(op, floatLiteral(cast<FloatAttr>(v).getValueAsDouble()));
      })
      .Case([&](ScoreOp) { return def(op, "score"); })
      .Case([&](ReadOp x) { return printRead(x); })
      .Case([&](arith::AddFOp) { return infix("+"); })
      .Case([&](arith::SubFOp) { return infix("-"); })
      .Case([&](arith::MulFOp) { return infix("*"); })
      .Case([&](arith::DivFOp x) { return fast ? def(op, fastDivide(x)) : infix("/"); })
      .Case([&](arith::RemFOp) { return bin("fmodf"); })
      .Case([&](arith::NegFOp) { return def(op, "(-" + a(0) + ")"); })
      .Case([&](arith::MinimumFOp) { return bin("attnc_minimumf"); })
      .Case([&](arith::MaximumFOp) { return bin("attnc_maximumf"); })
      .Case([&](math::ExpOp) { return call("expf", "attnc_exp_fast"); })
      .Case([&](math::LogOp) { return call("logf", "attnc_log_fast"); })
      .Case([&](math::SqrtOp) { return call("sqrtf", nullptr); })
      .Case([&](math::TanhOp) { return call("tanhf", "attnc_tanh_fast"); })
      .Case([&](math::SinOp) { return call("sinf", nullptr); })
      .Case([&](math::CosOp) { return call("cosf", nullptr); })
      .Case([&](math::FloorOp) { return call("floorf", nullptr); })
      .Case([&](math::RoundOp) { return call("roundf", nullptr); })
      .Case([&](math::Exp2Op) { return call("exp2f", nullptr); })
      .Case([&](math::Log2Op) { return call("log2f", nullptr); })
      .Case([&](math::CeilOp) { return call("ceilf", nullptr); })
      .Case([&](math::AbsFOp) { return call("fabsf", nullptr); })
      .Case([&](math::PowFOp) { return bin("powf"); })
      .Case([&](arith::SIToFPOp) { return def(op, "(float)" + a(0)); })
      .Case([&](arith::UIToFPOp) { return def(op, "(" + a(0) + " ? 1.0f : 0.0f)"); })
      // On computed bools: & and | (no short circuit, hence no branch).
      .Case([&](arith::AndIOp) { return infix(fast ? "&" : "&&"); })
      .Case([&](arith::OrIOp) { return infix(fast ? "|" : "||"); })
      .Case([&](arith::XOrIOp) { return infix("!="); })
      .Case([&](arith::SelectOp x) {
        return def(op, "(" + at(x.getCondition()) + " ? " + at(x.getTrueValue()) + " : " +
                           at(x.getFalseValue()) + ")");
      })
      .Default([&](Operation *o) { return fail(o); });
}

LogicalResult RegionPrinter::printCompare(Operation *op) {
  if (auto x = dyn_cast<arith::CmpIOp>(op)) {
    using P = arith::CmpIPredicate;
    std::string a = at(x.getLhs()), b = at(x.getRhs());
    if (x.getLhs().getType().isInteger(1) || x.getPredicate() == P::eq ||
        x.getPredicate() == P::ne)
      return def(op, "(" + a + (x.getPredicate() == P::ne ? " != " : " == ") + b + ")");
    bool u = x.getPredicate() == P::ult || x.getPredicate() == P::ule ||
             x.getPredicate() == P::ugt || x.getPredicate() == P::uge;
    if (u)
      a = "(uint64_t)" + a, b = "(uint64_t)" + b;
    const char *o = ">=";
    switch (x.getPredicate()) {
    case P::slt: case P::ult: o = "<"; break;
    case P::sle: case P::ule: o = "<="; break;
    case P::sgt: case P::ugt: o = ">"; break;
    default: break;
    }
    return def(op, "(" + a + " " + o + " " + b + ")");
  }
  auto x = cast<arith::CmpFOp>(op);
  using P = arith::CmpFPredicate;
  std::string a = at(x.getLhs()), b = at(x.getRhs());
  std::string uno = "(" + a + " != " + a + " || " + b + " != " + b + ")";
  std::string rel;
  bool ordered = true;
  switch (x.getPredicate()) {
  case P::OEQ: rel = "=="; break;
  case P::ONE: rel = "!="; break;
  case P::OLT: rel = "<"; break;
  case P::OLE: rel = "<="; break;
  case P::OGT: rel = ">"; break;
  case P::OGE: rel = ">="; break;
  case P::UEQ: rel = "=="; ordered = false; break;
  case P::UNE: rel = "!="; ordered = false; break;
  case P::ULT: rel = "<"; ordered = false; break;
  case P::ULE: rel = "<="; ordered = false; break;
  case P::UGT: rel = ">"; ordered = false; break;
  case P::UGE: rel = ">="; ordered = false; break;
  default: return fail(op);
  }
  std::string cmp = "(" + a + " " + rel + " " + b + ")";
  return def(op, ordered ? "(!" + uno + " && " + cmp + ")" : "(" + uno + " || " + cmp + ")");
}

/// An input read. Exact, or fast with an index that may be out of range:
/// bounds-checked, 0 when out of range, and a trap (error 1: input,
/// dimension, index) that printTraps reports where the value is needed.
/// Fast with indices proven in range: a plain load.
LogicalResult RegionPrinter::printRead(ReadOp x) {
  int64_t number = inputNumber(spec, x.getInput());
  std::string in = "c.inputs[" + std::to_string(number) + "]";
  Type t = x.getType();
  std::string elem = t.isInteger(1) ? "((const uint8_t *)" + in + ".data)[off] != 0"
                     : t.isInteger(64) ? "((const int64_t *)" + in + ".data)[off]"
                                       : "((const float *)" + in + ".data)[off]";
  if (fast && provenInRange(spec, x)) {
    std::string r = fresh(x.getResult());
    os << "  " << typeOf(x.getResult()) << " " << r << ";\n  {\n    const int64_t off = 0";
    for (auto [d, v] : llvm::enumerate(x.getIndices()))
      os << " + (int64_t)" << at(v) << " * " << in << ".strides[" << d << "]";
    os << ";\n    " << r << " = " << elem << ";\n  }\n";
    return success();
  }
  std::string r = fresh(x.getResult());
  os << "  " << typeOf(x.getResult()) << " " << r << ";\n  int64_t " << r << "_bad = -1, " << r
     << "_ix = 0;\n  {\n    int64_t ix[] = {";
  llvm::interleaveComma(x.getIndices(), os, [&](Value v) { os << "(int64_t)" << at(v); });
  os << "};\n    int64_t off = 0, bad = -1;\n"
     << "    for (int d = 0; d < " << x.getIndices().size() << "; ++d) {\n"
     << "      if (bad < 0 && (ix[d] < 0 || ix[d] >= " << in << ".dims[d])) bad = d;\n"
     << "      off += ix[d] * " << in << ".strides[d];\n    }\n"
     << "    if (bad >= 0) {\n      " << r << "_bad = bad, " << r << "_ix = ix[bad];\n      " << r
     << " = " << (t.isInteger(1) ? "false" : "0") << ";\n    } else {\n      " << r << " = " << elem
     << ";\n    }\n  }\n";
  traps.push_back({x, "(" + r + "_bad >= 0)",
                   "attnc_set_error(c, 1, " + std::to_string(number) + ", " + r + "_bad, " + r +
                       "_ix);"});
  return success();
}

} // namespace attnc::cudamod
