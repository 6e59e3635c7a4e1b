//===- Compiler.cpp - The C++ API: spec text -> JIT-compiled kernel -------===//
//
// compile(): front end (-D applied there) -> the pipeline of Pipeline.h
// to the tiled form -> (CPU) the loops and the LLVM dialect -> LLVM IR -O3
// for the host -> an object file, which an ORC LLJIT loads; (CUDA) the .cu
// per arch (emitCuda). The CPU object is cached (runtime KernelCache,
// memory and disk) under a key over the tiled form, the options, the host
// CPU, the LLVM version and a hash of the code generator's sources
// (CodegenStamp.h), so a cache hit skips lowering, optimisation and code
// generation.
//
//===----------------------------------------------------------------------===//
#include "attnc/Compiler.h"
#include "HostMicrokernels.h"
#include "attnc/CodegenStamp.h"
#include "attnc/Version.h"
#include "attnc/Codegen/CpuCodegen.h"
#include "attnc/Codegen/CudaBuild.h"
#include "attnc/Codegen/CudaElementCode.h"
#include "attnc/Codegen/Pipeline.h"
#include "attnc/Frontend/Frontend.h"
#include "attnc/Frontend/MLIRGen.h"
#include "attnc/Passes/DeriveBackward.h"
#include "attnc/Passes/Passes.h"
#include "attnc/Runtime/KernelCache.h"
#include "attnc/Runtime/CpuIsa.h"
#include "attnc/Runtime/Microkernels.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/ExecutionEngine/Orc/AbsoluteSymbols.h"
#include "llvm/ExecutionEngine/Orc/ExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Target/TargetMachine.h"

#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>

using namespace attnc;
using runtime::KernelCache;

attnc::Define::Define(std::string n, double v) : name(std::move(n)) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  value = buf;
}

struct Kernel::Impl {
  Target target = Target::CPU;
  runtime::KernelInfo info;
  // CompileOptions::backward: the helpers (bwd.forward points at info) and
  // the names of the differentiable inputs.
  runtime::BackwardKernelInfo bwd;
  std::vector<std::string> differentiable;
  // Target::CPU: the JIT that holds the object code.
  std::unique_ptr<llvm::orc::LLJIT> jit;
  // Target::CUDA: the launcher's declaration, CompileOptions::arch, the .cu
  // per arch, and the entries built so far (NVRTC on first use).
  runtime::cuda::CudaKernelDecl decl;
  std::string fixedArch;
  std::map<std::string, std::string> sources;
  mutable std::mutex mutex;
  mutable std::optional<CudaTarget> cudaTarget;
  mutable std::map<std::tuple<std::string, int64_t, int64_t>, runtime::cuda::Module>
      entries;

  Expected<runtime::cuda::Module> cudaEntry(int64_t d, int64_t dv) const;
  Status forwardOnDevice(const runtime::cuda::DeviceView &q,
                         const runtime::cuda::DeviceView &k,
                         const runtime::cuda::DeviceView &v,
                         const runtime::cuda::DeviceView &out,
                         const CudaForwardOptions &options) const;
  Status forwardHostOnCuda(const TensorView &q, const TensorView &k,
                           const TensorView &v, const TensorView &out,
                           const ForwardOptions &options) const;
};

const runtime::KernelInfo &Kernel::info() const { return impl->info; }
const std::vector<std::string> &Kernel::differentiableInputs() const {
  return impl->differentiable;
}
Target Kernel::target() const { return impl->target; }

const std::string &Kernel::cudaSource(const std::string &arch) const {
  static const std::string none;
  auto it = impl->sources.find(arch);
  return it == impl->sources.end() ? none : it->second;
}

