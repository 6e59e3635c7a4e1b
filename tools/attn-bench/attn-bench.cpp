//===- attn-bench.cpp - Time compiled attention kernels against baselines -===//
//
//   attn-bench SPEC.attn --shape B,HQ,HKV,LQ,LK,D,DV [options]
//   attn-bench --sweep SPEC1.attn,SPEC2.attn --lengths 512,1024,...
//              --shape-template B,HQ,HKV,D,DV [options]
//
// Compiles each spec with the C++ API (cold, in a fresh kernel cache, then
// again from a second Compiler whose disk cache is warm), runs the kernel
// on random non-zero data, times the median of repeated runs after a
// warm-up, counts the share of (q, kv) pairs the mask keeps (on a sample of
// rows through the SpecInterpreter), and times the baselines asked for
// (Baselines.h; torch through bench/torch_baseline.py). Prints a table, or
// one JSON object with --json; writes CSV and a PNG chart on request. Exits
// 1 on a usage, compile or run error.
//
//===----------------------------------------------------------------------===//
#include "Baselines.h"
#include "CudaBench.h"
#include "Report.h"

#include "attnc/Compiler.h"
#include "attnc/Driver.h"
#include "attnc/Runtime/Npy.h"
#include "attnc/Runtime/ThreadPool.h"
#include "bench-common/BenchCommon.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"
#include "common/ToolCommandLine.h"
#include <boost/program_options.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace po = boost::program_options;
using namespace attnc;
using namespace attnc::bench;
using runtime::Tensor;

namespace {

/// Mask evaluations the density count may spend before it takes a sample
/// of the query rows.
constexpr int64_t kDensityBudget = int64_t(1) << 20;

int fail(const std::string &message) {
  llvm::outs().flush();
  llvm::errs() << "attn-bench: error: " << message << "\n";
  return 1;
}

struct Flags {
  std::string spec, shape, target, dtype, name, csv, plot, sweep, lengths,
      shapeTemplate, python, torchScript;
  std::vector<std::string> defines, inputs, baselines;
  int threads = 0, runs = 5, warmup = 1;
  int64_t tileQ = 0, tileK = 0;
  double minTimeMs = 1000;
  int64_t naiveMaxPairs = int64_t(1) << 24;
  bool json = false;
  unsigned seed = 1;
};

/// A temporary directory removed when the bench ends.
struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "attn-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()))
      path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty())
      std::filesystem::remove_all(path, ec);
  }
};

/// One spec as the bench uses it: compiled, and loaded for the interpreter.
struct Entry {
  std::string path, name, label;
  std::vector<std::pair<std::string, std::string>> defines;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  mlir::attn::SpecOp spec;
  std::optional<Kernel> kernel;   // --target=cpu
  runtime::KernelInfo info;       // the kernel's declaration (both targets)
  double compileMs = kNaN, cachedCompileMs = kNaN;
};

/// The int and float params of a spec with their (bound) values.
std::vector<std::pair<std::string, std::string>>
paramValues(mlir::attn::SpecOp spec) {
  std::vector<std::pair<std::string, std::string>> out;
  mlir::ArrayAttr params = spec.getParamsAttr();
  if (!params)
    return out;
  for (mlir::Attribute a : params) {
    auto p = mlir::dyn_cast<mlir::attn::ParamAttr>(a);
    if (!p || !p.getValue())
      continue;
    if (auto i = mlir::dyn_cast<mlir::IntegerAttr>(p.getValue()))
      out.push_back({p.getName().str(), std::to_string(i.getInt())});
    else if (auto f = mlir::dyn_cast<mlir::FloatAttr>(p.getValue()))
      out.push_back({p.getName().str(), std::to_string(f.getValueAsDouble())});
  }
  return out;
}

