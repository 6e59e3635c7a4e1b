//===- CompileCpu.cpp - attnc compile --target=cpu: the later stages ------===//
//
// --emit=tiled   the tiled flash form (attn.flash, after attn-tile);
// --emit=loops   the CPU loop nest (attn-lower-cpu), as MLIR text;
// --emit=llvm    LLVM IR after -O3 for the host CPU (or --cpu, or
//                another target: --triple, e.g. aarch64-linux-gnu);
// --emit=obj     an ELF object exporting attnc_kernel_<name> per block;
// --emit=so      the same as a shared library (linked with the system cc,
//                with the runtime's microkernels linked in and libstdc++
//                as a dependency, so dlopen works from C);
// --emit=header  the C/C++ header that declares them (CpuHeader.cpp).
// With --backward the spec is differentiated first (attn-derive-backward,
// run by attnc.cpp), the object also exports each kernel's backward helpers
// (attnc_kernel_<name>__bwd_kinds, __bwd_tile) and the header declares and
// wraps them (<name>_backward, runtime::backwardCpu).
// Every file, binary or text, is committed by writeOutputFile (Driver.h:
// the runtime's output rule; a replaced file goes through a temporary and a
// rename, so a failure leaves no partial output; a link, hard link or device
// at -o is written, not replaced). --emit=so links into a private temporary
// first and commits the linked bytes the same way.
//
//===----------------------------------------------------------------------===//
#include "attnc/Commands.h"
#include "attnc/Codegen/CpuCodegen.h"
#include "attnc/Codegen/Pipeline.h"
#include "attnc/Driver.h"
#include "attnc/Passes/DeriveBackward.h"

#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"

using namespace attnc;

static int fail(const std::string &message) { return reportError(message); }

/// The runtime archive: an installed attnc's (PREFIX/bin/attnc ->
/// PREFIX/LIBDIR/libAttncRuntime.a), else the build tree's; empty if
/// neither exists.
static std::string runtimeArchive() {
  static int anchor;
  std::string exe = llvm::sys::fs::getMainExecutable("attnc", &anchor);
  if (!exe.empty()) {
    llvm::SmallString<256> p(llvm::sys::path::parent_path(
        llvm::sys::path::parent_path(exe)));
    llvm::sys::path::append(p, ATTNC_INSTALL_LIBDIR, ATTNC_RUNTIME_ARCHIVE_NAME);
    if (llvm::sys::fs::is_regular_file(p))
      return std::string(p);
  }
  if (llvm::sys::fs::is_regular_file(ATTNC_RUNTIME_ARCHIVE))
    return ATTNC_RUNTIME_ARCHIVE;
  return {};
}

/// Links `object` into a shared library at `output` with the system cc.
static int linkShared(const std::string &object, llvm::StringRef output) {
  auto cc = llvm::sys::findProgramByName("cc");
  if (!cc)
    return fail("--emit=so needs a C compiler driver ('cc') on PATH to link");
  llvm::SmallString<128> objPath, soPath;
  if (llvm::sys::fs::createTemporaryFile("attnc", "o", objPath) ||
      llvm::sys::fs::createTemporaryFile("attnc", "so", soPath))
    return fail("cannot create temporary files");
  auto cleanup = [&] {
    llvm::sys::fs::remove(objPath);
    llvm::sys::fs::remove(soPath);
  };
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(objPath, ec);
    if (ec) {
      cleanup();
      return fail("cannot write " + objPath.str().str() + ": " + ec.message());
    }
    os << object;
  }
  // The kernels call the runtime's microkernels (attnc_uk_*): link them in
  // from the runtime archive so the library is self-contained.
  std::string archive = runtimeArchive();
  if (archive.empty()) {
    cleanup();
    return fail(std::string("--emit=so needs the runtime archive ") +
                ATTNC_RUNTIME_ARCHIVE_NAME + " (the microkernels), in " +
                ATTNC_INSTALL_LIBDIR + " beside attnc's bin/ or at " +
                ATTNC_RUNTIME_ARCHIVE + "; use --emit=obj and link it yourself");
  }
  // The microkernels are C++ (their function-local statics need the C++
  // ABI's guard functions), so libstdc++ is a dependency of the library
  // itself: a C program or Python's dlopen must not have to preload it.
  // -z defs turns any other unresolved symbol into a link error here rather
  // than a dlopen failure at the user's.
  llvm::StringRef args[] = {*cc,
                            "-shared",
                            "-o",
                            soPath,
                            objPath,
                            archive,
                            "-Wl,--push-state,--as-needed",
                            "-lstdc++",
                            "-Wl,--pop-state",
                            "-lm",
                            "-Wl,-z,defs"};
  std::string err;
  int rc = llvm::sys::ExecuteAndWait(*cc, args, std::nullopt, {}, 0, 0, &err);
  if (rc != 0) {
    cleanup();
    return fail("linking the shared library failed" +
                (err.empty() ? std::string() : ": " + err));
  }
  auto data = llvm::MemoryBuffer::getFile(soPath, /*IsText=*/false);
  if (!data) {
    cleanup();
    return fail("cannot read the linked library");
  }
  // 0777 & ~umask, the mode the linker gives a library it creates.
  bool ok = writeOutputFile(output, (*data)->getBuffer(), llvm::errs(), 0777);
  cleanup();
  return ok ? 0 : 1;
}

