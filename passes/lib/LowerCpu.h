//===- LowerCpu.h - attn-lower-cpu's state for one attn.flash (internal) -===//
//
// The lowering of one flash op into `func.func @attn_<name>` in named steps
// (LowerCpu.cpp: the function, the task loop, the key-tile loops, the final
// rescale; LowerCpuTile.cpp: one key tile). Values built once per call live
// here; values of one task live in TaskState.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_PASSES_LIB_LOWERCPU_H
#define ATTNC_PASSES_LIB_LOWERCPU_H

#include "FlashBuilder.h"
#include "attnc/Passes/ScheduleEmitter.h"

#include <functional>
#include <optional>

namespace mlir::attn::flash {

using IndexFn = std::function<Value(Value)>;

/// One task (b, heads h .. h + P - 1, tile of their rows): its coordinates
/// and rows. P = 1 but for a call that packs heads (KernelABI.h,
/// ATTNC_META_ROW_HEADS).
struct TaskState {
  Value t, b, h, hkv;   // i64: h the task's first query head
  Value qt, q0, q1, tq; // i64: the row tile, the least and greatest query
                        // of its rows, rows
  Value r0;             // i64: the tile's first row (head h + r / LQ,
                        // query r % LQ)
  Value tqx;            // index: tq
  Value kBase, vBase;   // i64: where K[b, hkv] and V[b, hkv] start
  RegionEnv rowEnv;     // the call's env with b, h, hkv set
  IndexFn qOf;          // the query of tile row i (index -> i64)
  IndexFn headOf;       // the query head of tile row i (index -> i64)
  PatchTask patch;      // grid masks only
  SmallVector<Value> syms; // the ten MaskAttr symbols
  IdsContext ids;
};

/// Where the key-tile products read K and V: pointers and leading dims
/// (microkernels only; the scalar path reads Ks and Vs). vColLd is set when
/// bf16 V is passed as stored (row stride vLd, column stride vColLd), not
/// yet packed into key pairs.
struct KVOperands {
  Value kPtr, kLd, vPtr, vLd, vColLd;
};

/// exp(x) in float32 from arith ops (ExpandMath.cpp): Cephes expf, as the AVX-512 softmax
/// microkernel's (MicrokernelsAvx512.cpp), with 2^n from exponent bits.
///   x' = clamp(x, lo, hi), n = roundeven(x' log2 e)
///   r  = x' - n ln 2 (ln 2 in two parts), p = 1 + r + r^2 poly5(r)
///   exp(x) = p * 2^n, 2^k = bitcast((k + 127) << 23)
/// The normalisation's range (fullRange = false): lo = -87.33, hi = 88.37,
/// n in [-126, 127], one scaling; x < -87.33 gives 0 (no denormals), x in
/// (88.37, 88.72] gives exp(88.37), which no P = exp(z - lse) <= 1 reaches
/// and which leaves sigmoid's 1 / (1 + e) at 0 to float32's precision.
/// fullRange (attn-expand-math, for the spec's own exps): lo = -103.98, hi = 88.7228, n in
/// [-150, 128] applied as 2^(n >> 1) * 2^(n - (n >> 1)), both normal, so
/// denormal and near-overflow results are libm's to an ulp or two.
/// Either way x < lo gives 0, x > 88.7228 +inf, NaN NaN. Multiplies and
/// adds may contract into FMAs.
Value expF32(OpBuilder &b, Location loc, Value x, bool fullRange = false);

/// Adds `@attn_<name>__bwd_kinds` and `@attn_<name>__bwd_tile`
/// (LowerCpuBackward.cpp) before `flash` when its spec has gradient regions.
LogicalResult emitBackwardHelpers(FlashOp flash);

class CpuFlashLowering {
public:
  CpuFlashLowering(OpBuilder &b, FlashOp flash, bool microkernels);
  /// Adds the function before the flash op; fails (after a diagnostic) on
  /// a region it cannot emit, leaving nothing behind.
  LogicalResult run();

private:
  // LowerCpu.cpp: the call.
  void createFunction();
  void loadCallValues();
  void allocateScratch();
  LogicalResult hoistScale();
  void emitTask(Value task);
  void plainRows(TaskState &ts);
  void packRows(TaskState &ts);
  void loadQueryTile(TaskState &ts);
  void initRows(TaskState &ts);
  void setUpIds(TaskState &ts);
  void visitContiguousKeyTiles(TaskState &ts);
  void visitGridKeyTiles(TaskState &ts);
  void visitKeyTilePieces(TaskState &ts, Value k0, Value tk, Value kind);
  void prefetchPageAhead(TaskState &ts, Value g);
  void finalizeRows(TaskState &ts);

