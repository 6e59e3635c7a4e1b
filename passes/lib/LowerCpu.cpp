//===- LowerCpu.cpp - attn-lower-cpu: attn.flash -> the CPU loop nest -----===//
//
// Replaces every attn.flash by one func.func @attn_<name> over a range of
// tasks (b, h, query tile; or, packing P query heads of a KV group for a
// decode step, b, heads h .. h + P - 1, tile of their P * LQ rows) with the
// C ABI of
// runtime/include/attnc/Runtime/KernelABI.h (flat buffers, a meta array of
// sizes and strides, a status buffer). Per task, in these steps:
//
//   loadQueryTile:   Qs = Q[b, h, q0:q0+tq, :]              (to f32)
//                    (packed: row r = Q[b, h + r / LQ, r % LQ, :], the
//                    task's queries [q0, q1] their least and greatest)
//   initRows:        m = -inf, l = 0, acc = 0
//   visit*KeyTiles:  rows = schedule(qPos + q0, qPos + q1)  (ScheduleEmitter)
//                    for kt in [(hullLo - kvPos) / TK, (hullHi - kvPos) / TK]
//                    (cut to the call's key tiles):
//                      kind = classify(rows, kvPos + k0, kvPos + k1)
//                      if kind != EMPTY (a paged cache: in pieces that stay
//                      in one page, each prefetching the page 2 ahead,
//                      visitKeyTilePieces):
//     emitKeyTile (LowerCpuTile.cpp):
//       Ks, Vs = K[b, hkv, k0:k0+tk, :], V[...]             (to f32)
//       keep = kind == PARTIAL ? mask(q, kv) : true
//       S[i, j] = keep ? score(scale * Qs[i] . Ks[j], q, kv) : -inf
//                 (q = qPos + q0 + i, kv = kvPos + k0 + j: positions)
//                 (score and scale evaluated under the guard keep)
//       softmax:  m' = max(m, max_j S);  mz = (m' == -inf ? 0 : m')
//                 alpha = exp(m - mz);   P = exp(S - mz)
//                 l = alpha l + sum_j P;  m = m'
//                 dropout (a call that drops): P *= keep(q, kv) / (1 - p)
//                 acc = alpha acc + P Vs
//       sigmoid:  P = keep ? sigmoid(S + bias(q, kv)) : 0
//                 acc += P Vs
//   finalizeRows:    softmax: with a sink s, when kvPos == 0: m, l, acc take s
//                    in as a key with no value; then
//                    out = l == 0 ? 0 : acc / l;  lse = l == 0 ? -inf : m + log l
//                    sigmoid: out = acc
//
// A row whose keys are all masked keeps m = -inf, l = 0: out 0, lse -inf,
// never NaN. A row with a NaN or +inf score on a kept pair has l = NaN
// (exp(inf - inf), exp(NaN)): out and lse NaN. FULL tiles contain no mask
// code; a flash op without mask_on_partial produces no PARTIAL branch at all. The element code
// (score, mask, bias, input reads) comes from RegionEmitter, the schedule
// from ScheduleEmitter (the CUDA emitter prints the same regions and
// schedule as C++, CudaRegionPrinter / CudaElementCode).
//
//===----------------------------------------------------------------------===//
#include "LowerCpu.h"
#include "attnc/Passes/Passes.h"

#include <limits>

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNLOWERCPUPASS
#include "attnc/Passes/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::flash;

namespace {
struct AttnLowerCpu
    : public mlir::attn::impl::AttnLowerCpuPassBase<AttnLowerCpu> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    for (FlashOp flash : llvm::to_vector(module.getOps<FlashOp>())) {
      OpBuilder b(flash);
      if (failed(CpuFlashLowering(b, flash, microkernels).run()))
        return signalPassFailure();
      emitIdsPrepass(flash);
      if (failed(emitBackwardHelpers(flash)))
        return signalPassFailure();
      flash.erase();
    }
  }
};
} // namespace