Expected<runtime::cuda::Module> Kernel::Impl::cudaEntry(int64_t d,
                                                        int64_t dv) const {
  std::lock_guard<std::mutex> lock(mutex);
  if (!cudaTarget) {
    Expected<CudaTarget> t = chooseCudaTarget(fixedArch);
    if (!t.ok())
      return t.status();
    cudaTarget = *t;
  }
  auto source = sources.find(cudaTarget->arch);
  if (source == sources.end())
    return Status::error("kernel '" + decl.name + "' was compiled for " +
                         fixedArch + ", not for this device's " +
                         cudaTarget->arch);
  auto key = std::make_tuple(cudaTarget->arch, d, dv);
  if (auto it = entries.find(key); it != entries.end())
    return it->second;
  // The disk cache is optional: without a writable directory NVRTC runs
  // every time.
  std::optional<KernelCache> cache;
  if (KernelCache::defaultDirectory().ok())
    cache.emplace();
  Expected<runtime::cuda::Module> m =
      loadCudaEntry(source->second, decl.name + ".cu", *cudaTarget, decl.storage,
                    d, dv, cache ? &*cache : nullptr);
  if (!m.ok())
    return m.status();
  entries[key] = *m;
  return m;
}

Status Kernel::forward(const runtime::cuda::DeviceView &q,
                       const runtime::cuda::DeviceView &k,
                       const runtime::cuda::DeviceView &v,
                       const runtime::cuda::DeviceView &out,
                       const CudaForwardOptions &options) const {
  if (impl->target != Target::CUDA)
    return Status::error("kernel '" + impl->info.name +
                         "' was compiled for the CPU: forward() on device "
                         "views needs CompileOptions::target = Target::CUDA");
  return impl->forwardOnDevice(q, k, v, out, options);
}

Status Kernel::Impl::forwardOnDevice(const runtime::cuda::DeviceView &q,
                                     const runtime::cuda::DeviceView &k,
                                     const runtime::cuda::DeviceView &v,
                                     const runtime::cuda::DeviceView &out,
                                     const CudaForwardOptions &options) const {
  runtime::cuda::CudaForwardArgs args;
  args.q = q;
  args.k = k;
  args.v = v;
  args.out = out;
  args.lse = options.lse;
  args.inputs = options.inputs;
  args.dropout = options.dropout;
  // Every check before anything is compiled: D and DV pick the entry.
  runtime::CheckedCall checked;
  if (Status s = runtime::cuda::checkCudaForward(decl, args, checked); !s.ok())
    return s;
  Expected<runtime::cuda::Module> m = cudaEntry(
      checked.size(runtime::SizeName::D), checked.size(runtime::SizeName::DV));
  if (!m.ok())
    return m.status();
  return runtime::cuda::forwardCuda(*m, decl, args);
}

/// Copies a contiguous tensor into a view of the same dtype and shape.
static void copyInto(const runtime::Tensor &src, const TensorView &dst) {
  runtime::visitOffsets(dst, [&](int64_t flat, int64_t offset) {
    runtime::storeFromDouble(dst, offset, src.getAsDouble(flat));
    return true;
  });
}

