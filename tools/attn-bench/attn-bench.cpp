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
// (Baselines.h; torch through bench/torch_baseline.py); with --backward
// also the backward pass and the baselines' backward (BackwardBench.h);
// with --page-size the kernel once more on a paged KV cache (PagedBench.h).
// Prints a table, or
// one JSON object with --json; writes CSV and a PNG chart on request. Exits
// 1 on a usage, compile or run error.
//
//===----------------------------------------------------------------------===//
#include "BackwardBench.h"
#include "PagedBench.h"
#include "Baselines.h"
#include "BenchFlags.h"
#include "CudaBench.h"
#include "Report.h"

#include "attnc/Compiler.h"
#include "attnc/Driver.h"
#include "attnc/Runtime/CpuIsa.h"
#include "attnc/Runtime/Microkernels.h"
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
                    std::to_string(f.warmup) +
                    (f.backward ? " --backward" : "");
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
    if (auto bwd = r->getNumber("bwd_ms")) {
      b->bwdMs = *bwd;
      b->bwdGflops = gflopsOf(backwardFlops(s), *bwd);
      b->bwdNote = "autograd.grad of the forward's graph";
    } else if (auto why = r->getString("bwd_skipped")) {
      b->bwdNote = why->str();
    }
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

/// The data of one bench: random q, k, v, the output, and the inputs
/// (given ones first, then random ones).
struct BenchData {
  Operand q, k, v;
  Tensor out;
  NamedTensors inputs;
};

/// Records in \p r what the bench of \p e at \p s runs with.
void describeRun(const Flags &f, const Entry &e, const Shape &s, int threads,
                 BenchResult &r) {
  const runtime::KernelInfo &info = e.info;
  r.spec = e.path, r.name = e.name, r.label = e.label, r.defines = e.defines;
  r.target = f.target;
  r.shape = s, r.dtype = f.dtype, r.threads = threads, r.runs = f.runs,
  r.warmup = f.warmup, r.compileMs = e.compileMs,
  r.cachedCompileMs = e.cachedCompileMs, r.tileQ = info.tileQ,
  r.tileK = info.tileK;
}

/// Gives the LK document ids in \p random the LQ ones (see makeBenchData).
void alignDocumentIds(const runtime::KernelInfo &info, const Shape &s,
                      NamedTensors &random) {
  if (s.LQ != s.LK)
    return;
  Tensor *idsQ = nullptr, *idsK = nullptr;
  for (const runtime::InputDecl &decl : info.inputs) {
    if (decl.dtype != runtime::DType::I64 || decl.dims.size() != 1 ||
        !decl.dims[0].isSize)
      continue;
    const runtime::SizeName dim = decl.dims[0].size;
    for (auto &[name, t] : random)
      if (name == decl.name && dim == runtime::SizeName::LQ)
        idsQ = &t;
      else if (name == decl.name && dim == runtime::SizeName::LK)
        idsK = &t;
  }
  if (idsQ && idsK)
    *idsK = *idsQ;
}

/// Fills \p d with random data for \p e at \p s, and the \p given inputs.
/// Returns "" or an error.
std::string makeBenchData(const Flags &f, const Entry &e, const Shape &s,
                          runtime::DType dtype, const NamedTensors &given,
                          BenchData &d) {
  const runtime::KernelInfo &info = e.info;
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
  alignDocumentIds(info, s, *random);
  d.q = std::move(*q);
  d.k = std::move(*k);
  d.v = std::move(*v);
  d.out = std::move(*out);
  for (const auto &[name, t] : given)
    d.inputs.push_back({name, Tensor(t)});
  for (auto &[name, t] : *random)
    d.inputs.push_back({name, std::move(t)});
  return "";
}

