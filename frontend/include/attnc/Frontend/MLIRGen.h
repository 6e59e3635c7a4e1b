//===- MLIRGen.h - Checked .attn tree -> attn dialect -----------*- C++ -*-===//
//
// The last front-end step: turns a Sema-checked ast::Module into a module of
// attn.spec ops. Every op carries the .attn file location of its source.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_FRONTEND_MLIRGEN_H
#define ATTNC_FRONTEND_MLIRGEN_H

#include "attnc/Frontend/AST.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace attnc {
/// Builds one attn.spec per attention block. The module is verified; on a
/// verifier failure (a front-end bug) the diagnostics go to the context and
/// a null module is returned.
mlir::OwningOpRef<mlir::ModuleOp> mlirGen(mlir::MLIRContext &context,
                                          const ast::Module &module);
} // namespace attnc

#endif // ATTNC_FRONTEND_MLIRGEN_H
