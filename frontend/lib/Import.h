//===- Import.h - Follow `import "file.attn"` and share declarations -------===//
#ifndef ATTNC_FRONTEND_LIB_IMPORT_H
#define ATTNC_FRONTEND_LIB_IMPORT_H

#include "attnc/Frontend/AST.h"
#include "attnc/Frontend/Frontend.h"

namespace llvm {
class SourceMgr;
class raw_ostream;
} // namespace llvm

namespace attnc {

/// Loads the files `main` imports (relative to the importing file, then
/// FrontendOptions::importDirs; each file once; a cycle is an error), adds
/// them to `main.files`, and copies the shared declarations (imported ones
/// first, in the order the files finished loading, then the main file's)
/// into each attention block ahead of its own: every param, and the inputs
/// and lets the block uses (directly or through a used let) or declares
/// again. Prints one located error and returns false on failure.
bool resolveImports(ast::Module &main, llvm::SourceMgr &sm,
                    const FrontendOptions &options, llvm::raw_ostream &errs);

} // namespace attnc

#endif // ATTNC_FRONTEND_LIB_IMPORT_H
