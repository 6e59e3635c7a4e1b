//===- LowerCpuBackward.cpp - The element-wise helpers of the CPU backward -===//
//
// attn-lower-cpu, for a flash op whose spec has gradient regions
// (attn-derive-backward), adds the two generated helpers of the backward
// pass that the runtime's driver (CpuBackward.h) calls, with the ABI of
// KernelABI.h ("backward"):
//
//   @attn_<name>__bwd_kinds (b, h, kt, TQ, TK), on positions (local row or
//   key + the sequence window's qPos or kvPos, KernelABI.h):
//     rows  = schedule_columns(k0, k1)       (the transposed mask's formula:
//                                             its "rows" are keys)
//     for qt in [(hullLo - qPos) / TQ, (hullHi - qPos) / TQ] (cut to the
//     call's rows):                          kinds[qt] = classify(rows, q0, q1)
//     (ids_eq atoms from scans of the ids over the key and query tiles)
//     kinds[numQT], kinds[numQT + 1] = the first and last query tile
//
//   @attn_<name>__bwd_tile (b, h, q0, tq, k0, tk, kind), per pair (i, j)
//   (two loop nests: PARTIAL tiles evaluate the mask, the others do not):
//     keep = kind == PARTIAL ? mask(q, kv) : true
//     s    = scale * S[i, j]                  (S: the raw dot products)
//     z    = score(s)
//     softmax: P = exp(z - lse_i),  dZ = P (dP[i, j] F - delta_i)
//              (dropout, in a call that drops: F = keep(q, kv) / (1 - p),
//              LowerCpuDropout.cpp, the forward's mask; else F = 1)
//     sigmoid: P = sigmoid(z + bias), dZ = dP[i, j] P sigmoid(-(z + bias))
//     dS   = score_grad(adjoint = dZ)        (adds to the score's inputs)
//     scale_grad(adjoint = dS * S[i, j]);  bias_grad(adjoint = dZ)
//     S[i, j] = keep ? P F : 0;  dP[i, j] = keep ? dS * scale : 0
//     (so the driver's dV += S^T dO uses the dropped P, as the forward's
//     out did; its lse check calls with dropout off, to sum the undropped P)
//   and, for a spec with a sink, kind 3 (desc k0 = 0): per row i,
//     S[i] = P_s = kvPos == 0 ? exp(sink - lse_i) : 0
//     sink_grad(adjoint = -P_s delta_i)
//
// Every region is evaluated under the guard `keep`, as in the forward, so
// the evaluation rule and the error reports are the forward's. The exps of
// the normalisation are arith code (expF32), as are the spec's own exp and
// tanh after attn-expand-math (ExpandMath.cpp), not calls to
// libm's expf and tanhf, so LLVM vectorises the pair loop wherever the
// spec's regions allow it (no other libm function, no input gradient, masks
// only in PARTIAL tiles).
//
//===----------------------------------------------------------------------===//
#include "LowerCpu.h"
#include "attnc/Passes/DeriveBackward.h"

#include <limits>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::flash;

