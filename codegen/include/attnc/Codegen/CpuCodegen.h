//===- CpuCodegen.h - Tiled form -> LLVM -> object code ----------*- C++ -*-===//
//
// The CPU back end after the tiled form, in visible steps (attnc compile
// --emit=loops|llvm|obj|so|header, the JIT in Compiler.cpp):
//   1. attn-lower-cpu (Pipeline.h): attn.flash -> scf/memref loops;
//   2. addCpuToLLVMPasses: scf/arith/math/memref/func -> the LLVM dialect,
//      plus one C-ABI entry point per kernel, `attnc_kernel_<name>`, with
//      the signature attnc_cpu_kernel_fn of KernelABI.h;
//   3. translateToLLVMIR: LLVM IR, O3 for the host CPU (AVX-512 where
//      present and not turned off by ATTNC_CPU_ISA=avx2; the features decide
//      vector widths);
//   4. emitObjectFile / emitHeader for ahead of time.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_CODEGEN_CPUCODEGEN_H
#define ATTNC_CODEGEN_CPUCODEGEN_H

#include "attnc/Dialect/AttnDialect.h"
#include "attnc/Runtime/CpuDispatch.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace llvm {
class LLVMContext;
class Module;
class TargetMachine;
} // namespace llvm

namespace attnc {

/// Registers the dialects and the LLVM translations the CPU back end needs.
void registerCpuCodegenDialects(mlir::DialectRegistry &registry);

/// What the runtime needs to know about the kernel of a tiled spec: its
/// name, storage, tiles, inputs (fn stays null).
runtime::Expected<runtime::KernelInfo> describeKernel(mlir::attn::FlashOp flash);

/// Step 2: the passes from the CPU loops to the LLVM dialect and the entry
/// points.
void addCpuToLLVMPasses(mlir::OpPassManager &pm);
/// Registers the last of them, `attn-cpu-entry-points`, for attn-opt.
void registerCpuCodegenPasses();

/// Registers the host target with LLVM (idempotent, thread-safe).
void initializeNativeTarget();

/// A target machine for the host CPU with all its features (less AVX-512
/// while ATTNC_CPU_ISA=avx2 forces that path), or, if `cpu` is set (an LLVM
/// CPU name such as "haswell" or "skylake-avx512"), for that CPU with its
/// default features; an error for an unknown name or a bad ATTNC_CPU_ISA.
runtime::Expected<std::unique_ptr<llvm::TargetMachine>>
hostTargetMachine(const std::string &cpu = "");
/// A target machine for another target (cross-compilation, AOT only):
/// `triple` an LLVM target triple such as "aarch64-linux-gnu", `cpu` an
/// LLVM CPU name of that target ("" for its generic CPU, e.g. NEON on
/// AArch64); an empty triple is the host (hostTargetMachine). An error for
/// a triple or CPU LLVM does not know.
runtime::Expected<std::unique_ptr<llvm::TargetMachine>>
targetMachineFor(const std::string &triple, const std::string &cpu = "");
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

/// A kernel's backward helpers in an AOT build (attnc compile --backward):
/// the indices into KernelInfo::inputs of the float inputs that get a
/// gradient, increasing (runtime::BackwardKernelInfo::differentiable).
struct HeaderBackward {
  std::vector<int> differentiable;
  bool sinkRows = false; // runtime::BackwardKernelInfo::sinkRows
};

/// The C header of an AOT build: the entry points and, for C++, inline
/// wrappers that fill a KernelInfo and call runtime::forwardCpu. Where
/// `backward[i]` is set (the object has kernels[i]'s backward helpers), it
/// also declares attnc_kernel_<name>__bwd_kinds and __bwd_tile and wraps
/// them in `<name>_backward(args)` (runtime::backwardCpu).
std::string
emitHeader(const std::vector<runtime::KernelInfo> &kernels,
           const std::vector<std::optional<HeaderBackward>> &backward = {});

/// The symbol of a kernel's C entry point: attnc_kernel_<name>.
std::string kernelSymbol(const std::string &specName);

} // namespace attnc

#endif // ATTNC_CODEGEN_CPUCODEGEN_H
