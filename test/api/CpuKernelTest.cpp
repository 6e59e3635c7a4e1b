//===- CpuKernelTest.cpp - JIT kernels against the float64 reference ------===//
//
// Every shared spec (and examples/all_features.attn) at f32, f16 and bf16
// storage over the shape matrix of the CPU back-end issue: odd sizes,
// LQ != LK both ways, GQA / MQA, DV != D, B > 1 and fully masked rows.
// Inputs are fresh random data (never zeros), rounded to the storage type
// before the reference sees them; out and lse are poisoned with NaN first,
// so an unwritten element fails. Tolerance: relative Frobenius error, beyond
// what rounding the exact answer to the storage type costs (outputError),
// below 1e-5 (f32) or 1e-2 (f16/bf16); a failure prints its seed for
// ATTNC_TEST_SEED. A second test compares the tiles the
// kernel visits (its trace) with the host's MaskSchedule.
//
//===----------------------------------------------------------------------===//
#include "attnc/Compiler.h"
#include "attnc/Passes/TileChoice.h"
#include "attnc/Driver.h"
#include "attnc/Passes/GridSchedule.h"
#include "attnc/Passes/MaskSchedule.h"
#include "attnc/Reference/SpecInterpreter.h"
#include "attnc/Reference/ReferenceAttention.h"
#include "attnc/Reference/TensorInputs.h"
#include "attnc/Runtime/Microkernels.h"

#include "../common/RandomTensors.h"

#include "llvm/Support/raw_ostream.h"
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <pthread.h>
#include <cstdlib>
#include <random>
#include <string>
#include <sstream>

using namespace attnc;
using namespace attnc::test;
using runtime::Tensor;
namespace fs = std::filesystem;

namespace {

// Covers LQ, LK in {1, 17, 64, 113, 203, 256, 1023} with LQ > LK and LQ < LK,
// D, DV in {16, 17, 59, 64, 96, 128, 256} with DV != D, HQ/HKV in {1/1, 4/2,
// 8/1} and B in {1, 3}.
const Shape kShapes[] = {
    {1, 1, 1, 1, 1, 16, 16},      {3, 4, 2, 17, 64, 17, 59},
    {1, 8, 1, 113, 17, 59, 16},   {1, 4, 2, 203, 256, 64, 64},
    {3, 1, 1, 256, 113, 96, 128}, {1, 1, 1, 1023, 203, 128, 96},
    {1, 1, 1, 64, 1023, 256, 256}, {1, 8, 1, 203, 203, 16, 17},
    {1, 1, 1, 1023, 1023, 64, 64},
};

std::string readFile(const fs::path &p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<fs::path> specFiles() {
  std::vector<fs::path> files;
  if (fs::is_directory(ATTNC_SHARED_SPECS_DIR))
    for (auto &e : fs::directory_iterator(ATTNC_SHARED_SPECS_DIR))
      if (e.path().extension() == ".attn")
        files.push_back(e.path());
  files.push_back(fs::path(ATTNC_EXAMPLES_DIR) / "all_features.attn");
  files.push_back(fs::path(ATTNC_EXAMPLES_DIR) / "sigmoid_softcap.attn");
  // softmax(sink = sinks[h]): the sink in every row's max, sum and lse.
  files.push_back(fs::path(ATTNC_EXAMPLES_DIR) / "gpt_oss_sinks.attn");
  std::sort(files.begin(), files.end());
  return files;
}

/// A spec loaded for the reference (the kernel is compiled separately).
struct RefSpec {
  std::string errors;
  llvm::raw_string_ostream errorStream{errors};
  Driver driver{errorStream};
  mlir::OwningOpRef<mlir::ModuleOp> module;
  mlir::attn::SpecOp op() { return *module->getOps<mlir::attn::SpecOp>().begin(); }
};

double tolerance(runtime::DType t) { return t == runtime::DType::F32 ? 1e-5 : 1e-2; }

/// Runs \p fn on a new thread with a stack of \p bytes and waits for it.
void runOnStack(size_t bytes, const std::function<void()> &fn) {
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, bytes), 0);
  pthread_t thread;
  auto trampoline = [](void *p) -> void * {
    (*static_cast<const std::function<void()> *>(p))();
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, &attr, trampoline,
                           const_cast<std::function<void()> *>(&fn)),
            0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
}

/// The kernel call of checkAgainstReference on a thread with a small stack
/// (256 KiB, one thread): the tiles must not live on the stack.
constexpr size_t kSmallStack = 256 << 10;

