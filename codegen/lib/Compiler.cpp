//===- Compiler.cpp - The C++ API: spec text -> JIT-compiled kernel -------===//
//
// compile(): front end -> spec pipeline (-D, canonicalise, mask analysis)
// -> attn-tile -> LLVM dialect -> LLVM IR -O3 for the host -> an object
// file, which an ORC LLJIT loads. The object is cached (runtime
// KernelCache, memory and disk) under a key over the analysed spec, the
// options, the host CPU, the LLVM version and a hash of the code
// generator's sources (CodegenStamp.h), so a cache hit skips tiling,
// lowering, optimisation and code generation.
//
//===----------------------------------------------------------------------===//
#include "attnc/Compiler.h"
#include "attnc/CodegenStamp.h"
#include "attnc/Codegen/CpuCodegen.h"
#include "attnc/Frontend/Frontend.h"
#include "attnc/Frontend/MLIRGen.h"
#include "attnc/Passes/Passes.h"
#include "attnc/Runtime/KernelCache.h"
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

using namespace attnc;
using runtime::KernelCache;

// The code generator's identity in the cache key; the source stamp changes
// with every edit of the passes or the lowering, this with the design.
static const char kCodegenVersion[] = "attnc-cpu-8";

attnc::Define::Define(std::string n, double v) : name(std::move(n)) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  value = buf;
}

struct Kernel::Impl {
  std::unique_ptr<llvm::orc::LLJIT> jit;
  runtime::KernelInfo info;
};

const runtime::KernelInfo &Kernel::info() const { return impl->info; }

Status Kernel::forward(const TensorView &q, const TensorView &k,
                       const TensorView &v, const TensorView &out,
                       const ForwardOptions &options) const {
  runtime::CpuForwardArgs args;
  args.q = q;
  args.k = k;
  args.v = v;
  args.out = out;
  args.lse = options.lse;
  args.inputs = options.inputs;
  args.threads = options.threads;
  args.tileTrace = options.tileTrace;
  return runtime::forwardCpu(impl->info, args);
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
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (std::error_code ec = buffer.getError())
    return Status::error("cannot read '" + path + "': " + ec.message());
  return compile((*buffer)->getBuffer(), options, path);
}

/// Loads an object file into a fresh LLJIT and finds the kernel's entry.
static Expected<std::shared_ptr<const Kernel::Impl>>
loadObject(const std::string &object, runtime::KernelInfo info) {
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
  add("attnc_uk_gather_rows_f32", reinterpret_cast<void *>(&attnc_uk_gather_rows_f32));
  add("attnc_uk_gather_rows_bf16", reinterpret_cast<void *>(&attnc_uk_gather_rows_bf16));
  add("attnc_uk_pack_pairs_gather_bf16",
      reinterpret_cast<void *>(&attnc_uk_pack_pairs_gather_bf16));
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
  impl->jit = std::move(*jit);
  impl->info = std::move(info);
  return std::shared_ptr<const Kernel::Impl>(std::move(impl));
}

Expected<Kernel> Compiler::Impl::compile(std::string_view text,
                                         const CompileOptions &opts,
                                         std::string_view bufferName) {
  if (opts.target != Target::CPU)
    return Status::error("the CUDA target is not available in this build");
  if (opts.dtype != DType::F32 && opts.dtype != DType::F16 &&
      opts.dtype != DType::BF16)
    return Status::error(std::string("storage dtype must be float32, "
                                     "float16 or bfloat16, got ") +
                         runtime::dtypeName(opts.dtype));
  // Tiles live on the stack of the threads that run the kernel.
  if (opts.tileQ < 0 || opts.tileK < 0 || opts.tileQ > 256 || opts.tileK > 256)
    return Status::error("tile sizes must be in [1, 256] (0 for the default)");
  if (opts.headDim < 0)
    return Status::error("the head dim must be positive (0 if unknown)");

  // Front end: every diagnostic, with file:line:col, goes to `errors`.
  std::string errors;
  llvm::raw_string_ostream errs(errors);
  llvm::SourceMgr sourceMgr;
  mlir::SourceMgrDiagnosticHandler handler(sourceMgr, &ctx, errs);
  unsigned id = sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(
          llvm::StringRef(text.data(), text.size()),
          llvm::StringRef(bufferName.data(), bufferName.size())),
      llvm::SMLoc());
  FrontendOptions fo;
  fo.onlyName = opts.name;
  for (const Define &d : opts.defines)
    fo.defines.push_back({d.name, d.value});
  std::optional<ast::Module> ast = parseSpec(sourceMgr, id, fo, errs);
  if (!ast)
    return Status::error(errors);
  mlir::OwningOpRef<mlir::ModuleOp> module = mlirGen(ctx, *ast);
  if (!module)
    return Status::error(errors.empty() ? "building the IR failed" : errors);
  {
    mlir::PassManager pm(&ctx);
    pm.addPass(mlir::attn::createAttnCanonicalize());
    pm.addPass(mlir::attn::createAttnMaskAnalysis());
    if (failed(pm.run(*module)))
      return Status::error(errors);
  }
  auto specs = llvm::to_vector(module->getOps<mlir::attn::SpecOp>());
  if (specs.size() != 1)
    return Status::error(
        "the spec has " + std::to_string(specs.size()) +
        " attention blocks; choose one with CompileOptions::name (--name)");
  CpuKernelOptions cpu;
  cpu.storage = opts.dtype;
  cpu.tileQ = opts.tileQ;
  cpu.tileK = opts.tileK;
  cpu.headDim = opts.headDim;
  Expected<runtime::KernelInfo> info = describeKernel(specs[0], cpu);
  if (!info.ok())
    return info.status();
  info->traced = opts.traceTiles;

  // The cache key: everything the object code depends on.
  std::string analysed;
  {
    llvm::raw_string_ostream os(analysed);
    module->print(os);
  }
  std::string key = KernelCache::makeKey(
      {kCodegenVersion, ATTNC_CODEGEN_SOURCE_STAMP, LLVM_VERSION_STRING,
       hostCpuDescription(opts.cpu), analysed, runtime::dtypeName(opts.dtype),
       std::to_string(info->tileQ), std::to_string(info->tileK)});
  if (auto it = loaded.find(key); it != loaded.end())
    return Kernel(it->second);

  std::optional<std::string> object;
  auto hit = cache.lookup(key);
  if (hit.ok() && hit->has_value())
    object = std::move(**hit);
  if (!object) {
    if (failed(buildTiledModule(*module, cpu)))
      return Status::error(errors.empty() ? "tiling failed" : errors);
    if (failed(lowerToLLVMDialect(*module)))
      return Status::error(errors.empty() ? "lowering to LLVM failed" : errors);
    auto tm = hostTargetMachine(opts.cpu);
    if (!tm.ok())
      return tm.status();
    llvm::LLVMContext llvmCtx;
    auto llvmModule = translateToLLVMIR(*module, llvmCtx, **tm);
    if (!llvmModule.ok())
      return llvmModule.status();
    auto obj = emitObjectFile(**llvmModule, **tm);
    if (!obj.ok())
      return obj.status();
    object = std::move(*obj);
    // A cache that cannot store (no writable directory) still works.
    (void)cache.store(key, *object);
  }
  auto kernel = loadObject(*object, *info);
  if (!kernel.ok())
    return kernel.status();
  loaded[key] = *kernel;
  return Kernel(*kernel);
}