namespace {

/// KernelABI.h's backward buffer slots.
enum : int64_t { kBwdDesc = 0, kBwdKinds = 1, kBwdS = 1, kBwdDP = 2,
                 kBwdLse = 3, kBwdDelta = 4, kBwdDInputs = 5 };
/// The tile helper's kind for the rows' sinks (ATTNC_BWD_SINK_ROWS).
constexpr int64_t kBwdSinkRows = 3;

/// The helpers' signature: the forward's, with the eight fixed buffers
/// retyped (desc i64; kinds i64 or S, dP, lse, delta, dinputs f32).
SmallVector<Type> backwardArgTypes(OpBuilder &b, ArrayRef<InputAttr> decls,
                                   bool kinds) {
  SmallVector<Type> types =
      kernelArgTypes(b, b.getF32Type(), decls);
  Type i64Buf = flatBufferType(b.getI64Type());
  Type f32Buf = flatBufferType(b.getF32Type());
  types[kBwdDesc] = i64Buf;
  for (int64_t slot = 1; slot <= kBwdDInputs; ++slot)
    types[slot] = kinds ? i64Buf : f32Buf;
  return types;
}

func::FuncOp createHelper(OpBuilder &b, SpecOp spec, ArrayRef<InputAttr> decls,
                          bool kinds) {
  Location loc = spec.getLoc();
  std::string name = ("attn_" + spec.getSymName() +
                      (kinds ? "__bwd_kinds" : "__bwd_tile"))
                         .str();
  auto func = func::FuncOp::create(
      b, loc, name,
      FunctionType::get(b.getContext(), backwardArgTypes(b, decls, kinds), {}));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  auto ret = func::ReturnOp::create(b, loc);
  b.setInsertionPoint(ret);
  return func;
}

/// hkv = h / (HQ / HKV), 0 when the sizes do not divide (the driver checks
/// them before any call).
Value kvHead(FlashBuilder &f, Value h, Value HQ, Value HKV) {
  using P = arith::CmpIPredicate;
  Value one = f.ci(1);
  Value g = arith::MaxSIOp::create(
      f.b, f.loc, one,
      arith::DivSIOp::create(f.b, f.loc, HQ,
                             arith::MaxSIOp::create(f.b, f.loc, one, HKV)));
  Value hkv = arith::DivSIOp::create(f.b, f.loc, h, g);
  Value bad = arith::CmpIOp::create(f.b, f.loc, P::sle, HKV, f.ci(0));
  return arith::SelectOp::create(f.b, f.loc, bad, f.ci(0), hkv);
}

/// The kinds helper: the column view of the schedule for one key tile.
void emitKinds(OpBuilder &b, FlashOp flash, MaskAttr columns) {
  SpecOp spec = flash.getSpec();
  SmallVector<InputAttr> decls = inputDecls(spec);
  func::FuncOp func = createHelper(b, spec, decls, /*kinds=*/true);
  FlashBuilder f(b, spec.getLoc(), spec, b.getF32Type(), 1, 1);
  auto args = func.getArguments();
  RegionEnv env = loadKernelEnv(f, args, decls);
  CallWindow window = loadCallWindow(f, args, decls);
  Value desc = args[kBwdDesc], kinds = args[kBwdKinds];
  auto at = [&](int64_t i) { return f.load(desc, f.cx(i)); };
  Value bIdx = at(0), h = at(1), kt = at(2), TQ = at(3), TK = at(4);
  Value HQ = env.sizes[1], HKV = env.sizes[2], LQ = window.lq, LK = window.lk;
  Value qPos = window.qPos, kvPos = window.kvPos;
  Value hkv = kvHead(f, h, HQ, HKV);
  env.b = bIdx, env.h = h, env.hkv = hkv;
  // The transposed problem: keys are its rows, LQ and LK exchange.
  SmallVector<Value> syms = {bIdx, h, hkv, env.sizes[0], HQ, HKV,
                             env.sizes[4], env.sizes[3], env.sizes[5], env.sizes[6]};
  // ids_eq atoms (document masks), transposed: the key-side ids are read
  // over the key tile, the query-side ids over each query tile, both by a
  // scan (O(LQ) per key tile), so the backward skips what the forward does.
  SmallVector<MaskAttr> atoms = collectIdsAtoms(columns);
  IdsContext ids;
  ids.range = [&](ArrayAttr read, Value p0, Value p1) {
    return emitIdsRange(f, env, read, p0, p1);
  };
  ids.read = [&](ArrayAttr read) { return emitBoundRead(f, env, read); };
  ids.keyRange = [&](unsigned n, Value p0, Value p1) {
    return emitIdsRange(f, env, cast<ArrayAttr>(atoms[n].getTerms()[1]), p0,
                        p1);
  };
  // Positions: local key k is kvPos + k, local row q is qPos + q; the hull
  // of query positions, cut to the call's rows, gives the local tiles.
  Value k0 = f.mul(kt, TK);
  Value k1 = f.sub(arith::MinSIOp::create(b, f.loc, f.add(k0, TK), LK), f.ci(1));
  EmittedRows rows = emitRowBlock(b, f.loc, columns, f.add(kvPos, k0),
                                  f.add(kvPos, k1), syms, &ids);
  Value numQT = arith::CeilDivSIOp::create(b, f.loc, LQ, TQ);
  using P = arith::CmpIPredicate;
  Value lo = arith::MaxSIOp::create(b, f.loc, f.sub(rows.hullLo, qPos), f.ci(0));
  Value hi = arith::MinSIOp::create(b, f.loc, f.sub(rows.hullHi, qPos),
                                    f.sub(LQ, f.ci(1)));
  Value none = arith::OrIOp::create(
      b, f.loc, arith::CmpIOp::create(b, f.loc, P::sgt, rows.hullLo, rows.hullHi),
      arith::CmpIOp::create(b, f.loc, P::sgt, lo, hi));
  Value first = arith::SelectOp::create(
      b, f.loc, none, f.ci(0), arith::DivSIOp::create(b, f.loc, lo, TQ));
  Value last = arith::SelectOp::create(
      b, f.loc, none, f.ci(-1), arith::DivSIOp::create(b, f.loc, hi, TQ));
  f.store(first, kinds, f.toIdx(numQT));
  f.store(last, kinds, f.toIdx(f.add(numQT, f.ci(1))));
  auto loop = f.forLoop(f.toIdx(first), f.toIdx(f.add(last, f.ci(1))), [&](Value qtx) {
    Value q0 = f.mul(f.toI64(qtx), TQ);
    Value q1 = f.sub(arith::MinSIOp::create(b, f.loc, f.add(q0, TQ), LQ), f.ci(1));
    Value kind = emitTileKind(b, f.loc, columns, rows, f.add(qPos, q0),
                              f.add(qPos, q1), &ids);
    f.store(kind, kinds, qtx);
  });
  FlashBuilder::mark(loop, "attn.loop", "query_tiles");
}

/// The tile helper's per-call values.
struct TileCall {
  RegionEnv env;
  Value S, dP, lse, delta;
  Value q0, tq, k0, tk, kind; // q0, k0: positions (window + local)
  Value scale; // null: per element
  DropoutCall dropout; // softmax(dropout = p); null `on` without
};

/// One pair (i, j) of a PARTIAL tile (`partial`: the mask decides `keep`)
/// or of any other visited tile (keep = true): the steps of the file comment.
LogicalResult emitPair(FlashBuilder &f, SpecOp spec, TileCall &c, Value i,
                       Value j, bool partial) {
  OpBuilder &b = f.b;
  Location loc = f.loc;
  bool sigmoid = spec.getNormalize() == NormalizeKind::sigmoid;
  RegionEnv el = c.env;
  el.q = f.add(c.q0, f.toI64(i));
  el.kv = f.add(c.k0, f.toI64(j));
  Value at = f.toIdx(f.add(f.mul(f.toI64(i), c.tk), f.toI64(j)));
  Value keep = arith::ConstantIntOp::create(b, loc, b.getI1Type(), 1);
  if (partial) {
    FailureOr<Value> m = emitSpecRegion(b, loc, spec, spec.getMask(), el);
    if (failed(m))
      return failure();
    keep = *m;
  }
  el.guard = keep;
  Value scale = c.scale;
  if (!scale) {
    FailureOr<Value> s = emitSpecRegion(b, loc, spec, spec.getScale(), el);
    if (failed(s))
      return failure();
    scale = *s;
  }
  Value dot = f.load(c.S, at);
  el.score = arith::MulFOp::create(b, loc, scale, dot);
  FailureOr<Value> z = emitSpecRegion(b, loc, spec, spec.getScore(), el);
  if (failed(z))
    return failure();
  Value dp = f.load(c.dP, at);
  Value p, dz;
  Value one = f.cf(1);
  if (sigmoid) {
    FailureOr<Value> bias = emitSpecRegion(b, loc, spec, spec.getBias(), el);
    if (failed(bias))
      return failure();
    // P = sigmoid(x), 1 - P = sigmoid(-x): both from their own exp, as
    // 1 - P in float32 loses every digit where P is near 1.
    Value x = arith::AddFOp::create(b, loc, *z, *bias);
    Value e = expF32(f.b, f.loc, arith::NegFOp::create(b, loc, x));
    p = arith::DivFOp::create(b, loc, one, arith::AddFOp::create(b, loc, one, e));
    Value ex = expF32(f.b, f.loc, x);
    Value q = arith::DivFOp::create(b, loc, one, arith::AddFOp::create(b, loc, one, ex));
    dz = arith::MulFOp::create(b, loc, dp,
                               arith::MulFOp::create(b, loc, p, q));
  } else {
    Value rowLse = f.load(c.lse, i), rowDelta = f.load(c.delta, i);
    p = expF32(f.b, f.loc, arith::SubFOp::create(b, loc, *z, rowLse));
    if (c.dropout) { // dL/dP = dP F; the driver's dV takes P F
      Value factor = arith::SelectOp::create(
          b, loc, c.dropout.on, emitDropoutFactor(f, c.dropout, el.sizes[1], el), one);
      dp = arith::MulFOp::create(b, loc, dp, factor);
      dz = arith::MulFOp::create(b, loc, p, arith::SubFOp::create(b, loc, dp, rowDelta));
      p = arith::MulFOp::create(b, loc, p, factor);
    } else {
      dz = arith::MulFOp::create(b, loc, p,
                                 arith::SubFOp::create(b, loc, dp, rowDelta));
    }
  }
  el.adjoint = dz;
  FailureOr<Value> ds = emitSpecRegion(b, loc, spec, spec.getScoreGrad(), el);
  if (failed(ds))
    return failure();
  if (!spec.getScaleGrad().empty()) {
    el.adjoint = arith::MulFOp::create(b, loc, *ds, dot);
    if (failed(emitSpecRegion(b, loc, spec, spec.getScaleGrad(), el)))
      return failure();
  }
  if (!spec.getBiasGrad().empty()) {
    el.adjoint = dz;
    if (failed(emitSpecRegion(b, loc, spec, spec.getBiasGrad(), el)))
      return failure();
  }
  Value zero = f.cf(0);
  f.store(arith::SelectOp::create(b, loc, keep, p, zero), c.S, at);
  Value dDot = arith::MulFOp::create(b, loc, *ds, scale);
  f.store(arith::SelectOp::create(b, loc, keep, dDot, zero), c.dP, at);
  return success();
}

/// Kind 3 (a spec with a sink): the rows' sinks. Row i's sink s takes part
/// in its softmax as a key with no value: S[i] = P_s = exp(s - lse_i) (the
/// driver's lse check adds it to the row's sum), and dL/ds = P_s (0 -
/// delta_i), which sink_grad (if the sink reads a float input) adds to the
/// sink's inputs. Only in the call whose key window starts at key 0 (as the
/// forward counts the sink there; P_s = 0 elsewhere), and P_s = 0 for a -inf
/// sink.
LogicalResult emitSinkRows(FlashBuilder &f, SpecOp spec, TileCall &c) {
  OpBuilder &b = f.b;
  Location loc = f.loc;
  LogicalResult result = success();
  Value firstWindow =
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, c.k0, f.ci(0));
  auto rows = f.forLoop(f.cx(0), f.toIdx(c.tq), [&](Value i) {
    RegionEnv el = c.env;
    el.q = f.add(c.q0, f.toI64(i));
    el.guard = firstWindow;
    FailureOr<Value> sink = emitSpecRegion(b, loc, spec, spec.getSink(), el);
    if (failed(sink)) {
      result = failure();
      return;
    }
    Value p = expF32(b, loc, arith::SubFOp::create(b, loc, *sink, f.load(c.lse, i)));
    Value none = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, *sink,
                                       f.cf(-std::numeric_limits<float>::infinity()));
    Value otherWindow =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, c.k0, f.ci(0));
    none = arith::OrIOp::create(b, loc, none, otherWindow);
    p = arith::SelectOp::create(b, loc, none, f.cf(0), p);
    f.store(p, c.S, i);
    if (spec.getSinkGrad().empty())
      return;
    el.adjoint = arith::NegFOp::create(
        b, loc, arith::MulFOp::create(b, loc, p, f.load(c.delta, i)));
    if (failed(emitSpecRegion(b, loc, spec, spec.getSinkGrad(), el)))
      result = failure();
  });
  FlashBuilder::mark(rows, "attn.loop", "sink_rows");
  return result;
}