/// Compiles `path` for `dtype` (and `cpu`, "" for the host) and checks it
/// against the reference on every shape of `shapes`.
void checkAgainstReference(const fs::path &path, runtime::DType dtype,
                           const std::string &cpu,
                           const std::vector<Shape> &shapes,
                           const std::vector<Define> &defines = {},
                           int64_t headDim = 0,
                           std::optional<std::pair<int64_t, int64_t>> tiles = {},
                           bool smallStack = false) {
  std::string text = readFile(path);
  RefSpec ref;
  FrontendOptions refOptions;
  for (const Define &d : defines)
    refOptions.defines.push_back({d.name, d.value});
  ref.module = ref.driver.loadSpecText(path.string(), text, refOptions);
  ASSERT_TRUE(ref.module) << ref.errors;
  ASSERT_TRUE(succeeded(ref.driver.runSpecPipeline(*ref.module))) << ref.errors;

  Compiler compiler;
  CompileOptions opts;
  opts.dtype = dtype;
  opts.cpu = cpu;
  opts.defines = defines;
  opts.headDim = headDim;
  auto kernel = compiler.compile(text, opts, path.string());
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  const runtime::KernelInfo &info = kernel->info();
  if (tiles) {
    ASSERT_EQ(info.tileQ, tiles->first);
    ASSERT_EQ(info.tileK, tiles->second);
  }

  uint32_t seed = testSeed();
  std::mt19937 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed) + " (ATTNC_TEST_SEED replays it)");
  for (const Shape &s : shapes) {
    SCOPED_TRACE("shape B=" + std::to_string(s.B) + " HQ=" + std::to_string(s.HQ) +
                 " HKV=" + std::to_string(s.HKV) + " LQ=" + std::to_string(s.LQ) +
                 " LK=" + std::to_string(s.LK) + " D=" + std::to_string(s.D) +
                 " DV=" + std::to_string(s.DV));
    Operand q = randomOperand(dtype, {s.B, s.HQ, s.LQ, s.D}, rng, -2, 2);
    Operand k = randomOperand(dtype, {s.B, s.HKV, s.LK, s.D}, rng, -2, 2);
    Operand v = randomOperand(dtype, {s.B, s.HKV, s.LK, s.DV}, rng, -1, 1);
    Tensor out = Tensor::zeros(dtype, {s.B, s.HQ, s.LQ, s.DV}).value();
    Tensor lse = Tensor::zeros(runtime::DType::F32, {s.B, s.HQ, s.LQ}).value();
    for (int64_t i = 0; i < out.numel(); ++i)
      out.setFromDouble(i, NAN);
    for (int64_t i = 0; i < lse.numel(); ++i)
      lse.setFromDouble(i, NAN);
    auto inputs = randomInputs(info, s, rng);

    ForwardOptions fo;
    TensorView lseView = lse.view();
    if (!info.sigmoid)
      fo.lse = &lseView;
    for (auto &[name, t] : inputs)
      fo.inputs.push_back({name, t.view()});
    Status st;
    auto call = [&] {
      st = kernel->forward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                           out.view(), fo);
    };
    if (smallStack) {
      fo.threads = 1;
      runOnStack(kSmallStack, call);
    } else {
      call();
    }
    ASSERT_TRUE(st.ok()) << st.message();

    mlir::attn::ReferenceProblem p;
    p.sizes.B = s.B, p.sizes.HQ = s.HQ, p.sizes.HKV = s.HKV, p.sizes.LQ = s.LQ,
    p.sizes.LK = s.LK, p.sizes.D = s.D, p.sizes.DV = s.DV;
    p.q = q.values.data(), p.k = k.values.data(), p.v = v.values.data();
    p.inputs = mlir::attn::tensorInputReader(inputs);
    std::vector<double> refOut, refLse;
    std::string err = mlir::attn::referenceAttention(ref.op(), p, refOut, refLse);
    ASSERT_EQ(err, "");

    // outputError allows for the storage type's own rounding of the exact
    // answer (f16 subnormals under sigmoid's bias of -10).
    EXPECT_LT(outputError(out, refOut), tolerance(dtype));
    if (!info.sigmoid) {
      int64_t bad = 0;
      for (int64_t i = 0; i < lse.numel(); ++i) {
        double l = lse.getAsDouble(i);
        bool ok = std::isinf(refLse[i]) ? l == refLse[i]
                                        : std::abs(l - refLse[i]) <= 1e-4 * (1 + std::abs(refLse[i]));
        bad += !ok;
      }
      EXPECT_EQ(bad, 0) << "lse elements off (empty rows must be -inf)";
    }
  }
}