CpuFlashLowering::CpuFlashLowering(OpBuilder &b, FlashOp flash, bool uk)
    : b(b), loc(flash.getLoc()), flashOp(flash), spec(flash.getSpec()),
      mask(spec.getMaskScheduleAttr()), storageType(flash.getStorage()),
      tileQ(flash.getTileQ()), tileK(flash.getTileK()), microkernels(uk),
      sigmoid(spec.getNormalize() == NormalizeKind::sigmoid),
      // bf16 storage with microkernels: the Q, K and V tiles stay bf16, in
      // the pair layouts of the bf16 dot-product microkernels (Q: (d / 2, i,
      // d % 2), K: rows of D rounded up to even, V: (j / 2, c, j % 2)).
      bf16Tiles(uk && storageType.isBF16()),
      scoreIsIdentity(isa_and_nonnull<ScoreOp>(
          SpecOp::getYielded(spec.getScore()).getDefiningOp())),
      packsHeads(flash.packsQueryHeads()),
      pagedKeys(flash.readsPagedKeys()),
      f(b, loc, spec, storageType, tileQ, tileK) {}

LogicalResult CpuFlashLowering::run() {
  createFunction();
  loadCallValues();
  allocateScratch();
  if (failed(hoistScale())) {
    func.erase();
    return failure();
  }
  numIds = flashOp.getPrepass();
  if (std::optional<ArrayRef<int64_t>> patch = flashOp.getGridPatch()) {
    // The patch shape is attn-tile's decision; the gathered-key arithmetic
    // needs the grid view it was chosen from.
    grid = chooseGridTiling(spec, tileQ, tileK);
    if (!grid || grid->width != (*patch)[0] || grid->patchRows != (*patch)[1] ||
        grid->patchCols != (*patch)[2]) {
      flashOp.emitOpError("grid_patch does not match the grid tiling of its "
                          "mask at these tile sizes");
      func.erase();
      return failure();
    }
    func->setAttr("attn.grid_patch", b.getDenseI64ArrayAttr(*patch));
  }
  // A call whose arena is too small runs no task (allocateScratch has
  // recorded the error).
  Value end = arith::SelectOp::create(b, loc, arenaFits, taskEnd, taskBegin);
  auto taskLoop = f.forLoop(taskBegin, end, [&](Value task) { emitTask(task); });
  FlashBuilder::mark(taskLoop, "attn.loop", "tasks");
  if (failed(result)) {
    func.erase();
    return failure();
  }
  return success();
}

/// The function, its attributes and its arguments (KernelABI.h's order).
void CpuFlashLowering::createFunction() {
  decls = inputDecls(spec);
  func = createKernelFunc(b, spec, storageType, decls, "");
  func->setAttr("attn.tile_q", b.getI64IntegerAttr(tileQ));
  func->setAttr("attn.tile_k", b.getI64IntegerAttr(tileK));
  func->setAttr("attn.normalize", spec.getNormalizeAttr());
  auto args = func.getArguments();
  qBuf = args[0], kBuf = args[1], vBuf = args[2], oBuf = args[3];
  lseBuf = args[4], traceBuf = args[5], idsScratch = args[6];
  size_t nIn = decls.size();
  arena = args[kArgArena];
  meta = args[kArgInputs + nIn];
  taskBegin = args[kArgInputs + 2 + nIn], taskEnd = args[kArgInputs + 3 + nIn];
}

/// Sizes, strides and flags from the meta array; tile counts.
void CpuFlashLowering::loadCallValues() {
  auto metaAt = [&](int64_t slot) { return f.load(meta, f.cx(slot)); };
  env = loadKernelEnv(f, func.getArguments(), decls);
  CallWindow window = loadCallWindow(f, func.getArguments(), decls);
  HQ = env.sizes[1], HKV = env.sizes[2], LQ = window.lq;
  LK = window.lk, D = env.sizes[5], DV = env.sizes[6];
  qPos = window.qPos, kvPos = window.kvPos;
  auto strides = [&](int64_t slot, int n) {
    SmallVector<Value> s;
    for (int i = 0; i < n; ++i)
      s.push_back(metaAt(slot + i));
    return s;
  };
  qS = strides(kMetaQStrides, 4), kS = strides(kMetaKStrides, 4);
  vS = strides(kMetaVStrides, 4), oS = strides(kMetaOutStrides, 4);
  lS = strides(kMetaLseStrides, 3);
  hasLse = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne,
                                 metaAt(kMetaHasLse), f.ci(0));
  hasTrace = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne,
                                   metaAt(kMetaHasTrace), f.ci(0));
  TQ = f.ci(tileQ), TK = f.ci(tileK);
  // P query heads per task; a kernel whose mask reads h keeps P = 1.
  rowHeads = packsHeads ? Value(arith::MaxSIOp::create(b, loc, metaAt(kMetaRowHeads),
                                                      f.ci(1)))
                        : f.ci(1);
  headBlocks = arith::DivSIOp::create(b, loc, env.sizes[1], rowHeads);
  taskRows = f.mul(rowHeads, LQ);
  numQT = arith::CeilDivSIOp::create(b, loc, taskRows, TQ);
  numKT = arith::CeilDivSIOp::create(b, loc, LK, TK);
  group = arith::DivSIOp::create(b, loc, HQ, HKV);
  if (pagedKeys) {
    Value n = metaAt(kMetaPageSize);
    paged = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sgt, n, f.ci(0));
    pageRows = arith::SelectOp::create(b, loc, paged, n, f.ci(1));
    pageTable = metaAt(kMetaPageTable);
    pageTableStride = metaAt(kMetaPageTableStride);
  }
  negInf = f.cf(-std::numeric_limits<double>::infinity());
  zeroF = f.cf(0.0);
  dropout = loadDropoutCall(f, meta);
}

