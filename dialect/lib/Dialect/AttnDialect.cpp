//===- AttnDialect.cpp - attn dialect registration and attributes ---------===//
//
// Registers the dialect and materialises folded constants as arith.constant.
// The attributes live in AttnAttrs.cpp, the ops in AttnOps.cpp.
//
//===----------------------------------------------------------------------===//
#include "attnc/Dialect/AttnDialect.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::attn;

#include "attnc/Dialect/AttnDialect.cpp.inc"
#include "attnc/Dialect/AttnEnums.cpp.inc"

void AttnDialect::initialize() {
  registerAttributes();
  addOperations<
#define GET_OP_LIST
#include "attnc/Dialect/AttnOps.cpp.inc"
      >();
}

Operation *AttnDialect::materializeConstant(OpBuilder &builder,
                                            Attribute value, Type type,
                                            Location loc) {
  auto typed = dyn_cast<TypedAttr>(value);
  if (!typed || typed.getType() != type)
    return nullptr;
  return arith::ConstantOp::create(builder, loc, type, typed);
}

