//===- CudaCodegen.cpp - The CUDA back end's entry: one .cu per arch -----===//
//
// emitCuda picks the kernel emitter for an architecture. Both paths share
// the element code and the mask schedule (CudaElementCode.cpp); they differ
// in how tiles move and multiply (sm_80: cp.async + mma.sync,
// CudaKernelSm80.cpp; sm_90a: TMA + wgmma, CudaKernelSm90.cpp). Neither
// kernel has run on a GPU yet.
//
//===----------------------------------------------------------------------===//
#include "attnc/Codegen/CudaElementCode.h"

namespace attnc {
runtime::Expected<std::string> emitCuda(mlir::attn::SpecOp spec, llvm::StringRef arch) {
  if (arch == "sm_80")
    return emitCudaSm80(spec);
  if (arch == "sm_90a")
    return emitCudaSm90(spec);
  return runtime::Status::error("--arch=" + arch.str() +
                                ": the CUDA back end emits sm_80 and sm_90a");
}
} // namespace attnc
