//===- SpecInterpreter.cpp - Evaluate spec regions on the host ------------===//
//
// Each region is translated once into a flat list of instructions over
// numbered registers (one per SSA value), then run once per element: no
// maps, no op dispatch through MLIR on the hot path, so the float64
// reference can afford every element of a 1023 x 1023 problem. Params are
// resolved at translation time. Semantics are the language's: int64 with
// wrap-around, floor division and floor modulo, floats in double.
//
// The evaluation rule (`c ? a : b` evaluates only the chosen arm, `a && b`
// evaluates b only where a is true, `a || b` only where a is false): every
// instruction runs, but an out-of-range read or a division by zero only
// poisons its register; poison flows into every result computed from it,
// except the unchosen arm of a select and the right operand of an i1
// and/or that the left one decides. The region fails only if its result is
// poisoned, with the message of the first failure that reached it.
//
// run<true> (dual mode) also carries, per register, the sparse tangent of
// its value: the partials with respect to `score` and to each float input
// element read (forward-mode dual numbers over several seeds at once). A
// poisoned register has no tangent; run<false> does no derivative work.
//
//===----------------------------------------------------------------------===//
#include "attnc/Reference/SpecInterpreter.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"

#include <algorithm>
#include <cmath>

using namespace mlir;
using namespace mlir::attn;

namespace {
/// ln 2: d exp2(x) = exp2(x) ln 2 dx, d log2(x) = dx / (x ln 2).
constexpr double kLn2 = 0.6931471805599453094;
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
int64_t wrap(uint64_t v) { return int64_t(v); }
double minimum(double a, double b) {
  return std::isnan(a) || std::isnan(b) ? NAN : std::min(a, b);
}
double maximum(double a, double b) {
  return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b);
}
bool compareInt(int predicate, const Scalar &A, const Scalar &B) {
  using P = arith::CmpIPredicate;
  bool res = false;
  int64_t a = A.i, b = B.i;
  switch (static_cast<P>(predicate)) {
  case P::eq: res = A.kind == Scalar::Bool ? A.b == B.b : a == b; break;
  case P::ne: res = A.kind == Scalar::Bool ? A.b != B.b : a != b; break;
  case P::slt: res = a < b; break;
  case P::sle: res = a <= b; break;
  case P::sgt: res = a > b; break;
  case P::sge: res = a >= b; break;
  case P::ult: res = uint64_t(a) < uint64_t(b); break;
  case P::ule: res = uint64_t(a) <= uint64_t(b); break;
  case P::ugt: res = uint64_t(a) > uint64_t(b); break;
  case P::uge: res = uint64_t(a) >= uint64_t(b); break;
  }
  return res;
}
bool compareFloat(int predicate, double a, double b) {
  using P = arith::CmpFPredicate;
  bool uno = std::isnan(a) || std::isnan(b), res = false;
  switch (static_cast<P>(predicate)) {
  case P::OEQ: res = !uno && a == b; break;
  case P::ONE: res = !uno && a != b; break;
  case P::OLT: res = !uno && a < b; break;
  case P::OLE: res = !uno && a <= b; break;
  case P::OGT: res = !uno && a > b; break;
  case P::OGE: res = !uno && a >= b; break;
  case P::UNE: res = uno || a != b; break;
  case P::UEQ: res = uno || a == b; break;
  case P::ULT: res = uno || a < b; break;
  case P::ULE: res = uno || a <= b; break;
  case P::UGT: res = uno || a > b; break;
  case P::UGE: res = uno || a >= b; break;
  case P::ORD: res = !uno; break;
  case P::UNO: res = uno; break;
  case P::AlwaysTrue: res = true; break;
  case P::AlwaysFalse: res = false; break;
  }
  return res;
}
} // namespace

