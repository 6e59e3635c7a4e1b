//===- MLIRGen.cpp - Checked .attn tree -> attn dialect -------------------===//
//
// Each clause becomes one region of attn.spec. Names become leaf ops
// (attn.index, attn.dim, attn.param, attn.read, attn.score), operators become
// arith/math ops. The language's int `/` is floor division
// (arith.floordivsi) and `%` floor modulo (attn.floormod); sigmoid is
// expanded to 1 / (1 + exp(-x)); clamp to min(max(x, lo), hi); sign to
// selects. A let's expression is generated once per region, at its first
// use (named masks are lets), so the regions hold no trace of the names.
//
//===----------------------------------------------------------------------===//
#include "attnc/Frontend/MLIRGen.h"
#include "attnc/Dialect/AttnDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"

using namespace mlir;
using namespace mlir::attn;
namespace ast = attnc::ast;

namespace {
class Generator {
public:
  Generator(MLIRContext &ctx, const ast::Module &m)
      : ctx(ctx), module(m), b(&ctx) {}

  OwningOpRef<ModuleOp> run() {
    OwningOpRef<ModuleOp> top = ModuleOp::create(loc(ast::Loc{1, 1}));
    b.setInsertionPointToEnd(top->getBody());
    for (const ast::AttentionDecl &a : module.attentions)
      genSpec(a);
    if (failed(verify(*top)))
      return nullptr;
    return top;
  }

private:
  MLIRContext &ctx;
  const ast::Module &module;
  const ast::AttentionDecl *decl = nullptr; // the block being generated
  /// Each let's value in the region being generated: made at its first use
  /// (in program order, so it dominates the later ones) and reused, so a
  /// chain of lets costs its length, not 2^length copies.
  DenseMap<int, Value> letValues;
  OpBuilder b;

  Location loc(ast::Loc l) {
    llvm::StringRef file = l.file < module.files.size()
                               ? llvm::StringRef(module.files[l.file].name)
                               : llvm::StringRef(module.fileName);
    return FileLineColLoc::get(&ctx, file, l.line, l.col);
  }
  Type typeOf(ast::Type t) {
    switch (t) {
    case ast::Type::Int:
      return b.getI64Type();
    case ast::Type::Float:
      return b.getF32Type();
    default:
      return b.getI1Type();
    }
  }

  void genSpec(const ast::AttentionDecl &a) {
    decl = &a;
    SmallVector<Attribute> params, inputs;
    for (const ast::ParamDecl &p : a.params) {
      Type t = typeOf(p.type);
      TypedAttr value;
      if (p.hasValue) {
        if (p.type == ast::Type::Int)
          value = b.getI64IntegerAttr(p.intValue);
        else if (p.type == ast::Type::Float)
          value = b.getF32FloatAttr(static_cast<float>(p.floatValue));
        else
          value = b.getBoolAttr(p.boolValue);
      }
      params.push_back(ParamAttr::get(&ctx, b.getStringAttr(p.name), t, value));
    }
    for (const ast::InputDecl &in : a.inputs) {
      SmallVector<Attribute> shape;
      for (const ast::InputDim &d : in.dims)
        shape.push_back(d.symbol.empty()
                            ? Attribute(b.getI64IntegerAttr(d.extent))
                            : Attribute(b.getStringAttr(d.symbol)));
      inputs.push_back(InputAttr::get(&ctx, b.getStringAttr(in.name),
                                      typeOf(in.elementType),
                                      b.getArrayAttr(shape)));
    }
    bool sigmoid = a.normalize == ast::NormalizeKind::Sigmoid;
    auto spec = SpecOp::create(
        b, loc(a.loc), b.getStringAttr(a.name),
        NormalizeKindAttr::get(&ctx, sigmoid ? NormalizeKind::sigmoid
                                             : NormalizeKind::softmax),
        params.empty() ? ArrayAttr() : b.getArrayAttr(params),
        inputs.empty() ? ArrayAttr() : b.getArrayAttr(inputs),
        /*mask_schedule=*/MaskAttr(), /*mask_schedule_columns=*/MaskAttr(),
        /*dropout=*/!sigmoid && a.softmaxDropout ? b.getF64FloatAttr(a.dropout)
                                                  : FloatAttr());
    OpBuilder::InsertionGuard guard(b);
    genRegion(spec.getScale(), *a.scale, b.getF32Type());
    genRegion(spec.getScore(), *a.score, b.getF32Type());
    genRegion(spec.getMask(), *a.mask, b.getI1Type());
    if (sigmoid && a.sigmoidBias)
      genRegion(spec.getBias(), *a.sigmoidBias, b.getF32Type());
    if (!sigmoid && a.softmaxSink)
      genRegion(spec.getSink(), *a.softmaxSink, b.getF32Type());
  }