Status Kernel::Impl::forwardHostOnCuda(const TensorView &q, const TensorView &k,
                                       const TensorView &v, const TensorView &out,
                                       const ForwardOptions &options) const {
  using runtime::cuda::DeviceTensor;
  if (options.tileTrace)
    return Status::error("tile traces are recorded by CPU kernels only");
  if (!options.window.isWhole())
    return Status::error("sequence windows (context parallelism) are "
                         "supported by CPU kernels only (yet)");
  if (options.varlen.enabled())
    return Status::error("varlen batches (cu_seqlens) are supported by CPU "
                         "kernels only (yet)");
  if (options.paged.enabled())
    return Status::error("paged KV caches are supported by CPU kernels only "
                         "(yet)");
  // The checks of the device call, on the host views, before any copy:
  // a bad call is reported without touching the GPU.
  runtime::CheckedCall checked;
  if (Status s = runtime::checkForwardCall(
          decl.signature(), {q, k, v, out, options.lse, options.inputs}, checked);
      !s.ok())
    return s;
  if (Status s = runtime::checkDropoutSeed(decl.name, decl.dropout, options.dropout);
      !s.ok())
    return s;
  Expected<DeviceTensor> dq = DeviceTensor::upload(q);
  if (!dq.ok())
    return dq.status().withContext("q");
  Expected<DeviceTensor> dk = DeviceTensor::upload(k);
  if (!dk.ok())
    return dk.status().withContext("k");
  Expected<DeviceTensor> dv = DeviceTensor::upload(v);
  if (!dv.ok())
    return dv.status().withContext("v");
  Expected<DeviceTensor> dout = DeviceTensor::allocate(out.dtype, out.shape);
  if (!dout.ok())
    return dout.status().withContext("out");
  std::optional<DeviceTensor> dlse;
  runtime::cuda::DeviceView lseView;
  CudaForwardOptions fo;
  fo.inputs = options.inputs;
  fo.dropout = options.dropout;
  if (options.lse) {
    Expected<DeviceTensor> l =
        DeviceTensor::allocate(options.lse->dtype, options.lse->shape);
    if (!l.ok())
      return l.status().withContext("lse");
    dlse.emplace(std::move(*l));
    lseView = dlse->view();
    fo.lse = &lseView;
  }
  if (Status s = forwardOnDevice(dq->view(), dk->view(), dv->view(), dout->view(), fo);
      !s.ok())
    return s;
  // Only a finished call writes the caller's tensors.
  Expected<runtime::Tensor> hostOut = dout->download();
  if (!hostOut.ok())
    return hostOut.status();
  std::optional<runtime::Tensor> hostLse;
  if (dlse) {
    Expected<runtime::Tensor> l = dlse->download();
    if (!l.ok())
      return l.status();
    hostLse.emplace(std::move(*l));
  }
  copyInto(*hostOut, out);
  if (hostLse)
    copyInto(*hostLse, *options.lse);
  return Status::success();
}

Status Kernel::forward(const TensorView &q, const TensorView &k,
                       const TensorView &v, const TensorView &out,
                       const ForwardOptions &options) const {
  if (impl->target == Target::CUDA)
    return impl->forwardHostOnCuda(q, k, v, out, options);
  runtime::CpuForwardArgs args;
  args.q = q;
  args.k = k;
  args.v = v;
  args.out = out;
  args.lse = options.lse;
  args.inputs = options.inputs;
  args.window = options.window;
  args.varlen = options.varlen;
  args.paged = options.paged;
  args.decodeChunk = options.decodeChunk;
  args.dropout = options.dropout;
  args.threads = options.threads;
  args.tileTrace = options.tileTrace;
  return runtime::forwardCpu(impl->info, args);
}

Status Kernel::backward(const TensorView &q, const TensorView &k,
                        const TensorView &v, const TensorView &out,
                        const TensorView &lse, const TensorView &dout,
                        const TensorView &dq, const TensorView &dk,
                        const TensorView &dv,
                        const BackwardOptions &options) const {
  if (impl->target != Target::CPU)
    return Status::error("kernel '" + impl->info.name +
                         "': the backward pass runs on the CPU only (yet)");
  if (!impl->bwd.tile)
    return Status::error("kernel '" + impl->info.name +
                         "' was compiled without its backward pass: set "
                         "CompileOptions::backward = true");
  runtime::CpuBackwardArgs args;
  args.q = q, args.k = k, args.v = v, args.out = out, args.lse = lse;
  args.dout = dout, args.dq = dq, args.dk = dk, args.dv = dv;
  args.inputs = options.inputs;
  args.inputGrads = options.inputGrads;
  args.window = options.window;
  args.varlen = options.varlen;
  args.dropout = options.dropout;
  args.threads = options.threads;
  args.tileTrace = options.tileTrace;
  return runtime::backwardCpu(impl->bwd, args);
}