/// One instruction: `registers[result] = op(registers[a], [b], [c])`.
struct SpecInterpreter::Instr {
  enum Code {
    Const, Coord, Score, Read, Fail, Yield,
    AddI, SubI, MulI, FloorDivI, FloorModI, MinI, MaxI, AbsI, ShlI, ShrI,
    AddF, SubF, MulF, DivF, RemF, NegF, MinF, MaxF,
    Exp, Log, Sqrt, Tanh, Sin, Cos, Floor, Ceil, AbsF, Pow, Exp2, Log2, Round,
    IToF, BToF, BToI, FToI, CmpI, CmpF, And, Or, Xor, Select,
  } code;
  int a = 0, b = 0, c = 0, result = 0;
  int numOperands = 0;           // a, b, c in use (poison flows from them)
  Scalar constant;               // Const
  unsigned coord = 0;            // Coord: index into the coordinate table
  int predicate = 0;             // CmpI / CmpF; And / Or: 1 on bools
  std::string name;              // Read: input name; Fail: message
  std::vector<int> indices;      // Read
};

struct SpecInterpreter::Program {
  std::vector<Instr> code;
  unsigned numRegisters = 0;
};

SpecInterpreter::~SpecInterpreter() = default;

SpecInterpreter::SpecInterpreter(SpecOp spec, ProblemSizes sizes,
                                 InputReader inputs)
    : spec(spec), sizes(sizes), inputs(std::move(inputs)) {
  programs[0] = compile(spec.getScale());
  programs[1] = compile(spec.getScore());
  programs[2] = compile(spec.getMask());
  programs[3] = compile(spec.getBias());
  programs[4] = compile(spec.getSink());
}

// Coordinate table: b, h, hkv, q, kv, then B, HQ, HKV, LQ, LK, D, DV.
static constexpr unsigned kCoordQ = 3, kCoordKV = 4, kCoordSizes = 5;

