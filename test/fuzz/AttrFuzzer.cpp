//===- AttrFuzzer.cpp - libFuzzer target for the attn attribute parsers ---===//
//
// Feeds arbitrary text that starts with `#attn` to MLIR's attribute parser
// with the attn dialect loaded: `#attn.mask<...>` (the mask schedule
// formula), `#attn.param<...>`, `#attn.input<...>` and the dialect's enums,
// as attn-opt reads them in a .mlir file. Any crash, sanitizer report or
// hang fails. An attribute that parses must round-trip: its printed form
// parses back to an attribute that prints identically and is then a fixed
// point (the same uniqued attribute). A mask schedule is then evaluated by
// the host model (computeSchedule) on a few small shapes.
//
//===----------------------------------------------------------------------===//
#include "attnc/Dialect/AttnDialect.h"
#include "attnc/Passes/MaskSchedule.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

[[noreturn]] static void finding(const char *what, const std::string &a,
                                 const std::string &b) {
  std::fprintf(stderr, "attr fuzzer: %s\n  first:  %s\n  second: %s\n", what,
               a.c_str(), b.c_str());
  std::abort();
}

static std::string print(mlir::Attribute attr) {
  std::string text;
  llvm::raw_string_ostream os(text);
  attr.print(os);
  return text;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // One context for the whole run: attributes are uniqued in it, and
  // loading the dialect per input would dominate the run time.
  static mlir::MLIRContext *ctx = [] {
    auto *c = new mlir::MLIRContext(mlir::MLIRContext::Threading::DISABLED);
    c->loadDialect<mlir::attn::AttnDialect>();
    return c;
  }();
  mlir::ScopedDiagnosticHandler quiet(
      ctx, [](mlir::Diagnostic &) { return mlir::success(); });

  std::string text(reinterpret_cast<const char *>(data), size);
  // Only the attn dialect's attributes: the rest of MLIR's attribute syntax
  // (dense tensors, nested arrays) is MLIR's to fuzz, not ours.
  if (text.rfind("#attn", 0) != 0)
    return 0;
  mlir::Attribute attr = mlir::parseAttribute(text, ctx);
  if (!attr)
    return 0;
  // The printed form is a fixed point: it parses back to an attribute that
  // prints identically and that round-trips to itself exactly. (The first
  // parse may differ from `attr` as a tree: a bound is printed in MLIR's
  // canonical order, "LK - LQ + q" as "q + LK - LQ", which is another,
  // equivalent affine expression.)
  std::string printed = print(attr);
  mlir::Attribute again = mlir::parseAttribute(printed, ctx);
  if (!again)
    finding("the printed form does not parse", text, printed);
  std::string reprinted = print(again);
  if (reprinted != printed)
    finding("printing is not stable", printed, reprinted);
  mlir::Attribute third = mlir::parseAttribute(reprinted, ctx);
  if (third != again)
    finding("the printed form parses to another attribute", reprinted,
            third ? print(third) : "(no attribute)");

  if (auto mask = mlir::dyn_cast<mlir::attn::MaskAttr>(attr)) {
    static const int64_t kShapes[][4] = {
        {1, 1, 4, 8}, {37, 53, 16, 16}, {130, 70, 64, 32}, {0, 9, 8, 8}};
    for (const auto &s : kShapes) {
      mlir::attn::ProblemSizes sizes;
      sizes.LQ = s[0];
      sizes.LK = s[1];
      mlir::attn::TileSchedule sched =
          mlir::attn::computeSchedule(mask, sizes, s[2], s[3]);
      if (sched.kinds.size() != size_t(sched.numQ * sched.numK))
        finding("a schedule whose size disagrees with its tiles", printed, "");
    }
  }
  return 0;
}
