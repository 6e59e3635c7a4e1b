//===- ToolDiagnostics.h - The one error form of the tools ------*- C++ -*-===//
//
// Every error a tool prints that has no source location is
// `TOOL: error: MESSAGE`, as clang and LLVM's tools do: attnc says
// `attnc: error:` in every subcommand, attn-bench, attn-demo and
// attn-gpu-prepare their own name. The one warning, the kernel cache's
// (KernelCache.cpp, in the runtime, which does not link the tools), has the
// same form, `attnc: warning: MESSAGE`. Errors in a spec or an .mlir file
// keep their located form `FILE:LINE:COL: error:`, printed by the
// SourceMgr. Header-only (LLVM Support), so the driver library and every
// tool take it without a link dependency.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TOOLS_COMMON_TOOLDIAGNOSTICS_H
#define ATTNC_TOOLS_COMMON_TOOLDIAGNOSTICS_H

#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/raw_ostream.h"

namespace attnc {

/// Prints `TOOL: error: MESSAGE` and a newline to \p os.
inline void printToolError(llvm::raw_ostream &os, llvm::StringRef tool,
                           const llvm::Twine &message) {
  os << tool << ": error: " << message << "\n";
}

/// printToolError to stderr.
inline void printToolError(llvm::StringRef tool, const llvm::Twine &message) {
  printToolError(llvm::errs(), tool, message);
}

} // namespace attnc

#endif // ATTNC_TOOLS_COMMON_TOOLDIAGNOSTICS_H