class CpuKernel : public ::testing::TestWithParam<std::tuple<fs::path, runtime::DType>> {};

TEST_P(CpuKernel, MatchesReference) {
  auto [path, dtype] = GetParam();
  checkAgainstReference(path, dtype, "", {std::begin(kShapes), std::end(kShapes)});
}

/// Code generated for an AVX2-only CPU (haswell) is correct too (it runs
/// on an AVX-512 host), with the AVX2 microkernels that such a CPU gets,
/// and with the generic ones.
TEST_P(CpuKernel, MatchesReferenceOnAvx2) {
  auto [path, dtype] = GetParam();
  const int before = attnc_uk_isa();
  for (int isa : {ATTNC_ISA_AVX2, ATTNC_ISA_GENERIC}) {
    if (attnc_uk_set_isa(isa) != 0)
      continue; // this CPU lacks the path
    SCOPED_TRACE(attnc_uk_isa_name(isa));
    checkAgainstReference(path, dtype, "haswell",
                          {kShapes[1], kShapes[2], kShapes[3]});
  }
  attnc_uk_set_isa(before);
}

/// On the generic path the JIT compiles the portable microkernels for this
/// host (api/lib/HostMicrokernels.cpp) once a kernel is compiled, unless
/// ATTNC_GENERIC_MICROKERNELS=builtin (ctest api-isa-generic-builtin)
/// keeps the runtime's copies; the kernels match the reference either way.
TEST(CpuKernelGeneric, MicrokernelsBuiltForTheHost) {
  const int before = attnc_uk_isa();
  ASSERT_EQ(attnc_uk_set_isa(ATTNC_ISA_GENERIC), 0);
  checkAgainstReference(fs::path(ATTNC_EXAMPLES_DIR) / "full.attn",
                        runtime::DType::BF16, "", {kShapes[1], kShapes[3]});
  const std::string build = attnc_uk_generic_build();
  const char *env = std::getenv("ATTNC_GENERIC_MICROKERNELS");
  if (env && std::string(env) == "builtin")
    EXPECT_EQ(build.rfind("built-in ", 0), 0u) << build;
#ifdef ATTNC_HAVE_PORTABLE_BITCODE
  else
    EXPECT_EQ(build.rfind("JIT for the host (", 0), 0u) << build;
#endif
  attnc_uk_set_isa(before);
}

/// The tiles of every row of the tuned table (TileChoice.h) for the active
/// path: compiled for the row's head dim, the kernel gets the row's tiles and matches the reference
/// at that head dim (odd lengths, GQA, DV != D; grid rows on natten2d with
/// lengths that make patch tasks and a tail).
TEST(CpuKernelTiles, EveryTunedRow) {
  // The rows of the path that runs (ctest runs this once per path).
  const mlir::attn::CpuIsa path = mlir::attn::cpuTileTablePath(runtime::activeCpuIsa());
  for (const mlir::attn::CpuTileTableRow &r : mlir::attn::cpuTileTable()) {
    if (r.isa != path)
      continue;
    bool grid = r.cls == mlir::attn::CpuTileClass::Grid;
    SCOPED_TRACE(std::string(grid ? "grid" : "rows") + " " +
                 runtime::dtypeName(r.type) + " D=" + std::to_string(r.headDim));
    fs::path dir(ATTNC_EXAMPLES_DIR);
    int64_t d = r.headDim, dv = std::max<int64_t>(1, r.headDim - 3);
    std::vector<Shape> shapes = {{1, 4, 2, 203, 157, d, dv}};
    if (grid) {
      shapes = {{1, 2, 1, 16 * 13 + 5, 16 * 13 + 5, d, dv},
                {1, 1, 1, 16 * 8, 16 * 9, d, d}};
      checkAgainstReference(dir / "natten2d.attn", r.type, "", shapes, {}, d,
                            std::pair{r.tiles.q, r.tiles.k});
    } else {
      checkAgainstReference(dir / "causal.attn", r.type, "", shapes, {}, d,
                            std::pair{r.tiles.q, r.tiles.k});
    }
  }
}