  void genRegion(Region &region, const ast::Expr &e, Type resultType) {
    Block *block = b.createBlock(&region);
    b.setInsertionPointToEnd(block);
    letValues.clear();
    Value v = gen(e);
    // Sema has made clause results the clause type; convert defensively.
    if (v.getType() != resultType)
      v = convert(v, resultType, loc(e.loc));
    YieldOp::create(b, loc(e.loc), v);
  }

  Value constInt(Location l, int64_t v) {
    return arith::ConstantOp::create(b, l, b.getI64IntegerAttr(v));
  }
  Value constFloat(Location l, double v) {
    return arith::ConstantOp::create(b, l,
                                     b.getF32FloatAttr(static_cast<float>(v)));
  }

  Value convert(Value v, Type to, Location l) {
    Type from = v.getType();
    if (from == to)
      return v;
    if (to.isF32())
      return from.isInteger(1)
                 ? Value(arith::UIToFPOp::create(b, l, to, v))
                 : Value(arith::SIToFPOp::create(b, l, to, v));
    if (to.isInteger(64))
      return from.isInteger(1) ? Value(arith::ExtUIOp::create(b, l, to, v))
                               : Value(arith::FPToSIOp::create(b, l, to, v));
    // to bool: x != 0
    if (from.isF32())
      return arith::CmpFOp::create(b, l, arith::CmpFPredicate::UNE, v,
                                   constFloat(l, 0));
    return arith::CmpIOp::create(b, l, arith::CmpIPredicate::ne, v,
                                 constInt(l, 0));
  }

  Value gen(const ast::Expr &e) {
    Location l = loc(e.loc);
    switch (e.kind) {
    case ast::Expr::Kind::IntLit:
      return constInt(l, e.intValue);
    case ast::Expr::Kind::FloatLit:
      return constFloat(l, e.floatValue);
    case ast::Expr::Kind::BoolLit:
      return arith::ConstantOp::create(b, l, b.getBoolAttr(e.boolValue));
    case ast::Expr::Kind::Index:
      return IndexOp::create(b, l, static_cast<IndexVar>(e.indexVar));
    case ast::Expr::Kind::Size:
      return DimOp::create(b, l, static_cast<SizeVar>(e.sizeVar));
    case ast::Expr::Kind::Score:
      return ScoreOp::create(b, l);
    case ast::Expr::Kind::Param:
      return ParamOp::create(b, l, typeOf(e.type), e.name);
    case ast::Expr::Kind::Read: {
      SmallVector<Value> idx;
      for (const ast::ExprPtr &o : e.operands)
        idx.push_back(gen(*o));
      return ReadOp::create(b, l, typeOf(e.type), e.name, idx);
    }
    case ast::Expr::Kind::Cast:
      return convert(gen(*e.operands[0]), typeOf(e.type), l);
    case ast::Expr::Kind::Unary: {
      Value x = gen(*e.operands[0]);
      if (e.unaryOp == ast::UnaryOp::Not)
        return arith::XOrIOp::create(
            b, l, x, arith::ConstantOp::create(b, l, b.getBoolAttr(true)));
      if (x.getType().isF32())
        return arith::NegFOp::create(b, l, x);
      return arith::SubIOp::create(b, l, constInt(l, 0), x);
    }
    case ast::Expr::Kind::Binary:
      return genBinary(e, l);
    case ast::Expr::Kind::Select: {
      Value c = gen(*e.operands[0]);
      Value t = gen(*e.operands[1]);
      Value f = gen(*e.operands[2]);
      return arith::SelectOp::create(b, l, c, t, f);
    }
    case ast::Expr::Kind::Call:
      return genCall(e, l);
    case ast::Expr::Kind::Let: {
      if (Value v = letValues.lookup(e.letIndex))
        return v;
      Value v = gen(*decl->lets[size_t(e.letIndex)].expr);
      letValues[e.letIndex] = v;
      return v;
    }
    }
    return {};
  }