/// The header of the tiled `module`'s kernels; with `backward`, each kernel
/// whose spec has gradient regions gets its backward wrapper.
static int writeHeader(mlir::ModuleOp module, bool backward,
                       llvm::StringRef output) {
  std::vector<runtime::KernelInfo> kernels;
  std::vector<std::optional<HeaderBackward>> helpers;
  for (mlir::attn::FlashOp flash : flashOps(module)) {
    auto info = describeKernel(flash);
    if (!info.ok())
      return fail(info.status().message());
    kernels.push_back(*info);
    mlir::attn::SpecOp spec = flash.getSpec();
    if (!backward || spec.getScoreGrad().empty()) {
      helpers.emplace_back();
      continue;
    }
    HeaderBackward bwd;
    for (mlir::attn::InputAttr in : mlir::attn::differentiableInputs(spec))
      for (size_t i = 0; i < info->inputs.size(); ++i)
        if (info->inputs[i].name == in.getName().str())
          bwd.differentiable.push_back(int(i));
    bwd.sinkRows = !spec.getSink().empty();
    helpers.push_back(std::move(bwd));
  }
  return writeOutputFile(output, emitHeader(kernels, helpers), llvm::errs())
             ? 0
             : 1;
}

/// Prints `module` (an MLIR stage) to `output`.
static int writeModule(mlir::ModuleOp module, llvm::StringRef output) {
  std::string text;
  llvm::raw_string_ostream os(text);
  module.print(os);
  os << "\n";
  return writeOutputFile(output, text, llvm::errs()) ? 0 : 1;
}

int attnc::emitCpuStage(mlir::ModuleOp module, EmitStage stage,
                        runtime::DType storage, const CpuMachine &machine,
                        int64_t headDim, bool backward,
                        llvm::StringRef output) {
  PipelineOptions options;
  options.storage = storage;
  options.headDim = headDim;
  options.backward = backward;
  if (runtime::Status st = checkPipelineOptions(options); !st.ok())
    return fail(st.message());
  if ((stage == EmitStage::Obj || stage == EmitStage::So) && output == "-")
    return fail("--emit=obj and --emit=so write binary files: give -o FILE");
  if (failed(runPipeline(module, options, PipelineStage::Analysed, PipelineStage::Tiled)))
    return 1;
  if (stage == EmitStage::Tiled)
    return writeModule(module, output);
  if (stage == EmitStage::Header)
    return writeHeader(module, backward, output);
  if (failed(runPipeline(module, options, PipelineStage::Tiled, PipelineStage::Loops)))
    return 1;
  if (stage == EmitStage::Loops)
    return writeModule(module, output);
  if (failed(runPipeline(module, options, PipelineStage::Loops, PipelineStage::LLVM)))
    return 1;
  auto tm = targetMachineFor(machine.triple, machine.cpu);
  if (!tm.ok())
    return fail(tm.status().message());
  llvm::LLVMContext ctx;
  auto llvmModule = translateToLLVMIR(module, ctx, **tm);
  if (!llvmModule.ok())
    return fail(llvmModule.status().message());
  if (stage == EmitStage::Llvm) {
    std::string text;
    llvm::raw_string_ostream os(text);
    (*llvmModule)->print(os, nullptr);
    return writeOutputFile(output, text, llvm::errs()) ? 0 : 1;
  }
  auto object = emitObjectFile(**llvmModule, **tm);
  if (!object.ok())
    return fail(object.status().message());
  if (stage == EmitStage::Obj)
    return writeOutputFile(output, *object, llvm::errs()) ? 0 : 1;
  return linkShared(*object, output);
}