/// Params overridden at compile time (-D) reach the kernel.
TEST(CpuKernelDefines, OverriddenParams) {
  fs::path dir(ATTNC_EXAMPLES_DIR);
  std::vector<Shape> shapes = {kShapes[3], kShapes[7]};
  checkAgainstReference(dir / "sliding_window.attn", runtime::DType::F32, "",
                        shapes, {{"window", 17}});
  checkAgainstReference(dir / "local_softcap_alibi.attn", runtime::DType::F32,
                        "", shapes, {{"window", 5}, {"cap", 3.5}});
  checkAgainstReference(dir / "prefix_lm.attn", runtime::DType::BF16, "",
                        shapes, {{"prefix", 100}});
}

/// The edges of the supported head dims (ForwardChecks.h: 1..1024) and
/// MLA's 576 / 512, each call on a thread with a 256 KiB stack: the tiles
/// live in the dispatcher's heap arena (at D = DV = 1024 they take 1 MiB,
/// which overflowed such a stack when they were stack arrays).
TEST(CpuKernelHeadDims, SupportedRangeOnASmallStack) {
  fs::path dir(ATTNC_EXAMPLES_DIR);
  for (runtime::DType dtype : {runtime::DType::F32, runtime::DType::BF16}) {
    SCOPED_TRACE(runtime::dtypeName(dtype));
    checkAgainstReference(dir / "causal.attn", dtype, "",
                          {{1, 2, 1, 70, 65, 576, 512}, {1, 1, 1, 33, 40, 1024, 1024},
                           {1, 2, 2, 9, 11, 1, 1}, {1, 1, 1, 5, 7, 1024, 1}},
                          {}, 0, {}, /*smallStack=*/true);
  }
  checkAgainstReference(dir / "natten2d.attn", runtime::DType::F32, "",
                        {{1, 1, 1, 16 * 9 + 3, 16 * 9 + 3, 1024, 1024}}, {}, 0, {},
                        /*smallStack=*/true);
}

/// Calls outside the supported head dims are refused before any work, with
/// the size and the range in the message (D = 0 gave all-NaN output).
TEST(CpuKernelHeadDims, OutsideTheRangeIsAnError) {
  fs::path path = fs::path(ATTNC_EXAMPLES_DIR) / "causal.attn";
  Compiler compiler;
  auto kernel = compiler.compile(readFile(path), CompileOptions(), path.string());
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  std::mt19937 rng(3);
  for (auto [d, dv, what] :
       {std::tuple{int64_t(0), int64_t(8), "q: D = 0 (dimension 3 of shape [1, 1, 4, 0])"},
        std::tuple{int64_t(8), int64_t(0), "v: DV = 0"},
        std::tuple{int64_t(1025), int64_t(8), "D = 1025"},
        std::tuple{int64_t(64), int64_t(16384), "v: DV = 16384"}}) {
    Operand q = randomOperand(runtime::DType::F32, {1, 1, 4, d}, rng, -1, 1);
    Operand k = randomOperand(runtime::DType::F32, {1, 1, 5, d}, rng, -1, 1);
    Operand v = randomOperand(runtime::DType::F32, {1, 1, 5, dv}, rng, -1, 1);
    Tensor out = Tensor::zeros(runtime::DType::F32, {1, 1, 4, dv}).value();
    Status st = kernel->forward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                                out.view());
    ASSERT_FALSE(st.ok()) << d << " " << dv;
    EXPECT_NE(st.message().find(what), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("outside the supported head dims 1..1024"),
              std::string::npos)
        << st.message();
  }
}

