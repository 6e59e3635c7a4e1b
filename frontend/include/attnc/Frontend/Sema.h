//===- Sema.h - Name resolution and type checking of .attn specs -*- C++ -*-===//
//
// Second front-end step: applies -D overrides and --name selection, resolves
// names (lets included: a use becomes a Let node), checks and annotates
// types, makes int->float promotions explicit Cast nodes and fills absent
// clauses with their defaults (see AST.h).
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_FRONTEND_SEMA_H
#define ATTNC_FRONTEND_SEMA_H

#include "attnc/Frontend/AST.h"
#include "attnc/Frontend/Frontend.h"

#include "llvm/ADT/StringRef.h"

#include <optional>
#include <string>

namespace llvm {
class SourceMgr;
class raw_ostream;
} // namespace llvm

namespace attnc {

/// Checks `module` (as built by parseModule from buffer `bufferId`) in place.
/// On the first error prints one diagnostic to `errs` and returns false;
/// `module` is then partly checked and must not be used.
bool checkModule(ast::Module &module, const FrontendOptions &options,
                 llvm::SourceMgr &sm, unsigned bufferId,
                 llvm::raw_ostream &errs);

/// Parses VALUE of a `-D NAME=VALUE` as a value of `param.type` (int: the
/// full int64 range, decimal; float: a finite f32 literal; bool: true,
/// false, 1, 0) and stores it in `param`. Returns "" or the reason it
/// failed. Shared by the front end and the attn-bind-params pass.
std::string parseParamValue(llvm::StringRef text, ast::ParamDecl &param);

/// Name tables of the language, shared with tests and tools.
std::optional<ast::IndexVar> lookupIndexVar(llvm::StringRef name);
std::optional<ast::SizeVar> lookupSizeVar(llvm::StringRef name);
std::optional<ast::Builtin> lookupBuiltin(llvm::StringRef name);
/// Words with a fixed meaning (attention, param, ..., int, float, bool,
/// true, false, softmax, sigmoid, bias); none may name a param or input.
bool isKeyword(llvm::StringRef name);

} // namespace attnc

#endif // ATTNC_FRONTEND_SEMA_H
