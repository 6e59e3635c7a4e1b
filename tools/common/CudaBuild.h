//===- CudaBuild.h - Spec -> .cu -> NVRTC -> loaded module, for the tools -===//
//
// What `attnc run --target=cuda` and `attn-bench --target=cuda` share: emit
// the .cu of one spec for an arch (emitCuda), compile the one entry a call
// needs with NVRTC (-DATTNC_ONLY_*; cached in the KernelCache), load it on
// the GPU, and describe the spec's inputs for the launcher. A machine
// without a GPU fails first, before any compilation, with the runtime's
// "no CUDA driver found ..." message.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TOOLS_COMMON_CUDABUILD_H
#define ATTNC_TOOLS_COMMON_CUDABUILD_H

#include "attnc/Dialect/AttnDialect.h"
#include "attnc/Runtime/Cuda.h"

#include <string>

namespace attnc {

struct CudaBuild {
  runtime::cuda::CudaKernelDecl decl;
  runtime::cuda::DeviceInfo device;
  std::string arch;                 // what the .cu was emitted for
  runtime::cuda::BinaryKind kind;   // what was loaded
  runtime::cuda::Module module;
  bool cacheHit = false;
  double compileMs = 0;             // emit + NVRTC (or the cache lookup)
};

/// The launcher's declaration of `spec` (name, sigmoid, inputs).
runtime::Expected<runtime::cuda::CudaKernelDecl>
cudaDeclFor(mlir::attn::SpecOp spec, runtime::DType storage);

/// Builds and loads the entry of `spec` for (storage, D, DV) on the current
/// device; `arch` empty picks the device's (archForDevice).
runtime::Expected<CudaBuild> buildCudaKernel(mlir::attn::SpecOp spec,
                                             runtime::DType storage, int64_t d,
                                             int64_t dv, const std::string &arch,
                                             runtime::KernelCache *cache);

} // namespace attnc

#endif // ATTNC_TOOLS_COMMON_CUDABUILD_H
