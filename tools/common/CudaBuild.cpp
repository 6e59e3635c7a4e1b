//===- CudaBuild.cpp - Spec -> .cu -> NVRTC -> loaded module --------------===//
#include "common/CudaBuild.h"

#include "attnc/Codegen/CpuCodegen.h"
#include "attnc/Codegen/CudaElementCode.h"

#include <chrono>

using namespace attnc;
using namespace attnc::runtime;
using namespace attnc::runtime::cuda;

Expected<CudaKernelDecl> attnc::cudaDeclFor(mlir::attn::SpecOp spec,
                                            DType storage) {
  // The CPU back end's description has what the launcher needs too: the
  // name, the normalisation and the declared inputs.
  CpuKernelOptions options;
  options.storage = storage;
  Expected<KernelInfo> info = describeKernel(spec, options);
  if (!info.ok())
    return info.status();
  CudaKernelDecl d;
  d.name = info->name;
  d.storage = storage;
  d.sigmoid = info->sigmoid;
  d.inputs = info->inputs;
  return d;
}

Expected<CudaBuild> attnc::buildCudaKernel(mlir::attn::SpecOp spec,
                                           DType storage, int64_t d, int64_t dv,
                                           const std::string &arch,
                                           KernelCache *cache) {
  if (storage != DType::F16 && storage != DType::BF16)
    return Status::error(
        std::string("the CUDA kernels store q, k, v and out as f16 or bf16, "
                    "not ") +
        dtypeName(storage) + " (use --dtype=bf16 or --dtype=f16)");
  CudaBuild b;
  Expected<DeviceInfo> dev = currentDevice();
  if (!dev.ok())
    return dev.status();
  b.device = *dev;
  if (arch.empty()) {
    Expected<std::string> a = archForDevice(*dev);
    if (!a.ok())
      return a.status();
    b.arch = *a;
  } else {
    b.arch = arch;
  }
  Expected<BinaryKind> kind = binaryKindFor(*dev, b.arch);
  if (!kind.ok())
    return kind.status();
  b.kind = *kind;
  Expected<CudaKernelDecl> decl = cudaDeclFor(spec, storage);
  if (!decl.ok())
    return decl.status();
  b.decl = std::move(*decl);

  const auto start = std::chrono::steady_clock::now();
  Expected<std::string> cu = emitCuda(spec, b.arch);
  if (!cu.ok())
    return cu.status();
  CompileRequest req;
  req.arch = b.arch;
  req.kind = b.kind;
  req.defines = entryDefines(storage, d, dv);
  req.sourceName = b.decl.name + ".cu";
  Expected<CompileResult> bin = compileCuda(*cu, req, cache);
  if (!bin.ok())
    return bin.status();
  b.cacheHit = bin->cacheHit;
  b.compileMs = std::chrono::duration<double, std::milli>(
                    std::chrono::steady_clock::now() - start)
                    .count();
  Expected<Module> mod = Module::load(bin->binary);
  if (!mod.ok())
    return mod.status().withContext("loading the " + req.sourceName +
                                    " module");
  b.module = std::move(*mod);
  return b;
}
