//===- RegionEmitter.cpp - Inline spec regions as scalar arith ------------===//
//
// See RegionEmitter.h. Ops that lower as they are (arith, math, constants)
// are cloned; the attn ops and the integer ops that can trap are rewritten.
//
//===----------------------------------------------------------------------===//
#include "attnc/Passes/RegionEmitter.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/ADT/TypeSwitch.h"

#include <limits>

using namespace mlir;
using namespace mlir::attn;

MemRefType mlir::attn::flatBufferType(Type elementType) {
  MLIRContext *ctx = elementType.getContext();
  auto layout = StridedLayoutAttr::get(ctx, ShapedType::kDynamic, {1});
  return MemRefType::get({ShapedType::kDynamic}, elementType, layout);
}

static Value constI64(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIntOp::create(b, loc, b.getI64Type(), v);
}

static Value toIndex(OpBuilder &b, Location loc, Value i64) {
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), i64);
}

void mlir::attn::emitRecordError(OpBuilder &b, Location loc, Value status,
                                 KernelError code, ArrayRef<Value> details) {
  Value c0 = arith::ConstantIndexOp::create(b, loc, 0);
  Value first = memref::LoadOp::create(b, loc, status, ValueRange{c0});
  Value isFirst = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                        first, constI64(b, loc, 0));
  auto ifOp = scf::IfOp::create(b, loc, isFirst, /*withElse=*/false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(ifOp.thenBlock());
  memref::StoreOp::create(b, loc, constI64(b, loc, int64_t(code)), status,
                          ValueRange{c0});
  for (auto [i, d] : llvm::enumerate(details)) {
    Value idx = arith::ConstantIndexOp::create(b, loc, i + 1);
    memref::StoreOp::create(b, loc, d, status, ValueRange{idx});
  }
}

namespace {
class Emitter {
public:
  Emitter(OpBuilder &b, SpecOp spec, const RegionEnv &env)
      : b(b), spec(spec), env(env) {}

  FailureOr<Value> run(Region &region) {
    for (Operation &op : region.front()) {
      if (auto y = dyn_cast<YieldOp>(op)) {
        emitTraps(region);
        return y.getValue() ? map.lookup(y.getValue()) : Value();
      }
      if (failed(emit(&op)))
        return failure();
    }
    return spec.emitError("region without attn.yield");
  }

private:
  /// An op that may fail: `failed` (i1) says it did on this element, and
  /// the error is recorded where its value is needed (emitTraps).
  struct Trap {
    Operation *op;
    Value failed;
    KernelError code;
    SmallVector<Value> indices, dims; // reads: the indices and extents
    int64_t input = 0;
  };

  Value i1(bool v) {
    return arith::ConstantIntOp::create(b, spec.getLoc(), b.getI1Type(), v);
  }
  // Needs are i1 values, null meaning "always".
  Value andNeed(Location loc, Value x, Value y) {
    if (!x || !y)
      return x ? x : y;
    return arith::AndIOp::create(b, loc, x, y);
  }

