//===- PagedBench.h - attn-bench --page-size: a paged KV cache -*- C++ -*-===//
//
// The kernel of the contiguous run, timed once more with K and V copied
// into a paged cache (runtime::PagedKvCache): pages of --page-size rows in
// a shuffled order, every sequence of length LK. The result is a
// "baseline" column named paged, beside the contiguous time of the same
// run, and its relative error against the contiguous output.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TOOLS_ATTNBENCH_PAGEDBENCH_H
#define ATTNC_TOOLS_ATTNBENCH_PAGEDBENCH_H

#include "BenchFlags.h"
#include "Report.h"

#include "attnc/Compiler.h"
#include "bench-common/BenchCommon.h"

#include <string>

namespace attnc::bench {

struct PagedProblem {
  const Kernel *kernel = nullptr;
  Shape shape;
  int threads = 1;
  const Operand *q = nullptr, *k = nullptr, *v = nullptr;
  const NamedTensors *inputs = nullptr;
  const runtime::Tensor *contiguousOut = nullptr; // the contiguous run's
};

/// Appends the paged outcome to r.baselines when --page-size is set.
/// Returns "" or an error.
std::string benchPaged(const Flags &f, const PagedProblem &p, BenchResult &r);

} // namespace attnc::bench

#endif // ATTNC_TOOLS_ATTNBENCH_PAGEDBENCH_H
