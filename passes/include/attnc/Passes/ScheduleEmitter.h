//===- ScheduleEmitter.h - The mask schedule as generated code --*- C++ -*-===//
//
// Emits, as arith ops on i64, exactly the arithmetic of MaskSchedule.h:
// per query tile [q0, q1] the range of every atom's bound and the hull of
// the keys some row may keep; per key tile [k0, k1] its kind. Host and
// kernel therefore agree tile for tile (the trace test checks it).
// Products saturate at +-2^62 as on the host (computed in i128).
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_PASSES_SCHEDULEEMITTER_H
#define ATTNC_PASSES_SCHEDULEEMITTER_H

#include "attnc/Dialect/AttnDialect.h"
#include "mlir/IR/Builders.h"

namespace mlir::attn {

/// Tile kinds as the generated code encodes them (and the trace records).
enum : int64_t { kTileEmpty = 0, kTileFull = 1, kTilePartial = 2 };

struct EmittedBound {
  Value lo, hi, known; // i64, i64, i1
};

struct EmittedRows {
  SmallVector<EmittedBound> atoms; // pre-order, as RowBlock::atoms
  Value hullLo, hullHi;            // i64; empty if hullLo > hullHi
};

/// `symbols` are the ten i64 values of MaskAttr's symbols (b, h, hkv, B, HQ,
/// HKV, LQ, LK, D, DV).
EmittedRows emitRowBlock(OpBuilder &b, Location loc, MaskAttr mask, Value q0,
                         Value q1, ArrayRef<Value> symbols);

/// The kind of key tile [k0, k1] (i64: kTileEmpty / kTileFull /
/// kTilePartial), as classifyTile.
Value emitTileKind(OpBuilder &b, Location loc, MaskAttr mask,
                   const EmittedRows &rows, Value k0, Value k1);

/// True if every tile the formula can produce is FULL or EMPTY (no PARTIAL
/// tile ever): then the kernel carries no mask code at all.
bool maskNeedsNoElementCode(MaskAttr mask);

} // namespace mlir::attn

#endif // ATTNC_PASSES_SCHEDULEEMITTER_H
