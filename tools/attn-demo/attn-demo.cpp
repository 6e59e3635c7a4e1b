//===- attn-demo.cpp - Compile a spec, check it, time it ------------------===//
//
//   attn-demo SPEC.attn [--shape B,HQ,HKV,LQ,LK,D,DV] [--dtype f32|f16|bf16]
//             [-D NAME=VALUE]... [--threads N] [--runs N] [--name NAME]
//
// What the C++ API does with one spec, end to end: JIT-compiles it with
// attnc::Compiler (and prints how long that took), runs the kernel once on
// random q, k, v (and random tensors for the inputs the spec declares),
// compares out and lse with the float64 reference (ReferenceAttention) and
// prints the relative Frobenius error, then times repeated runs and prints
// the median, the GFLOP/s and the share of (q, kv) pairs the mask keeps.
// When B*HQ*LQ*LK is too large for the quadratic reference, the check (and
// the kept-pair count) covers an evenly spread sample of the query rows, and
// the output says so. Exits 1 on a usage, compile or run error, or when the
// kernel disagrees with the reference.
//
//===----------------------------------------------------------------------===//
#include "attnc/Compiler.h"
#include "attnc/Driver.h"
#include "attnc/Reference/ReferenceAttention.h"
#include "attnc/Runtime/ThreadPool.h"
#include "bench-common/BenchCommon.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"
#include "common/ToolCommandLine.h"
#include "common/ToolDiagnostics.h"
#include <boost/program_options.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace po = boost::program_options;
using namespace attnc;
using runtime::Tensor;
using namespace attnc::bench;