/// The empty-problem rule (ForwardChecks.h): B, HQ, HKV or LQ = 0 is a
/// no-op that succeeds; LK = 0 leaves every row fully masked: out 0 and
/// lse -inf, never NaN.
TEST(CpuKernelSizes, EmptyProblemsAndNoKeys) {
  fs::path dir(ATTNC_EXAMPLES_DIR);
  for (const char *spec : {"causal.attn", "document.attn", "natten2d.attn"}) {
    SCOPED_TRACE(spec);
    std::string text = readFile(dir / spec);
    Compiler compiler;
    auto kernel = compiler.compile(text, CompileOptions(), spec);
    ASSERT_TRUE(kernel.ok()) << kernel.status().message();
    std::mt19937 rng(5);
    for (Shape s : {Shape{0, 2, 1, 5, 6, 8, 8}, Shape{1, 0, 0, 5, 6, 8, 8},
                    Shape{1, 0, 2, 5, 6, 8, 8}, Shape{2, 2, 1, 0, 6, 8, 8},
                    Shape{2, 4, 2, 37, 0, 8, 12}, Shape{1, 1, 1, 0, 0, 8, 8}}) {
      SCOPED_TRACE(std::to_string(s.B) + " " + std::to_string(s.HQ) + " " +
                   std::to_string(s.HKV) + " " + std::to_string(s.LQ) + " " +
                   std::to_string(s.LK));
      Operand q = randomOperand(runtime::DType::F32, {s.B, s.HQ, s.LQ, s.D}, rng, -1, 1);
      Operand k = randomOperand(runtime::DType::F32, {s.B, s.HKV, s.LK, s.D}, rng, -1, 1);
      Operand v = randomOperand(runtime::DType::F32, {s.B, s.HKV, s.LK, s.DV}, rng, -1, 1);
      Tensor out = Tensor::zeros(runtime::DType::F32, {s.B, s.HQ, s.LQ, s.DV}).value();
      Tensor lse = Tensor::zeros(runtime::DType::F32, {s.B, s.HQ, s.LQ}).value();
      for (int64_t i = 0; i < out.numel(); ++i)
        out.setFromDouble(i, NAN);
      for (int64_t i = 0; i < lse.numel(); ++i)
        lse.setFromDouble(i, NAN);
      ForwardOptions fo;
      TensorView lseView = lse.view();
      fo.lse = &lseView;
      auto inputs = randomInputs(kernel->info(), s, rng);
      for (auto &[name, t] : inputs)
        fo.inputs.push_back({name, t.view()});
      Status st = kernel->forward(q.tensor.view(), k.tensor.view(),
                                  v.tensor.view(), out.view(), fo);
      ASSERT_TRUE(st.ok()) << st.message();
      for (int64_t i = 0; i < out.numel(); ++i)
        ASSERT_EQ(out.getAsDouble(i), 0.0) << i;
      for (int64_t i = 0; i < lse.numel(); ++i)
        ASSERT_EQ(lse.getAsDouble(i), -INFINITY) << i;
    }
  }
}

/// A row with no kept key and a sink: out 0 and lse = the sink, exactly;
/// on the decode path too (few rows, keys split into chunks, the sink
/// counted in the first chunk only: one row with keys checks the merge).
TEST(CpuKernelSinks, EmptyRowsGetTheSink) {
  const char *text = "attention s {\n  input sinks: float[HQ]\n"
                     "  mask = kv < q - 3\n"
                     "  normalize = softmax(sink = sinks[h] * 2.0)\n}\n";
  Compiler compiler;
  auto kernel = compiler.compile(text, CompileOptions(), "sinks.attn");
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  std::mt19937 rng(11);
  for (Shape s : {Shape{2, 4, 2, 9, 0, 8, 8}, Shape{1, 4, 2, 4, 6, 8, 12},
                  Shape{1, 8, 2, 5, 3000, 16, 16}}) {
    Operand q = randomOperand(runtime::DType::F32, {s.B, s.HQ, s.LQ, s.D}, rng, -1, 1);
    Operand k = randomOperand(runtime::DType::F32, {s.B, s.HKV, s.LK, s.D}, rng, -1, 1);
    Operand v = randomOperand(runtime::DType::F32, {s.B, s.HKV, s.LK, s.DV}, rng, -1, 1);
    Tensor out = Tensor::zeros(runtime::DType::F32, {s.B, s.HQ, s.LQ, s.DV}).value();
    Tensor lse = Tensor::zeros(runtime::DType::F32, {s.B, s.HQ, s.LQ}).value();
    Tensor sinks = Tensor::zeros(runtime::DType::F32, {s.HQ}).value();
    for (int64_t h = 0; h < s.HQ; ++h)
      sinks.setFromDouble(h, 0.25 * double(h) - 0.5);
    ForwardOptions fo;
    TensorView lseView = lse.view();
    fo.lse = &lseView;
    fo.inputs.push_back({"sinks", sinks.view()});
    ASSERT_TRUE(kernel->forward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                                out.view(), fo).ok());
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t h = 0; h < s.HQ; ++h)
        for (int64_t i = 0; i < s.LQ; ++i) {
          const int64_t row = (b * s.HQ + h) * s.LQ + i;
          const float sink = float(sinks.getAsDouble(h) * 2.0);
          if (i <= 3 || s.LK == 0) { // no key below q - 3
            EXPECT_EQ(lse.getAsDouble(row), sink) << row;
            for (int64_t d = 0; d < s.DV; ++d)
              ASSERT_EQ(out.getAsDouble(row * s.DV + d), 0.0) << row;
            continue;
          }
          // Keys 0 .. i - 4 and the sink: lse = log(e^sink + sum e^z).
          double sum = std::exp(double(sink));
          for (int64_t kv = 0; kv < std::min<int64_t>(i - 3, s.LK); ++kv) {
            double dot = 0;
            for (int64_t d = 0; d < s.D; ++d)
              dot += q.tensor.getAsDouble(row * s.D + d) *
                     k.tensor.getAsDouble(((b * s.HKV + h / (s.HQ / s.HKV)) * s.LK + kv) * s.D + d);
            sum += std::exp(dot / std::sqrt(double(s.D)));
          }
          EXPECT_NEAR(lse.getAsDouble(row), std::log(sum), 1e-5) << row;
        }
  }
}