/// The scratch tiles (f32, or bf16 pair layouts), once per call, carved
/// from the caller's arena (KernelABI.h's layout, attnc_arena_bytes: every
/// section rounded up to 64 bytes and large enough for both tile types);
/// arenaFits says whether the arena holds them.
void CpuFlashLowering::allocateScratch() {
  Type tileType = bf16Tiles ? storageType : f.f32;
  Dp = f.mul(arith::CeilDivSIOp::create(b, loc, D, f.ci(2)), f.ci(2));
  Dq = bf16Tiles ? Dp : D;
  Value vRows = f.mul(f.ci((tileK + 1) / 2 * 2), DV);
  // The arena as a plain i8 memref (the ABI passes offset 0).
  Value arenaLen = memref::DimOp::create(b, loc, arena, 0);
  auto bytesType = MemRefType::get({ShapedType::kDynamic}, b.getI8Type());
  Value base = memref::ReinterpretCastOp::create(
      b, loc, bytesType, arena, OpFoldResult(b.getIndexAttr(0)),
      ArrayRef<OpFoldResult>{arenaLen}, ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
  Value used = f.ci(0); // bytes, i64
  auto section = [&](Type t, Value n, Value bytes) {
    auto type = MemRefType::get({ShapedType::kDynamic}, t);
    Value view = memref::ViewOp::create(b, loc, type, base, f.toIdx(used),
                                        ValueRange{f.toIdx(n)});
    Value rounded =
        f.mul(arith::DivSIOp::create(b, loc, f.add(bytes, f.ci(63)), f.ci(64)), f.ci(64));
    used = f.add(used, rounded);
    return view;
  };
  Value D1 = f.add(D, f.ci(1));
  Qs = section(tileType, f.mul(TQ, Dq), f.mul(f.ci(4 * tileQ), D1));
  Ks = section(tileType, f.mul(TK, Dq), f.mul(f.ci(4 * tileK), D1));
  Vs = section(tileType, vRows, f.mul(f.ci(4 * (tileK + 1)), DV));
  S = section(f.f32, f.mul(TQ, TK), f.ci(4 * tileQ * tileK));
  mRow = section(f.f32, TQ, f.ci(4 * tileQ));
  lRow = section(f.f32, TQ, f.ci(4 * tileQ));
  alphaRow = section(f.f32, TQ, f.ci(4 * tileQ));
  acc = section(f.f32, f.mul(TQ, DV), f.mul(f.ci(4 * tileQ), DV));
  qIdx = section(f.i64, TQ, f.ci(8 * tileQ));
  kvIdx = section(f.i64, TK, f.ci(8 * tileK));
  arenaFits = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle, used,
                                    f.toI64(arenaLen));
  Value tooSmall = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sgt, used,
                                         f.toI64(arenaLen));
  f.ifThen(tooSmall, [&] {
    emitRecordError(b, loc, env.status, KernelError::ArenaTooSmall,
                    {used, f.toI64(arenaLen)});
  });
  if (bf16Tiles) { // pads stay zero
    Value zero = arith::ConstantOp::create(b, loc, FloatAttr::get(tileType, 0.0));
    f.ifThen(arenaFits, [&] {
      for (auto [tile, n] : {std::pair{Qs, f.mul(TQ, Dq)}, std::pair{Ks, f.mul(TK, Dq)},
                             std::pair{Vs, vRows}})
        f.forLoop(f.cx(0), f.toIdx(n), [&](Value i) { f.store(zero, tile, i); });
    });
  }
  Dx = f.toIdx(D), DVx = f.toIdx(DV), TKx = f.cx(tileK), TQx = f.cx(tileQ);
  Dpx = f.toIdx(Dp);
}