std::string shellQuote(const std::string &s) {
  std::string out = "'";
  for (char c : s)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// Runs bench/torch_baseline.py for one problem; fills torch_sdpa and
/// torch_flex (skipped, with the reason, when torch is missing or the
/// variant is not one the script knows).
void torchBaselines(const Flags &f, const Entry &e, const Shape &s,
                    const NamedTensors &inputs, const std::string &tmp,
                    int threads, std::vector<BaselineOutcome> &out) {
  BaselineOutcome sdpa{"torch_sdpa"}, flex{"torch_flex"};
  // Once torch failed to import, do not start Python again for each shape.
  static std::string unavailable;
  auto skipBoth = [&](const std::string &why) {
    sdpa.note = flex.note = why;
    out.push_back(sdpa);
    out.push_back(flex);
  };
  if (!unavailable.empty())
    return skipBoth(unavailable);
  std::string cmd = shellQuote(f.python) + " " + shellQuote(f.torchScript) +
                    " --variant " + shellQuote(e.name) + " --shape " +
                    s.str() + " --dtype " + f.dtype + " --threads " +
                    std::to_string(threads) + " --runs " +
                    std::to_string(f.runs) + " --warmup " +
                    std::to_string(f.warmup);
  for (const auto &[k, v] : paramValues(e.spec))
    cmd += " --param " + shellQuote(k + "=" + v);
  for (const auto &[name, t] : inputs) {
    std::string file = tmp + "/" + name + ".npy";
    if (runtime::Status st = runtime::writeNpy(file, t.view()); !st.ok())
      return skipBoth("cannot write " + file + ": " + st.message());
    cmd += " --input " + shellQuote(name + "=" + file);
  }
  cmd += " 2>&1";
  llvm::outs().flush();
  FILE *pipe = popen(cmd.c_str(), "r");
  if (!pipe)
    return skipBoth("cannot run " + f.python);
  std::string text;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, pipe)) > 0;)
    text.append(buf, n);
  int rc = pclose(pipe);
  // The script prints one JSON object on its last line.
  std::string last;
  size_t end = text.find_last_not_of("\n ");
  if (end != std::string::npos) {
    size_t begin = text.rfind('\n', end);
    last = text.substr(begin == std::string::npos ? 0 : begin + 1,
                       end + 1 - (begin == std::string::npos ? 0 : begin + 1));
  }
  llvm::Expected<llvm::json::Value> parsed = llvm::json::parse(last);
  if (!parsed) {
    llvm::consumeError(parsed.takeError());
    std::string tail = text.size() > 300 ? text.substr(text.size() - 300) : text;
    return skipBoth("torch_baseline.py failed (exit " + std::to_string(rc) +
                    "): " + tail);
  }
  const llvm::json::Object *o = parsed->getAsObject();
  if (!o)
    return skipBoth("torch_baseline.py printed no JSON object");
  if (auto err = o->getString("error")) {
    if (err->starts_with("torch not available"))
      unavailable = err->str();
    return skipBoth(err->str());
  }
  std::string version = o->getString("torch").value_or("?").str();
  for (BaselineOutcome *b : {&sdpa, &flex}) {
    const llvm::json::Object *r =
        o->getObject(b == &sdpa ? "sdpa" : "flex");
    b->extra.push_back({"torch", version});
    if (!r) {
      b->note = "no result";
      continue;
    }
    if (auto why = r->getString("skipped")) {
      b->note = why->str();
      continue;
    }
    std::optional<double> ms = r->getNumber("ms");
    if (!ms) {
      b->note = "no time reported";
      continue;
    }
    b->ran = true;
    b->ms = *ms;
    b->gflops = gflopsOf(s.flops(), *ms);
    if (auto note = r->getString("note"))
      b->note = note->str();
    for (const char *k : {"block_mask_ms", "first_call_ms"})
      if (auto x = r->getNumber(k))
        b->numbers.push_back({k, *x});
  }
  out.push_back(sdpa);
  out.push_back(flex);
}

/// Times `fn` (returning "" or an error): `warmup` untimed runs, then the
/// median of `runs`.
template <typename Fn>
std::string timeRuns(int warmup, int runs, Fn fn, double &medianMs) {
  for (int i = 0; i < warmup; ++i)
    if (std::string err = fn(); !err.empty())
      return err;
  std::vector<double> times;
  for (int i = 0; i < runs; ++i) {
    auto start = std::chrono::steady_clock::now();
    if (std::string err = fn(); !err.empty())
      return err;
    times.push_back(msSince(start));
  }
  medianMs = median(times);
  return "";
}

