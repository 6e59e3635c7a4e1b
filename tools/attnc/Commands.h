//===- Commands.h - The subcommands of attnc --------------------*- C++ -*-===//
#ifndef ATTNC_TOOLS_COMMANDS_H
#define ATTNC_TOOLS_COMMANDS_H

#include "attnc/Driver.h"
#include "attnc/Frontend/Frontend.h"
#include "attnc/Runtime/DType.h"
#include "mlir/IR/BuiltinOps.h"

#include <boost/program_options.hpp>
#include <string>
#include <vector>

namespace attnc {
namespace po = boost::program_options;

/// Splits `-D NAME=VALUE` arguments; reports a malformed one and fails.
bool parseDefines(const std::vector<std::string> &args, FrontendOptions &out);

/// Parses `args` with `options` (and one positional SPEC), printing a clear
/// error for a bad flag. Returns false on error; sets `help` for --help.
bool parseCommandLine(const char *command, const std::vector<std::string> &args,
                      const po::options_description &options,
                      po::variables_map &vm);

int runCompile(const std::vector<std::string> &args);

/// The CPU stages of `attnc compile` after the spec pipeline (CompileCpu.cpp).
int emitCpuStage(mlir::ModuleOp module, EmitStage stage,
                 runtime::DType storage, const std::string &cpu,
                 llvm::StringRef output);

int runRun(const std::vector<std::string> &args);
int runShow(const std::vector<std::string> &args);
} // namespace attnc

#endif // ATTNC_TOOLS_COMMANDS_H
