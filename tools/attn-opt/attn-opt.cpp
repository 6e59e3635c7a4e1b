//===- attn-opt.cpp - Runs attn passes on MLIR files (for lit tests) ------===//
//
// MlirOptMain with the attn dialect, the dialects its regions use, the attn
// passes and MLIR's generic transforms (canonicalize, cse).
//
//===----------------------------------------------------------------------===//
#include "attnc/Dialect/AttnDialect.h"
#include "attnc/Passes/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<mlir::attn::AttnDialect, mlir::arith::ArithDialect,
                  mlir::math::MathDialect, mlir::func::FuncDialect,
                  mlir::scf::SCFDialect, mlir::memref::MemRefDialect>();
  mlir::attn::registerAttnPasses();
  mlir::registerTransformsPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "attn optimizer driver\n", registry));
}