/// Outputs that alias an input or each other, or overlap themselves, are
/// refused (ForwardChecks.h) and nothing is written: an out aliasing v ran
/// and returned ok with wrong values (max error 0.75).
TEST(CpuKernelViews, AliasedOutputsAreErrors) {
  fs::path path = fs::path(ATTNC_EXAMPLES_DIR) / "causal.attn";
  Compiler compiler;
  auto kernel = compiler.compile(readFile(path), CompileOptions(), path.string());
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  std::mt19937 rng(11);
  const int64_t L = 20, D = 8;
  Operand q = randomOperand(runtime::DType::F32, {1, 2, L, D}, rng, -1, 1);
  Operand k = randomOperand(runtime::DType::F32, {1, 2, L, D}, rng, -1, 1);
  Operand v = randomOperand(runtime::DType::F32, {1, 2, L, D}, rng, -1, 1);
  Tensor out = Tensor::zeros(runtime::DType::F32, {1, 2, L, D}).value();
  Tensor big = Tensor::zeros(runtime::DType::F32, {1, 2, L, D + 1}).value();
  auto expectError = [&](const TensorView &o, const TensorView *lse,
                         const char *what) {
    ForwardOptions fo;
    fo.lse = lse;
    std::vector<double> before(size_t(v.tensor.numel()));
    for (int64_t i = 0; i < v.tensor.numel(); ++i)
      before[size_t(i)] = v.tensor.getAsDouble(i);
    Status st = kernel->forward(q.tensor.view(), k.tensor.view(), v.tensor.view(), o, fo);
    ASSERT_FALSE(st.ok()) << what;
    EXPECT_NE(st.message().find(what), std::string::npos) << st.message();
    for (int64_t i = 0; i < v.tensor.numel(); ++i)
      ASSERT_EQ(v.tensor.getAsDouble(i), before[size_t(i)]) << "v was written";
  };
  expectError(v.tensor.view(), nullptr, "out overlaps v in memory");
  TensorView zeroStride = out.view();
  zeroStride.strides[2] = 0;
  expectError(zeroStride, nullptr,
              "out: dimension 2 has extent 20 and stride 0");
  // lse in the padding column of a [.., D + 1] buffer that out also spans.
  TensorView outInBig = big.view();
  outInBig.shape[3] = D;
  TensorView lseInBig = big.view();
  lseInBig.data = static_cast<float *>(big.data()) + D;
  lseInBig.shape = {1, 2, L};
  lseInBig.strides = {2 * L * (D + 1), L * (D + 1), D + 1};
  expectError(outInBig, &lseInBig, "out overlaps lse in memory");
  // Rows of out that overlap each other (row stride 4 < D = 8).
  TensorView rows = big.view();
  rows.shape = {1, 2, L, D};
  rows.strides = {2 * L * 4 + 8, L * 4 + 4, 4, 1};
  expectError(rows, nullptr, "may place two elements at the same address");
  // Separate buffers are fine.
  Tensor lse = Tensor::zeros(runtime::DType::F32, {1, 2, L}).value();
  TensorView lseView = lse.view();
  ForwardOptions fo;
  fo.lse = &lseView;
  Status st = kernel->forward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                              out.view(), fo);
  EXPECT_TRUE(st.ok()) << st.message();
}

