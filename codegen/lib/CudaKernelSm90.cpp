//===- CudaKernelSm90.cpp - The sm_90a flash kernel (not written yet) ----===//
#include "attnc/Codegen/CudaElementCode.h"
namespace attnc {
runtime::Expected<std::string> emitCudaSm90(mlir::attn::SpecOp) {
  return runtime::Status::error("--arch=sm_90a is not available yet (the CUDA back end emits sm_80 only so far)");
}
} // namespace attnc