std::shared_ptr<const SpecInterpreter::Program>
SpecInterpreter::compile(Region &region) {
  auto program = std::make_shared<Program>();
  std::vector<Instr> &code = program->code;
  if (region.empty()) {
    Instr fail{Instr::Fail};
    fail.name = "empty region";
    code.push_back(fail);
    return program;
  }
  DenseMap<Value, int> slot;
  auto reg = [&](Value v) { return slot.lookup(v); };
  for (Operation &op : region.front()) {
    using I = Instr;
    Instr in{I::Fail};
    auto unary = [&](I::Code c) {
      in.code = c;
      in.a = reg(op.getOperand(0));
      in.numOperands = 1;
    };
    auto binary = [&](I::Code c) {
      unary(c);
      in.b = reg(op.getOperand(1));
      in.numOperands = 2;
    };
    llvm::TypeSwitch<Operation *>(&op)
        .Case([&](YieldOp y) {
          in.code = I::Yield;
          in.a = reg(y.getValue());
        })
        .Case([&](arith::ConstantOp c) {
          in.code = I::Const;
          Attribute v = c.getValue();
          if (auto i = dyn_cast<IntegerAttr>(v))
            in.constant = i.getType().isInteger(1)
                              ? Scalar::ofBool(i.getValue().getBoolValue())
                              : Scalar::ofInt(i.getInt());
          else if (auto f = dyn_cast<FloatAttr>(v))
            in.constant = Scalar::ofFloat(f.getValueAsDouble());
          else
            in.code = I::Fail, in.name = "unsupported constant";
        })
        .Case([&](IndexOp x) {
          in.code = I::Coord;
          in.coord = static_cast<unsigned>(x.getVar());
        })
        .Case([&](DimOp x) {
          in.code = I::Coord;
          in.coord = kCoordSizes + static_cast<unsigned>(x.getVar());
        })
        .Case([&](ParamOp x) {
          ParamAttr decl = spec.lookupParam(x.getName());
          TypedAttr v = decl ? decl.getValue() : TypedAttr();
          in.code = I::Const;
          if (!v)
            in.code = I::Fail,
            in.name = "param '" + x.getName().str() + "' has no value";
          else if (auto i = dyn_cast<IntegerAttr>(v))
            in.constant = i.getType().isInteger(1)
                              ? Scalar::ofBool(i.getValue().getBoolValue())
                              : Scalar::ofInt(i.getInt());
          else
            in.constant =
                Scalar::ofFloat(cast<FloatAttr>(v).getValueAsDouble());
        })
        .Case([&](ScoreOp) { in.code = I::Score; })
        .Case([&](ReadOp x) {
          in.code = I::Read;
          in.name = x.getInput().str();
          for (Value v : x.getIndices())
            in.indices.push_back(reg(v));
        })
        .Case([&](arith::AddIOp) { binary(I::AddI); })
        .Case([&](arith::SubIOp) { binary(I::SubI); })
        .Case([&](arith::MulIOp) { binary(I::MulI); })
        .Case([&](arith::FloorDivSIOp) { binary(I::FloorDivI); })
        .Case([&](FloorModOp) { binary(I::FloorModI); })
        .Case([&](arith::MinSIOp) { binary(I::MinI); })
        .Case([&](arith::MaxSIOp) { binary(I::MaxI); })
        .Case([&](math::AbsIOp) { unary(I::AbsI); })
        .Case([&](arith::AddFOp) { binary(I::AddF); })
        .Case([&](arith::SubFOp) { binary(I::SubF); })
        .Case([&](arith::MulFOp) { binary(I::MulF); })
        .Case([&](arith::DivFOp) { binary(I::DivF); })
        .Case([&](arith::RemFOp) { binary(I::RemF); })
        .Case([&](arith::NegFOp) { unary(I::NegF); })
        .Case([&](arith::MinimumFOp) { binary(I::MinF); })
        .Case([&](arith::MaximumFOp) { binary(I::MaxF); })
        .Case([&](math::ExpOp) { unary(I::Exp); })
        .Case([&](math::LogOp) { unary(I::Log); })
        .Case([&](math::SqrtOp) { unary(I::Sqrt); })
        .Case([&](math::TanhOp) { unary(I::Tanh); })
        .Case([&](math::SinOp) { unary(I::Sin); })
        .Case([&](math::CosOp) { unary(I::Cos); })
        .Case([&](math::FloorOp) { unary(I::Floor); })
        .Case([&](math::Exp2Op) { unary(I::Exp2); })
        .Case([&](math::Log2Op) { unary(I::Log2); })
        .Case([&](math::RoundOp) { unary(I::Round); })
        .Case([&](math::CeilOp) { unary(I::Ceil); })
        .Case([&](math::AbsFOp) { unary(I::AbsF); })
        .Case([&](math::PowFOp) { binary(I::Pow); })
        .Case([&](arith::SIToFPOp) { unary(I::IToF); })
        .Case([&](arith::UIToFPOp) { unary(I::BToF); })
        .Case([&](arith::ExtUIOp) { unary(I::BToI); })
        .Case([&](arith::FPToSIOp) { unary(I::FToI); })
        .Case([&](arith::CmpIOp c) {
          binary(I::CmpI);
          in.predicate = static_cast<int>(c.getPredicate());
        })
        .Case([&](arith::CmpFOp c) {
          binary(I::CmpF);
          in.predicate = static_cast<int>(c.getPredicate());
        })
        .Case([&](arith::AndIOp a) {
          binary(I::And);
          in.predicate = a.getType().isInteger(1); // lazy on bools only
        })
        .Case([&](arith::OrIOp o) {
          binary(I::Or);
          in.predicate = o.getType().isInteger(1);
        })
        .Case([&](arith::XOrIOp x) {
          binary(I::Xor);
          in.predicate = x.getType().isInteger(1);
        })
        .Case([&](arith::ShLIOp) { binary(I::ShlI); })
        .Case([&](arith::ShRSIOp) { binary(I::ShrI); })
        .Case([&](arith::SelectOp) {
          binary(I::Select);
          in.c = reg(op.getOperand(2));
          in.numOperands = 3;
        })
        .Default([&](Operation *other) {
          in.name = "the interpreter does not support '" +
                    other->getName().getStringRef().str() + "'";
        });
    if (op.getNumResults() == 1) {
      in.result = int(program->numRegisters++);
      slot[op.getResult(0)] = in.result;
    }
    code.push_back(std::move(in));
  }
  return program;
}

