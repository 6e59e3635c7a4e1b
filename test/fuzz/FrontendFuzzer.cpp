//===- FrontendFuzzer.cpp - libFuzzer target for the .attn front end ------===//
//
// Feeds arbitrary bytes through the whole spec-level path: lexer, parser,
// checker, MLIRGen (with verification), canonicalisation, the mask analysis
// and the tile schedule. Any crash, sanitizer report or hang fails.
//
//===----------------------------------------------------------------------===//
#include "attnc/Driver.h"
#include "attnc/Passes/MaskSchedule.h"

#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef text(reinterpret_cast<const char *>(data), size);
  std::string errors;
  llvm::raw_string_ostream errs(errors);
  attnc::Driver driver(errs);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      driver.loadSpecText("fuzz.attn", text, {});
  if (!module || mlir::failed(driver.runSpecPipeline(*module)))
    return 0;
  mlir::attn::ProblemSizes sizes;
  sizes.LQ = 77;
  sizes.LK = 131;
  for (mlir::attn::SpecOp spec : module->getOps<mlir::attn::SpecOp>())
    if (mlir::attn::MaskAttr mask = spec.getMaskScheduleAttr())
      (void)mlir::attn::computeSchedule(mask, sizes, 16, 32);
  return 0;
}
