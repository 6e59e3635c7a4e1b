//===- FuzzSchedule.h - Every tile schedule of a fuzzed module -*- C++ -*-===//
//
// What the front end fuzzers (FrontendFuzzer.cpp, DefineFuzzer.cpp) do
// with a module that passed the spec pipeline: compute the tile schedule of
// each spec's analysed mask on a problem whose lengths are not tile
// multiples (LQ 77, LK 131, tiles 16 x 32), so the schedule code runs on
// every mask the fuzzer reaches.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TEST_FUZZ_FUZZSCHEDULE_H
#define ATTNC_TEST_FUZZ_FUZZSCHEDULE_H

#include "attnc/Dialect/AttnDialect.h"
#include "attnc/Passes/MaskSchedule.h"

#include "mlir/IR/BuiltinOps.h"

namespace attnc::fuzz {

inline void scheduleEverySpec(mlir::ModuleOp module) {
  mlir::attn::ProblemSizes sizes;
  sizes.LQ = 77;
  sizes.LK = 131;
  for (mlir::attn::SpecOp spec : module.getOps<mlir::attn::SpecOp>())
    if (mlir::attn::MaskAttr mask = spec.getMaskScheduleAttr())
      (void)mlir::attn::computeSchedule(mask, sizes, 16, 32);
}

} // namespace attnc::fuzz

#endif // ATTNC_TEST_FUZZ_FUZZSCHEDULE_H