struct Compiler::Impl {
  Impl() : ctx(makeRegistry()) {
    initializeNativeTarget();
    ctx.disableMultithreading();
    ctx.loadAllAvailableDialects();
  }
  static mlir::DialectRegistry makeRegistry() {
    mlir::DialectRegistry registry;
    registerCpuCodegenDialects(registry);
    return registry;
  }
  Expected<Kernel> compile(std::string_view text, const CompileOptions &opts,
                           std::string_view bufferName);
  Expected<Kernel> compileForCpu(mlir::ModuleOp module, const CompileOptions &opts,
                                 const std::string &errors);

  std::mutex mutex; // one compile at a time per Compiler (one MLIRContext)
  mlir::MLIRContext ctx;
  KernelCache cache;
  std::map<std::string, std::shared_ptr<const Kernel::Impl>> loaded;
};

Compiler::Compiler() : impl(std::make_unique<Impl>()) {}
Compiler::~Compiler() = default;

Expected<Kernel> Compiler::compile(std::string_view specText,
                                   const CompileOptions &options,
                                   std::string_view bufferName) {
  std::lock_guard<std::mutex> lock(impl->mutex);
  return impl->compile(specText, options, bufferName);
}

Expected<Kernel> Compiler::compileFile(const std::string &path,
                                       const CompileOptions &options) {
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> buffer = readSpecFile(path, error);
  if (!buffer)
    return Status::error(error);
  return compile(buffer->getBuffer(), options, path);
}

/// The backward's tiles (the helpers take any; these suit the driver's
/// products).
constexpr int64_t kBackwardTileQ = 64, kBackwardTileK = 64;