/// The tile helper: one (query tile, key tile) pair, or kind 3: the rows'
/// sinks.
LogicalResult emitTile(OpBuilder &b, FlashOp flash) {
  SpecOp spec = flash.getSpec();
  SmallVector<InputAttr> decls = inputDecls(spec);
  func::FuncOp func = createHelper(b, spec, decls, /*kinds=*/false);
  FlashBuilder f(b, spec.getLoc(), spec, b.getF32Type(), 1, 1);
  auto args = func.getArguments();
  TileCall c;
  c.env = loadKernelEnv(f, args, decls);
  Value desc = args[kBwdDesc];
  auto at = [&](int64_t i) { return f.load(desc, f.cx(i)); };
  c.env.b = at(0);
  c.env.h = at(1);
  c.q0 = at(2), c.tq = at(3), c.k0 = at(4), c.tk = at(5), c.kind = at(6);
  // The pairs' positions: local rows and keys plus the sequence window's.
  CallWindow window = loadCallWindow(f, args, decls);
  c.q0 = f.add(window.qPos, c.q0);
  c.k0 = f.add(window.kvPos, c.k0);
  c.env.hkv = kvHead(f, c.env.h, c.env.sizes[1], c.env.sizes[2]);
  c.S = args[kBwdS], c.dP = args[kBwdDP];
  c.lse = args[kBwdLse], c.delta = args[kBwdDelta];
  // Gradient offsets: meta[kMetaInputs + 2 * sum(rank) + n], n counting
  // the differentiable inputs in declaration order.
  c.env.gradBuffer = args[kBwdDInputs];
  int64_t slot = kMetaInputs;
  for (InputAttr in : decls)
    slot += 2 * in.getRank();
  SmallVector<InputAttr> diff = differentiableInputs(spec);
  Value meta = args[kArgInputs + decls.size()];
  c.dropout = loadDropoutCall(f, meta);
  for (InputAttr in : decls) {
    auto pos = llvm::find(diff, in);
    c.env.gradOffsets.push_back(
        pos == diff.end()
            ? Value()
            : f.load(meta, f.cx(slot + int64_t(pos - diff.begin()))));
  }
  if (spec.isScaleUniform()) {
    FailureOr<Value> s =
        emitSpecRegion(b, f.loc, spec, spec.getScale(), c.env);
    if (failed(s))
      return failure();
    c.scale = *s;
  }
  LogicalResult result = success();
  if (!spec.getSink().empty()) {
    Value sinkRows = arith::CmpIOp::create(b, f.loc, arith::CmpIPredicate::eq,
                                           c.kind, f.ci(kBwdSinkRows));
    auto sinkIf = scf::IfOp::create(b, f.loc, sinkRows, /*withElse=*/true);
    b.setInsertionPoint(sinkIf.thenBlock()->getTerminator());
    result = emitSinkRows(f, spec, c);
    b.setInsertionPoint(sinkIf.elseBlock()->getTerminator());
  }
  // The kind is the same for every pair: branch once, so the loop of the
  // other kinds has no mask and no branch in it.
  Value partial = arith::CmpIOp::create(b, f.loc, arith::CmpIPredicate::eq,
                                        c.kind, f.ci(kTilePartial));
  auto partialIf = scf::IfOp::create(b, f.loc, partial, /*withElse=*/true);
  for (bool masked : {true, false}) {
    if (failed(result))
      break; // one diagnostic per bad region
    OpBuilder::InsertionGuard g(b);
    Block *block = masked ? partialIf.thenBlock() : partialIf.elseBlock();
    b.setInsertionPoint(block->getTerminator());
    auto rowsLoop = f.forLoop(f.cx(0), f.toIdx(c.tq), [&](Value i) {
      f.forLoop(f.cx(0), f.toIdx(c.tk), [&](Value j) {
        if (failed(emitPair(f, spec, c, i, j, masked)))
          result = failure();
      });
    });
    FlashBuilder::mark(rowsLoop, "attn.loop", "pairs");
  }
  FlashBuilder::mark(partialIf, "attn.tile", "partial");
  if (failed(result))
    func.erase();
  return result;
}

} // namespace

LogicalResult mlir::attn::flash::emitBackwardHelpers(FlashOp flash) {
  SpecOp spec = flash.getSpec();
  if (spec.getScoreGrad().empty())
    return success();
  MaskAttr columns = spec.getMaskScheduleColumnsAttr();
  if (!columns)
    return flash.emitOpError("has gradient regions but no "
                             "mask_schedule_columns (run attn-mask-analysis)");
  OpBuilder b(flash);
  emitKinds(b, flash, columns);
  b.setInsertionPoint(flash);
  return emitTile(b, flash);
}