/// Times the CUDA kernel of \p e on \p d (CudaBench.h) into \p r, and
/// keeps its output in d.out. Returns "" or an error.
std::string timeCudaKernel(const Flags &f, const Entry &e, const Shape &s,
                           runtime::DType dtype, const std::string &tmp,
                           BenchData &d, BenchResult &r) {
  static int call = 0; // a fresh cache directory per call: cold compiles
  Tensor gpuOut;
  std::string err = benchCudaKernel(
      e.spec, s, dtype, d.q.tensor, d.k.tensor, d.v.tensor, d.inputs,
      f.warmup, f.runs, tmp + "/cuda-cache-" + std::to_string(call++), r,
      gpuOut, f.dropout());
  if (!err.empty())
    return err;
  d.out = std::move(gpuOut);
  return "";
}

/// Times the CPU kernel of \p e on \p d into \p r: warm-up, then the median
/// of the timed runs. Returns "" or an error.
std::string timeCpuKernel(const Flags &f, const Entry &e, int threads,
                          BenchData &d, BenchResult &r) {
  ForwardOptions fwd;
  fwd.threads = threads;
  fwd.dropout = f.dropout();
  for (auto &[name, t] : d.inputs)
    fwd.inputs.push_back({name, t.view()});
  // At least --runs timed runs, and more until they span --min-time-ms:
  // on a shared machine a burst of other work then hits a minority of the
  // runs of a short kernel, not the median.
  std::vector<double> times;
  double timedMs = 0;
  for (int i = 0; i < f.warmup + f.runs || (timedMs < f.minTimeMs && i < 100000); ++i) {
    auto start = std::chrono::steady_clock::now();
    runtime::Status st = e.kernel->forward(
        d.q.tensor.view(), d.k.tensor.view(), d.v.tensor.view(), d.out.view(),
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
  return "";
}

/// Counts the share of (q, kv) pairs the mask of \p e keeps, on every row
/// or on an evenly spread sample of rows, into \p r. Returns "" or an error.
std::string countDensity(const Entry &e, const Shape &s,
                         const mlir::attn::InputReader &reader,
                         BenchResult &r) {
  const int64_t rows = s.B * s.HQ * s.LQ;
  int64_t stride = 1;
  if (double(rows) * double(s.LK) > double(kDensityBudget))
    stride = int64_t(std::ceil(double(rows) * double(s.LK) /
                               double(kDensityBudget))) | 1;
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
  return "";
}

/// The naive baseline (the SpecInterpreter per element), unless the
/// problem is larger than --naive-max-pairs. Returns "" or an error.
std::string naiveBaseline(const Flags &f, const Shape &s,
                          const BaselineProblem &p,
                          const std::vector<float> &attncOut,
                          std::vector<float> &baseOut, BaselineOutcome &b) {
  const double pairs = double(s.B) * double(s.HQ) * double(s.LQ) * double(s.LK);
  if (pairs > double(f.naiveMaxPairs)) {
    b.note = "too large for the naive baseline (B*HQ*LQ*LK = " +
             std::to_string(int64_t(pairs)) + " > --naive-max-pairs " +
             std::to_string(f.naiveMaxPairs) + ")";
    return "";
  }
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
  return "";
}

/// The openblas baseline (unfused sgemm, softmax, sgemm), where the mask
/// allows it. Returns "" or an error.
std::string openblasBaseline(const Flags &f, const Entry &e, const Shape &s,
                             const BaselineProblem &p,
                             const std::vector<float> &attncOut,
                             std::vector<float> &baseOut, BaselineOutcome &b) {
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
  return "";
}

/// The stream baseline: one read of K and V (what a decode step must read
/// at least), and in its note attnc's share of that bandwidth.
BaselineOutcome streamBaseline(const Flags &f, const BenchData &d, int threads,
                               double attncMs) {
  BaselineOutcome b{"stream"};
  auto fmt = [](const char *format, double x) {
    char buf[64];
    std::snprintf(buf, sizeof buf, format, x);
    return std::string(buf);
  };
  const runtime::TensorView k = d.k.tensor.view(), v = d.v.tensor.view();
  const size_t bytes = size_t(k.numel() + v.numel()) * runtime::dtypeSize(k.dtype);
  b.ms = streamReadMs({{k.data, size_t(k.numel()) * runtime::dtypeSize(k.dtype)},
                       {v.data, size_t(v.numel()) * runtime::dtypeSize(v.dtype)}},
                      threads, std::max(f.runs, 5));
  b.ran = true;
  b.note = "one read of K and V (" + fmt("%.1f", double(bytes) / 1e6) +
           " MB) on the same threads: " + fmt("%.1f", double(bytes) / b.ms / 1e6) +
           " GB/s; attnc reads them at " +
           fmt("%.1f", double(bytes) / attncMs / 1e6) + " GB/s (" +
           fmt("%.0f", 100 * b.ms / attncMs) + "% of the read)";
  return b;
}

/// Runs the baselines in \p want on float32 copies of the data of \p d,
/// into r.baselines. Returns "" or an error.
std::string runBaselines(const Flags &f, const Entry &e, const Shape &s,
                         int threads, const std::set<std::string> &want,
                         const std::string &tmp, const BenchData &d,
                         const mlir::attn::InputReader &reader,
                         BenchResult &r) {
  auto toFloat = [](const std::vector<double> &v) {
    return std::vector<float>(v.begin(), v.end());
  };
  std::vector<float> qf = toFloat(d.q.values), kf = toFloat(d.k.values),
                     vf = toFloat(d.v.values), attncOut(size_t(d.out.numel()));
  for (int64_t i = 0; i < d.out.numel(); ++i)
    attncOut[size_t(i)] = float(d.out.getAsDouble(i));
  BaselineProblem p{s, qf.data(), kf.data(), vf.data(), e.spec, reader, threads};
  std::vector<float> baseOut;
  if (want.count("naive")) {
    BaselineOutcome b{"naive"};
    if (std::string err = naiveBaseline(f, s, p, attncOut, baseOut, b);
        !err.empty())
      return err;
    r.baselines.push_back(b);
  }
  if (want.count("openblas")) {
    BaselineOutcome b{"openblas"};
    if (std::string err = openblasBaseline(f, e, s, p, attncOut, baseOut, b);
        !err.empty())
      return err;
    r.baselines.push_back(b);
  }
  if (want.count("torch"))
    torchBaselines(f, e, s, d.inputs, tmp, threads, r.baselines);
  if (want.count("stream"))
    r.baselines.push_back(streamBaseline(f, d, threads, r.ms));
  return "";
}

/// Benchmarks one spec on one shape. Returns "" or an error.
std::string benchOne(const Flags &f, Entry &e, const Shape &s,
                     runtime::DType dtype, int threads,
                     const NamedTensors &given, const std::set<std::string> &want,
                     const std::string &tmp, BenchResult &r) {
  const bool cuda = f.target == "cuda";
  describeRun(f, e, s, threads, r);

  BenchData d;
  if (std::string err = makeBenchData(f, e, s, dtype, given, d); !err.empty())
    return err;

  // The kernel: warm-up, then the median of the timed runs.
  if (std::string err = cuda ? timeCudaKernel(f, e, s, dtype, tmp, d, r)
                             : timeCpuKernel(f, e, threads, d, r);
      !err.empty())
    return err;
  r.gflops = gflopsOf(s.flops(), r.ms);

  // Density: the mask on every row, or on an evenly spread sample of rows.
  mlir::attn::InputReader reader = inputReader(d.inputs);
  if (std::string err = countDensity(e, s, reader, r); !err.empty())
    return err;

  // The baselines, on float32 copies of the same (rounded) data.
  if (!want.empty() && !(want.size() == 1 && want.count("sgemm")))
    if (std::string err = runBaselines(f, e, s, threads, want, tmp, d, reader, r);
        !err.empty())
      return err;
  if (!cuda) {
    PagedProblem pp{&*e.kernel, s, threads, &d.q, &d.k, &d.v, &d.inputs, &d.out};
    if (std::string err = benchPaged(f, pp, r); !err.empty())
      return err;
  }
  if (!f.backward)
    return "";
  BackwardProblem bp{&*e.kernel, e.spec, s, dtype, threads,
                     &d.q, &d.k, &d.v, &d.inputs};
  return benchBackward(f, bp, r);
}

/// What loading the specs shares. It owns the MLIR context of the entries'
/// modules, so it must outlive the entries.
struct SpecLoader {
  std::string driverErrors;
  llvm::raw_string_ostream driverErrorStream{driverErrors};
  Driver driver{llvm::errs()};
  std::set<std::string> usedDefines;
};

/// Loads the spec at \p path with a probe driver and keeps, in \p e and
/// \p fo, the -D flags whose params it declares. Returns 0 or 1 after the
/// error was printed.
int selectDefines(const BenchPlan &plan, SpecLoader &loader,
                  const std::string &path, Entry &e, FrontendOptions &fo) {
  Driver probe(loader.driverErrorStream);
  mlir::OwningOpRef<mlir::ModuleOp> m = probe.loadSpecFile(path, fo);
  if (!m) {
    llvm::errs() << loader.driverErrors;
    return 1;
  }
  auto specs = llvm::to_vector(m->getOps<mlir::attn::SpecOp>());
  if (specs.size() != 1)
    return fail(path + ": expected one attention block (pick one with --name)");
  for (const auto &[name, value] : plan.defines)
    if (specs[0].lookupParam(name)) {
      e.defines.push_back({name, value});
      fo.defines.push_back({name, value});
      loader.usedDefines.insert(name);
    }
  return 0;
}

/// Compiles the spec of \p e for the CPU twice: cold, then by a second
/// Compiler from the warm disk cache. Returns 0 or 1 after the error was
/// printed.
int compileEntry(const Flags &f, const BenchPlan &plan, Entry &e) {
  CompileOptions co;
  co.dtype = plan.dtype;
  co.name = f.name;
  co.tileQ = f.tileQ;
  co.tileK = f.tileK;
  co.headDim = plan.shapes.front().D; // every shape of a run has the same D
  co.backward = f.backward;
  for (const auto &[name, value] : e.defines)
    co.defines.push_back({name, value});
  for (int pass = 0; pass < 2; ++pass) {
    Compiler compiler; // the second one: empty memory, warm disk cache
    auto start = std::chrono::steady_clock::now();
    Expected<Kernel> kernel = compiler.compileFile(e.path, co);
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
  return 0;
}

/// Loads the spec at \p path into \p e (for the interpreter) and compiles
/// it (CPU), or reads its CUDA declaration. Returns 0 or 1 after the error
/// was printed.
int loadEntry(const Flags &f, const BenchPlan &plan, SpecLoader &loader,
              const std::string &path, Entry &e) {
  if (!std::ifstream(path))
    return fail("cannot read '" + path + "'");
  e.path = path;
  FrontendOptions fo;
  fo.onlyName = f.name;
  // Which -D apply: the params this spec declares.
  if (int rc = selectDefines(plan, loader, path, e, fo))
    return rc;
  e.module = loader.driver.loadSpecFile(path, fo);
  if (!e.module || failed(loader.driver.runSpecPipeline(*e.module)))
    return 1;
  e.spec = *e.module->getOps<mlir::attn::SpecOp>().begin();
  e.name = e.spec.getSymName().str();
  e.label = e.name;
  for (const auto &[name, value] : e.defines)
    e.label += " " + name + "=" + value;

  if (plan.cuda) {
    std::string err;
    e.info = cudaKernelInfo(e.spec, plan.dtype, err);
    if (!err.empty())
      return fail(path + ": " + err);
    return 0; // compiled per shape: the entry depends on D and DV
  }
  return compileEntry(f, plan, e);
}

/// Loads and compiles every spec of \p plan into \p entries, and refuses a
/// -D that no spec uses. Returns 0 or 1 after the error was printed.
int loadEntries(const Flags &f, const BenchPlan &plan, SpecLoader &loader,
                std::vector<Entry> &entries) {
  for (const std::string &path : plan.specPaths) {
    Entry e;
    if (int rc = loadEntry(f, plan, loader, path, e))
      return rc;
    entries.push_back(std::move(e));
  }
  for (const auto &[name, value] : plan.defines)
    if (!loader.usedDefines.count(name))
      return fail("-D " + name + "=" + value + ": no spec " +
                  (plan.sweep ? "of the sweep " : "") + "has a param named '" +
                  name + "'");
  return 0;
}

/// Reads the --input NAME=FILE.npy tensors into \p given. Returns 0 or
/// fail's 1.
int readGivenInputs(const Flags &f, NamedTensors &given) {
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
  return 0;
}

/// Benchmarks every entry at every shape into \p report. Returns 0 or
/// fail's 1.
int benchAll(const Flags &f, const BenchPlan &plan, std::vector<Entry> &entries,
             const NamedTensors &given, int threads, const std::string &tmp,
             BenchReport &report) {
  for (Entry &e : entries)
    for (const Shape &s : plan.shapes) {
      if (!f.json)
        llvm::errs() << "attn-bench: " << e.label << " at " << s.str() << "\n";
      BenchResult r;
      if (std::string err =
              benchOne(f, e, s, plan.dtype, threads, given, plan.want, tmp, r);
          !err.empty())
        return fail(e.label + " at " + s.str() + ": " + err);
      report.results.push_back(std::move(r));
    }
  return 0;
}

/// The sgemm baseline: one 2048^3 cblas_sgemm on \p threads threads.
BaselineOutcome sgemmBaseline(int threads, int runs) {
  BaselineOutcome b{"sgemm"};
  const int n = 2048;
  b.ms = sgemmMs(threads, runs, n);
  b.ran = true;
  b.gflops = gflopsOf(2.0 * n * n * n, b.ms);
  b.note = "cblas_sgemm 2048^3 on " + std::to_string(threads) + " thread" +
           (threads == 1 ? "" : "s");
  b.extra.push_back({"openblas_core", openblasCoreName()});
  return b;
}

/// Prints \p report (JSON or a table) and writes the CSV and the chart
/// asked for. Returns 0 or fail's 1.
int writeReport(const Flags &f, const BenchReport &report) {
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

int run(int argc, char **argv) {
  Flags f;
  bool sweep = false;
  if (std::optional<int> exitCode = parseBenchFlags(argc, argv, f, sweep))
    return *exitCode;

  // Validate the flags.
  BenchPlan plan;
  plan.sweep = sweep;
  if (int rc = checkBenchFlags(f, plan))
    return rc;
  if (int rc = planShapesAndSpecs(f, plan))
    return rc;

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
  SpecLoader loader; // declared before the entries: it owns their modules
  std::vector<Entry> entries;
  if (int rc = loadEntries(f, plan, loader, entries))
    return rc;

  NamedTensors given;
  if (int rc = readGivenInputs(f, given))
    return rc;

  BenchReport report;
  report.sweep = sweep;
  report.dtype = f.dtype;
  report.threads = threads;
  if (!plan.cuda)
    report.cpuIsa = runtime::cpuIsaName(runtime::activeCpuIsa());
  if (int rc = benchAll(f, plan, entries, given, threads, tmp.path, report))
    return rc;
  // Which build of the generic path's microkernels ran (known once a kernel
  // was compiled: the JIT builds them for this host then).
  if (!plan.cuda && runtime::activeCpuIsa() == runtime::CpuIsa::Generic)
    report.genericMicrokernels = attnc_uk_generic_build();
  // Last, so that OpenBLAS's own threads spin after everything else.
  if (plan.want.count("sgemm"))
    report.global.push_back(sgemmBaseline(threads, f.runs));

  return writeReport(f, report);
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