/// Loads an object file into a fresh LLJIT and finds the kernel's entry
/// (and, when `differentiable` is set, its backward helpers; `sinkRows`:
/// the tile helper takes the rows' sinks, BackwardKernelInfo::sinkRows).
static Expected<std::shared_ptr<const Kernel::Impl>>
loadObject(const std::string &object, runtime::KernelInfo info,
           const std::optional<std::vector<std::string>> &differentiable,
           bool sinkRows) {
  auto jit = llvm::orc::LLJITBuilder().create();
  if (!jit)
    return Status::error("cannot create the JIT: " +
                         llvm::toString(jit.takeError()));
  // libm (tanhf, ...) and the rest of the process.
  auto gen = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
      (*jit)->getDataLayout().getGlobalPrefix());
  if (!gen)
    return Status::error(llvm::toString(gen.takeError()));
  (*jit)->getMainJITDylib().addGenerator(std::move(*gen));
  // The runtime's microkernels, linked into this library (an executable
  // does not export them dynamically).
  llvm::orc::SymbolMap micro;
  auto add = [&](const char *name, void *fn) {
    micro[(*jit)->mangleAndIntern(name)] = {
        llvm::orc::ExecutorAddr::fromPtr(fn), llvm::JITSymbolFlags::Exported};
  };
  add("attnc_uk_qk_f32", reinterpret_cast<void *>(&attnc_uk_qk_f32));
  add("attnc_uk_softmax_t_f32", reinterpret_cast<void *>(&attnc_uk_softmax_t_f32));
  add("attnc_uk_pv_t_f32", reinterpret_cast<void *>(&attnc_uk_pv_t_f32));
  add("attnc_uk_qk_bf16", reinterpret_cast<void *>(&attnc_uk_qk_bf16));
  add("attnc_uk_pv_t_bf16", reinterpret_cast<void *>(&attnc_uk_pv_t_bf16));
  add("attnc_uk_pack_pairs_bf16", reinterpret_cast<void *>(&attnc_uk_pack_pairs_bf16));
  add("attnc_uk_pv_t_bf16_unpacked", reinterpret_cast<void *>(&attnc_uk_pv_t_bf16_unpacked));
  add("attnc_uk_gather_rows_f32", reinterpret_cast<void *>(&attnc_uk_gather_rows_f32));
  add("attnc_uk_gather_rows_bf16", reinterpret_cast<void *>(&attnc_uk_gather_rows_bf16));
  add("attnc_uk_pack_pairs_gather_bf16",
      reinterpret_cast<void *>(&attnc_uk_pack_pairs_gather_bf16));
  add("attnc_uk_dropout_t_f32", reinterpret_cast<void *>(&attnc_uk_dropout_t_f32));
  if (llvm::Error err = (*jit)->getMainJITDylib().define(
          llvm::orc::absoluteSymbols(std::move(micro))))
    return Status::error(llvm::toString(std::move(err)));
  if (llvm::Error err = (*jit)->addObjectFile(
          llvm::MemoryBuffer::getMemBufferCopy(object, "attnc-kernel.o")))
    return Status::error("cannot load the kernel: " +
                         llvm::toString(std::move(err)));
  auto sym = (*jit)->lookup(kernelSymbol(info.name));
  if (!sym)
    return Status::error("cannot find the kernel's entry point: " +
                         llvm::toString(sym.takeError()));
  info.fn = sym->toPtr<attnc_cpu_kernel_fn>();
  if (info.numIdsAtoms > 0) {
    auto pre = (*jit)->lookup(kernelSymbol(info.name) + "__prepass");
    if (!pre)
      return Status::error("cannot find the kernel's pre-pass: " +
                           llvm::toString(pre.takeError()));
    info.prepass = pre->toPtr<attnc_cpu_kernel_fn>();
  }
  auto impl = std::make_shared<Kernel::Impl>();
  if (differentiable) {
    auto kinds = (*jit)->lookup(kernelSymbol(info.name) + "__bwd_kinds");
    auto tile = (*jit)->lookup(kernelSymbol(info.name) + "__bwd_tile");
    if (!kinds || !tile)
      return Status::error(
          "cannot find the kernel's backward helpers: " +
          llvm::toString(kinds ? tile.takeError() : kinds.takeError()));
    impl->bwd.kinds = kinds->toPtr<attnc_cpu_kernel_fn>();
    impl->bwd.tile = tile->toPtr<attnc_cpu_kernel_fn>();
    impl->bwd.tileQ = kBackwardTileQ;
    impl->bwd.tileK = kBackwardTileK;
    impl->bwd.sinkRows = sinkRows;
    impl->differentiable = *differentiable;
    for (const std::string &name : *differentiable)
      for (size_t i = 0; i < info.inputs.size(); ++i)
        if (info.inputs[i].name == name)
          impl->bwd.differentiable.push_back(int(i));
  }
  impl->jit = std::move(*jit);
  impl->info = std::move(info);
  impl->bwd.forward = &impl->info;
  return std::shared_ptr<const Kernel::Impl>(std::move(impl));
}

/// Target::CUDA: the launcher's declaration and the .cu of the spec for
/// the arch asked for, or for both (the device decides at the first call),
/// each from the spec's tiled form for that arch. NVRTC runs per entry at
/// first use (Kernel::Impl::cudaEntry).
static Expected<Kernel> compileForCuda(mlir::attn::SpecOp spec,
                                       const CompileOptions &opts) {
  auto impl = std::make_shared<Kernel::Impl>();
  impl->target = Target::CUDA;
  impl->fixedArch = opts.arch;
  std::vector<std::string> arches = {"sm_80", "sm_90a"};
  if (!opts.arch.empty())
    arches = {opts.arch};
  for (const std::string &arch : arches) {
    Expected<mlir::OwningOpRef<mlir::ModuleOp>> tiled = tileForCuda(spec, opts.dtype, arch);
    if (!tiled.ok())
      return tiled.status();
    mlir::attn::FlashOp flash = flashOps(**tiled).front();
    if (impl->sources.empty()) {
      Expected<runtime::cuda::CudaKernelDecl> decl = cudaDeclFor(flash, opts.dtype);
      if (!decl.ok())
        return decl.status();
      Expected<runtime::KernelInfo> info = describeKernel(flash);
      if (!info.ok())
        return info.status();
      impl->decl = std::move(*decl);
      // softmax(dropout = p): the launcher accepts a DropoutSeed.
      impl->decl.dropout = flash.getSpec().getDropout().has_value();
      impl->info = std::move(*info);
      impl->info.tileQ = impl->info.tileK = 0; // per arch, in the .cu
    }
    Expected<std::string> cu = emitCuda(flash, arch);
    if (!cu.ok())
      return cu.status();
    impl->sources[arch] = std::move(*cu);
  }
  return Kernel(std::shared_ptr<const Kernel::Impl>(std::move(impl)));
}

