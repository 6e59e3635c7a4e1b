//===- BenchFlags.cpp - attn-bench's command line and its checks ----------===//
//
// See BenchFlags.h.
//
//===----------------------------------------------------------------------===//
#include "BenchFlags.h"
#include "CudaBench.h"

#include "attnc/Frontend/Frontend.h"
#include "attnc/Runtime/CpuIsa.h"
#include "common/ToolCommandLine.h"
#include "common/ToolDiagnostics.h"
#include "llvm/Support/raw_ostream.h"
#include <boost/program_options.hpp>

#include <iostream>

namespace po = boost::program_options;
using namespace attnc;
using namespace attnc::bench;

int attnc::bench::fail(const std::string &message) {
  llvm::outs().flush();
  printToolError("attn-bench", message);
  return 1;
}

/// Parses the command line into \p f and \p sweep. Returns the exit code when
/// attn-bench ends here (1 on a bad command line, 0 after --help), else
/// std::nullopt.
std::optional<int> attnc::bench::parseBenchFlags(int argc, char **argv, Flags &f,
                                   bool &sweep) {
  po::options_description options(
      "attn-bench: time compiled attention kernels against baselines\n\n"
      "  attn-bench SPEC.attn --shape B,HQ,HKV,LQ,LK,D,DV [options]\n"
      "  attn-bench --sweep S1.attn,S2.attn [--lengths L1,L2,...]\n"
      "             [--shape-template B,HQ,HKV,D,DV] [options]\n\n"
      "The sweep runs every spec at every length (LQ = LK = L). Each spec is\n"
      "compiled cold in a fresh temporary kernel cache (compile_ms), then\n"
      "again by a second Compiler from the warm disk cache\n"
      "(cached_compile_ms). Times are medians after a warm-up; GFLOP/s\n"
      "count 2*B*HQ*LQ*LK*(D+DV) over the full matrix, beside the density\n"
      "(share of kept (q, kv) pairs, from the mask on a sample of rows).\n"
      "Random data: q, k uniform in [-2, 2], v in [-1, 1]; declared inputs\n"
      "as attn-demo makes them (int vectors over LQ/LK: sorted ids in 0..3,\n"
      "the same for queries and keys when LQ = LK, i.e. packed documents).\n\n"
      "Baselines (float32): naive (per-element SpecInterpreter loop; only up\n"
      "to --naive-max-pairs, at most 3 runs), openblas (unfused sgemm +\n"
      "softmax + sgemm per 256 query rows, heads over the threads, BLAS\n"
      "single-threaded; full and causal masks only), torch (SDPA and\n"
      "FlexAttention on CPU via bench/torch_baseline.py, if torch imports),\n"
      "sgemm (one 2048^3 cblas_sgemm on the same thread count), stream\n"
      "(a read of every byte of K and V on the same threads: the bandwidth\n"
      "ceiling of a decode step, with attnc's share of it in the note). With\n"
      "--backward: openblas also times an unfused backward (per 256 query\n"
      "rows S, P, dP, dS materialised, sgemm for the five products) and\n"
      "torch SDPA's backward (autograd.grad of the forward's graph).\n"
      "OpenBLAS picks its kernels by CPU; OPENBLAS_CORETYPE overrides that.\n\n"
      "Options");
  options.add_options()
      ("help,h", "print this help")
      ("spec", po::value(&f.spec), "the .attn spec file (single mode)")
      ("shape", po::value(&f.shape)->default_value("1,8,8,1024,1024,64,64"),
       "B,HQ,HKV,LQ,LK,D,DV (single mode)")
      ("sweep", po::value(&f.sweep), "comma-separated .attn files: sweep mode")
      ("lengths", po::value(&f.lengths)->default_value("512,1024,2048,4096"),
       "sweep: sequence lengths L (LQ = LK = L)")
      ("shape-template",
       po::value(&f.shapeTemplate)->default_value("1,8,8,64,64"),
       "sweep: B,HQ,HKV,D,DV")
      ("target", po::value(&f.target)->default_value("cpu"),
       "cpu|cuda (cuda: f16/bf16, timed with CUDA events, no baselines; "
       "the GPU baselines are in scripts/gpu-check.sh)")
      ("dtype", po::value(&f.dtype)->default_value("f32"),
       "storage type of q, k, v and out: f32|f16|bf16")
      ("define,D", po::value(&f.defines)->composing(),
       "NAME=VALUE: set a param in every spec that declares it (repeatable)")
      ("name", po::value(&f.name), "the block to use in a multi-block file")
      ("input", po::value(&f.inputs)->composing(),
       "NAME=FILE.npy: a declared input tensor (single mode; the others "
       "are random)")
      ("baseline", po::value(&f.baselines)->composing(),
       "naive|openblas|torch|sgemm|stream (repeatable, or comma-separated)")
      ("threads", po::value(&f.threads)->default_value(0),
       "threads for the kernel and the baselines (0: ATTNC_NUM_THREADS or "
       "all cores)")
      ("runs", po::value(&f.runs)->default_value(5), "timed runs (median)")
      ("warmup", po::value(&f.warmup)->default_value(1), "untimed runs first")
      ("min-time-ms", po::value(&f.minTimeMs)->default_value(1000),
       "CPU kernel: keep timing past --runs until the timed runs add up to "
       "this many ms (the median then resists bursts of other load)")
      ("json", po::bool_switch(&f.json), "print one JSON object instead of the table")
      ("backward", po::bool_switch(&f.backward),
       "CPU: also compile and time the backward pass (Kernel::backward, "
       "after one forward for out and lse; random dout in [-1, 1]): bwd_ms, "
       "bwd_gflops (2.5x the forward's FLOP); openblas and torch time "
       "their backward too")
      ("page-size", po::value(&f.pageSize)->default_value(0),
       "CPU: also time the same kernel with K and V in a paged KV cache "
       "of pages of N rows, in shuffled order (column 'paged'; its "
       "relative error is against the contiguous run)")
      ("csv", po::value(&f.csv), "write the results as CSV to FILE")
      ("plot", po::value(&f.plot),
       "write a PNG chart of GFLOP/s against the sequence length to FILE")
      ("naive-max-pairs", po::value(&f.naiveMaxPairs)->default_value(f.naiveMaxPairs),
       "largest B*HQ*LQ*LK the naive baseline runs")
      ("python", po::value(&f.python)->default_value("python3"),
       "interpreter for the torch baseline")
      ("torch-script", po::value(&f.torchScript)->default_value(ATTNC_TORCH_BASELINE),
       "the torch baseline script")
      ("seed", po::value(&f.seed)->default_value(1), "seed of the random data")
      ("dropout-seed", po::value(&f.dropoutSeed)->default_value(-1),
       "a spec with softmax(dropout = p): time training calls that drop, "
       "with this Philox seed (0 .. 2^63 - 1; -1: no dropout)")
      ("tile-q", po::value(&f.tileQ)->default_value(0),
       "CPU: query rows per tile (0: the tuned default for the head dims)")
      ("tile-k", po::value(&f.tileK)->default_value(0),
       "CPU: keys per tile (0: the tuned default for the head dims)");
  po::variables_map vm;
  std::string parseError = parseToolCommandLine(
      std::vector<std::string>(argv + 1, argv + argc), options, vm);
  if (!parseError.empty())
    return fail(parseError + " (see 'attn-bench --help')");
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  sweep = vm.count("sweep") > 0;
  return std::nullopt;
}

