//===- CudaBuild.h - Spec -> .cu -> NVRTC -> loaded module -------*- C++ -*-===//
//
// What the C++ API (Target::CUDA), `attnc run --target=cuda` and
// `attn-bench --target=cuda` share: pick the arch for the current device,
// tile the spec for it (tileForCuda) and emit its .cu (emitCuda), compile the one entry a call
// needs with NVRTC (-DATTNC_ONLY_*; cached in the KernelCache) and load it
// on the GPU; and describe the spec's inputs for the launcher. A machine
// without a GPU fails first, before any compilation, with the runtime's
// "no CUDA driver found ..." message.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_CODEGEN_CUDABUILD_H
#define ATTNC_CODEGEN_CUDABUILD_H

#include "attnc/Dialect/AttnDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "attnc/Runtime/Cuda.h"

#include <string>
#include <string_view>

namespace attnc {

/// The device a build is for, the arch its .cu is emitted for, and what is
/// loaded there (a cubin, or PTX the driver JITs).
struct CudaTarget {
  runtime::cuda::DeviceInfo device;
  std::string arch;
  runtime::cuda::BinaryKind kind;
};

/// The current device with `arch` (sm_80|sm_90a), or with the device's own
/// arch (archForDevice) when `arch` is empty.
runtime::Expected<CudaTarget> chooseCudaTarget(const std::string &arch);

/// The entry (storage, d, dv) of `source`, a .cu emitted for `target.arch`,
/// through NVRTC (cached in `cache` when given) and loaded on the device.
/// Sets `cacheHit` if given.
runtime::Expected<runtime::cuda::Module>
loadCudaEntry(std::string_view source, const std::string &sourceName,
              const CudaTarget &target, runtime::DType storage, int64_t d,
              int64_t dv, runtime::KernelCache *cache, bool *cacheHit = nullptr);

/// The launcher's declaration of a tiled spec (name, sigmoid, inputs) for
/// calls in `storage`; an error for a storage type the CUDA kernels do not
/// have (they store f16 or bf16).
runtime::Expected<runtime::cuda::CudaKernelDecl>
cudaDeclFor(mlir::attn::FlashOp flash, runtime::DType storage);

/// The tiled form of an analysed spec for a CUDA arch (the pipeline's
/// Analysed -> Tiled stages on a copy), in a module of its own.
runtime::Expected<mlir::OwningOpRef<mlir::ModuleOp>>
tileForCuda(mlir::attn::SpecOp spec, runtime::DType storage, const std::string &arch);

struct CudaBuild {
  runtime::cuda::CudaKernelDecl decl;
  runtime::cuda::DeviceInfo device;
  std::string arch;                 // what the .cu was emitted for
  runtime::cuda::BinaryKind kind;   // what was loaded
  runtime::cuda::Module module;
  bool cacheHit = false;
  double compileMs = 0;             // emit + NVRTC (or the cache lookup)
};

/// All of the above for one call: the entry of an analysed `spec` for
/// (storage, D, DV) on the current device; `arch` empty picks the device's.
runtime::Expected<CudaBuild> buildCudaKernel(mlir::attn::SpecOp spec,
                                             runtime::DType storage, int64_t d,
                                             int64_t dv, const std::string &arch,
                                             runtime::KernelCache *cache);

} // namespace attnc

#endif // ATTNC_CODEGEN_CUDABUILD_H