/// Strided views: q, k, v in [B, L, H, D] buffers viewed as BHLD (rows of K
/// and V read in place by the microkernels), and K with a non-unit stride
/// along D (the copy path), against the same problem in contiguous tensors.
TEST(CpuKernelViews, StridedMatchesContiguous) {
  fs::path path = fs::path(ATTNC_EXAMPLES_DIR) / "causal.attn";
  for (runtime::DType dtype : {runtime::DType::F32, runtime::DType::BF16,
                               runtime::DType::F16}) {
    Compiler compiler;
    CompileOptions opts;
    opts.dtype = dtype;
    auto kernel = compiler.compile(readFile(path), opts, path.string());
    ASSERT_TRUE(kernel.ok()) << kernel.status().message();
    const int64_t B = 2, H = 3, L = 77, D = 40, DV = 24;
    std::mt19937 rng(9);
    Operand qb = randomOperand(dtype, {B, L, H, D}, rng, -1, 1);
    Operand kb = randomOperand(dtype, {B, L, H, D}, rng, -1, 1);
    Operand vb = randomOperand(dtype, {B, L, H, DV}, rng, -1, 1);
    // k also as [B, H, D, L] storage: a BHLD view with stride L along D.
    Tensor kt = Tensor::zeros(dtype, {B, H, D, L}).value();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t l = 0; l < L; ++l)
          for (int64_t d = 0; d < D; ++d)
            kt.setFromDouble(((b * H + h) * D + d) * L + l,
                             kb.tensor.getAsDouble(((b * L + l) * H + h) * D + d));
    TensorView ktView = kt.view();
    ktView.shape = {B, H, L, D};
    ktView.strides = {H * D * L, D * L, 1, L};
    auto bhld = [](const Tensor &t) { return runtime::viewBHLDFromBLHD(t.view()).value(); };
    auto contiguous = [&](const TensorView &v) {
      return runtime::makeContiguous(v).value();
    };
    Tensor qc = contiguous(bhld(qb.tensor)), kc = contiguous(bhld(kb.tensor)),
           vc = contiguous(bhld(vb.tensor));
    Tensor ref = Tensor::zeros(dtype, {B, H, L, DV}).value();
    Tensor out1 = Tensor::zeros(dtype, {B, H, L, DV}).value();
    Tensor out2 = Tensor::zeros(dtype, {B, H, L, DV}).value();
    ASSERT_TRUE(kernel->forward(qc.view(), kc.view(), vc.view(), ref.view()).ok());
    Status st = kernel->forward(bhld(qb.tensor), bhld(kb.tensor), bhld(vb.tensor), out1.view());
    ASSERT_TRUE(st.ok()) << st.message();
    st = kernel->forward(bhld(qb.tensor), ktView, bhld(vb.tensor), out2.view());
    ASSERT_TRUE(st.ok()) << st.message();
    for (int64_t i = 0; i < ref.numel(); ++i) {
      ASSERT_EQ(out1.getAsDouble(i), ref.getAsDouble(i)) << runtime::dtypeName(dtype) << " " << i;
      ASSERT_NEAR(out2.getAsDouble(i), ref.getAsDouble(i), 1e-6) << runtime::dtypeName(dtype) << " " << i;
    }
  }
}

