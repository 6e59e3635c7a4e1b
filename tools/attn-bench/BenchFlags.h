//===- BenchFlags.h - attn-bench's command line and its checks --*- C++ -*-===//
//
// The flags of attn-bench, their parsing (Boost.Program_options) and the
// checks that turn them into a BenchPlan: the mode (one spec or a sweep),
// the target and dtype, the baselines, the shapes and the -D flags.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TOOLS_ATTN_BENCH_BENCHFLAGS_H
#define ATTNC_TOOLS_ATTN_BENCH_BENCHFLAGS_H

#include "bench-common/BenchCommon.h"
#include "attnc/Runtime/DType.h"
#include "attnc/Runtime/ForwardChecks.h"

#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace attnc::bench {

/// Prints `attn-bench: error: MESSAGE` and returns 1.
int fail(const std::string &message);

struct Flags {
  std::string spec, shape, target, dtype, name, csv, plot, sweep, lengths,
      shapeTemplate, python, torchScript;
  std::vector<std::string> defines, inputs, baselines;
  int threads = 0, runs = 5, warmup = 1;
  int64_t tileQ = 0, tileK = 0;
  double minTimeMs = 1000;
  int64_t naiveMaxPairs = int64_t(1) << 24;
  bool json = false;
  bool backward = false; // also time Kernel::backward (BackwardBench.h)
  int64_t pageSize = 0;  // also time a paged KV cache (PagedBench.h); 0: no
  unsigned seed = 1;
  /// softmax(dropout = p): time training calls with this Philox seed
  /// (offset 0); -1: calls without dropout.
  int64_t dropoutSeed = -1;
  /// The dropout of a call, from dropoutSeed.
  std::optional<attnc::runtime::DropoutSeed> dropout() const {
    if (dropoutSeed < 0)
      return std::nullopt;
    return attnc::runtime::DropoutSeed{uint64_t(dropoutSeed), 0};
  }
};

/// The checked flags of a bench and what follows from them.
struct BenchPlan {
  bool sweep = false, cuda = false;
  runtime::DType dtype = runtime::DType::F32;
  std::set<std::string> want; // the baselines asked for
  std::vector<Shape> shapes;
  std::vector<std::string> specPaths;
  std::vector<std::pair<std::string, std::string>> defines;
};

/// Parses the command line into \p f and \p sweep. Returns the exit code when
/// attn-bench ends here (1 on a bad command line, 0 after --help), else
/// std::nullopt.
std::optional<int> parseBenchFlags(int argc, char **argv, Flags &f, bool &sweep);

/// Checks the mode, --target, --dtype, the counts and the baselines; fills
/// \p plan's target, dtype and baselines. Returns 0 or fail's 1.
int checkBenchFlags(const Flags &f, BenchPlan &plan);

/// Fills \p plan's shapes and spec paths (of the sweep or the single spec)
/// and its -D flags. Returns 0 or fail's 1.
int planShapesAndSpecs(const Flags &f, BenchPlan &plan);

} // namespace attnc::bench

#endif // ATTNC_TOOLS_ATTN_BENCH_BENCHFLAGS_H
