//===- CudaBuild.cpp - Spec -> .cu -> NVRTC -> loaded module --------------===//
//
// See CudaBuild.h.
//
//===----------------------------------------------------------------------===//
#include "attnc/Codegen/CudaBuild.h"

#include "attnc/Codegen/CpuCodegen.h"
#include "attnc/Codegen/CudaElementCode.h"

#include <chrono>

using namespace attnc;
using namespace attnc::runtime;
using namespace attnc::runtime::cuda;

Expected<CudaKernelDecl> attnc::cudaDeclFor(mlir::attn::SpecOp spec,
                                            DType storage) {
  if (storage != DType::F16 && storage != DType::BF16)
    return Status::error(
        std::string("the CUDA kernels store q, k, v and out as f16 or bf16, "
                    "not ") +
        dtypeName(storage) + " (use --dtype=bf16 or --dtype=f16)");
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

Expected<CudaTarget> attnc::chooseCudaTarget(const std::string &arch) {
  CudaTarget t;
  Expected<DeviceInfo> dev = currentDevice();
  if (!dev.ok())
    return dev.status();
  t.device = *dev;
  if (arch.empty()) {
    Expected<std::string> a = archForDevice(*dev);
    if (!a.ok())
      return a.status();
    t.arch = *a;
  } else {
    t.arch = arch;
  }
  Expected<BinaryKind> kind = binaryKindFor(*dev, t.arch);
  if (!kind.ok())
    return kind.status();
  t.kind = *kind;
  return t;
}

Expected<Module> attnc::loadCudaEntry(std::string_view source,
                                      const std::string &sourceName,
                                      const CudaTarget &target, DType storage,
                                      int64_t d, int64_t dv, KernelCache *cache,
                                      bool *cacheHit) {
  CompileRequest req;
  req.arch = target.arch;
  req.kind = target.kind;
  req.defines = entryDefines(storage, d, dv);
  req.sourceName = sourceName;
  Expected<CompileResult> bin = compileCuda(source, req, cache);
  if (!bin.ok())
    return bin.status();
  if (cacheHit)
    *cacheHit = bin->cacheHit;
  Expected<Module> mod = Module::load(bin->binary);
  if (!mod.ok())
    return mod.status().withContext("loading the " + sourceName + " module");
  return mod;
}

Expected<CudaBuild> attnc::buildCudaKernel(mlir::attn::SpecOp spec,
                                           DType storage, int64_t d, int64_t dv,
                                           const std::string &arch,
                                           KernelCache *cache) {
  CudaBuild b;
  Expected<CudaKernelDecl> decl = cudaDeclFor(spec, storage);
  if (!decl.ok())
    return decl.status();
  b.decl = std::move(*decl);
  Expected<CudaTarget> target = chooseCudaTarget(arch);
  if (!target.ok())
    return target.status();
  b.device = target->device;
  b.arch = target->arch;
  b.kind = target->kind;

  const auto start = std::chrono::steady_clock::now();
  Expected<std::string> cu = emitCuda(spec, b.arch);
  if (!cu.ok())
    return cu.status();
  Expected<Module> mod = loadCudaEntry(*cu, b.decl.name + ".cu", *target,
                                       storage, d, dv, cache, &b.cacheHit);
  if (!mod.ok())
    return mod.status();
  b.compileMs = std::chrono::duration<double, std::milli>(
                    std::chrono::steady_clock::now() - start)
                    .count();
  b.module = std::move(*mod);
  return b;
}
