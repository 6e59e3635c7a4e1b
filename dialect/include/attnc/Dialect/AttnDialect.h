//===- AttnDialect.h - The attn dialect: umbrella header --------*- C++ -*-===//
//
// Include this to use the attn dialect: the dialect, its enums, attributes
// and ops, all generated from the .td files beside it.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_DIALECT_ATTNDIALECT_H
#define ATTNC_DIALECT_ATTNDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "attnc/Dialect/AttnDialect.h.inc"
#include "attnc/Dialect/AttnEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "attnc/Dialect/AttnAttrs.h.inc"

#define GET_OP_CLASSES
#include "attnc/Dialect/AttnOps.h.inc"

namespace mlir::attn {
/// Limits of a #attn.mask formula read from text: nesting depth of
/// all_of/any_of, nodes in the whole formula, and operators (and
/// parentheses) in one bound expression. Bigger input is a located parse
/// error, so that neither the parser nor MLIR's (recursive) affine parser
/// can exhaust the stack.
constexpr unsigned kMaxMaskDepth = 256;
constexpr unsigned kMaxMaskTerms = 4096;
constexpr unsigned kMaxMaskBoundTerms = 256;
/// Names of the symbols of MaskAttr bound maps, in order (s0 .. s9).
llvm::ArrayRef<llvm::StringRef> maskSymbolNames();
/// Prints an affine expression of a mask bound with `q` and the symbol names.
std::string printMaskBound(AffineExpr expr);
/// The ids_eq atoms of a mask formula, in a fixed (depth-first) order: the
/// order of the pre-pass words.
llvm::SmallVector<MaskAttr> collectIdsAtoms(MaskAttr mask);
/// Whether the schedule alone decides every pair (`always`, `never`), so
/// that no tile needs the mask region.
bool maskNeedsNoElementCode(MaskAttr mask);
/// The types q, k, v and out may be stored as: f32, f16, bf16.
bool isStorageType(Type t);
} // namespace mlir::attn

#endif // ATTNC_DIALECT_ATTNDIALECT_H
