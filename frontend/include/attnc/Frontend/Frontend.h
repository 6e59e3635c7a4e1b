//===- Frontend.h - Parse and check .attn specs -----------------------------===//
//
// Entry point of the .attn front end: text -> checked ast::Module. Errors are
// printed through llvm::SourceMgr as `file:line:col: error: message`, followed
// by the source line and a caret, and the call returns std::nullopt. The
// front end never asserts or crashes, whatever bytes it is given.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_FRONTEND_FRONTEND_H
#define ATTNC_FRONTEND_FRONTEND_H

#include "attnc/Frontend/AST.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace llvm {
class SourceMgr;
class raw_ostream;
} // namespace llvm

namespace attnc {

struct FrontendOptions {
  /// `-D NAME=VALUE` overrides, applied to every block that declares NAME.
  /// A NAME that no block declares, or a VALUE that does not parse as the
  /// param's type, is an error (reported without a source location, as
  /// `error: -D NAME=VALUE: ...`).
  std::vector<std::pair<std::string, std::string>> defines;
  /// When non-empty, keep only the block with this name (error if absent).
  std::string onlyName;
};

/// Lexes, parses and checks buffer `bufferId` of `sm`. On the first error it
/// prints one located diagnostic to `errs` and returns std::nullopt.
std::optional<ast::Module> parseSpec(llvm::SourceMgr &sm, unsigned bufferId,
                                     const FrontendOptions &options,
                                     llvm::raw_ostream &errs);

} // namespace attnc

#endif // ATTNC_FRONTEND_FRONTEND_H