  /// Records each trap's error where it failed and its value is needed:
  /// need(op) from planNeeds, built after the region's last op so that
  /// every condition it refers to exists.
  void emitTraps(Region &region) {
    if (traps.empty())
      return;
    llvm::SmallPtrSet<Operation *, 8> trapOps;
    for (const Trap &t : traps)
      trapOps.insert(t.op);
    DenseMap<Operation *, Value> need;
    for (const NeedNode &n : planNeeds(region, [&](Operation *op) {
           return trapOps.contains(op);
         })) {
      Location loc = n.op->getLoc();
      Value any = i1(false);
      bool always = false;
      for (const NeedTerm &t : n.terms) {
        Value term = t.user ? need.lookup(t.user) : env.guard;
        if (t.cond) {
          Value c = map.lookup(t.cond);
          if (t.negated)
            c = arith::XOrIOp::create(b, loc, c, i1(true));
          term = andNeed(loc, term, c);
        }
        if (!term)
          always = true;
        else
          any = arith::OrIOp::create(b, loc, any, term);
      }
      need[n.op] = always ? Value() : any;
    }
    for (const Trap &t : traps) {
      Location loc = t.op->getLoc();
      Value cond = andNeed(loc, need.lookup(t.op), t.failed);
      auto ifOp = scf::IfOp::create(b, loc, cond, /*withElse=*/false);
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(ifOp.thenBlock());
      if (t.code == KernelError::DivisionByZero) {
        emitRecordError(b, loc, env.status, t.code, {});
        continue;
      }
      if (t.code == KernelError::ShiftOutOfRange) {
        emitRecordError(b, loc, env.status, t.code, t.indices);
        continue;
      }
      // Report the first offending dimension.
      using P = arith::CmpIPredicate;
      Value zero = constI64(b, loc, 0);
      Value dimIdx = zero, badIdx = t.indices[0];
      for (int64_t d = int64_t(t.indices.size()) - 1; d >= 0; --d) {
        Value ge = arith::CmpIOp::create(b, loc, P::sge, t.indices[d], zero);
        Value lt = arith::CmpIOp::create(b, loc, P::slt, t.indices[d], t.dims[d]);
        Value bad = arith::XOrIOp::create(
            b, loc, arith::AndIOp::create(b, loc, ge, lt), i1(true));
        dimIdx = arith::SelectOp::create(b, loc, bad, constI64(b, loc, d), dimIdx);
        badIdx = arith::SelectOp::create(b, loc, bad, t.indices[d], badIdx);
      }
      emitRecordError(b, loc, env.status, t.code,
                      {constI64(b, loc, t.input), dimIdx, badIdx});
    }
  }

  LogicalResult emit(Operation *op) {
    Location loc = op->getLoc();
    return llvm::TypeSwitch<Operation *, LogicalResult>(op)
        .Case([&](IndexOp x) { return bind(x, coordinate(x.getVar())); })
        .Case([&](DimOp x) {
          return bind(x, env.sizes[static_cast<int>(x.getVar())]);
        })
        .Case([&](ScoreOp x) { return bind(x, env.score); })
        .Case([&](ParamOp x) -> LogicalResult {
          ParamAttr p = spec.lookupParam(x.getName());
          if (!p || !p.getValue())
            return x.emitError("param '")
                   << x.getName() << "' has no value; give one with -D "
                   << x.getName() << "=VALUE";
          return bind(x, arith::ConstantOp::create(b, loc, p.getValue()));
        })
        .Case([&](ReadOp x) { return emitRead(x); })
        .Case([&](AdjointOp x) { return bind(x, env.adjoint); })
        .Case([&](AccumulateOp x) { return emitAccumulate(x); })
        .Case([&](arith::FloorDivSIOp x) {
          return bind(x, emitDivMod(x, loc, map.lookup(x.getLhs()),
                                    map.lookup(x.getRhs()), /*mod=*/false));
        })
        .Case([&](FloorModOp x) {
          return bind(x, emitDivMod(x, loc, map.lookup(x.getLhs()),
                                    map.lookup(x.getRhs()), /*mod=*/true));
        })
        .Case<arith::ShLIOp, arith::ShRSIOp>([&](Operation *x) {
          return bind(x, emitShift(x, loc, map.lookup(x->getOperand(0)),
                                   map.lookup(x->getOperand(1))));
        })
        .Case([&](arith::FPToSIOp x) {
          return bind(x, emitFPToSI(loc, map.lookup(x.getIn())));
        })
        .Default([&](Operation *other) -> LogicalResult {
          Dialect *d = other->getDialect();
          if (!d || (!isa<arith::ArithDialect>(d) &&
                     !isa<math::MathDialect>(d)))
            return other->emitError("cannot emit '")
                   << other->getName() << "' in a kernel";
          if (other->getNumRegions() != 0)
            return other->emitError("cannot emit an op with regions");
          b.clone(*other, map);
          return success();
        });
  }

