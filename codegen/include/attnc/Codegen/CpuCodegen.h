//===- CpuCodegen.h - Tiled form -> LLVM -> object code ----------*- C++ -*-===//
//
// The CPU back end in visible steps, each usable on its own (attnc compile
// --emit=tiled|llvm|obj|so|header, the JIT in Compiler.cpp):
//   1. buildTiledModule: spec-level module -> the flash form (attn-tile);
//   2. lowerToLLVMDialect: scf/arith/math/memref/func -> the LLVM dialect,
//      plus one C-ABI entry point per kernel, `attnc_kernel_<name>`, with
//      the signature attnc_cpu_kernel_fn of KernelABI.h;
//   3. translateToLLVMIR + optimizeForHost: LLVM IR, O3 for the host CPU
//      (AVX-512 where present; the host's features decide vector widths);
//   4. emitObjectFile / linkSharedLibrary / emitHeader for ahead of time.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_CODEGEN_CPUCODEGEN_H
#define ATTNC_CODEGEN_CPUCODEGEN_H

#include "attnc/Dialect/AttnDialect.h"
#include "attnc/Runtime/CpuDispatch.h"

#include "mlir/IR/BuiltinOps.h"

#include <memory>
#include <string>
#include <vector>

namespace llvm {
class LLVMContext;
class Module;
class TargetMachine;
} // namespace llvm

namespace attnc {

struct CpuKernelOptions {
  runtime::DType storage = runtime::DType::F32;
  int64_t tileQ = 0, tileK = 0; // 0: the tuned choice (CpuTiles.h)
  /// The head dim D the kernel will mostly serve, 0 if unknown: it picks
  /// the tuned tile sizes. The kernel still runs with any D.
  int64_t headDim = 0;
};

/// Registers the dialects and the LLVM translations the CPU back end needs.
void registerCpuCodegenDialects(mlir::DialectRegistry &registry);

/// What the runtime needs to know about the kernel of `spec` (the spec must
/// have been through the spec pipeline; fn stays null).
runtime::Expected<runtime::KernelInfo>
describeKernel(mlir::attn::SpecOp spec, const CpuKernelOptions &options);

/// Step 1: runs attn-tile on a module that has been through the spec
/// pipeline. Diagnostics go to the context's handler.
mlir::LogicalResult buildTiledModule(mlir::ModuleOp module,
                                     const CpuKernelOptions &options);

/// Step 2 (in place).
mlir::LogicalResult lowerToLLVMDialect(mlir::ModuleOp module);

/// Registers the host target with LLVM (idempotent, thread-safe).
void initializeNativeTarget();

/// A target machine for the host CPU with all its features, or, if `cpu` is
/// set (an LLVM CPU name such as "haswell" or "skylake-avx512"), for that
/// CPU with its default features; an error for an unknown name.
runtime::Expected<std::unique_ptr<llvm::TargetMachine>>
hostTargetMachine(const std::string &cpu = "");
/// The CPU's name and features (the host's when `cpu` is empty), for cache
/// keys.
std::string hostCpuDescription(const std::string &cpu = "");

/// Step 3: translation to LLVM IR and -O3 for `tm`.
runtime::Expected<std::unique_ptr<llvm::Module>>
translateToLLVMIR(mlir::ModuleOp module, llvm::LLVMContext &ctx,
                  llvm::TargetMachine &tm);

/// Step 4: a relocatable object file (ELF) of `module`.
runtime::Expected<std::string> emitObjectFile(llvm::Module &module,
                                              llvm::TargetMachine &tm);

/// The C header of an AOT build: the entry points and, for C++, inline
/// wrappers that fill a KernelInfo and call runtime::forwardCpu.
std::string emitHeader(const std::vector<runtime::KernelInfo> &kernels);

/// The symbol of a kernel's C entry point: attnc_kernel_<name>.
std::string kernelSymbol(const std::string &specName);

} // namespace attnc

#endif // ATTNC_CODEGEN_CPUCODEGEN_H