template <bool Dual>
std::optional<Scalar> SpecInterpreter::run(const Program &program, Element e,
                                           double scoreValue) {
  int64_t coords[12] = {sizes.b,  sizes.h,  sizes.hkv(), e.q,     e.kv,
                        sizes.B,  sizes.HQ, sizes.HKV,   sizes.LQ, sizes.LK,
                        sizes.D,  sizes.DV};
  registers.resize(program.numRegisters);
  poison.assign(program.numRegisters, 0);
  failures.clear();
  if constexpr (Dual) {
    tangents.resize(program.numRegisters);
    for (Tangent &t : tangents)
      t.clear();
    dualReads.clear();
  }
  Scalar *r = registers.data();
  int *P = poison.data();
  // Poisons the result with a new failure and moves on.
  auto failWith = [&](const Instr &in, std::string message) {
    failures.push_back(std::move(message));
    r[in.result] = Scalar{};
    P[in.result] = int(failures.size());
  };
  for (const Instr &in : program.code) {
    const Scalar &A = r[in.a], &B = r[in.b];
    Scalar out;
    using I = Instr;
    // Poison from the operands (the lazy ops decide below).
    int from = 0;
    if (in.code == I::Read) {
      for (int x : in.indices)
        from = from ? from : P[x];
    } else if (in.code != I::Yield) {
      int n = in.code == I::Select ? 1 : in.numOperands;
      if (n >= 1) from = P[in.a];
      if (n >= 2 && !from && in.code != I::And && in.code != I::Or) from = P[in.b];
      if (n >= 3 && !from) from = P[in.c];
    }
    switch (in.code) {
    case I::Yield:
      if (P[in.a]) {
        errorMessage = failures[P[in.a] - 1];
        return std::nullopt;
      }
      if constexpr (Dual)
        resultTangent = tangents[in.a];
      return r[in.a];
    case I::Fail:
      errorMessage = in.name;
      return std::nullopt;
    case I::Const: out = in.constant; break;
    case I::Coord: out = Scalar::ofInt(coords[in.coord]); break;
    case I::Score: out = Scalar::ofFloat(scoreValue); break;
    case I::Read: {
      int64_t idx[8];
      size_t n = std::min<size_t>(in.indices.size(), 8);
      for (size_t k = 0; k < n; ++k)
        idx[k] = r[in.indices[k]].i;
      if (from) {
        out = Scalar{};
        break;
      }
      std::optional<Scalar> v =
          inputs ? inputs(in.name, ArrayRef<int64_t>(idx, n)) : std::nullopt;
      if (!v || in.indices.size() > 8) {
        std::string message = "cannot read input '" + in.name + "' at index [";
        for (size_t k = 0; k < n; ++k)
          message += (k ? ", " : "") + std::to_string(idx[k]);
        failWith(in, message + "]");
        continue;
      }
      out = *v;
      if constexpr (Dual)
        if (out.kind == Scalar::Float)
          tangents[in.result].push_back(
              {readVariable(in.name, ArrayRef<int64_t>(idx, n)), 1.0});
      break;
    }
    case I::AddI: out = Scalar::ofInt(wrap(uint64_t(A.i) + uint64_t(B.i))); break;
    case I::SubI: out = Scalar::ofInt(wrap(uint64_t(A.i) - uint64_t(B.i))); break;
    case I::MulI: out = Scalar::ofInt(wrap(uint64_t(A.i) * uint64_t(B.i))); break;
    case I::ShlI:
    case I::ShrI:
      // Two's complement bits; a count outside [0, 63] fails (yields 0).
      if ((B.i < 0 || B.i > 63) && !from) {
        failWith(in, "shift by " + std::to_string(B.i) + ", outside [0, 63]");
        continue;
      }
      out = Scalar::ofInt(B.i < 0 || B.i > 63 ? 0
                          : in.code == I::ShlI ? wrap(uint64_t(A.i) << B.i)
                                               : A.i >> B.i);
      break;
    case I::FloorDivI:
    case I::FloorModI:
      if (B.i == 0 && !from) {
        failWith(in, in.code == I::FloorDivI ? "integer division by zero"
                                             : "integer modulo by zero");
        continue;
      }
      if (B.i == 0) {
        out = Scalar::ofInt(0);
        break;
      }
      out = Scalar::ofInt(in.code == I::FloorDivI ? floorDiv(A.i, B.i)
                                                  : floorMod(A.i, B.i));
      break;
    case I::MinI: out = Scalar::ofInt(std::min(A.i, B.i)); break;
    case I::MaxI: out = Scalar::ofInt(std::max(A.i, B.i)); break;
    case I::AbsI: out = Scalar::ofInt(A.i < 0 ? wrap(0 - uint64_t(A.i)) : A.i); break;
    case I::AddF: out = Scalar::ofFloat(A.f + B.f); break;
    case I::SubF: out = Scalar::ofFloat(A.f - B.f); break;
    case I::MulF: out = Scalar::ofFloat(A.f * B.f); break;
    case I::DivF: out = Scalar::ofFloat(A.f / B.f); break;
    case I::RemF: out = Scalar::ofFloat(std::fmod(A.f, B.f)); break;
    case I::NegF: out = Scalar::ofFloat(-A.f); break;
    case I::MinF: out = Scalar::ofFloat(minimum(A.f, B.f)); break;
    case I::MaxF: out = Scalar::ofFloat(maximum(A.f, B.f)); break;
    case I::Exp: out = Scalar::ofFloat(std::exp(A.f)); break;
    case I::Log: out = Scalar::ofFloat(std::log(A.f)); break;
    case I::Sqrt: out = Scalar::ofFloat(std::sqrt(A.f)); break;
    case I::Tanh: out = Scalar::ofFloat(std::tanh(A.f)); break;
    case I::Sin: out = Scalar::ofFloat(std::sin(A.f)); break;
    case I::Cos: out = Scalar::ofFloat(std::cos(A.f)); break;
    case I::Floor: out = Scalar::ofFloat(std::floor(A.f)); break;
    case I::Exp2: out = Scalar::ofFloat(std::exp2(A.f)); break;
    case I::Log2: out = Scalar::ofFloat(std::log2(A.f)); break;
    case I::Round: out = Scalar::ofFloat(std::round(A.f)); break;
    case I::Ceil: out = Scalar::ofFloat(std::ceil(A.f)); break;
    case I::AbsF: out = Scalar::ofFloat(std::fabs(A.f)); break;
    case I::Pow: out = Scalar::ofFloat(std::pow(A.f, B.f)); break;
    case I::IToF: out = Scalar::ofFloat(double(A.i)); break;
    case I::BToF: out = Scalar::ofFloat(A.b ? 1.0 : 0.0); break;
    case I::BToI: out = Scalar::ofInt(A.b ? 1 : 0); break;
    case I::FToI: {
      // Truncation toward zero; NaN gives 0 and out-of-range values
      // saturate (the generated code must agree: it clamps first).
      double v = A.f;
      out = Scalar::ofInt(std::isnan(v)                    ? 0
                          : v >= 9.2233720368547758e18     ? INT64_MAX
                          : v <= -9.2233720368547758e18    ? INT64_MIN
                                                           : int64_t(v));
      break;
    }
    case I::CmpI: out = Scalar::ofBool(compareInt(in.predicate, A, B)); break;
    case I::CmpF: out = Scalar::ofBool(compareFloat(in.predicate, A.f, B.f)); break;
    // Lazy: the right operand's poison only where the left one does not
    // decide (bools; ints combine bitwise and strictly).
    case I::And:
      if (!in.predicate) {
        out = Scalar::ofInt(A.i & B.i);
        from = from ? from : P[in.b];
        break;
      }
      out = Scalar::ofBool(A.b && B.b);
      from = from ? from : A.b ? P[in.b] : 0;
      break;
    case I::Or:
      if (!in.predicate) {
        out = Scalar::ofInt(A.i | B.i);
        from = from ? from : P[in.b];
        break;
      }
      out = Scalar::ofBool(A.b || B.b);
      from = from ? from : A.b ? 0 : P[in.b];
      break;
    case I::Xor:
      out = in.predicate ? Scalar::ofBool(A.b != B.b) : Scalar::ofInt(A.i ^ B.i);
      break;
    case I::Select:
      out = A.b ? B : r[in.c];
      from = from ? from : P[A.b ? in.b : in.c];
      break;
    }
    r[in.result] = out;
    P[in.result] = from;
    if constexpr (Dual)
      if (!from)
        differentiate(in, A, B, out);
  }
  errorMessage = "region does not end in attn.yield";
  return std::nullopt;
}

