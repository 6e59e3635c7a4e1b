//===- attn-opt.cpp - Runs attn passes on MLIR files (for lit tests) ------===//
//
// MlirOptMain with the attn dialect, the dialects of every pipeline level,
// the attn passes, the whole pipeline as `--attnc-pipeline="..."`
// (Pipeline.h) and MLIR's generic transforms (canonicalize, cse).
//
//===----------------------------------------------------------------------===//
#include "attnc/Codegen/CpuCodegen.h"
#include "attnc/Codegen/Pipeline.h"
#include "attnc/Passes/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  attnc::registerCpuCodegenDialects(registry);
  mlir::attn::registerAttnPasses();
  attnc::registerCpuCodegenPasses();
  attnc::registerAttncPipeline();
  mlir::registerTransformsPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "attn optimizer driver\n", registry));
}