std::string paramName(const ::testing::TestParamInfo<CpuKernel::ParamType> &info) {
  std::string name = std::get<0>(info.param).stem().string() + "_" +
                     runtime::dtypeName(std::get<1>(info.param));
  for (char &c : name)
    if (!isalnum(static_cast<unsigned char>(c)))
      c = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(
    Specs, CpuKernel,
    ::testing::Combine(::testing::ValuesIn(specFiles()),
                       ::testing::Values(runtime::DType::F32, runtime::DType::F16,
                                         runtime::DType::BF16)),
    paramName);

/// The kernel visits exactly the key tiles the host schedule keeps, and
/// runs mask code exactly on the PARTIAL ones.
class TileTrace : public ::testing::TestWithParam<fs::path> {};

TEST_P(TileTrace, MatchesHostSchedule) {
  fs::path path = GetParam();
  std::string text = readFile(path);
  RefSpec ref;
  ref.module = ref.driver.loadSpecText(path.string(), text, {});
  ASSERT_TRUE(ref.module) << ref.errors;
  ASSERT_TRUE(succeeded(ref.driver.runSpecPipeline(*ref.module)));
  mlir::attn::MaskAttr mask = ref.op().getMaskScheduleAttr();
  ASSERT_TRUE(mask);

  Compiler compiler;
  CompileOptions opts;
  opts.traceTiles = true;
  opts.tileQ = 16;
  opts.tileK = 32;
  auto kernel = compiler.compile(text, opts, path.string());
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  std::mt19937 rng(7);
  for (Shape s : {Shape{1, 2, 1, 203, 203, 16, 16}, Shape{2, 1, 1, 100, 300, 8, 8},
                  Shape{1, 1, 1, 300, 77, 8, 8}}) {
    Operand q = randomOperand(runtime::DType::F32, {s.B, s.HQ, s.LQ, s.D}, rng, -1, 1);
    Operand k = randomOperand(runtime::DType::F32, {s.B, s.HKV, s.LK, s.D}, rng, -1, 1);
    Operand v = randomOperand(runtime::DType::F32, {s.B, s.HKV, s.LK, s.DV}, rng, -1, 1);
    Tensor out = Tensor::zeros(runtime::DType::F32, {s.B, s.HQ, s.LQ, s.DV}).value();
    auto inputs = randomInputs(kernel->info(), s, rng);
    ForwardOptions fo;
    for (auto &[name, t] : inputs)
      fo.inputs.push_back({name, t.view()});
    std::vector<int8_t> trace;
    fo.tileTrace = &trace;
    Status st = kernel->forward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                                out.view(), fo);
    ASSERT_TRUE(st.ok()) << st.message();
    mlir::attn::ProblemSizes ps;
    ps.B = s.B, ps.HQ = s.HQ, ps.HKV = s.HKV, ps.LQ = s.LQ, ps.LK = s.LK,
    ps.D = s.D, ps.DV = s.DV;
    // ids_eq atoms (document masks) are classified from the input data.
    mlir::attn::IdsReader ids = [&](llvm::StringRef name,
                                    llvm::ArrayRef<int64_t> idx)
        -> std::optional<int64_t> {
      for (auto &[n, t] : inputs) {
        if (n != name)
          continue;
        int64_t flat = 0;
        for (size_t d = 0; d < idx.size(); ++d)
          flat = flat * t.shape()[d] + idx[d];
        return int64_t(t.getAsDouble(flat));
      }
      return std::nullopt;
    };
    int64_t numQ = (s.LQ + 15) / 16, numK = (s.LK + 31) / 32;
    ASSERT_EQ(int64_t(trace.size()), s.B * s.HQ * numQ * numK);
    // Grid masks: patch tasks mark the key tiles of their gathered keys
    // (GridSchedule.h), and must gather every key a patch row keeps.
    auto grid = mlir::attn::chooseGridTiling(ref.op(), 16, 32);
    mlir::attn::SpecInterpreter interp(ref.op(), ps);
    for (int64_t b = 0; b < s.B; ++b) {
      for (int64_t h = 0; h < s.HQ; ++h) {
        ps.b = b, ps.h = h;
        auto sched = mlir::attn::computeSchedule(mask, ps, 16, 32, &ids);
        interp.setSizes(ps);
        for (int64_t qt = 0; qt < numQ; ++qt) {
          std::vector<int> patchKinds;
          if (grid) {
            auto patch = mlir::attn::gridPatch(*grid, qt, s.LQ);
            if (patch.isPatch) {
              patchKinds.assign(numK, 0);
              std::vector<bool> gathered(s.LK, false);
              for (const auto &tile : mlir::attn::gridKeyTiles(mask, *grid, patch, ps, 32)) {
                ASSERT_LE(int64_t(tile.size()), 32);
                for (int64_t kv : tile) {
                  ASSERT_FALSE(gathered[kv]) << "key " << kv << " gathered twice";
                  gathered[kv] = true;
                  patchKinds[kv / 32] = 2;
                }
              }
              for (int64_t i = 0; i < 16; ++i) {
                int64_t q = mlir::attn::gridQuery(*grid, patch, qt, i);
                ASSERT_LT(q, s.LQ);
                for (int64_t kv = 0; kv < s.LK; ++kv)
                  if (interp.mask({q, kv}).value_or(true))
                    ASSERT_TRUE(gathered[kv]) << "q=" << q << " keeps kv=" << kv
                                              << " but the patch does not gather it";
              }
            }
          }
          for (int64_t kt = 0; kt < numK; ++kt) {
            int expected = patchKinds.empty() ? static_cast<int>(sched.at(qt, kt)) // 0 / 1 / 2
                                              : patchKinds[kt];
            int got = trace[((b * s.HQ + h) * numQ + qt) * numK + kt];
            ASSERT_EQ(got, expected) << "b=" << b << " h=" << h << " qt=" << qt
                                     << " kt=" << kt;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Specs, TileTrace, ::testing::ValuesIn(specFiles()),
                         [](const auto &info) {
                           std::string n = info.param.stem().string();
                           for (char &c : n)
                             if (!isalnum(static_cast<unsigned char>(c)))
                               c = '_';
                           return n;
                         });

} // namespace