/// Benchmarks one spec on one shape. Returns "" or an error.
std::string benchOne(const Flags &f, Entry &e, const Shape &s,
                     runtime::DType dtype, int threads,
                     const NamedTensors &given, const std::set<std::string> &want,
                     const std::string &tmp, BenchResult &r) {
  const runtime::KernelInfo &info = e.info;
  const bool cuda = f.target == "cuda";
  r.spec = e.path, r.name = e.name, r.label = e.label, r.defines = e.defines;
  r.target = f.target;
  r.shape = s, r.dtype = f.dtype, r.threads = threads, r.runs = f.runs,
  r.warmup = f.warmup, r.compileMs = e.compileMs,
  r.cachedCompileMs = e.cachedCompileMs, r.tileQ = info.tileQ,
  r.tileK = info.tileK;

  // Random data; q, k in [-2, 2], v in [-1, 1] as attn-demo makes them.
  std::mt19937 rng(f.seed);
  auto q = randomOperand(dtype, {s.B, s.HQ, s.LQ, s.D}, rng, -2, 2);
  auto k = randomOperand(dtype, {s.B, s.HKV, s.LK, s.D}, rng, -2, 2);
  auto v = randomOperand(dtype, {s.B, s.HKV, s.LK, s.DV}, rng, -1, 1);
  auto out = Tensor::zeros(dtype, {s.B, s.HQ, s.LQ, s.DV});
  auto random = randomInputs(info, s, rng, given);
  for (const runtime::Status *st :
       {&q.status(), &k.status(), &v.status(), &out.status(), &random.status()})
    if (!st->ok())
      return st->message();
  // Packed documents in self-attention: when the random inputs include an
  // int vector over LQ and one over LK (document ids) and LQ == LK, the
  // keys get the queries' ids, so that the documents line up.
  if (s.LQ == s.LK) {
    Tensor *idsQ = nullptr, *idsK = nullptr;
    for (const runtime::InputDecl &decl : info.inputs) {
      if (decl.dtype != runtime::DType::I64 || decl.dims.size() != 1 ||
          !decl.dims[0].isSize)
        continue;
      const runtime::SizeName dim = decl.dims[0].size;
      for (auto &[name, t] : *random)
        if (name == decl.name && dim == runtime::SizeName::LQ)
          idsQ = &t;
        else if (name == decl.name && dim == runtime::SizeName::LK)
          idsK = &t;
    }
    if (idsQ && idsK)
      *idsK = *idsQ;
  }
  NamedTensors inputs;
  for (const auto &[name, t] : given)
    inputs.push_back({name, Tensor(t)});
  for (auto &[name, t] : *random)
    inputs.push_back({name, std::move(t)});

  // The kernel: warm-up, then the median of the timed runs.
  if (cuda) {
    static int call = 0; // a fresh cache directory per call: cold compiles
    Tensor gpuOut;
    std::string err = benchCudaKernel(
        e.spec, s, dtype, q->tensor, k->tensor, v->tensor, inputs, f.warmup,
        f.runs, tmp + "/cuda-cache-" + std::to_string(call++), r, gpuOut);
    if (!err.empty())
      return err;
    *out = std::move(gpuOut);
  } else {
    ForwardOptions fwd;
    fwd.threads = threads;
    for (auto &[name, t] : inputs)
      fwd.inputs.push_back({name, t.view()});
    // At least --runs timed runs, and more until they span --min-time-ms:
    // on a shared machine a burst of other work then hits a minority of the
    // runs of a short kernel, not the median.
    std::vector<double> times;
    double timedMs = 0;
    for (int i = 0; i < f.warmup + f.runs || (timedMs < f.minTimeMs && i < 100000); ++i) {
      auto start = std::chrono::steady_clock::now();
      runtime::Status st = e.kernel->forward(
          q->tensor.view(), k->tensor.view(), v->tensor.view(), out->view(),
          fwd);
      if (!st.ok())
        return st.message();
      if (i >= f.warmup) {
        times.push_back(msSince(start));
        timedMs += times.back();
      }
    }
    r.runs = int(times.size());
    r.msMin = *std::min_element(times.begin(), times.end());
    r.ms = median(times);
  }
  r.gflops = gflopsOf(s.flops(), r.ms);

  // Density: the mask on every row, or on an evenly spread sample of rows.
  const int64_t rows = s.B * s.HQ * s.LQ;
  int64_t stride = 1;
  if (double(rows) * double(s.LK) > double(kDensityBudget))
    stride = int64_t(std::ceil(double(rows) * double(s.LK) /
                               double(kDensityBudget))) | 1;
  mlir::attn::InputReader reader = inputReader(inputs);
  mlir::attn::SpecInterpreter interp(e.spec, problemSizes(s), reader);
  int64_t kept = 0, visited = 0;
  for (int64_t row = 0; row < rows; row += stride) {
    mlir::attn::ProblemSizes ps = problemSizes(s);
    ps.b = row / (s.HQ * s.LQ), ps.h = row / s.LQ % s.HQ;
    interp.setSizes(ps);
    for (int64_t kv = 0; kv < s.LK; ++kv) {
      std::optional<bool> m = interp.mask({row % s.LQ, kv});
      if (!m)
        return "counting the mask: " + interp.error();
      kept += *m;
    }
    ++visited;
  }
  r.density = double(kept) / (double(visited) * double(s.LK));
  r.densityBasis = stride == 1 ? "all rows"
                               : "a sample of " + std::to_string(visited) +
                                     " of " + std::to_string(rows) + " rows";

  // The baselines, on float32 copies of the same (rounded) data.
  if (want.empty() || (want.size() == 1 && want.count("sgemm")))
    return "";
  auto toFloat = [](const std::vector<double> &d) {
    return std::vector<float>(d.begin(), d.end());
  };
  std::vector<float> qf = toFloat(q->values), kf = toFloat(k->values),
                     vf = toFloat(v->values), attncOut(size_t(out->numel()));
  for (int64_t i = 0; i < out->numel(); ++i)
    attncOut[size_t(i)] = float(out->getAsDouble(i));
  BaselineProblem p{s, qf.data(), kf.data(), vf.data(), e.spec, reader, threads};
  std::vector<float> baseOut;
  if (want.count("naive")) {
    BaselineOutcome b{"naive"};
    const double pairs = double(s.B) * double(s.HQ) * double(s.LQ) * double(s.LK);
    if (pairs > double(f.naiveMaxPairs)) {
      b.note = "too large for the naive baseline (B*HQ*LQ*LK = " +
               std::to_string(int64_t(pairs)) + " > --naive-max-pairs " +
               std::to_string(f.naiveMaxPairs) + ")";
    } else {
      const int runs = std::min(f.runs, 3);
      std::string err = timeRuns(0, runs, [&] { return naiveAttention(p, baseOut); },
                                 b.ms);
      if (!err.empty())
        return "naive baseline: " + err;
      b.ran = true;
      b.gflops = gflopsOf(s.flops(), b.ms);
      b.relErr = relativeError(baseOut, attncOut);
      b.note = "SpecInterpreter per element, " + std::to_string(runs) +
               " runs, no warm-up";
    }
    r.baselines.push_back(b);
  }
  if (want.count("openblas")) {
    BaselineOutcome b{"openblas"};
    if (unfusedSupports(e.spec, s, b.note)) {
      std::string err = timeRuns(
          f.warmup, f.runs, [&] { return unfusedAttention(p, baseOut); }, b.ms);
      if (!err.empty())
        return "openblas baseline: " + err;
      b.ran = true;
      b.gflops = gflopsOf(s.flops(), b.ms);
      b.relErr = relativeError(baseOut, attncOut);
      b.note = "unfused: sgemm, softmax, sgemm per 256 query rows";
    }
    b.extra.push_back({"openblas_core", openblasCoreName()});
    r.baselines.push_back(b);
  }
  if (want.count("torch"))
    torchBaselines(f, e, s, inputs, tmp, threads, r.baselines);
  return "";
}