  Value genBinary(const ast::Expr &e, Location l) {
    Value x = gen(*e.operands[0]);
    Value y = gen(*e.operands[1]);
    bool isFloat = x.getType().isF32();
    bool isBool = x.getType().isInteger(1);
    using BO = ast::BinaryOp;
    auto cmp = [&](arith::CmpIPredicate ip, arith::CmpFPredicate fp) -> Value {
      if (isFloat)
        return arith::CmpFOp::create(b, l, fp, x, y);
      return arith::CmpIOp::create(b, l, ip, x, y);
    };
    switch (e.binaryOp) {
    case BO::Add:
      return isFloat ? Value(arith::AddFOp::create(b, l, x, y))
                     : Value(arith::AddIOp::create(b, l, x, y));
    case BO::Sub:
      return isFloat ? Value(arith::SubFOp::create(b, l, x, y))
                     : Value(arith::SubIOp::create(b, l, x, y));
    case BO::Mul:
      return isFloat ? Value(arith::MulFOp::create(b, l, x, y))
                     : Value(arith::MulIOp::create(b, l, x, y));
    case BO::Div:
      return isFloat ? Value(arith::DivFOp::create(b, l, x, y))
                     : Value(arith::FloorDivSIOp::create(b, l, x, y));
    case BO::Mod:
      return isFloat ? Value(arith::RemFOp::create(b, l, x, y))
                     : Value(FloorModOp::create(b, l, x, y));
    case BO::Lt:
      return cmp(arith::CmpIPredicate::slt, arith::CmpFPredicate::OLT);
    case BO::Le:
      return cmp(arith::CmpIPredicate::sle, arith::CmpFPredicate::OLE);
    case BO::Gt:
      return cmp(arith::CmpIPredicate::sgt, arith::CmpFPredicate::OGT);
    case BO::Ge:
      return cmp(arith::CmpIPredicate::sge, arith::CmpFPredicate::OGE);
    case BO::Eq:
      return cmp(arith::CmpIPredicate::eq, arith::CmpFPredicate::OEQ);
    case BO::Ne:
      return cmp(arith::CmpIPredicate::ne, arith::CmpFPredicate::UNE);
    case BO::And:
      return arith::AndIOp::create(b, l, x, y);
    case BO::Or:
      return arith::OrIOp::create(b, l, x, y);
    // On i64. A shift count outside [0, 63] is a kernel error, not LLVM's
    // poison: the emitters guard it (RegionEmitter.h).
    case BO::BitAnd:
      return arith::AndIOp::create(b, l, x, y);
    case BO::BitOr:
      return arith::OrIOp::create(b, l, x, y);
    case BO::BitXor:
      return arith::XOrIOp::create(b, l, x, y);
    case BO::Shl:
      return arith::ShLIOp::create(b, l, x, y);
    case BO::Shr:
      return arith::ShRSIOp::create(b, l, x, y);
    }
    (void)isBool;
    return {};
  }