/// The checks of CompileOptions that are the API's own (the pipeline
/// checks the rest, checkPipelineOptions).
static Status checkCompileOptions(const CompileOptions &opts) {
  if (opts.target == Target::CUDA) {
    if (opts.dtype != DType::F16 && opts.dtype != DType::BF16)
      return Status::error(std::string("Target::CUDA kernels store q, k, v "
                                       "and out as float16 or bfloat16, not ") +
                           runtime::dtypeName(opts.dtype));
    if (!opts.arch.empty() && opts.arch != "sm_80" && opts.arch != "sm_90a")
      return Status::error("CUDA arch '" + opts.arch +
                           "': expected sm_80 or sm_90a (or empty for the "
                           "current device's)");
    if (opts.traceTiles || opts.tileQ || opts.tileK || !opts.cpu.empty() ||
        opts.backward)
      return Status::error("traceTiles, tileQ, tileK, cpu and backward are "
                           "options of Target::CPU");
  } else if (!opts.arch.empty()) {
    return Status::error("CompileOptions::arch is for Target::CUDA");
  } else if (Status s = runtime::checkCpuIsaEnvironment(); !s.ok()) {
    return s;
  }
  // Tiles live on the stack of the threads that run the kernel.
  if (opts.tileQ < 0 || opts.tileK < 0 || opts.tileQ > 256 || opts.tileK > 256)
    return Status::error("tile sizes must be in [1, 256] (0 for the default)");
  if (opts.headDim < 0)
    return Status::error("the head dim must be positive (0 if unknown)");
  PipelineOptions po = pipelineOptionsOf(opts);
  if (po.target == Target::CUDA && po.arch.empty())
    po.arch = "sm_90a"; // both arches check alike
  return checkPipelineOptions(po);
}

PipelineOptions attnc::pipelineOptionsOf(const CompileOptions &opts) {
  PipelineOptions po;
  po.target = opts.target;
  po.storage = opts.dtype;
  po.arch = opts.arch;
  po.tileQ = opts.tileQ;
  po.tileK = opts.tileK;
  po.headDim = opts.headDim;
  po.backward = opts.backward;
  return po;
}