  LogicalResult bind(Operation *op, Value v) {
    if (!v)
      return op->emitError("this value is not available in this region");
    map.map(op->getResult(0), v);
    return success();
  }

  Value coordinate(IndexVar var) {
    switch (var) {
    case IndexVar::b: return env.b;
    case IndexVar::h: return env.h;
    case IndexVar::hkv: return env.hkv;
    case IndexVar::q: return env.q;
    case IndexVar::kv: return env.kv;
    }
    return {};
  }

  /// Python's floor division / modulo with x86-safe divisors: a zero
  /// divisor is a DivisionByZero trap (and the result is 0); -1 never
  /// reaches the divide (INT64_MIN / -1 traps).
  Value emitDivMod(Operation *op, Location loc, Value x, Value y, bool mod) {
    using P = arith::CmpIPredicate;
    Value zero = constI64(b, loc, 0), one = constI64(b, loc, 1),
          minusOne = constI64(b, loc, -1);
    Value isZero = arith::CmpIOp::create(b, loc, P::eq, y, zero);
    Value isMinusOne = arith::CmpIOp::create(b, loc, P::eq, y, minusOne);
    traps.push_back({op, isZero, KernelError::DivisionByZero, {}, {}});
    Value unsafe = arith::OrIOp::create(b, loc, isZero, isMinusOne);
    Value safeY = arith::SelectOp::create(b, loc, unsafe, one, y);
    Value div = arith::FloorDivSIOp::create(b, loc, x, safeY);
    // x floordiv -1 == -x (wrapping), x floormod -1 == 0.
    Value negX = arith::SubIOp::create(b, loc, zero, x);
    Value result;
    if (mod) {
      Value m = arith::SubIOp::create(
          b, loc, x, arith::MulIOp::create(b, loc, div, safeY));
      result = arith::SelectOp::create(b, loc, unsafe, zero, m);
    } else {
      Value d = arith::SelectOp::create(b, loc, isMinusOne, negX, div);
      result = arith::SelectOp::create(b, loc, isZero, zero, d);
    }
    return result;
  }

  /// x << n, x >> n (arithmetic) for n in [0, 63]; another n is a
  /// ShiftOutOfRange trap (status[1] = n) and the result is 0, never
  /// LLVM's poison.
  Value emitShift(Operation *op, Location loc, Value x, Value n) {
    using P = arith::CmpIPredicate;
    Value zero = constI64(b, loc, 0);
    Value bad = arith::CmpIOp::create(b, loc, P::ugt, n, constI64(b, loc, 63));
    traps.push_back({op, bad, KernelError::ShiftOutOfRange, {n}, {}});
    Value safeN = arith::SelectOp::create(b, loc, bad, zero, n);
    Value shifted = isa<arith::ShLIOp>(op)
                        ? Value(arith::ShLIOp::create(b, loc, x, safeN))
                        : Value(arith::ShRSIOp::create(b, loc, x, safeN));
    return arith::SelectOp::create(b, loc, bad, zero, shifted);
  }

  /// int(x): truncation toward zero, NaN -> 0, saturating at the ends.
  Value emitFPToSI(Location loc, Value x) {
    using P = arith::CmpFPredicate;
    Type f32 = x.getType();
    Value hiF = arith::ConstantOp::create(b, loc, FloatAttr::get(f32, 9.2233720368547758e18));
    Value loF = arith::ConstantOp::create(b, loc, FloatAttr::get(f32, -9.2233720368547758e18));
    Value isNan = arith::CmpFOp::create(b, loc, P::UNO, x, x);
    Value tooHigh = arith::CmpFOp::create(b, loc, P::OGE, x, hiF);
    Value tooLow = arith::CmpFOp::create(b, loc, P::OLE, x, loF);
    Value zeroF = arith::ConstantOp::create(b, loc, FloatAttr::get(f32, 0.0));
    Value inRange = arith::SelectOp::create(
        b, loc, arith::OrIOp::create(b, loc, isNan,
                                     arith::OrIOp::create(b, loc, tooHigh, tooLow)),
        zeroF, x);
    Value i = arith::FPToSIOp::create(b, loc, b.getI64Type(), inRange);
    i = arith::SelectOp::create(b, loc, tooHigh,
                                constI64(b, loc, std::numeric_limits<int64_t>::max()), i);
    return arith::SelectOp::create(
        b, loc, tooLow, constI64(b, loc, std::numeric_limits<int64_t>::min()), i);
  }