  /// sign(x) = x > 0 ? 1 : (x < 0 ? -1 : x * 0): -1, 0 or 1; on floats
  /// -0 stays -0 and NaN stays NaN, and every arm has zero derivative.
  Value genSign(Value x, Location l) {
    if (x.getType().isF32()) {
      using P = arith::CmpFPredicate;
      Value zero = constFloat(l, 0.0);
      Value inner = arith::SelectOp::create(
          b, l, arith::CmpFOp::create(b, l, P::OLT, x, zero), constFloat(l, -1.0),
          arith::MulFOp::create(b, l, x, zero));
      return arith::SelectOp::create(b, l, arith::CmpFOp::create(b, l, P::OGT, x, zero),
                                     constFloat(l, 1.0), inner);
    }
    using P = arith::CmpIPredicate;
    Value zero = constInt(l, 0);
    Value inner = arith::SelectOp::create(
        b, l, arith::CmpIOp::create(b, l, P::slt, x, zero), constInt(l, -1), zero);
    return arith::SelectOp::create(b, l, arith::CmpIOp::create(b, l, P::sgt, x, zero),
                                   constInt(l, 1), inner);
  }

  Value genCall(const ast::Expr &e, Location l) {
    SmallVector<Value> args;
    for (const ast::ExprPtr &o : e.operands)
      args.push_back(gen(*o));
    Type t = typeOf(e.type);
    // Promote arguments to the call's result type where Sema left them
    // mixed (e.g. min(int, float) is float).
    auto arg = [&](unsigned i) {
      return t.isF32() ? convert(args[i], t, l) : args[i];
    };
    bool isFloat = t.isF32();
    using F = ast::Builtin;
    switch (e.builtin) {
    case F::Exp:
      return math::ExpOp::create(b, l, arg(0));
    case F::Log:
      return math::LogOp::create(b, l, arg(0));
    case F::Sqrt:
      return math::SqrtOp::create(b, l, arg(0));
    case F::Tanh:
      return math::TanhOp::create(b, l, arg(0));
    case F::Sin:
      return math::SinOp::create(b, l, arg(0));
    case F::Cos:
      return math::CosOp::create(b, l, arg(0));
    case F::Floor:
      return math::FloorOp::create(b, l, arg(0));
    case F::Ceil:
      return math::CeilOp::create(b, l, arg(0));
    case F::Pow:
      return math::PowFOp::create(b, l, arg(0), arg(1));
    case F::Exp2:
      return math::Exp2Op::create(b, l, arg(0));
    case F::Log2:
      return math::Log2Op::create(b, l, arg(0));
    case F::Round: // halfway cases away from zero, as C's round
      return math::RoundOp::create(b, l, arg(0));
    case F::Sign:
      return genSign(arg(0), l);
    case F::Sigmoid: {
      // sigmoid(x) = 1 / (1 + exp(-x))
      Value one = constFloat(l, 1.0);
      Value ex = math::ExpOp::create(b, l, arith::NegFOp::create(b, l, arg(0)));
      return arith::DivFOp::create(b, l, one,
                                   arith::AddFOp::create(b, l, one, ex));
    }
    case F::Abs:
      return isFloat ? Value(math::AbsFOp::create(b, l, arg(0)))
                     : Value(math::AbsIOp::create(b, l, arg(0)));
    case F::Min:
      return isFloat ? Value(arith::MinimumFOp::create(b, l, arg(0), arg(1)))
                     : Value(arith::MinSIOp::create(b, l, arg(0), arg(1)));
    case F::Max:
      return isFloat ? Value(arith::MaximumFOp::create(b, l, arg(0), arg(1)))
                     : Value(arith::MaxSIOp::create(b, l, arg(0), arg(1)));
    case F::Clamp: {
      // clamp(x, lo, hi) = min(max(x, lo), hi)
      if (isFloat)
        return arith::MinimumFOp::create(
            b, l, arith::MaximumFOp::create(b, l, arg(0), arg(1)), arg(2));
      return arith::MinSIOp::create(
          b, l, arith::MaxSIOp::create(b, l, arg(0), arg(1)), arg(2));
    }
    case F::ToFloat:
    case F::ToInt:
      return convert(args[0], t, l);
    }
    return {};
  }
};
} // namespace

OwningOpRef<ModuleOp> attnc::mlirGen(MLIRContext &context,
                                     const ast::Module &module) {
  context.loadDialect<AttnDialect, arith::ArithDialect, math::MathDialect>();
  return Generator(context, module).run();
}