/// Target::CPU from the analysed module: the tiled form, whose printed text
/// keys the cache, then (on a miss) the loops, LLVM and an object file.
Expected<Kernel> Compiler::Impl::compileForCpu(mlir::ModuleOp module,
                                               const CompileOptions &opts,
                                               const std::string &errors) {
  PipelineOptions po = pipelineOptionsOf(opts);
  if (failed(runPipeline(module, po, PipelineStage::Analysed, PipelineStage::Tiled)))
    return Status::error(errors.empty() ? "tiling failed" : errors);
  Expected<runtime::KernelInfo> info = describeKernel(flashOps(module).front());
  if (!info.ok())
    return info.status();
  info->traced = opts.traceTiles;
  std::optional<std::vector<std::string>> differentiable;
  bool sinkRows = false;
  if (opts.backward) {
    mlir::attn::SpecOp spec = flashOps(module).front().getSpec();
    differentiable.emplace();
    for (mlir::attn::InputAttr in : mlir::attn::differentiableInputs(spec))
      differentiable->push_back(in.getName().str());
    sinkRows = !spec.getSink().empty();
  }

  // The cache key: everything the object code depends on.
  std::string tiled;
  {
    llvm::raw_string_ostream os(tiled);
    module.print(os);
  }
  std::string key = KernelCache::makeKey(
      {codegenDesignVersion(), ATTNC_CODEGEN_SOURCE_STAMP, LLVM_VERSION_STRING,
       hostCpuDescription(opts.cpu), tiled, runtime::dtypeName(opts.dtype),
       std::to_string(info->tileQ), std::to_string(info->tileK)});
  if (auto it = loaded.find(key); it != loaded.end())
    return Kernel(it->second);

  std::optional<std::string> object;
  auto hit = cache.lookup(key);
  if (hit.ok() && hit->has_value())
    object = std::move(**hit);
  if (!object) {
    if (failed(runPipeline(module, po, PipelineStage::Tiled, PipelineStage::LLVM)))
      return Status::error(errors.empty() ? "lowering to LLVM failed" : errors);
    auto tm = hostTargetMachine(opts.cpu);
    if (!tm.ok())
      return tm.status();
    llvm::LLVMContext llvmCtx;
    auto llvmModule = translateToLLVMIR(module, llvmCtx, **tm);
    if (!llvmModule.ok())
      return llvmModule.status();
    auto obj = emitObjectFile(**llvmModule, **tm);
    if (!obj.ok())
      return obj.status();
    object = std::move(*obj);
    // A cache that cannot store (no writable directory) still works.
    (void)cache.store(key, *object);
  }
  // On the generic path the microkernels, too, are compiled for this host
  // (once per process) unless ATTNC_GENERIC_MICROKERNELS=builtin; should
  // that fail, the runtime's built-in copies run, and
  // attnc_uk_generic_build() says so.
  bool jitMicrokernels = true;
  if (Status s = checkGenericMicrokernelsEnvironment(jitMicrokernels); !s.ok())
    return s;
  if (jitMicrokernels && attnc_uk_isa() == ATTNC_ISA_GENERIC)
    (void)useHostMicrokernels(cache);
  auto kernel = loadObject(*object, *info, differentiable, sinkRows);
  if (!kernel.ok())
    return kernel.status();
  loaded[key] = *kernel;
  return Kernel(*kernel);
}

Expected<Kernel> Compiler::Impl::compile(std::string_view text,
                                         const CompileOptions &opts,
                                         std::string_view bufferName) {
  if (Status s = checkCompileOptions(opts); !s.ok())
    return s;
  // Front end: every diagnostic, with file:line:col, goes to `errors`.
  std::string errors;
  llvm::raw_string_ostream errs(errors);
  llvm::SourceMgr sourceMgr;
  mlir::SourceMgrDiagnosticHandler handler(sourceMgr, &ctx, errs);
  unsigned id = addSpecBuffer(
      sourceMgr, llvm::StringRef(text.data(), text.size()),
      llvm::StringRef(bufferName.data(), bufferName.size()));
  FrontendOptions fo;
  fo.onlyName = opts.name;
  fo.importDirs = opts.importDirs;
  for (const Define &d : opts.defines)
    fo.defines.push_back({d.name, d.value});
  std::optional<ast::Module> ast = parseSpec(sourceMgr, id, fo, errs);
  if (!ast)
    return Status::error(errors);
  mlir::OwningOpRef<mlir::ModuleOp> module = mlirGen(ctx, *ast);
  if (!module)
    return Status::error(errors.empty() ? "building the IR failed" : errors);
  if (failed(runPipeline(*module, pipelineOptionsOf(opts), PipelineStage::Parsed,
                         PipelineStage::Analysed)))
    return Status::error(errors);
  auto specs = llvm::to_vector(module->getOps<mlir::attn::SpecOp>());
  if (specs.size() != 1)
    return Status::error(
        "the spec has " + std::to_string(specs.size()) +
        " attention blocks; choose one with CompileOptions::name (--name)");
  if (opts.target == Target::CUDA)
    return compileForCuda(specs[0], opts);
  return compileForCpu(*module, opts, errors);
}
