//===- Report.h - attn-bench results: table, JSON, CSV, plot ----*- C++ -*-===//
//
// The measurements of one attn-bench run (one spec and shape, or a sweep of
// specs x sequence lengths) and the ways to print them: a text table on
// stdout, one JSON object (--json), CSV rows (--csv) and a PNG chart of
// GFLOP/s against the sequence length (--plot).
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TOOLS_ATTNBENCH_REPORT_H
#define ATTNC_TOOLS_ATTNBENCH_REPORT_H

#include "bench-common/BenchCommon.h"

#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace attnc::bench {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// One baseline's outcome: timed (ran), or skipped with a note.
struct BaselineOutcome {
  std::string name; // naive, openblas, torch_sdpa, torch_flex, sgemm
  bool ran = false;
  std::string note; // why it was skipped, or what it is
  double ms = kNaN, gflops = kNaN;
  double relErr = kNaN; // ||out - attnc|| / ||attnc||, when computed
  /// Extra string fields (openblas_core, torch version, ...).
  std::vector<std::pair<std::string, std::string>> extra;
  /// Extra numeric fields (block_mask_ms, ...).
  std::vector<std::pair<std::string, double>> numbers;
  /// attn-bench --backward: the baseline's backward (NaN when it has none
  /// or it was skipped; bwdNote then says why), and the relative error of
  /// its (dq, dk, dv) against attnc's, when computed.
  double bwdMs = kNaN, bwdGflops = kNaN, bwdRelErr = kNaN;
  std::string bwdNote;
};

/// One spec on one shape.
struct BenchResult {
  std::string spec;  // the file
  std::string name;  // the attention block
  std::string label; // name plus the -D values that apply, for tables
  std::vector<std::pair<std::string, std::string>> defines;
  std::string target = "cpu"; // cpu or cuda
  Shape shape;
  std::string dtype;
  int threads = 1, runs = 0, warmup = 0;
  double ms = kNaN, msMin = kNaN, gflops = kNaN;
  double density = kNaN;
  /// attn-bench --backward: Kernel::backward's median and fastest run,
  /// GFLOP/s of 2.5 x flops() (FlashAttention's count), and the timed runs.
  bool backward = false;
  double bwdMs = kNaN, bwdMsMin = kNaN, bwdGflops = kNaN;
  int bwdRuns = 0;
  std::string densityBasis; // "all rows" or "a sample of N rows"
  double compileMs = kNaN, cachedCompileMs = kNaN;
  int64_t tileQ = 0, tileK = 0;
  std::vector<BaselineOutcome> baselines;
};

struct BenchReport {
  bool sweep = false;
  std::string dtype;
  int threads = 1;
  /// The CPU microkernel path that ran (CpuIsa.h), e.g. "avx2"; empty for
  /// --target cuda.
  std::string cpuIsa;
  /// On the generic path: which microkernels ran (attnc_uk_generic_build).
  std::string genericMicrokernels;
  std::vector<BenchResult> results;
  /// The SGEMM reference point, when asked for (not per result).
  std::vector<BaselineOutcome> global;
};

/// The FLOP a backward pass is counted as: 2.5 x the forward's (two
/// matrix products forward, five backward), as FlashAttention counts them.
inline double backwardFlops(const Shape &s) { return 2.5 * s.flops(); }

/// GFLOP/s of `flops` in `ms`.
inline double gflopsOf(double flops, double ms) {
  return ms > 0 ? flops / (ms * 1e6) : kNaN;
}

void printTable(const BenchReport &report, llvm::raw_ostream &os);
void printJson(const BenchReport &report, llvm::raw_ostream &os);
/// Returns "" or an error message.
std::string writeCsv(const BenchReport &report, const std::string &path);
std::string writePlot(const BenchReport &report, const std::string &path);

} // namespace attnc::bench

#endif // ATTNC_TOOLS_ATTNBENCH_REPORT_H
