//===- Driver.h - Spec file -> attn IR -> pipeline stages -------*- C++ -*-===//
//
// What the attnc CLI (and the tests) do with a spec: read it, run the front
// end, build the attn module, and run the spec-level pipeline. Owns the MLIR
// context and a SourceMgr so that every error, from the parser or from an
// MLIR verifier, prints `file:line:col: error:` with the line and a caret.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TOOLS_DRIVER_H
#define ATTNC_TOOLS_DRIVER_H

#include "attnc/Frontend/Frontend.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Support/LLVM.h"
#include "llvm/Support/SourceMgr.h"

#include <memory>
#include <optional>

namespace mlir {
class SourceMgrDiagnosticHandler;
}

namespace attnc {

/// The ordered --emit stages of `attnc compile`.
enum class EmitStage { Mlir, Analysed, Tiled, Loops, Llvm, Obj, So, Header,
                       Cuda, Ptx, Cubin };
std::optional<EmitStage> parseEmitStage(llvm::StringRef name);
const char *emitStageNames(); // "mlir|analysed|tiled|loops|..."

/// The largest .mlir file Driver::loadFile reads (a printed LLVM-level
/// module of a big spec is far larger than any spec).
constexpr uint64_t kMaxMlirFileBytes = uint64_t(1) << 30;

/// Prints, for every analysed spec of `module`, why parts of its mask are
/// decided per element (explainOpaqueMask): one line
/// `file:line:col: note: 'NAME': REASON` each; only the spec `onlySpec`
/// when it is not empty.
void printMaskNotes(mlir::ModuleOp module, llvm::raw_ostream &os,
                    llvm::StringRef onlySpec = "");

class Driver {
public:
  explicit Driver(llvm::raw_ostream &errs);
  ~Driver();
  mlir::MLIRContext &context() { return ctx; }

  /// Reads `path` ("-" for stdin; readSpecFile: regular files only, at
  /// most kMaxSpecFileBytes), parses, checks and builds the module.
  /// Reports any error to the error stream and returns null.
  mlir::OwningOpRef<mlir::ModuleOp>
  loadSpecFile(llvm::StringRef path, const FrontendOptions &options);
  mlir::OwningOpRef<mlir::ModuleOp>
  loadSpecText(llvm::StringRef bufferName, llvm::StringRef text,
               const FrontendOptions &options);
  /// A .attn spec as loadSpecFile, or a .mlir file at any level of the
  /// pipeline (e.g. a printed tiled form; a regular file of at most
  /// kMaxMlirFileBytes; line ends and a BOM normalised as for a spec),
  /// parsed and verified.
  mlir::OwningOpRef<mlir::ModuleOp>
  loadFile(llvm::StringRef path, const FrontendOptions &options);

  /// The pipeline's first stage (Pipeline.h): attn-canonicalize (params
  /// fold to constants), then the mask analysis.
  mlir::LogicalResult runSpecPipeline(mlir::ModuleOp module);

private:
  llvm::raw_ostream &errs;
  mlir::MLIRContext ctx;
  llvm::SourceMgr sourceMgr;
  std::unique_ptr<mlir::SourceMgrDiagnosticHandler> handler;
};

/// Writes `data` to `path` by the runtime's rule for outputs
/// (runtime::writeFileAtomic, Npy.h): a new or plain file is replaced
/// through a temporary and a rename, so a failure leaves no partial file; a
/// symlink is followed and stays a link; a hard-linked file is written in
/// place; a device or FIFO is written, never replaced (`-o /dev/full` is an
/// error). "-" writes to stdout. New files get `mode` & ~umask. An error is
/// printed to `errs` as `attnc: error: PATH: ...` and returns false.
bool writeOutputFile(llvm::StringRef path, llvm::StringRef data,
                     llvm::raw_ostream &errs, unsigned mode = 0666);

} // namespace attnc

#endif // ATTNC_TOOLS_DRIVER_H
