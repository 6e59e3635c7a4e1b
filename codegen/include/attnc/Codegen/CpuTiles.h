//===- CpuTiles.h - The tile sizes of CPU kernels ----------------*- C++ -*-===//
//
// Which (tile-q, tile-k) a CPU kernel gets. Explicit sizes win. Otherwise
// the tuned table CpuTileTable.inc decides, which scripts/tune-tiles.sh
// writes from attn-bench timings (docs/tile-tuning.md): it is keyed by the
// mask class, the compute type and the head dim D.
//
// The class matters more than D on the machines measured so far: a grid mask
// (natten2d), whose queries attn-tile permutes into 8-column patches, runs
// best with 32-row tiles (4 grid rows per patch, so a small key rectangle),
// while banded masks lose to larger tiles, whose edges waste more work.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_CODEGEN_CPUTILES_H
#define ATTNC_CODEGEN_CPUTILES_H

#include "attnc/Codegen/CpuCodegen.h"

#include "llvm/ADT/ArrayRef.h"

namespace attnc {

enum class CpuTileClass {
  Rows, // tiles of consecutive query rows
  Grid, // 2-D query patches of a grid mask (GridSchedule.h)
};

struct CpuTiles {
  int64_t q = 0, k = 0;
  bool operator==(const CpuTiles &o) const { return q == o.q && k == o.k; }
};

/// One row of CpuTileTable.inc: the tiles for head dims up to `headDim`
/// (above the previous row's) of a class and compute type (F32 or BF16).
struct CpuTileTableRow {
  CpuTileClass cls;
  runtime::DType type;
  int64_t headDim;
  CpuTiles tiles;
};

/// The whole table (for tests and docs).
llvm::ArrayRef<CpuTileTableRow> cpuTileTable();

/// The table's tiles for a class, storage type (f16 computes in f32) and head
/// dim: the first row whose D is at least `headDim`, the largest row beyond
/// it, the D = 128 row when `headDim` is 0 (unknown).
CpuTiles tunedCpuTiles(CpuTileClass cls, runtime::DType storage, int64_t headDim);

/// The tiles of `spec` (after the spec pipeline): options.tileQ/tileK where
/// set, the rest from tunedCpuTiles for options.headDim; the Grid class when
/// attn-tile would tile the spec with grid patches at the Grid tiles.
CpuTiles chooseCpuTiles(mlir::attn::SpecOp spec, const CpuKernelOptions &options);

} // namespace attnc

#endif // ATTNC_CODEGEN_CPUTILES_H
