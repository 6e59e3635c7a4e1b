//===- CudaBuild.cpp - Spec -> .cu -> NVRTC -> loaded module --------------===//
//
// See CudaBuild.h.
//
//===----------------------------------------------------------------------===//
#include "attnc/Codegen/CudaBuild.h"

#include "attnc/Codegen/CpuCodegen.h"
#include "attnc/Codegen/CudaElementCode.h"
#include "attnc/Codegen/Pipeline.h"

#include <chrono>

using namespace attnc;
using namespace attnc::runtime;
using namespace attnc::runtime::cuda;

/// An error unless the CUDA kernels store `storage`.
static Status checkCudaStorage(DType storage) {
  if (storage != DType::F16 && storage != DType::BF16)
    return Status::error(
        std::string("the CUDA kernels store q, k, v and out as f16 or bf16, "
                    "not ") +
        dtypeName(storage) + " (use --dtype=bf16 or --dtype=f16)");
  return Status::success();
}

Expected<CudaKernelDecl> attnc::cudaDeclFor(mlir::attn::FlashOp flash,
                                            DType storage) {
  if (Status s = checkCudaStorage(storage); !s.ok())
    return s;
  // The CPU back end's description has what the launcher needs too: the
  // name, the normalisation and the declared inputs.
  Expected<KernelInfo> info = describeKernel(flash);
  if (!info.ok())
    return info.status();
  CudaKernelDecl d;
  d.name = info->name;
  d.storage = storage;
  d.sigmoid = info->sigmoid;
  d.dropout = info->dropout;
  d.inputs = info->inputs;
  return d;
}

Expected<mlir::OwningOpRef<mlir::ModuleOp>>
attnc::tileForCuda(mlir::attn::SpecOp spec, DType storage, const std::string &arch) {
  PipelineOptions o;
  o.target = Target::CUDA;
  o.storage = storage;
  o.arch = arch;
  if (Status s = checkCudaStorage(storage); !s.ok())
    return s;
  if (Status s = checkPipelineOptions(o); !s.ok())
    return s;
  mlir::OpBuilder b(spec.getContext());
  mlir::OwningOpRef<mlir::ModuleOp> module = mlir::ModuleOp::create(spec.getLoc());
  b.setInsertionPointToEnd(module->getBody());
  b.clone(*spec.getOperation());
  if (failed(runPipeline(*module, o, PipelineStage::Analysed, PipelineStage::Tiled)))
    return Status::error("tiling '" + spec.getSymName().str() + "' for " + arch + " failed");
  return module;
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
  // A bad storage type is reported before a missing GPU.
  if (Status s = checkCudaStorage(storage); !s.ok())
    return s;
  Expected<CudaTarget> target = chooseCudaTarget(arch);
  if (!target.ok())
    return target.status();
  b.device = target->device;
  b.arch = target->arch;
  b.kind = target->kind;

  const auto start = std::chrono::steady_clock::now();
  Expected<mlir::OwningOpRef<mlir::ModuleOp>> tiled = tileForCuda(spec, storage, b.arch);
  if (!tiled.ok())
    return tiled.status();
  mlir::attn::FlashOp flash = flashOps(**tiled).front();
  Expected<CudaKernelDecl> decl = cudaDeclFor(flash, storage);
  if (!decl.ok())
    return decl.status();
  b.decl = std::move(*decl);
  Expected<std::string> cu = emitCuda(flash, b.arch);
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