/// Checks the mode, --target, --dtype, the counts and the baselines; fills
/// \p plan's target, dtype and baselines. Returns 0 or fail's 1.
int attnc::bench::checkBenchFlags(const Flags &f, BenchPlan &plan) {
  const bool sweep = plan.sweep;
  if (sweep && !f.spec.empty())
    return fail("give either SPEC.attn or --sweep, not both");
  if (!sweep && f.spec.empty())
    return fail("no spec file given (see 'attn-bench --help')");
  if (f.target != "cpu" && f.target != "cuda")
    return fail("--target " + f.target + ": expected cpu or cuda");
  const bool cuda = f.target == "cuda";
  if (!cuda)
    if (runtime::Status s = runtime::checkCpuIsaEnvironment(); !s.ok())
      return fail(s.message());
  std::optional<runtime::DType> dtype = runtime::parseDType(f.dtype);
  if (!dtype || (*dtype != runtime::DType::F32 && *dtype != runtime::DType::F16 &&
                 *dtype != runtime::DType::BF16))
    return fail("--dtype " + f.dtype + ": expected f32, f16 or bf16");
  if (cuda && *dtype == runtime::DType::F32)
    return fail("--target cuda runs f16 or bf16 kernels: give --dtype bf16 or "
                "--dtype f16");
  if (f.threads < 0)
    return fail("--threads must be >= 0");
  if (f.dropoutSeed < -1)
    return fail("--dropout-seed must be a seed >= 0, or -1 for no dropout");
  if (f.runs < 1 || f.warmup < 0 || !(f.minTimeMs >= 0))
    return fail("--runs must be >= 1, --warmup >= 0 and --min-time-ms >= 0");
  std::set<std::string> &want = plan.want;
  for (const std::string &list : f.baselines)
    for (const std::string &b : splitCommas(list)) {
      if (b != "naive" && b != "openblas" && b != "torch" && b != "sgemm" &&
          b != "stream")
        return fail("--baseline " + b +
                    ": expected naive, openblas, torch, sgemm or stream");
      want.insert(b);
    }
  if (cuda && !want.empty())
    return fail("--baseline is for --target cpu; the GPU baselines (torch "
                "SDPA, cuDNN, FlexAttention) are in scripts/gpu-check.sh");
  if (cuda && f.backward)
    return fail("--backward is for --target cpu");
  if (f.pageSize < 0)
    return fail("--page-size=" + std::to_string(f.pageSize) +
                ": expected a number of rows >= 1 (0: no paged run)");
  if (cuda && f.pageSize != 0)
    return fail("--page-size is for --target cpu");
  if (cuda && !f.plot.empty())
    return fail("--plot is for --target cpu");
  std::string cudaDevice;
  if (cuda)
    if (std::string err = requireCudaDevice(cudaDevice); !err.empty())
      return fail("--target cuda: " + err);
  plan.cuda = cuda;
  plan.dtype = *dtype;
  return 0;
}

