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

#include <functional>
#include <utility>

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

/// How generated code reads the spec's int inputs for the schedule: the ids
/// of ids_eq atoms (X[q] == Y[kv]) and the reads of atoms' bounds, per
/// (b, h) (kv_len[b]) or per row (len[q]).
struct IdsContext {
  /// Emits the min and max (i64) of `read` ([input, coordinates...]) while
  /// its q or kv coordinate runs over [p0, p1] (the rows' side of an
  /// ids_eq atom, and an atom's read at q).
  std::function<std::pair<Value, Value>(ArrayAttr read, Value p0, Value p1)>
      range;
  /// Emits the min and max of the kv side of ids_eq atom number `n` (pre-
  /// order, as collectIdsAtoms) over key tile [k0, k1] (the pre-pass
  /// results).
  std::function<std::pair<Value, Value>(unsigned n, Value k0, Value k1)>
      keyRange;
  /// Emits the value (i64) of `read` ([input, b | h | hkv...]), an atom's
  /// bound symbol; without it (or, for reads at q, without `range`) such
  /// atoms are unknown (PARTIAL).
  std::function<Value(ArrayAttr read)> read;
};

/// `symbols` are the ten i64 values of MaskAttr's symbols (b, h, hkv, B, HQ,
/// HKV, LQ, LK, D, DV); the reads of an atom's bound come from ids->read.
/// Without `ids`, ids_eq atoms and atoms with reads classify like opaque.
EmittedRows emitRowBlock(OpBuilder &b, Location loc, MaskAttr mask, Value q0,
                         Value q1, ArrayRef<Value> symbols,
                         const IdsContext *ids = nullptr);

/// The kind of key tile [k0, k1] (i64: kTileEmpty / kTileFull /
/// kTilePartial), as classifyTile.
Value emitTileKind(OpBuilder &b, Location loc, MaskAttr mask,
                   const EmittedRows &rows, Value k0, Value k1,
                   const IdsContext *ids = nullptr);

} // namespace mlir::attn

#endif // ATTNC_PASSES_SCHEDULEEMITTER_H