int run(int argc, char **argv) {
  Flags f;
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
      "sgemm (one 2048^3 cblas_sgemm on the same thread count). OpenBLAS\n"
      "picks its kernels by CPU; OPENBLAS_CORETYPE overrides that.\n\n"
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
       "naive|openblas|torch|sgemm (repeatable, or comma-separated)")
      ("threads", po::value(&f.threads)->default_value(0),
       "threads for the kernel and the baselines (0: ATTNC_NUM_THREADS or "
       "all cores)")
      ("runs", po::value(&f.runs)->default_value(5), "timed runs (median)")
      ("warmup", po::value(&f.warmup)->default_value(1), "untimed runs first")
      ("min-time-ms", po::value(&f.minTimeMs)->default_value(1000),
       "CPU kernel: keep timing past --runs until the timed runs add up to "
       "this many ms (the median then resists bursts of other load)")
      ("json", po::bool_switch(&f.json), "print one JSON object instead of the table")
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

  // Validate the flags.
  const bool sweep = vm.count("sweep") > 0;
  if (sweep && !f.spec.empty())
    return fail("give either SPEC.attn or --sweep, not both");
  if (!sweep && f.spec.empty())
    return fail("no spec file given (see 'attn-bench --help')");
  if (f.target != "cpu" && f.target != "cuda")
    return fail("--target " + f.target + ": expected cpu or cuda");
  const bool cuda = f.target == "cuda";
  std::optional<runtime::DType> dtype = runtime::parseDType(f.dtype);
  if (!dtype || (*dtype != runtime::DType::F32 && *dtype != runtime::DType::F16 &&
                 *dtype != runtime::DType::BF16))
    return fail("--dtype " + f.dtype + ": expected f32, f16 or bf16");
  if (cuda && *dtype == runtime::DType::F32)
    return fail("--target cuda runs f16 or bf16 kernels: give --dtype bf16 or "
                "--dtype f16");
  if (f.threads < 0)
    return fail("--threads must be >= 0");
  if (f.runs < 1 || f.warmup < 0 || !(f.minTimeMs >= 0))
    return fail("--runs must be >= 1, --warmup >= 0 and --min-time-ms >= 0");
  std::set<std::string> want;
  for (const std::string &list : f.baselines)
    for (const std::string &b : splitCommas(list)) {
      if (b != "naive" && b != "openblas" && b != "torch" && b != "sgemm")
        return fail("--baseline " + b + ": expected naive, openblas, torch or sgemm");
      want.insert(b);
    }
  if (cuda && !want.empty())
    return fail("--baseline is for --target cpu; the GPU baselines (torch "
                "SDPA, cuDNN, FlexAttention) are in scripts/gpu-check.sh");
  if (cuda && !f.plot.empty())
    return fail("--plot is for --target cpu");
  std::string cudaDevice;
  if (cuda)
    if (std::string err = requireCudaDevice(cudaDevice); !err.empty())
      return fail("--target cuda: " + err);
  std::string error;
  std::vector<Shape> shapes;
  std::vector<std::string> specPaths;
  if (sweep) {
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
  std::vector<std::pair<std::string, std::string>> defines;
  for (const std::string &d : f.defines) {
    size_t eq = d.find('=');
    if (eq == std::string::npos || eq == 0)
      return fail("-D " + d + ": expected NAME=VALUE");
    defines.push_back({d.substr(0, eq), d.substr(eq + 1)});
  }

  // Threads: size the global pool (the kernels') before anything uses it.
  if (f.threads > 0)
    setenv("ATTNC_NUM_THREADS", std::to_string(f.threads).c_str(), 1);
  const int threads =
      f.threads > 0 ? f.threads : runtime::ThreadPool::defaultNumThreads();
  // A fresh, empty kernel cache for this run, so that compile_ms is cold.
  TempDir tmp;
  if (tmp.path.empty())
    return fail("cannot create a temporary directory");
  const std::string cacheDir = tmp.path + "/kernel-cache";
  setenv("ATTNC_CACHE_DIR", cacheDir.c_str(), 1);

  // Load every spec (for the interpreter) and compile it twice.
  std::string driverErrors;
  llvm::raw_string_ostream driverErrorStream(driverErrors);
  Driver driver(llvm::errs());
  std::set<std::string> usedDefines;
  std::vector<Entry> entries;
  for (const std::string &path : specPaths) {
    if (!std::ifstream(path))
      return fail("cannot read '" + path + "'");
    Entry e;
    e.path = path;
    FrontendOptions fo;
    fo.onlyName = f.name;
    // Which -D apply: the params this spec declares.
    {
      Driver probe(driverErrorStream);
      mlir::OwningOpRef<mlir::ModuleOp> m = probe.loadSpecFile(path, fo);
      if (!m) {
        llvm::errs() << driverErrors;
        return 1;
      }
      auto specs = llvm::to_vector(m->getOps<mlir::attn::SpecOp>());
      if (specs.size() != 1)
        return fail(path + ": expected one attention block (pick one with --name)");
      for (const auto &[name, value] : defines)
        if (specs[0].lookupParam(name)) {
          e.defines.push_back({name, value});
          fo.defines.push_back({name, value});
          usedDefines.insert(name);
        }
    }
    e.module = driver.loadSpecFile(path, fo);
    if (!e.module || failed(driver.runSpecPipeline(*e.module)))
      return 1;
    e.spec = *e.module->getOps<mlir::attn::SpecOp>().begin();
    e.name = e.spec.getSymName().str();
    e.label = e.name;
    for (const auto &[name, value] : e.defines)
      e.label += " " + name + "=" + value;

    if (cuda) {
      std::string err;
      e.info = cudaKernelInfo(e.spec, *dtype, err);
      if (!err.empty())
        return fail(path + ": " + err);
      entries.push_back(std::move(e));
      continue; // compiled per shape: the entry depends on D and DV
    }
    CompileOptions co;
    co.dtype = *dtype;
    co.name = f.name;
    co.tileQ = f.tileQ;
    co.tileK = f.tileK;
    co.headDim = shapes.front().D; // every shape of a run has the same D
    for (const auto &[name, value] : e.defines)
      co.defines.push_back({name, value});
    for (int pass = 0; pass < 2; ++pass) {
      Compiler compiler; // the second one: empty memory, warm disk cache
      auto start = std::chrono::steady_clock::now();
      Expected<Kernel> kernel = compiler.compileFile(path, co);
      double ms = msSince(start);
      if (!kernel.ok()) {
        llvm::StringRef message = kernel.status().message();
        if (!message.contains("error: "))
          return fail(message.str());
        llvm::errs() << message << (message.ends_with("\n") ? "" : "\n");
        return 1;
      }
      (pass == 0 ? e.compileMs : e.cachedCompileMs) = ms;
      if (pass == 0) {
        e.kernel = *kernel;
        e.info = kernel->info();
      }
    }
    entries.push_back(std::move(e));
  }
  for (const auto &[name, value] : defines)
    if (!usedDefines.count(name))
      return fail("-D " + name + "=" + value + ": no spec " +
                  (sweep ? "of the sweep " : "") + "has a param named '" +
                  name + "'");

  NamedTensors given;
  std::set<std::string> givenNames;
  for (const std::string &in : f.inputs) {
    size_t eq = in.find('=');
    if (eq == std::string::npos || eq == 0)
      return fail("--input " + in + ": expected NAME=FILE.npy");
    std::string name = in.substr(0, eq);
    if (!givenNames.insert(name).second)
      return fail("--input " + name + " is given twice");
    Expected<Tensor> t = runtime::readNpy(in.substr(eq + 1));
    if (!t.ok())
      return fail("--input " + in + ": " + t.status().message());
    given.push_back({name, std::move(*t)});
  }

  BenchReport report;
  report.sweep = sweep;
  report.dtype = f.dtype;
  report.threads = threads;
  for (Entry &e : entries)
    for (const Shape &s : shapes) {
      if (!f.json)
        llvm::errs() << "attn-bench: " << e.label << " at " << s.str() << "\n";
      BenchResult r;
      if (std::string err =
              benchOne(f, e, s, *dtype, threads, given, want, tmp.path, r);
          !err.empty())
        return fail(e.label + " at " + s.str() + ": " + err);
      report.results.push_back(std::move(r));
    }
  // Last, so that OpenBLAS's own threads spin after everything else.
  if (want.count("sgemm")) {
    BaselineOutcome b{"sgemm"};
    const int n = 2048;
    b.ms = sgemmMs(threads, f.runs, n);
    b.ran = true;
    b.gflops = gflopsOf(2.0 * n * n * n, b.ms);
    b.note = "cblas_sgemm 2048^3 on " + std::to_string(threads) + " thread" +
             (threads == 1 ? "" : "s");
    b.extra.push_back({"openblas_core", openblasCoreName()});
    report.global.push_back(b);
  }

  if (f.json)
    printJson(report, llvm::outs());
  else
    printTable(report, llvm::outs());
  if (!f.csv.empty())
    if (std::string err = writeCsv(report, f.csv); !err.empty())
      return fail(err);
  if (!f.plot.empty())
    if (std::string err = writePlot(report, f.plot); !err.empty())
      return fail(err);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const std::bad_alloc &) {
    return fail("out of memory (try a smaller --shape)");
  } catch (const std::exception &e) {
    return fail(e.what());
  }
}