  /// True if `v` is the coordinate whose extent is `dimName` (b in [B], h in
  /// [HQ], hkv in [HKV], q in [LQ], kv in [LK]): such a read needs no check.
  static bool provenInRange(Value v, Attribute dim) {
    auto name = dyn_cast<StringAttr>(dim);
    auto idx = v.getDefiningOp<IndexOp>();
    if (!name || !idx)
      return false;
    static const char *extents[] = {"B", "HQ", "HKV", "LQ", "LK"};
    return name.getValue() == extents[static_cast<int>(idx.getVar())];
  }

  LogicalResult emitRead(ReadOp x) {
    Location loc = x.getLoc();
    ArrayAttr decls = spec.getInputsAttr();
    int64_t number = -1;
    InputAttr decl;
    for (auto [i, a] : llvm::enumerate(decls ? decls.getValue()
                                             : ArrayRef<Attribute>{})) {
      auto in = cast<InputAttr>(a);
      if (in.getName().getValue() == x.getInput()) {
        number = int64_t(i);
        decl = in;
      }
    }
    if (!decl || number >= int64_t(env.inputs.size()))
      return x.emitError("unknown input '") << x.getInput() << "'";
    const InputBinding &in = env.inputs[number];
    if (x.getIndices().size() != in.dims.size())
      return x.emitError("wrong number of indices");

    using P = arith::CmpIPredicate;
    Value zero = constI64(b, loc, 0);
    Value ok = i1(true);
    bool checked = false;
    Value offset = zero;
    SmallVector<Value> indices;
    for (auto [d, orig] : llvm::enumerate(x.getIndices())) {
      Value i = map.lookup(orig);
      indices.push_back(i);
      if (!provenInRange(orig, in.declDims[d])) {
        checked = true;
        Value ge = arith::CmpIOp::create(b, loc, P::sge, i, zero);
        Value lt = arith::CmpIOp::create(b, loc, P::slt, i, in.dims[d]);
        ok = arith::AndIOp::create(b, loc, ok,
                                   arith::AndIOp::create(b, loc, ge, lt));
      }
      offset = arith::AddIOp::create(
          b, loc, offset, arith::MulIOp::create(b, loc, i, in.strides[d]));
    }
    if (checked)
      traps.push_back({x, arith::XOrIOp::create(b, loc, ok, i1(true)),
                       KernelError::InputOutOfRange, indices, in.dims, number});
    reads[x] = {number, ok, indices};
    // Out of range: no load, the value is 0 (whether or not it is needed).
    Type resultType = x.getType();
    auto ifOp = scf::IfOp::create(b, loc, TypeRange{resultType}, ok,
                                  /*withElse=*/true);
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(ifOp.thenBlock());
      Value v = memref::LoadOp::create(b, loc, in.buffer,
                                       ValueRange{toIndex(b, loc, offset)});
      if (resultType.isInteger(1))
        v = arith::CmpIOp::create(b, loc, P::ne, v,
                                  arith::ConstantIntOp::create(b, loc, v.getType(), 0));
      scf::YieldOp::create(b, loc, v);

      b.setInsertionPointToStart(ifOp.elseBlock());
      Value zeroV = resultType.isInteger(1) ? i1(false)
                    : isa<FloatType>(resultType)
                        ? Value(arith::ConstantOp::create(b, loc, FloatAttr::get(resultType, 0.0)))
                        : zero;
      scf::YieldOp::create(b, loc, zeroV);
    }
    map.map(x.getResult(), ifOp.getResult(0));
    return success();
  }