  // LowerCpuTile.cpp: one key tile (keys k0 + j, or kvIdx[j] if gathered).
  void emitKeyTile(TaskState &ts, Value k0, Value tk, Value kind, bool gathered);
  void loadTile(Value buf, Value base, ArrayRef<Value> st, Value dim,
                Value tile, bool isV, Value tkx, const IndexFn &kvOf);
  KVOperands loadGatheredOperands(TaskState &ts, Value tk, Value tkx,
                                  const IndexFn &kvOf);
  KVOperands loadContiguousOperands(TaskState &ts, Value k0, Value tk,
                                    Value tkx, const IndexFn &kvOf);
  void scoresWithMicrokernels(TaskState &ts, const KVOperands &kv, Value tk);
  void elementStep(TaskState &ts, Value kind, Value tkx, const IndexFn &kvOf);
  Value elementValue(Value i, Value j, RegionEnv &el, bool partial);
  void updateWithMicrokernels(TaskState &ts, const KVOperands &kv, Value tk,
                              Value tkx, const IndexFn &kvOf, Value firstKey);
  void updateWithLoops(TaskState &ts, Value tkx, const IndexFn &kvOf, Value firstKey);
  void applyDropout(TaskState &ts, Value tkx, const IndexFn &kvOf, Value firstKey);
  Value sigmoidOf(Value s, const RegionEnv &el);
  void forEachElement(TaskState &ts, Value tkx, const IndexFn &kvOf,
                      const std::function<void(Value, Value, RegionEnv &)> &body);
  Value sAt(Value i, Value j);
  Value pairAt(Value a, Value bIdx, Value n);
  /// emitSpecRegion, remembering a failure (the caller checks `result`).
  Value region(Region &r, const RegionEnv &env);

  OpBuilder &b;
  Location loc;
  FlashOp flashOp;
  SpecOp spec;
  MaskAttr mask;
  Type storageType;
  int64_t tileQ, tileK;
  bool microkernels, sigmoid, bf16Tiles, scoreIsIdentity;
  bool packsHeads; // FlashOp::packsQueryHeads: reads ATTNC_META_ROW_HEADS
  bool pagedKeys;  // FlashOp::readsPagedKeys: reads ATTNC_META_PAGE_SIZE
  FlashBuilder f;
  LogicalResult result = success();

  func::FuncOp func;
  SmallVector<InputAttr> decls;
  Value qBuf, kBuf, vBuf, oBuf, lseBuf, traceBuf, idsScratch, arena, meta;
  Value taskBegin, taskEnd;
  RegionEnv env;
  Value HQ, HKV, D, DV;
  Value LQ, LK;       // the call's rows and keys (local)
  Value qPos, kvPos;  // the positions of local row 0 and key 0
  SmallVector<Value> qS, kS, vS, oS, lS; // strides
  Value hasLse, hasTrace;
  Value TQ, TK, numQT, numKT, group;
  Value rowHeads, headBlocks, taskRows; // P, HQ / P, P * LQ
  Value paged, pageRows, pageTable, pageTableStride; // i1, N (1 unpaged), meta slots
  Value Dp, Dq, Dx, DVx, TKx, TQx, Dpx;
  Value Qs, Ks, Vs, S, mRow, lRow, acc, alphaRow; // scratch tiles (arena)
  Value arenaFits; // i1: the arena holds the tiles
  Value negInf, zeroF;
  Value callScale; // null when the scale is per element
  DropoutCall dropout; // softmax(dropout = p); null `on` without
  std::optional<GridTiling> grid;
  Value qIdx, kvIdx; // grid masks: the rows and keys of the task / tile (arena)
  int64_t numIds = 0;
};

} // namespace mlir::attn::flash

#endif // ATTNC_PASSES_LIB_LOWERCPU_H
