//===- BackwardBench.h - attn-bench --backward: the timed backward -*- C++ -*-===//
//
// attn-bench --backward times Kernel::backward beside the forward: one
// forward gives out and lse, a random dout in [-1, 1] the upstream
// gradient, and the backward (dq, dk, dv and every differentiable input's
// gradient) runs --warmup untimed and then at least --runs timed times
// (more until they span --min-time-ms), as the forward is timed. The
// openblas baseline, where it ran, then times its unfused backward on the
// same float32 data and is compared with attnc's gradients.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TOOLS_ATTNBENCH_BACKWARDBENCH_H
#define ATTNC_TOOLS_ATTNBENCH_BACKWARDBENCH_H

#include "BenchFlags.h"
#include "Report.h"

#include "attnc/Compiler.h"
#include "attnc/Dialect/AttnDialect.h"
#include "bench-common/BenchCommon.h"

#include <string>

namespace attnc::bench {

/// One problem's data as the forward bench made it.
struct BackwardProblem {
  const Kernel *kernel = nullptr; // compiled with CompileOptions::backward
  mlir::attn::SpecOp spec;
  Shape shape;
  runtime::DType dtype = runtime::DType::F32;
  int threads = 1;
  const Operand *q = nullptr, *k = nullptr, *v = nullptr;
  const NamedTensors *inputs = nullptr;
};

/// Times the backward of \p p into r.bwdMs, bwdMsMin, bwdGflops, bwdRuns
/// (r.backward = true), then the openblas baseline's backward into its
/// entry of r.baselines (when that baseline ran). Returns "" or an error (a failed forward or backward call).
std::string benchBackward(const Flags &f, const BackwardProblem &p,
                          BenchResult &r);

} // namespace attnc::bench

#endif // ATTNC_TOOLS_ATTNBENCH_BACKWARDBENCH_H