/// Fills \p plan's shapes and spec paths (of the sweep or the single spec)
/// and its -D flags. Returns 0 or fail's 1.
int attnc::bench::planShapesAndSpecs(const Flags &f, BenchPlan &plan) {
  std::string error;
  std::vector<Shape> &shapes = plan.shapes;
  std::vector<std::string> &specPaths = plan.specPaths;
  if (plan.sweep) {
    if (!f.inputs.empty())
      return fail("--input is for single mode (sweep inputs are random)");
    auto t = parseSizes("--shape-template", f.shapeTemplate, 5,
                        "B,HQ,HKV,D,DV", error);
    auto ls = parseSizes("--lengths", f.lengths, 0, "L1,L2,...", error);
    if (!t || !ls)
      return fail(error);
    if ((*t)[1] % (*t)[2] != 0)
      return fail("--shape-template " + f.shapeTemplate +
                  ": HQ must be a multiple of HKV");
    for (int64_t l : *ls)
      shapes.push_back({(*t)[0], (*t)[1], (*t)[2], l, l, (*t)[3], (*t)[4]});
    for (const std::string &p : splitCommas(f.sweep)) {
      if (p.empty())
        return fail("--sweep " + f.sweep + ": empty spec path");
      specPaths.push_back(p);
    }
  } else {
    std::optional<Shape> s = parseShape(f.shape, error);
    if (!s)
      return fail(error);
    shapes.push_back(*s);
    specPaths.push_back(f.spec);
  }
  for (const std::string &d : f.defines) {
    std::pair<std::string, std::string> define;
    if (std::string why = parseDefine(d, define); !why.empty())
      return fail(why);
    plan.defines.push_back(std::move(define));
  }
  return 0;
}