/// scale_per_call: the scale region once, here.
LogicalResult CpuFlashLowering::hoistScale() {
  if (!flashOp.getScalePerCall())
    return success();
  FailureOr<Value> s = emitSpecRegion(b, loc, spec, spec.getScale(), env);
  if (failed(s))
    return failure();
  callScale = *s;
  return success();
}

Value CpuFlashLowering::region(Region &r, const RegionEnv &el) {
  FailureOr<Value> v = emitSpecRegion(b, loc, spec, r, el);
  if (failed(v)) {
    result = failure();
    return {};
  }
  return *v;
}

/// One task: its coordinates, then the steps of the file comment.
void CpuFlashLowering::emitTask(Value task) {
  TaskState ts;
  ts.t = f.toI64(task);
  ts.qt = arith::RemSIOp::create(b, loc, ts.t, numQT);
  Value bh = arith::DivSIOp::create(b, loc, ts.t, numQT);
  ts.h = f.mul(arith::RemSIOp::create(b, loc, bh, headBlocks), rowHeads);
  ts.b = arith::DivSIOp::create(b, loc, bh, headBlocks);
  ts.hkv = arith::DivSIOp::create(b, loc, ts.h, group);
  ts.r0 = f.mul(ts.qt, TQ);
  ts.tq = arith::MinSIOp::create(b, loc, TQ, f.sub(taskRows, ts.r0));
  ts.tqx = f.toIdx(ts.tq);
  ts.kBase = f.add(f.mul(ts.b, kS[0]), f.mul(ts.hkv, kS[1]));
  ts.vBase = f.add(f.mul(ts.b, vS[0]), f.mul(ts.hkv, vS[1]));
  if (packsHeads)
    packRows(ts);
  else
    plainRows(ts);
  if (grid) {
    // The patches tile the whole grid: a call on a window of the sequence
    // takes the contiguous path.
    using P = arith::CmpIPredicate;
    auto eq = [&](Value x, Value y) { return arith::CmpIOp::create(b, loc, P::eq, x, y); };
    Value whole = arith::AndIOp::create(
        b, loc, arith::AndIOp::create(b, loc, eq(qPos, f.ci(0)), eq(kvPos, f.ci(0))),
        arith::AndIOp::create(b, loc, eq(LQ, env.sizes[3]), eq(LK, env.sizes[4])));
    ts.patch = emitPatchRows(f, *grid, ts.qt, LQ, qIdx, whole);
  }
  ts.rowEnv = env;
  ts.rowEnv.b = ts.b;
  ts.rowEnv.h = ts.h;
  ts.rowEnv.hkv = ts.hkv;
  ts.syms = {ts.b, ts.h, ts.hkv, env.sizes[0], HQ, HKV, env.sizes[3],
             env.sizes[4], D, DV};
  setUpIds(ts);

  loadQueryTile(ts);
  initRows(ts);
  if (grid) {
    auto split = scf::IfOp::create(b, loc, ts.patch.isPatch, /*withElse=*/true);
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPoint(split.thenBlock()->getTerminator());
      visitGridKeyTiles(ts);
      b.setInsertionPoint(split.elseBlock()->getTerminator());
      visitContiguousKeyTiles(ts);
    }
    FlashBuilder::mark(split, "attn.tile", "grid_patch");
  } else {
    visitContiguousKeyTiles(ts);
  }
  finalizeRows(ts);
}

/// Rows of one head: queries q0 .. q1 = r0 .. r0 + tq - 1 (or, for a grid
/// patch, the queries emitPatchRows gathers into qIdx).
void CpuFlashLowering::plainRows(TaskState &ts) {
  ts.q0 = ts.r0;
  ts.q1 = f.sub(f.add(ts.q0, ts.tq), f.ci(1));
  ts.qOf = [this, q0 = ts.q0](Value i) -> Value {
    return grid ? f.load(qIdx, i) : f.add(q0, f.toI64(i));
  };
  ts.headOf = [h = ts.h](Value) { return h; };
}

