//===- Frontend.cpp - Parse and check .attn specs ---------------------------===//
//
// parseSpec: the front end's entry point, Parser then Sema on one buffer.
//
//===----------------------------------------------------------------------===//
#include "attnc/Frontend/Frontend.h"
#include "attnc/Frontend/Parser.h"
#include "attnc/Frontend/Sema.h"

#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

std::optional<attnc::ast::Module>
attnc::parseSpec(llvm::SourceMgr &sm, unsigned bufferId,
                 const FrontendOptions &options, llvm::raw_ostream &errs) {
  if (bufferId == 0 || bufferId > sm.getNumBuffers()) {
    llvm::WithColor::error(errs) << "invalid spec buffer " << bufferId << "\n";
    return std::nullopt;
  }
  std::optional<ast::Module> module = parseModule(sm, bufferId, errs);
  if (!module)
    return std::nullopt;
  if (!checkModule(*module, options, sm, bufferId, errs))
    return std::nullopt;
  return module;
}
