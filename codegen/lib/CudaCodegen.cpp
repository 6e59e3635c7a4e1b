//===- CudaCodegen.cpp - The CUDA back end's entry: one .cu per arch -----===//
//
// emitCuda takes the tiled form (attn.flash) and picks the kernel emitter
// for an architecture. Both paths share the element code and the mask
// schedule (CudaElementCode.cpp) and the per-spec glue (CudaModule.cpp);
// they differ in the kernel template (codegen/cuda/attnc_sm80.cuh: cp.async
// + mma.sync; attnc_sm90.cuh: TMA + wgmma). The flash op's tiles must be the ones the
// arch's kernel template is written for: a tiled form chosen for another
// target is an error here, not a silently different kernel.
//
//===----------------------------------------------------------------------===//
#include "CudaModule.h"
#include "attnc/Codegen/CudaElementCode.h"
#include "attnc/Passes/TileChoice.h"

namespace attnc {
runtime::Expected<std::string> emitCuda(mlir::attn::FlashOp flash, llvm::StringRef arch) {
  std::optional<mlir::attn::TileSizes> tiles = mlir::attn::cudaKernelTiles(arch);
  if (!tiles)
    return runtime::Status::error("--arch=" + arch.str() +
                                  ": the CUDA back end emits sm_80 and sm_90a");
  std::string name = flash.getSpec().getSymName().str();
  if (flash.getTileQ() != tiles->q || flash.getTileK() != tiles->k)
    return runtime::Status::error(
        "'" + name + "' is tiled " + std::to_string(flash.getTileQ()) + " x " +
        std::to_string(flash.getTileK()) + "; the " + arch.str() + " kernel takes " +
        std::to_string(tiles->q) + " x " + std::to_string(tiles->k) +
        " tiles (attn-choose-tiles target=" + arch.str() + ")");
  if (!flash.getStorage().isF16() && !flash.getStorage().isBF16())
    return runtime::Status::error("'" + name + "': the CUDA kernels store q, k, v "
                                  "and out as f16 or bf16");
  if (flash.getGridPatch())
    return runtime::Status::error("'" + name + "': the CUDA kernels take row tiles, "
                                  "not grid patches (attn-tile grid-patches=0)");
  return cudamod::emitKernels(flash, arch);
}
} // namespace attnc