namespace {

/// The (q, kv) pairs the float64 reference may visit before the check falls
/// back to a sample of the query rows: a few seconds on one core (about
/// 0.3 us per kept pair at D + DV = 96).
constexpr int64_t kReferencePairBudget = int64_t(1) << 24;

int fail(const std::string &message) {
  llvm::outs().flush();
  attnc::printToolError("attn-demo", message);
  return 1;
}

struct Flags {
  std::string spec, shape, dtype, name;
  std::vector<std::string> defines;
  int threads = 0, runs = 7;
  int64_t tileQ = 0, tileK = 0;
  unsigned seed = 1;
};

/// What run works with once the flags are checked.
struct DemoSetup {
  Shape shape;
  runtime::DType dtype = runtime::DType::F32;
  CompileOptions co;
  FrontendOptions fo;
};

/// The kernel's operands (random q, k, v and inputs; out and lse poisoned)
/// and the options of a forward call on them.
struct DemoData {
  Operand q, k, v;
  Tensor out, lse;
  NamedTensors inputs;
  TensorView lseView;
  ForwardOptions fwd;
};

/// What the float64 reference computed, on every row or on a sample.
struct ReferenceResult {
  int64_t stride = 1; // the reference covers every stride-th query row
  int64_t keptPairs = 0;
  std::vector<double> out, lse;
  double ms = 0;
};

/// How the kernel's out and lse compare with the reference's.
struct CheckResult {
  int64_t checkedRows = 0, nans = 0, lseBad = 0;
  double num = 0, den = 0, lseMaxErr = 0;
};

/// Parses the command line into \p f. Returns the exit code when attn-demo
/// ends here (1 on a bad command line, 0 after --help), else std::nullopt.
std::optional<int> parseFlags(int argc, char **argv, Flags &f) {
  po::options_description options(
      "attn-demo SPEC.attn [options]: compile a spec with the C++ API, check "
      "it against the float64 reference, time it");
  options.add_options()
      ("help,h", "print this help")
      ("spec", po::value(&f.spec), "the .attn spec file")
      ("shape", po::value(&f.shape)->default_value("1,8,8,1024,1024,64,64"),
       "B,HQ,HKV,LQ,LK,D,DV")
      ("dtype", po::value(&f.dtype)->default_value("f32"),
       "storage type of q, k, v and out: f32|f16|bf16")
      ("define,D", po::value(&f.defines)->composing(),
       "NAME=VALUE: override a param (repeatable)")
      ("name", po::value(&f.name), "the block to use in a multi-block file")
      ("tile-q", po::value(&f.tileQ)->default_value(0),
       "query rows per tile (0: the back end's choice)")
      ("tile-k", po::value(&f.tileK)->default_value(0),
       "keys per tile (0: the back end's choice)")
      ("threads", po::value(&f.threads)->default_value(0),
       "threads (0: the global pool, ATTNC_NUM_THREADS or all cores)")
      ("runs", po::value(&f.runs)->default_value(7),
       "timed runs (after 2 warm-up runs); the median is reported")
      ("seed", po::value(&f.seed)->default_value(1), "seed of the random data");
  po::variables_map vm;
  std::string parseError = parseToolCommandLine(
      std::vector<std::string>(argv + 1, argv + argc), options, vm);
  if (!parseError.empty())
    return fail(parseError + " (see 'attn-demo --help')");
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  return std::nullopt;
}

/// Checks the flags; fills \p setup with the shape, the storage type and
/// the compile and front-end options. Returns 0 or fail's 1.
int checkFlags(const Flags &f, DemoSetup &setup) {
  if (f.spec.empty())
    return fail("no spec file given (see 'attn-demo --help')");
  std::string error;
  std::optional<Shape> shape = parseShape(f.shape, error);
  if (!shape)
    return fail(error);
  const Shape s = *shape;
  std::optional<runtime::DType> dtype = runtime::parseDType(f.dtype);
  if (!dtype || (*dtype != runtime::DType::F32 && *dtype != runtime::DType::F16 &&
                 *dtype != runtime::DType::BF16))
    return fail("--dtype " + f.dtype + ": expected f32, f16 or bf16");
  if (f.threads < 0)
    return fail("--threads must be >= 0");
  if (f.runs < 1)
    return fail("--runs must be >= 1");
  setup.shape = s;
  setup.dtype = *dtype;

  CompileOptions &co = setup.co;
  co.tileQ = f.tileQ;
  co.tileK = f.tileK;
  co.headDim = s.D;
  co.dtype = *dtype;
  co.name = f.name;
  FrontendOptions &fo = setup.fo;
  fo.onlyName = f.name;
  for (const std::string &d : f.defines) {
    std::pair<std::string, std::string> define;
    if (std::string why = parseDefine(d, define); !why.empty())
      return fail(why);
    co.defines.push_back({define.first, define.second});
    fo.defines.push_back(std::move(define));
  }
  return 0;
}

/// Compiles the spec with \p compiler into \p kernel and prints the spec,
/// the shape and the compile time. Returns 0 or 1 after printing the error.
int compileKernel(const Flags &f, const DemoSetup &setup, Compiler &compiler,
                  std::optional<Kernel> &kernel) {
  const Shape &s = setup.shape;
  auto start = std::chrono::steady_clock::now();
  Expected<Kernel> compiled = compiler.compileFile(f.spec, setup.co);
  double compileMs = msSince(start);
  if (!compiled.ok()) {
    // Spec errors come located (file:line:col: error: ...) with the line
    // and a caret; print those as they are.
    llvm::StringRef message = compiled.status().message();
    if (!message.contains("error: "))
      return fail(message.str());
    llvm::errs() << message << (message.ends_with("\n") ? "" : "\n");
    return 1;
  }
  kernel = std::move(*compiled);
  const runtime::KernelInfo &info = kernel->info();
  llvm::outs() << "spec:     " << f.spec << " (attention " << info.name
               << ", " << (info.sigmoid ? "sigmoid" : "softmax") << ")\n"
               << "shape:    B=" << s.B << " HQ=" << s.HQ << " HKV=" << s.HKV
               << " LQ=" << s.LQ << " LK=" << s.LK << " D=" << s.D
               << " DV=" << s.DV << ", " << runtime::dtypeName(info.storage)
               << " storage, float32 accumulation\n";
  llvm::outs() << llvm::format("compile:  %.1f ms (JIT, tiles %lldx%lld)\n",
                               compileMs, (long long)info.tileQ,
                               (long long)info.tileK);
  return 0;
}

/// Fills \p d with random q, k, v and inputs, poisoned out and lse, and the
/// forward options. Returns 0 or fail's 1.
int makeData(const Flags &f, const DemoSetup &setup,
             const runtime::KernelInfo &info, DemoData &d) {
  const Shape &s = setup.shape;
  const runtime::DType dtype = setup.dtype;
  std::mt19937 rng(f.seed);
  auto q = randomOperand(dtype, {s.B, s.HQ, s.LQ, s.D}, rng, -2, 2);
  auto k = randomOperand(dtype, {s.B, s.HKV, s.LK, s.D}, rng, -2, 2);
  auto v = randomOperand(dtype, {s.B, s.HKV, s.LK, s.DV}, rng, -1, 1);
  auto out = Tensor::zeros(dtype, {s.B, s.HQ, s.LQ, s.DV});
  auto lse = Tensor::zeros(runtime::DType::F32, {s.B, s.HQ, s.LQ});
  auto inputs = randomInputs(info, s, rng);
  for (const Status *st : {&q.status(), &k.status(), &v.status(),
                           &out.status(), &lse.status(), &inputs.status()})
    if (!st->ok())
      return fail(st->message());
  d.q = std::move(*q);
  d.k = std::move(*k);
  d.v = std::move(*v);
  d.out = std::move(*out);
  d.lse = std::move(*lse);
  d.inputs = std::move(*inputs);
  for (const auto &[name, t] : d.inputs)
    llvm::outs() << "input:    " << name << ": " << runtime::dtypeName(t.dtype())
                 << runtime::shapeToString(t.shape()) << ", random\n";
  // Poison out and lse, so that an element the kernel skips shows up.
  for (int64_t i = 0; i < d.out.numel(); ++i)
    d.out.setFromDouble(i, NAN);
  for (int64_t i = 0; i < d.lse.numel(); ++i)
    d.lse.setFromDouble(i, NAN);
  d.lseView = d.lse.view();
  d.fwd.threads = f.threads;
  if (!info.sigmoid)
    d.fwd.lse = &d.lseView;
  for (auto &[name, t] : d.inputs)
    d.fwd.inputs.push_back({name, t.view()});
  return 0;
}

/// Runs \p kernel once on the data of \p d.
Status runForward(const Kernel &kernel, DemoData &d) {
  return kernel.forward(d.q.tensor.view(), d.k.tensor.view(),
                        d.v.tensor.view(), d.out.view(), d.fwd);
}

/// True if the query row (b, h, qi) of \p s is one of every \p stride-th.
bool isSampledRow(const Shape &s, int64_t stride, int64_t b, int64_t h,
                  int64_t qi) {
  return ((b * s.HQ + h) * s.LQ + qi) % stride == 0;
}

/// Runs the float64 reference on the data of \p d, on every row or, when
/// that would take too long, on a sample of them. Returns 0 or fail's 1.
int runReference(const Flags &f, const DemoSetup &setup, const DemoData &d,
                 ReferenceResult &ref) {
  const Shape &s = setup.shape;
  std::string refErrors;
  llvm::raw_string_ostream refErrorStream(refErrors);
  Driver driver(refErrorStream);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      driver.loadSpecFile(f.spec, setup.fo);
  if (!module || failed(driver.runSpecPipeline(*module)))
    return fail("the reference cannot load the spec:\n" + refErrors);
  auto specs = llvm::to_vector(module->getOps<mlir::attn::SpecOp>());
  if (specs.size() != 1)
    return fail("expected one attention block for the reference");
  const int64_t rows = s.B * s.HQ * s.LQ;
  int64_t stride = 1;
  if (double(rows) * double(s.LK) > double(kReferencePairBudget)) {
    stride = int64_t(std::ceil(double(rows) * double(s.LK) /
                               double(kReferencePairBudget)));
    stride |= 1; // odd, so that the sampled q vary from head to head
  }
  ref.stride = stride;
  mlir::attn::ReferenceProblem p;
  p.sizes.B = s.B, p.sizes.HQ = s.HQ, p.sizes.HKV = s.HKV, p.sizes.LQ = s.LQ,
  p.sizes.LK = s.LK, p.sizes.D = s.D, p.sizes.DV = s.DV;
  p.q = d.q.values.data(), p.k = d.k.values.data(), p.v = d.v.values.data();
  p.inputs = inputReader(d.inputs);
  if (stride > 1)
    p.rows = [&](int64_t b, int64_t h, int64_t qi) {
      return isSampledRow(s, stride, b, h, qi);
    };
  p.keptPairs = &ref.keptPairs;
  auto start = std::chrono::steady_clock::now();
  std::string refError =
      mlir::attn::referenceAttention(specs[0], p, ref.out, ref.lse);
  ref.ms = msSince(start);
  if (!refError.empty())
    return fail("reference: " + refError);
  return 0;
}

/// Compares the kernel's out and lse in \p d with the reference on the
/// checked rows, and counts the NaN elements of out on all rows.
CheckResult compareWithReference(const Shape &s,
                                 const runtime::KernelInfo &info,
                                 const DemoData &d,
                                 const ReferenceResult &ref) {
  CheckResult c;
  const int64_t rows = s.B * s.HQ * s.LQ;
  for (int64_t row = 0; row < rows; ++row) {
    int64_t b = row / (s.HQ * s.LQ), h = row / s.LQ % s.HQ, qi = row % s.LQ;
    bool checked = isSampledRow(s, ref.stride, b, h, qi);
    c.checkedRows += checked;
    for (int64_t dv = 0; dv < s.DV; ++dv) {
      double o = d.out.getAsDouble(row * s.DV + dv);
      c.nans += std::isnan(o);
      if (!checked)
        continue;
      double r = ref.out[size_t(row * s.DV + dv)];
      c.num += (o - r) * (o - r);
      c.den += r * r;
    }
    if (info.sigmoid || !checked)
      continue;
    double l = d.lse.getAsDouble(row), r = ref.lse[size_t(row)];
    if (std::isinf(r) || std::isnan(l))
      c.lseBad += l != r;
    else
      c.lseMaxErr = std::max(c.lseMaxErr, std::abs(l - r) / (1 + std::abs(r)));
  }
  return c;
}

/// Prints the check's lines. Returns 0 when the kernel agrees with the
/// reference, else fail's 1.
int reportCheck(const Shape &s, runtime::DType dtype,
                const runtime::KernelInfo &info, const ReferenceResult &ref,
                const CheckResult &c) {
  const int64_t rows = s.B * s.HQ * s.LQ;
  const double tolerance = dtype == runtime::DType::F32 ? 1e-5 : 1e-2;
  const double relErr =
      c.den == 0 ? std::sqrt(c.num) : std::sqrt(c.num / c.den);
  const bool ok = c.nans == 0 && relErr < tolerance && c.lseBad == 0 &&
                  c.lseMaxErr <= 1e-4;
  if (ref.stride == 1)
    llvm::outs() << "check:    float64 reference on all " << rows
                 << " query rows";
  else
    llvm::outs() << "check:    float64 reference on a sample of "
                 << c.checkedRows << " of the " << rows
                 << " query rows (1 in " << ref.stride
                 << "; all would be too slow)";
  llvm::outs() << llvm::format(", %.0f ms\n", ref.ms);
  llvm::outs() << llvm::format(
      "          out: relative Frobenius error %.2e (tolerance %.0e)", relErr,
      tolerance);
  if (!info.sigmoid)
    llvm::outs() << llvm::format("; lse: max relative error %.2e",
                                 c.lseMaxErr);
  llvm::outs() << (ok ? ": ok\n" : ": FAILED\n");
  if (!ok) {
    if (c.nans)
      llvm::outs() << "          " << c.nans << " NaN elements in out\n";
    if (c.lseBad)
      llvm::outs() << "          " << c.lseBad
                   << " lse elements where -inf (empty row) was expected or "
                      "NaN was returned\n";
    return fail("the kernel disagrees with the reference");
  }
  return 0;
}

/// Times the kernel (2 warm-up runs, then --runs timed ones) and prints
/// the median, the GFLOP/s and the mask's \p density. Returns 0 or fail's 1.
int timeKernel(const Flags &f, const Shape &s, const Kernel &kernel,
               DemoData &d, double density, int64_t stride) {
  for (int i = 0; i < 2; ++i)
    if (Status st = runForward(kernel, d); !st.ok())
      return fail(st.message());
  std::vector<double> times;
  for (int i = 0; i < f.runs; ++i) {
    auto start = std::chrono::steady_clock::now();
    Status st = runForward(kernel, d);
    times.push_back(msSince(start));
    if (!st.ok())
      return fail(st.message());
  }
  const double fastest = *std::min_element(times.begin(), times.end());
  const double med = median(times);
  const double flops = s.flops();
  int threads = f.threads ? f.threads : runtime::ThreadPool::global().numThreads();
  llvm::outs() << llvm::format(
      "run:      median %.2f ms of %d runs (min %.2f) on %d thread%s\n", med,
      f.runs, fastest, threads, threads == 1 ? "" : "s");
  llvm::outs() << llvm::format(
      "          %.1f GFLOP/s, counting 2*B*HQ*LQ*LK*(D+DV) = %.3g FLOP (the "
      "full matrix)\n",
      flops / (med * 1e6), flops);
  llvm::outs() << llvm::format(
      "density:  the mask keeps %.1f%% of the (q, kv) pairs (as the "
      "reference counted them on the %s rows)\n",
      100 * density, stride == 1 ? "checked" : "sampled");
  llvm::outs() << llvm::format(
      "          %.1f GFLOP/s counting only the kept pairs\n",
      density * flops / (med * 1e6));
  return 0;
}

int run(int argc, char **argv) {
  Flags f;
  if (std::optional<int> exitCode = parseFlags(argc, argv, f))
    return *exitCode;
  DemoSetup setup;
  if (int rc = checkFlags(f, setup))
    return rc;
  const Shape &s = setup.shape;

  // 1. Compile (a kernel found in the disk cache, ATTNC_CACHE_DIR, loads
  // faster than a cold compile).
  Compiler compiler;
  std::optional<Kernel> kernel;
  if (int rc = compileKernel(f, setup, compiler, kernel))
    return rc;
  const runtime::KernelInfo &info = kernel->info();

  // 2. Random data and one run.
  DemoData d;
  if (int rc = makeData(f, setup, info, d))
    return rc;
  if (Status st = runForward(*kernel, d); !st.ok())
    return fail(st.message());

  // 3. The float64 reference, on every row or on a sample of them.
  ReferenceResult ref;
  if (int rc = runReference(f, setup, d, ref))
    return rc;
  const CheckResult check = compareWithReference(s, info, d, ref);
  if (int rc = reportCheck(s, setup.dtype, info, ref, check))
    return rc;
  const double pairs = double(check.checkedRows) * double(s.LK);
  const double density = pairs == 0 ? 0 : double(ref.keptPairs) / pairs;

  // 4. Timing: warm-up, then the median of the timed runs.
  return timeKernel(f, s, *kernel, d, density, ref.stride);
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