/// Rows of P heads: row r0 + i is query (r0 + i) % LQ of head
/// h + (r0 + i) / LQ. The queries, kept in qIdx, vectorise in the element
/// loops as loads; [q0, q1] is the rows' hull: all of [0, LQ) when they
/// span two heads. With P = 1 the rows are those of plainRows.
void CpuFlashLowering::packRows(TaskState &ts) {
  Value last = f.sub(f.add(ts.r0, ts.tq), f.ci(1));
  Value oneHead = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                        arith::DivSIOp::create(b, loc, ts.r0, LQ),
                                        arith::DivSIOp::create(b, loc, last, LQ));
  ts.q0 = arith::SelectOp::create(b, loc, oneHead,
                                  arith::RemSIOp::create(b, loc, ts.r0, LQ), f.ci(0));
  ts.q1 = arith::SelectOp::create(b, loc, oneHead,
                                  arith::RemSIOp::create(b, loc, last, LQ),
                                  f.sub(LQ, f.ci(1)));
  f.forLoop(f.cx(0), ts.tqx, [&](Value i) {
    f.store(arith::RemSIOp::create(b, loc, f.add(ts.r0, f.toI64(i)), LQ), qIdx, i);
  });
  ts.qOf = [this](Value i) -> Value { return f.load(qIdx, i); };
  ts.headOf = [this, h = ts.h, r0 = ts.r0](Value i) -> Value {
    return f.add(h, arith::DivSIOp::create(b, loc, f.add(r0, f.toI64(i)), LQ));
  };
}

/// Qs = Q[b, h, rows, :] in f32 (transposed, d * TQ + i, as the right
/// operand of the S^T = K Q^T microkernel; bf16 tiles in pairs).
void CpuFlashLowering::loadQueryTile(TaskState &ts) {
  Value qBase = f.mul(ts.b, qS[0]);
  f.forLoop(f.cx(0), ts.tqx, [&](Value i) {
    Value row = f.add(f.add(qBase, f.mul(ts.headOf(i), qS[1])), f.mul(ts.qOf(i), qS[2]));
    f.forLoop(f.cx(0), Dx, [&](Value d) {
      Value x = f.load(qBuf, f.toIdx(f.add(row, f.mul(f.toI64(d), qS[3]))));
      Value at = bf16Tiles ? pairAt(d, i, TQx)
                 : microkernels
                     ? arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, d, TQx), i)
                     : arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, i, Dx), d);
      f.store(bf16Tiles ? x : f.toF32(x), Qs, at);
    });
  });
}

/// m = -inf, l = 0, acc = 0.
void CpuFlashLowering::initRows(TaskState &ts) {
  f.forLoop(f.cx(0), ts.tqx, [&](Value i) {
    f.store(negInf, mRow, i);
    f.store(zeroF, lRow, i);
    Value base = arith::MulIOp::create(b, loc, i, DVx);
    f.forLoop(f.cx(0), DVx, [&](Value d) {
      f.store(zeroF, acc, arith::AddIOp::create(b, loc, base, d));
    });
  });
}

/// ids_eq atoms: the rows' ids are scanned per task (O(TQ)); the keys'
/// come from the pre-pass, per key tile. Atoms' bounds read their inputs
/// (kv_len[b]) once per task.
void CpuFlashLowering::setUpIds(TaskState &ts) {
  ts.ids.range = [this, env = ts.rowEnv](ArrayAttr read, Value p0, Value p1) {
    return emitIdsRange(f, env, read, p0, p1);
  };
  ts.ids.read = [this, env = ts.rowEnv](ArrayAttr read) {
    return emitBoundRead(f, env, read);
  };
  ts.ids.keyRange = [this, bb = ts.b, h = ts.h](unsigned n, Value k0, Value) {
    Value kt = arith::DivSIOp::create(b, loc, f.sub(k0, kvPos), TK);
    Value head = f.add(f.mul(bb, HQ), h);
    Value at = f.mul(f.add(f.mul(f.add(f.mul(head, f.ci(numIds)), f.ci(n)), numKT), kt),
                     f.ci(2));
    Value lo = f.load(idsScratch, f.toIdx(at));
    Value hi = f.load(idsScratch, f.toIdx(f.add(at, f.ci(1))));
    return std::make_pair(lo, hi);
  };
}

