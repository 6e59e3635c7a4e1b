//===- CudaBench.h - attn-bench --target=cuda: time a kernel on the GPU ----===//
//
// Compiles the spec's entry for the shape (CudaBuild.h), cold in an empty
// kernel cache and again from the warm one, copies the bench's data to the
// device and times PreparedForward::launch between CUDA events: the median
// of --runs after --warmup launches. The output comes back for the
// accuracy columns.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TOOLS_ATTNBENCH_CUDABENCH_H
#define ATTNC_TOOLS_ATTNBENCH_CUDABENCH_H

#include "Report.h"

#include "attnc/Dialect/AttnDialect.h"
#include "attnc/Runtime/ForwardChecks.h"
#include "attnc/Runtime/Tensor.h"
#include "bench-common/BenchCommon.h"

#include <optional>
#include <string>

namespace attnc::bench {

/// The declaration of `spec`'s kernel as randomInputs wants it (no entry
/// point); "" or an error in `error`.
runtime::KernelInfo cudaKernelInfo(mlir::attn::SpecOp spec,
                                   runtime::DType storage, std::string &error);

/// Fails unless a CUDA GPU is usable ("no CUDA driver found ...").
std::string requireCudaDevice(std::string &deviceName);

/// Builds, runs and times `spec` on the GPU; fills r.ms, r.msMin,
/// r.compileMs, r.cachedCompileMs and `out`. `cacheDir` must be empty and
/// private to this call. Returns "" or an error.
std::string benchCudaKernel(mlir::attn::SpecOp spec, const Shape &s,
                            runtime::DType storage, const runtime::Tensor &q,
                            const runtime::Tensor &k, const runtime::Tensor &v,
                            const NamedTensors &inputs, int warmup, int runs,
                            const std::string &cacheDir, BenchResult &r,
                            runtime::Tensor &out,
                            std::optional<runtime::DropoutSeed> dropout = std::nullopt);

} // namespace attnc::bench

#endif // ATTNC_TOOLS_ATTNBENCH_CUDABENCH_H