std::optional<bool> SpecInterpreter::mask(Element e) {
  std::optional<Scalar> v = run<false>(*programs[2], e, 0);
  return v ? std::optional<bool>(v->b) : std::nullopt;
}
std::optional<double> SpecInterpreter::scale(Element e) {
  std::optional<Scalar> v = run<false>(*programs[0], e, 0);
  return v ? std::optional<double>(v->f) : std::nullopt;
}
std::optional<double> SpecInterpreter::score(Element e, double scaledLogit) {
  std::optional<Scalar> v = run<false>(*programs[1], e, scaledLogit);
  return v ? std::optional<double>(v->f) : std::nullopt;
}
std::optional<double> SpecInterpreter::bias(Element e) {
  std::optional<Scalar> v = run<false>(*programs[3], e, 0);
  return v ? std::optional<double>(v->f) : std::nullopt;
}
std::optional<double> SpecInterpreter::sink(Element e) {
  std::optional<Scalar> v = run<false>(*programs[4], e, 0);
  return v ? std::optional<double>(v->f) : std::nullopt;
}

//===----------------------------------------------------------------------===//
// Dual mode: forward-mode derivatives (the rules are listed at Partials in
// SpecInterpreter.h).
//===----------------------------------------------------------------------===//

namespace {
using Tangent = std::vector<std::pair<int, double>>;
/// out += c * t, merging equal variables.
void addScaled(Tangent &out, double c, const Tangent &t) {
  for (const auto &[var, d] : t) {
    auto it = std::find_if(out.begin(), out.end(),
                           [v = var](const auto &x) { return x.first == v; });
    if (it == out.end())
      out.push_back({var, c * d});
    else
      it->second += c * d;
  }
}
} // namespace