/// The key tiles the schedule keeps for rows [q0, q1], in order; the
/// trace records each visited tile's kind. The schedule works on positions
/// (local row or key + qPos or kvPos); its hull of key positions, cut to
/// the call's keys, gives the local key tiles.
void CpuFlashLowering::visitContiguousKeyTiles(TaskState &ts) {
  EmittedRows rows = emitRowBlock(b, loc, mask, f.add(qPos, ts.q0),
                                  f.add(qPos, ts.q1), ts.syms, &ts.ids);
  using P = arith::CmpIPredicate;
  Value lo = arith::MaxSIOp::create(b, loc, f.sub(rows.hullLo, kvPos), f.ci(0));
  Value hi = arith::MinSIOp::create(b, loc, f.sub(rows.hullHi, kvPos),
                                    f.sub(LK, f.ci(1)));
  Value nonEmpty = arith::AndIOp::create(
      b, loc, arith::CmpIOp::create(b, loc, P::sle, rows.hullLo, rows.hullHi),
      arith::CmpIOp::create(b, loc, P::sle, lo, hi));
  Value first = arith::SelectOp::create(
      b, loc, nonEmpty, arith::DivSIOp::create(b, loc, lo, TK), f.ci(0));
  Value end = arith::SelectOp::create(
      b, loc, nonEmpty, f.add(arith::DivSIOp::create(b, loc, hi, TK), f.ci(1)),
      f.ci(0));
  auto keyLoop = f.forLoop(f.toIdx(first), f.toIdx(end), [&](Value ktx) {
    Value kt = f.toI64(ktx);
    Value k0 = f.mul(kt, TK);
    Value tk = arith::MinSIOp::create(b, loc, TK, f.sub(LK, k0));
    Value k1 = f.sub(f.add(k0, tk), f.ci(1));
    Value kind = emitTileKind(b, loc, mask, rows, f.add(kvPos, k0),
                              f.add(kvPos, k1), &ts.ids);
    Value visit = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, kind,
                                        f.ci(kTileEmpty));
    auto visitIf = f.ifThen(visit, [&] {
      f.ifThen(hasTrace, [&] {
        Value at = f.add(f.mul(ts.t, numKT), kt);
        f.store(arith::TruncIOp::create(b, loc, b.getI8Type(), kind), traceBuf,
                f.toIdx(at));
      });
      visitKeyTilePieces(ts, k0, tk, kind);
    });
    FlashBuilder::mark(visitIf, "attn.tile", "visit");
  });
  FlashBuilder::mark(keyLoop, "attn.loop", "key_tiles");
}

/// Pages a paged key tile's pieces prefetch ahead. (Decode at B1 HQ32
/// HKV8 LK32768 D128 bf16, pages of 16 rows in shuffled order, 2 threads,
/// paged / contiguous time, medians of alternating runs: on AVX-512 2.06
/// without prefetch, 1.48-1.62 with pages 2 ahead, about the same with 4
/// or 8; on AVX2 1.84 and 1.74. Pages of 2048 rows are no faster: the rest
/// is the layout's rows of one head HKV * D apart, not the page size.)
constexpr int64_t kPrefetchPages = 2;

