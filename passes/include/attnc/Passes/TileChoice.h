//===- TileChoice.h - Which tile sizes a spec gets, per target ---*- C++ -*-===//
//
// attn-choose-tiles writes the answer as `attn.tiles` on each spec; attn-tile
// copies it into attn.flash, where every back end reads it. Nothing else
// chooses tiles.
//
// CUDA: the tiles the kernel templates are written for (cudaKernelTiles).
// CPU: explicit sizes win; otherwise the tuned table CpuTileTable.inc
// decides, which scripts/tune-tiles.sh writes from attn-bench timings
// (docs/tile-tuning.md): it is keyed by the microkernel path that will run
// the kernel (CpuIsa.h: the one ATTNC_CPU_ISA names, else the best the CPU
// has), the mask class, the compute type and the head dim D. The class
// matters more than D on the machines measured so
// far: a grid mask (natten2d), whose queries attn-tile permutes into
// 8-column patches, runs best with 32-row tiles (4 grid rows per patch, so
// a small key rectangle), while banded masks lose to larger tiles, whose
// edges waste more work.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_PASSES_TILECHOICE_H
#define ATTNC_PASSES_TILECHOICE_H

#include "attnc/Dialect/AttnDialect.h"
#include "attnc/Runtime/CpuIsa.h"
#include "attnc/Runtime/DType.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <optional>

namespace mlir::attn {

using attnc::runtime::CpuIsa;
using attnc::runtime::DType;

/// On an attn.spec: `attn.tiles = array<i64: Q, K>`, written by
/// attn-choose-tiles (or by hand), read by attn-tile.
constexpr const char kTilesAttrName[] = "attn.tiles";

struct TileSizes {
  int64_t q = 0, k = 0;
  bool operator==(const TileSizes &o) const { return q == o.q && k == o.k; }
};

enum class CpuTileClass {
  Rows, // tiles of consecutive query rows
  Grid, // 2-D query patches of a grid mask (GridSchedule.h)
};

/// One row of CpuTileTable.inc: the tiles for head dims up to `headDim`
/// (above the previous row's) of a path, class and compute type (F32 or
/// BF16).
struct CpuTileTableRow {
  CpuIsa isa;
  CpuTileClass cls;
  DType type;
  int64_t headDim;
  TileSizes tiles;
};

/// The whole table (for tests and docs).
llvm::ArrayRef<CpuTileTableRow> cpuTileTable();

/// The table's tiles for a path, class, storage type (f16 computes in f32)
/// and head dim: the first row whose D is at least `headDim`, the largest
/// row beyond it, the D = 128 row when `headDim` is 0 (unknown). A path the
/// table has no row for takes the rows of the first of avx2, avx512,
/// generic that has some.
TileSizes tunedCpuTiles(CpuTileClass cls, DType storage, int64_t headDim, CpuIsa isa);
/// The same for the path the microkernels run now (runtime::activeCpuIsa).
TileSizes tunedCpuTiles(CpuTileClass cls, DType storage, int64_t headDim);
/// The path whose rows serve `isa`: itself when the table has rows for it.
CpuIsa cpuTileTablePath(CpuIsa isa);

/// The CPU tiles of `spec` (after attn-mask-analysis): tileQ / tileK where
/// positive, the rest from tunedCpuTiles for `headDim`; the Grid class when
/// attn-tile would tile the spec with grid patches at the Grid tiles.
TileSizes chooseCpuTiles(SpecOp spec, DType storage, int64_t headDim,
                         int64_t tileQ = 0, int64_t tileK = 0);

/// The tiles the CUDA kernel templates are written for (codegen/cuda/
/// attnc_sm80.cuh, attnc_sm90.cuh; every emitted .cu static_asserts that
/// the template's key tile is this one).
constexpr TileSizes kCudaSm80Tiles{64, 64}, kCudaSm90Tiles{128, 128};

/// The tiles of the CUDA kernel template of `arch` (sm_80, sm_90a), or
/// nothing for an arch without one.
std::optional<TileSizes> cudaKernelTiles(llvm::StringRef arch);

/// The MLIR type q, k, v and out are stored as for a storage dtype (F32,
/// F16, BF16), or null for any other dtype.
Type storageTypeOf(MLIRContext *ctx, DType dtype);
/// The inverse: the dtype of a storage type, nothing for another type.
std::optional<DType> dtypeOfStorage(Type t);
/// A pass option's storage name (any name runtime::parseDType takes) as
/// the MLIR type, or null if it names no storage dtype.
Type parseStorageOption(MLIRContext *ctx, llvm::StringRef name);

} // namespace mlir::attn

#endif // ATTNC_PASSES_TILECHOICE_H
