//===- Parser.h - Recursive-descent parser for .attn specs ------*- C++ -*-===//
//
// Builds an unchecked ast::Module from a spec buffer: clauses by recursive
// descent, expressions by precedence climbing. Identifiers in expressions
// come out as Expr::Kind::Param, calls as Kind::Call with the callee in
// `name`, input reads as Kind::Read; Sema resolves and types them.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_FRONTEND_PARSER_H
#define ATTNC_FRONTEND_PARSER_H

#include "attnc/Frontend/AST.h"

#include <optional>

namespace llvm {
class SourceMgr;
class raw_ostream;
} // namespace llvm

namespace attnc {

/// Deepest expression nesting the parser accepts (parser recursion and tree
/// height alike); deeper input gets "expression is nested too deeply".
constexpr unsigned kMaxExprDepth = 200;

/// Parses buffer `bufferId` of `sm`. On the first syntax error prints one
/// located diagnostic to `errs` and returns std::nullopt. `file` is the
/// Module::files index stamped on every Loc: 0 for the main file (whose
/// SourceFile the result then records, and which must hold a block), the
/// importer's index otherwise (imports are not followed here; see
/// resolveImports).
std::optional<ast::Module> parseModule(llvm::SourceMgr &sm, unsigned bufferId,
                                       llvm::raw_ostream &errs,
                                       unsigned file = 0);

} // namespace attnc

#endif // ATTNC_FRONTEND_PARSER_H
