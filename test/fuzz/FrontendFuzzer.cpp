//===- FrontendFuzzer.cpp - libFuzzer target for the .attn front end ------===//
//
// Feeds arbitrary bytes through the whole spec-level path: lexer, parser,
// checker, MLIRGen (with verification), canonicalisation, the mask analysis
// and the tile schedule. Any crash, sanitizer report or hang fails.
//
//===----------------------------------------------------------------------===//
#include "attnc/Driver.h"

#include "llvm/Support/raw_ostream.h"

#include "FuzzSchedule.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef text(reinterpret_cast<const char *>(data), size);
  std::string errors;
  llvm::raw_string_ostream errs(errors);
  attnc::Driver driver(errs);
  attnc::FrontendOptions options;
  options.allowImports = false; // arbitrary text must not read files
  mlir::OwningOpRef<mlir::ModuleOp> module =
      driver.loadSpecText("fuzz.attn", text, options);
  if (!module || mlir::failed(driver.runSpecPipeline(*module)))
    return 0;
  attnc::fuzz::scheduleEverySpec(*module);
  return 0;
}