int SpecInterpreter::readVariable(const std::string &input,
                                  ArrayRef<int64_t> indices) {
  // One variable per element: a second read of it shares it.
  size_t var = 0;
  while (var < dualReads.size() &&
         !(*dualReads[var].input == input &&
           ArrayRef<int64_t>(dualReads[var].indices) == indices))
    ++var;
  if (var == dualReads.size())
    dualReads.push_back({&input, {indices.begin(), indices.end()}});
  return int(var) + 1;
}

void SpecInterpreter::differentiate(const Instr &in, const Scalar &A,
                                    const Scalar &B, const Scalar &result) {
  using I = Instr;
  Tangent &out = tangents[in.result];
  const Tangent &ta = tangents[in.a], &tb = tangents[in.b];
  double a = A.f, b = B.f, r = result.f;
  auto nearBranch = [&](bool depends, double gap, double size) {
    if (depends)
      branchMargin = std::min(branchMargin, std::abs(gap) / std::max(1.0, size));
  };
  switch (in.code) {
  case I::MinF:
  case I::MaxF:
  case I::CmpF:
    nearBranch(!ta.empty() || !tb.empty(), a - b,
               std::max(std::abs(a), std::abs(b)));
    break;
  case I::AbsF: nearBranch(!ta.empty(), a, std::abs(a)); break;
  default: break;
  }
  switch (in.code) {
  case I::Score: out.push_back({0, 1.0}); break;
  case I::AddF: addScaled(out, 1, ta), addScaled(out, 1, tb); break;
  case I::SubF: addScaled(out, 1, ta), addScaled(out, -1, tb); break;
  case I::MulF: addScaled(out, b, ta), addScaled(out, a, tb); break;
  case I::DivF: addScaled(out, 1 / b, ta), addScaled(out, -r / b, tb); break;
  case I::RemF: // fmod(a, b) = a - trunc(a / b) * b
    addScaled(out, 1, ta), addScaled(out, -std::trunc(a / b), tb);
    break;
  case I::NegF: addScaled(out, -1, ta); break;
  // The selected operand; on a tie (or a NaN) the first one.
  case I::MinF: addScaled(out, 1, b < a ? tb : ta); break;
  case I::MaxF: addScaled(out, 1, b > a ? tb : ta); break;
  case I::Exp: addScaled(out, r, ta); break;
  case I::Log: addScaled(out, 1 / a, ta); break;
  case I::Exp2: addScaled(out, r * kLn2, ta); break;
  case I::Log2: addScaled(out, 1 / (a * kLn2), ta); break;
  case I::Sqrt: addScaled(out, 0.5 / r, ta); break;
  case I::Tanh: addScaled(out, 1 - r * r, ta); break;
  case I::Sin: addScaled(out, std::cos(a), ta); break;
  case I::Cos: addScaled(out, -std::sin(a), ta); break;
  case I::AbsF: addScaled(out, a > 0 ? 1.0 : a < 0 ? -1.0 : 0.0, ta); break;
  case I::Pow: // PyTorch's conventions at the edges
    if (!ta.empty())
      addScaled(out, b == 0 ? 0.0 : b * std::pow(a, b - 1), ta);
    if (!tb.empty())
      addScaled(out, a == 0 && b >= 0 ? 0.0 : r * std::log(a), tb);
    break;
  case I::Select: addScaled(out, 1, A.b ? tb : tangents[in.c]); break;
  default: break; // constants, coordinates, ints, bools, floor, ceil, round: 0
  }
}

std::optional<double> SpecInterpreter::runDual(const Program &program,
                                               Element e, double scoreValue,
                                               Partials &partials) {
  partials = Partials();
  branchMargin = partials.branchMargin;
  std::optional<Scalar> v = run<true>(program, e, scoreValue);
  if (!v)
    return std::nullopt;
  partials.branchMargin = branchMargin;
  for (const auto &[var, d] : resultTangent) {
    if (var == 0) {
      partials.dScore += d;
      continue;
    }
    const DualRead &read = dualReads[var - 1];
    partials.reads.push_back({*read.input, read.indices, d});
  }
  return v->f;
}

std::optional<double> SpecInterpreter::scaleDual(Element e,
                                                 Partials &partials) {
  return runDual(*programs[0], e, 0, partials);
}
std::optional<double> SpecInterpreter::scoreDual(Element e, double scaledLogit,
                                                 Partials &partials) {
  return runDual(*programs[1], e, scaledLogit, partials);
}
std::optional<double> SpecInterpreter::biasDual(Element e,
                                                Partials &partials) {
  return runDual(*programs[3], e, 0, partials);
}
std::optional<double> SpecInterpreter::sinkDual(Element e,
                                                Partials &partials) {
  return runDual(*programs[4], e, 0, partials);
}
