//===- AttrFuzzer.cpp - libFuzzer target for the attn attribute parsers ---===//
//
// Feeds arbitrary text that starts with `#attn` to MLIR's attribute parser
// with the attn dialect loaded: `#attn.mask<...>` (the mask schedule
// formula), `#attn.param<...>`, `#attn.input<...>` and the dialect's enums,
// as attn-opt reads them in a .mlir file. Any crash, sanitizer report or
// hang fails. An attribute that parses must round-trip: its printed form
// parses back to the same attribute, except that a mask's bounds may come
// back rearranged; a mask and its reparsed form must then agree on every
// row of a few small shapes (the host model's evaluateRows), and the tile
// schedule (computeSchedule) is computed for them.
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
  std::string printed = print(attr);
  mlir::Attribute again = mlir::parseAttribute(printed, ctx);
  if (!again)
    finding("the printed form does not parse", text, printed);
  auto mask = mlir::dyn_cast<mlir::attn::MaskAttr>(attr);
  if (!mask) {
    // #attn.param, #attn.input and the enums print canonically.
    if (again != attr || print(again) != printed)
      finding("the printed form is another attribute", printed, print(again));
    return 0;
  }
  // A mask's bounds are printed in MLIR's order of affine terms, which
  // reading back may rearrange ("LK - LQ + q" prints as "q + LK - LQ"): the
  // text need not be a fixed point, but it must mean the same mask: every
  // atom's bound, evaluated on each single row (where the interval
  // arithmetic is exact), and the row's hull of keys agree.
  auto againMask = mlir::dyn_cast<mlir::attn::MaskAttr>(again);
  if (!againMask)
    finding("a mask prints as another kind of attribute", printed,
            print(again));
  static const int64_t kShapes[][4] = {
      {1, 1, 4, 8}, {37, 53, 16, 16}, {130, 70, 64, 32}, {0, 9, 8, 8}};
  for (const auto &s : kShapes) {
    mlir::attn::ProblemSizes sizes;
    sizes.LQ = s[0];
    sizes.LK = s[1];
    for (int64_t q = 0; q < sizes.LQ; ++q) {
      mlir::attn::RowBlock a = mlir::attn::evaluateRows(mask, sizes, q, q);
      mlir::attn::RowBlock b = mlir::attn::evaluateRows(againMask, sizes, q, q);
      bool same = a.hullLo == b.hullLo && a.hullHi == b.hullHi &&
                  a.atoms.size() == b.atoms.size();
      for (size_t i = 0; same && i < a.atoms.size(); ++i)
        same = a.atoms[i].known == b.atoms[i].known &&
               (!a.atoms[i].known || (a.atoms[i].lo == b.atoms[i].lo &&
                                      a.atoms[i].hi == b.atoms[i].hi));
      if (!same)
        finding(("the printed mask means another mask at q = " +
                 std::to_string(q))
                    .c_str(),
                text, printed);
    }
    mlir::attn::TileSchedule sched =
        mlir::attn::computeSchedule(mask, sizes, s[2], s[3]);
    if (sched.kinds.size() != size_t(sched.numQ * sched.numK))
      finding("a schedule whose size disagrees with its tiles", printed, "");
  }
  return 0;
}
