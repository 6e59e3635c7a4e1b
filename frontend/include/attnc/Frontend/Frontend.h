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

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/SMLoc.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace llvm {
class MemoryBuffer;
class SourceMgr;
class raw_ostream;
} // namespace llvm

namespace attnc {

struct FrontendOptions {
  /// `-D NAME=VALUE` overrides, applied to every block that declares NAME.
  /// A NAME that no block declares, a NAME given twice, or a VALUE that does
  /// not parse as the param's type (parseParamValue) is an error (reported without a source location, as
  /// `error: -D NAME=VALUE: ...`).
  std::vector<std::pair<std::string, std::string>> defines;
  /// When non-empty, keep only the block with this name (error if absent).
  std::string onlyName;
  /// Where `import "PATH"` looks after the importing file's directory
  /// (attnc -I DIR).
  std::vector<std::string> importDirs;
  /// False refuses every import (the fuzzers: arbitrary text must not read
  /// arbitrary files).
  bool allowImports = true;
};

/// Lexes, parses and checks buffer `bufferId` of `sm`, with the files it
/// imports (added to `sm`). On the first error it prints one located
/// diagnostic to `errs` and returns std::nullopt. A buffer
/// that normalizeSpecText would change is parsed as a normalised copy added
/// to `sm` under the same name (use addSpecBuffer to avoid the copy).
std::optional<ast::Module> parseSpec(llvm::SourceMgr &sm, unsigned bufferId,
                                     const FrontendOptions &options,
                                     llvm::raw_ostream &errs);

/// The text the front end reads: a leading UTF-8 byte order mark dropped,
/// CRLF and lone CR (old Mac) line ends turned into LF, so that lines,
/// columns and caret lines are right whatever the file's convention.
std::string normalizeSpecText(llvm::StringRef text);
bool needsNormalization(llvm::StringRef text);

/// Adds `text`, normalised, to `sm` as a buffer named `name` and returns its
/// id. Spec text should enter a SourceMgr through here: MLIR diagnostics find
/// their buffer by name, so it must hold the lines the front end numbered.
/// `includeLoc` is the import that brought the file in, if any.
unsigned addSpecBuffer(llvm::SourceMgr &sm, llvm::StringRef text,
                       llvm::StringRef name,
                       llvm::SMLoc includeLoc = llvm::SMLoc());

/// The largest spec file readSpecFile accepts by default.
constexpr uint64_t kMaxSpecFileBytes = uint64_t(16) << 20;

/// Reads a whole file, "-" meaning stdin, for the front end or the MLIR
/// parser. A path that is not a regular file (FIFO, device, directory,
/// socket) is refused without blocking (it is opened with O_NONBLOCK and
/// checked with fstat before any read), and so is a file, or stdin, with
/// more than `maxBytes` bytes ("PATH: <what> is larger than N MiB"). On
/// failure returns null and sets `error` to a message that names the file.
std::unique_ptr<llvm::MemoryBuffer>
readSpecFile(llvm::StringRef path, std::string &error,
             uint64_t maxBytes = kMaxSpecFileBytes,
             llvm::StringRef what = "spec file");

/// The one parser of NAME=VALUE defines (attnc, attn-bench, attn-demo,
/// attn-gpu-prepare and attn-opt's --attn-bind-params use it): splits `arg`
/// at its first '=' (VALUE may contain '=' and may be empty; Sema then
/// rejects it for the param's type). NAME must be an identifier. Returns ""
/// and sets `out`, or the reason alone ("expected NAME=VALUE", "'1w' is not
/// a param name ..."). The value itself is parsed by parseParamValue
/// (Sema.h).
std::string splitDefine(llvm::StringRef arg,
                        std::pair<std::string, std::string> &out);

/// splitDefine for a `-D ARG` flag: the reason comes as "-D ARG: REASON".
std::string parseDefine(llvm::StringRef arg,
                        std::pair<std::string, std::string> &out);

} // namespace attnc

#endif // ATTNC_FRONTEND_FRONTEND_H
