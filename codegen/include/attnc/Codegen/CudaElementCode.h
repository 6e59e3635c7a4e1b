//===- CudaElementCode.h - Spec regions and schedule as CUDA C++ -*- C++ -*-===//
//
// The first part of the CUDA back end: the target-neutral pieces of the
// flash form printed as `__host__ __device__` C++ (plain C++ when
// ATTNC_HD is defined empty, which is how the tests run them on the CPU):
//   attnc_scale_<n>, attnc_score_<n>, attnc_mask_<n>, attnc_bias_<n>,
//     attnc_sink_<n> (a row's: kv unused): the spec regions for one element, with bounds-checked input reads and
//     trap-free integer division (errors go to ctx.error, as KernelABI.h);
//   attnc_scale_f_<n>, ...: the same regions in the form the kernels call
//     (32-bit positions, unchecked reads where the index is in range by
//     declaration, approximate tanh/exp/log; CudaRegionPrinter.h);
//   attnc_rows_<n>, attnc_tile_kind_<n>: the tile schedule of the mask
//     formula, the same arithmetic as MaskSchedule / ScheduleEmitter;
//     ids_eq atoms scan the query-side ids of the rows once, and take the
//     key-side id range of a key tile from the pre-pass's entry (`pre`,
//     filled by attnc_ids_tile_<n> / the attnc_prepass_<n> kernel) or, when
//     there is none, scan the tile.
// The kernels around them are the templates of codegen/cuda/*.cuh; the
// glue that instantiates them for a spec is CudaModule.cpp's.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_CODEGEN_CUDAELEMENTCODE_H
#define ATTNC_CODEGEN_CUDAELEMENTCODE_H

#include "attnc/Dialect/AttnDialect.h"
#include "attnc/Runtime/Status.h"

#include "llvm/ADT/StringRef.h"

#include <string>

namespace attnc {

/// The shared prelude, once per file: CudaABI.h and
/// codegen/cuda/attnc_element.cuh (the context struct and helpers).
std::string cudaElementPrelude();

/// The element functions and the schedule of `spec` (after the spec
/// pipeline), or an error naming an op it cannot print.
runtime::Expected<std::string> emitCudaElementCode(mlir::attn::SpecOp spec);

/// Whether the emitted kernels have an entry for head dims (d, dv), and the
/// list of those that exist ("64,64 128,128 ...") for messages.
bool cudaHasHeadDims(int64_t d, int64_t dv);
std::string cudaHeadDimsList();

/// The .cu of a flash op (the tiled form) for `arch` (sm_80 or sm_90a), or
/// an error for an arch with no emitter, tiles other than the arch's kernel
/// template's (TileChoice.h's cudaKernelTiles) or a storage type other than
/// f16 / bf16 (CudaCodegen.cpp). The .cu has entries for both 16-bit
/// storage types; NVRTC compiles the one a call needs.
runtime::Expected<std::string> emitCuda(mlir::attn::FlashOp flash, llvm::StringRef arch);

} // namespace attnc

#endif // ATTNC_CODEGEN_CUDAELEMENTCODE_H