/// Keys k0 .. k0 + tk - 1 of a contiguous key tile. Unpaged, one piece:
/// the tile. A paged cache (KernelABI.h, ATTNC_META_PAGE_SIZE = N) holds
/// position p = kvPos + k at row p % N of page table[b][p / N]; the tile
/// runs in pieces that stay in one page, each with the K and V bases that
/// put its key k at base + k * S_l:
///   piece of page g: keys [max(k0, g N - kvPos), min(k0 + tk, (g + 1) N - kvPos))
///   base = table[b][g] * S_b + hkv * S_h + ((kvPos + s) % N - s) * S_l
/// (s the piece's first key). The tile's kind holds for every piece.
void CpuFlashLowering::visitKeyTilePieces(TaskState &ts, Value k0, Value tk,
                                          Value kind) {
  if (!pagedKeys) {
    emitKeyTile(ts, k0, tk, kind, /*gathered=*/false);
    return;
  }
  using arith::SelectOp;
  Value end = f.add(k0, tk);
  Value firstPage = arith::DivSIOp::create(b, loc, f.add(kvPos, k0), pageRows);
  Value lastPage = arith::DivSIOp::create(b, loc, f.sub(f.add(kvPos, end), f.ci(1)),
                                          pageRows);
  Value pieces = SelectOp::create(b, loc, paged,
                                  f.add(f.sub(lastPage, firstPage), f.ci(1)), f.ci(1));
  auto pieceLoop = f.forLoop(f.cx(0), f.toIdx(pieces), [&](Value px) {
    Value g = f.add(firstPage, f.toI64(px));
    Value s = SelectOp::create(
        b, loc, paged,
        arith::MaxSIOp::create(b, loc, k0, f.sub(f.mul(g, pageRows), kvPos)), k0);
    Value e = SelectOp::create(
        b, loc, paged,
        arith::MinSIOp::create(b, loc, end,
                               f.sub(f.mul(f.add(g, f.ci(1)), pageRows), kvPos)),
        end);
    auto bases = scf::IfOp::create(b, loc, TypeRange{f.i64, f.i64}, paged,
                                   /*withElse=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(bases.thenBlock());
      Value at = f.add(pageTable, f.add(f.mul(ts.b, pageTableStride), g));
      Value page = f.load(meta, f.toIdx(at));
      prefetchPageAhead(ts, g);
      Value shift = f.sub(arith::RemSIOp::create(b, loc, f.add(kvPos, s), pageRows), s);
      auto base = [&](ArrayRef<Value> st) {
        return f.add(f.add(f.mul(page, st[0]), f.mul(ts.hkv, st[1])), f.mul(shift, st[2]));
      };
      scf::YieldOp::create(b, loc, ValueRange{base(kS), base(vS)});
      b.setInsertionPointToStart(bases.elseBlock());
      scf::YieldOp::create(b, loc, ValueRange{ts.kBase, ts.vBase});
    }
    TaskState piece = ts;
    piece.kBase = bases.getResult(0);
    piece.vBase = bases.getResult(1);
    emitKeyTile(piece, s, f.sub(e, s), kind, /*gathered=*/false);
  });
  FlashBuilder::mark(pieceLoop, "attn.loop", "page_pieces");
}

/// Asks the cache for head hkv's keys and values in page table[b][g + A]
/// (A = kPrefetchPages) while page g computes, if that page holds keys of
/// the call (its table entry is then checked) and rows are dense. A page's
/// rows of one head are HKV * D elements apart, so the hardware prefetcher,
/// which follows runs of lines, misses them, and a shuffled table hides
/// the next page. Hints only: nothing is loaded, nothing can fault.
void CpuFlashLowering::prefetchPageAhead(TaskState &ts, Value g) {
  Value ahead = f.add(g, f.ci(kPrefetchPages));
  Value lastPage = arith::DivSIOp::create(b, loc, f.sub(f.add(kvPos, LK), f.ci(1)),
                                          pageRows);
  using P = arith::CmpIPredicate;
  Value dense = arith::AndIOp::create(
      b, loc, arith::CmpIOp::create(b, loc, P::eq, kS[3], f.ci(1)),
      arith::CmpIOp::create(b, loc, P::eq, vS[3], f.ci(1)));
  Value inCall = arith::CmpIOp::create(b, loc, P::sle, ahead, lastPage);
  f.ifThen(arith::AndIOp::create(b, loc, dense, inCall), [&] {
    Value at = f.add(pageTable, f.add(f.mul(ts.b, pageTableStride), ahead));
    Value page = f.load(meta, f.toIdx(at));
    // One hint per cache line of each row: 64 bytes of storage elements.
    const int64_t lineElems = 512 / storageType.getIntOrFloatBitWidth();
    auto rows = [&](Value buf, ArrayRef<Value> st, Value width) {
      Value base = f.add(f.mul(page, st[0]), f.mul(ts.hkv, st[1]));
      f.forLoop(f.cx(0), f.toIdx(pageRows), [&](Value r) {
        Value row = f.add(base, f.mul(f.toI64(r), st[2]));
        auto lines = scf::ForOp::create(b, loc, f.cx(0), f.toIdx(width),
                                        f.cx(lineElems));
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(lines.getBody()->getTerminator());
        Value x = f.toIdx(f.add(row, f.toI64(lines.getInductionVar())));
        memref::PrefetchOp::create(b, loc, buf, ValueRange{x}, /*isWrite=*/false,
                                   /*localityHint=*/3, /*isDataCache=*/true);
      });
    };
    rows(kBuf, kS, D);
    rows(vBuf, vS, DV);
  });
}