  /// grad[dense index of the element %r reads] += %g, where the pair is
  /// kept and the index in range.
  LogicalResult emitAccumulate(AccumulateOp x) {
    Location loc = x.getLoc();
    auto it = reads.find(x.getRead());
    if (it == reads.end())
      return x.emitError("accumulates into a read this region has not made");
    const ReadInfo &r = it->second;
    Value base = r.input < int64_t(env.gradOffsets.size())
                     ? env.gradOffsets[r.input]
                     : Value();
    if (!base || !env.gradBuffer)
      return x.emitError("input '")
             << x.getRead().getInput() << "' has no gradient buffer here";
    // Dense row-major: ((i0 * n1 + i1) * n2 + i2) ...
    const InputBinding &in = env.inputs[r.input];
    Value dense = constI64(b, loc, 0);
    for (auto [d, i] : llvm::enumerate(r.indices))
      dense = arith::AddIOp::create(
          b, loc, arith::MulIOp::create(b, loc, dense, in.dims[d]), i);
    Value cond = andNeed(loc, env.guard, r.ok);
    auto ifOp = scf::IfOp::create(b, loc, cond, /*withElse=*/false);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    Value at = toIndex(b, loc, arith::AddIOp::create(b, loc, base, dense));
    Value old = memref::LoadOp::create(b, loc, env.gradBuffer, ValueRange{at});
    Value sum = arith::AddFOp::create(b, loc, old, map.lookup(x.getValue()));
    memref::StoreOp::create(b, loc, sum, env.gradBuffer, ValueRange{at});
    return success();
  }

  struct ReadInfo {
    int64_t input;
    Value ok; // i1: every index in range
    SmallVector<Value> indices;
  };

  OpBuilder &b;
  SpecOp spec;
  const RegionEnv &env;
  IRMapping map;
  SmallVector<Trap> traps;
  DenseMap<Operation *, ReadInfo> reads;
};
} // namespace

SmallVector<NeedNode>
mlir::attn::planNeeds(Region &region,
                      llvm::function_ref<bool(Operation *)> isTrap) {
  SmallVector<NeedNode> nodes;
  if (region.empty())
    return nodes;
  // The forward slice of the traps: ops are in program order, so one pass.
  llvm::SmallPtrSet<Operation *, 16> reach;
  SmallVector<Operation *> order;
  for (Operation &op : region.front()) {
    if (isa<YieldOp>(op))
      continue;
    bool in = isTrap(&op) || llvm::any_of(op.getOperands(), [&](Value v) {
                Operation *d = v.getDefiningOp();
                return d && reach.contains(d);
              });
    if (in) {
      reach.insert(&op);
      order.push_back(&op);
    }
  }
  for (Operation *op : llvm::reverse(order)) {
    NeedNode node{op, {}};
    for (OpOperand &use : op->getUses()) {
      Operation *user = use.getOwner();
      if (isa<AccumulateOp>(user))
        continue;
      unsigned n = use.getOperandNumber();
      NeedTerm term{isa<YieldOp>(user) ? nullptr : user, Value(), false};
      bool boolOp = user->getNumResults() == 1 &&
                    user->getResult(0).getType().isInteger(1);
      if (auto sel = dyn_cast<arith::SelectOp>(user); sel && n > 0)
        term.cond = sel.getCondition(), term.negated = n == 2;
      else if (isa<arith::AndIOp, arith::OrIOp>(user) && boolOp && n == 1)
        term.cond = user->getOperand(0), term.negated = isa<arith::OrIOp>(user);
      node.terms.push_back(term);
    }
    nodes.push_back(std::move(node));
  }
  return nodes;
}

FailureOr<Value> mlir::attn::emitSpecRegion(OpBuilder &b, Location loc,
                                            SpecOp spec, Region &region,
                                            const RegionEnv &env) {
  (void)loc;
  return Emitter(b, spec, env).run(region);
}
