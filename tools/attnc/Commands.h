//===- Commands.h - The subcommands of attnc --------------------*- C++ -*-===//
#ifndef ATTNC_TOOLS_COMMANDS_H
#define ATTNC_TOOLS_COMMANDS_H

#include "attnc/Driver.h"
#include "attnc/Frontend/Frontend.h"
#include "attnc/Runtime/DType.h"
#include "attnc/Runtime/ForwardChecks.h"
#include "attnc/Runtime/Tensor.h"
#include "mlir/IR/BuiltinOps.h"

#include "llvm/ADT/Twine.h"

#include <boost/program_options.hpp>
#include <optional>
#include <string>
#include <vector>

namespace attnc {
namespace po = boost::program_options;

/// Prints `attnc: error: MESSAGE` to stderr (printToolError,
/// common/ToolDiagnostics.h: every subcommand's unlocated errors have this
/// one prefix); returns the exit code 1.
int reportError(const llvm::Twine &message);

/// Splits `-D NAME=VALUE` arguments; reports a malformed one and fails.
bool parseDefines(const std::vector<std::string> &args, FrontendOptions &out);

/// Parses `args` with `options` (and one positional SPEC), printing a clear
/// error for a bad flag. Returns false on error; sets `help` for --help.
bool parseCommandLine(const char *command, const std::vector<std::string> &args,
                      const po::options_description &options,
                      po::variables_map &vm);

int runCompile(const std::vector<std::string> &args);

/// The machine `attnc compile --target=cpu` generates code for: an LLVM
/// triple ("" for the host) and CPU name ("" for the host's, or the
/// triple's generic CPU).
struct CpuMachine {
  std::string triple, cpu;
};

/// The CPU stages of `attnc compile` after the spec pipeline (CompileCpu.cpp).
/// `backward`: the module went through attn-derive-backward (--backward),
/// so the object has the backward helpers and the header wraps them.
int emitCpuStage(mlir::ModuleOp module, EmitStage stage,
                 runtime::DType storage, const CpuMachine &machine,
                 int64_t headDim, bool backward, llvm::StringRef output);

/// The CUDA stages of `attnc compile` (CompileCuda.cpp): --emit=cuda, ptx
/// or cubin; `storage` and `headDims` (both or neither) pick one entry.
int emitCudaStage(mlir::ModuleOp module, EmitStage stage,
                  const std::string &arch,
                  std::optional<runtime::DType> storage,
                  std::optional<std::pair<int64_t, int64_t>> headDims,
                  llvm::StringRef output);

/// Parses --head-dims D[,DV]; on failure sets `error`.
std::optional<std::pair<int64_t, int64_t>>
parseHeadDims(const std::string &text, std::string &error);

int runRun(const std::vector<std::string> &args);

/// One `attnc run --target=cuda` call (RunCuda.cpp).
struct CudaRunRequest {
  std::string specName, specText;
  FrontendOptions frontend;        // -D and --name
  runtime::DType storage;          // f16 or bf16
  std::string arch;                // empty: the device's
  const runtime::Tensor *q, *k, *v; // in `storage`
  const std::vector<std::pair<std::string, runtime::Tensor>> *inputs;
  bool wantLse = false;
  /// softmax(dropout = p): a training call's seed and offset.
  std::optional<runtime::DropoutSeed> dropout;
};

/// Runs the spec on the GPU; `out` gets [B, HQ, LQ, DV] in `storage`, and
/// `lse` [B, HQ, LQ] float32 when asked for.
runtime::Status runOnCuda(const CudaRunRequest &request, runtime::Tensor &out,
                          std::optional<runtime::Tensor> &lse);
int runShow(const std::vector<std::string> &args);
/// `attnc cache stats|clear` (Cache.cpp).
int runCache(const std::vector<std::string> &args);
} // namespace attnc

#endif // ATTNC_TOOLS_COMMANDS_H