/// A grid patch: its keys gathered into kvIdx, TK at a time, each group a
/// PARTIAL tile; the trace marks the (contiguous) key tiles they fall in.
void CpuFlashLowering::visitGridKeyTiles(TaskState &ts) {
  emitGridKeyTiles(f, *grid, mask, ts.syms, ts.patch, LK, kvIdx, [&](Value n) {
    f.ifThen(hasTrace, [&] {
      f.forLoop(f.cx(0), f.toIdx(n), [&](Value j) {
        Value kt = arith::DivSIOp::create(b, loc, f.load(kvIdx, j), TK);
        f.store(f.cI8(kTilePartial), traceBuf, f.toIdx(f.add(f.mul(ts.t, numKT), kt)));
      });
    });
    emitKeyTile(ts, Value(), n, f.ci(kTilePartial), /*gathered=*/true);
  });
}

/// out = acc / l, lse = m + log l; an empty row (l = 0) gets 0 and -inf, a
/// row with a NaN or +inf score (l = NaN) NaN and NaN; sigmoid: out = acc.
/// With a sink s (softmax(sink = ...)), first, in the call whose key window
/// starts at key 0: the sink joins the row as a key with no value,
///   m' = max(m, s), c = e^(m - m'), l' = c l + e^(s - m'), acc' = c acc,
/// so an empty row gets out 0 and lse s. A -inf sink changes nothing.
void CpuFlashLowering::finalizeRows(TaskState &ts) {
  Value withSink;
  if (!spec.getSink().empty())
    withSink = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, kvPos, f.ci(0));
  f.forLoop(f.cx(0), ts.tqx, [&](Value i) {
    Value qi = ts.qOf(i), hi = ts.headOf(i);
    Value oBase = f.add(f.mul(ts.b, oS[0]), f.mul(hi, oS[1]));
    Value lBase = f.add(f.mul(ts.b, lS[0]), f.mul(hi, lS[1]));
    Value inv = f.cf(1.0);
    if (!sigmoid) {
      Value l = f.load(lRow, i), m = f.load(mRow, i);
      Value keep = f.cf(1.0); // the sink's rescale of acc
      if (withSink) {
        RegionEnv row = ts.rowEnv;
        row.h = hi;
        row.q = f.add(qPos, qi);
        row.guard = withSink; // other calls neither need it nor report its errors
        Value sink = region(spec.getSink(), row);
        if (!sink)
          return;
        sink = arith::SelectOp::create(b, loc, withSink, sink, negInf);
        Value mNew = arith::MaximumFOp::create(b, loc, m, sink);
        Value none = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, mNew, negInf);
        Value mZ = arith::SelectOp::create(b, loc, none, zeroF, mNew);
        // Both exponents are <= 0: the normalisation's polynomial exp, no
        // libm call per row.
        keep = expF32(b, loc, arith::SubFOp::create(b, loc, m, mZ));
        Value ps = expF32(b, loc, arith::SubFOp::create(b, loc, sink, mZ));
        l = arith::AddFOp::create(b, loc, arith::MulFOp::create(b, loc, keep, l), ps);
        m = mNew;
      }
      Value empty = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, l, zeroF);
      inv = arith::SelectOp::create(b, loc, empty, zeroF,
                                    arith::DivFOp::create(b, loc, keep, l));
      f.ifThen(hasLse, [&] {
        Value lse = arith::AddFOp::create(b, loc, m, math::LogOp::create(b, loc, l));
        Value at = f.add(lBase, f.mul(qi, lS[2]));
        f.store(arith::SelectOp::create(b, loc, empty, negInf, lse), lseBuf, f.toIdx(at));
      });
    }
    Value row = f.add(oBase, f.mul(qi, oS[2]));
    Value accRow = arith::MulIOp::create(b, loc, i, DVx);
    f.forLoop(f.cx(0), DVx, [&](Value d) {
      Value a = f.load(acc, arith::AddIOp::create(b, loc, accRow, d));
      Value o = sigmoid ? a : Value(arith::MulFOp::create(b, loc, a, inv));
      f.store(f.toStorage(o), oBuf, f.toIdx(f.add(row, f.mul(f.toI64(d), oS[3]))));
    });
  });
}
