//===- BackwardTest.cpp - Kernel::backward against the float64 reference --===//
//
// The CPU backward pass (issue 14) end to end: each shared spec, the
// examples and specs that exercise every derivative rule are compiled with
// CompileOptions::backward, run forward (for out and lse) and backward on
// fresh random data, and compared with referenceBackward (forward-mode dual
// numbers, independent of the compiler's reverse mode) over odd sizes,
// LQ != LK, GQA, DV != D, B > 1 and fully masked rows, at f32, bf16 and
// f16. Gradients are poisoned with NaN first. Tolerance: relative Frobenius
// error <= 1e-4 (f32), 3e-2 (bf16, f16); for dq, dk and input gradients,
// sums of terms that cancel, relative to at least 1% of the size of the
// terms (gradientError). Also: bitwise determinism across
// thread counts, the tiles visited against the column schedule, and bad
// calls.
//
//===----------------------------------------------------------------------===//
#include "../common/AmbiguousRows.h"
#include "../common/RandomTensors.h"

#include "attnc/Compiler.h"
#include "attnc/Driver.h"
#include "attnc/Passes/MaskSchedule.h"
#include "attnc/Reference/ReferenceBackward.h"
#include "attnc/Reference/TensorInputs.h"

#include "llvm/Support/raw_ostream.h"
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

using namespace attnc;
using namespace attnc::test;
using runtime::DType;
using runtime::Tensor;
namespace fs = std::filesystem;

namespace {

std::string readFile(const fs::path &p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Specs beyond the shared ones: every derivative rule and region.
const char *const kExtraSpecs[] = {
    // A table lookup guarded by the mask; relative bias.
    R"(attention rel_table {
  input table: float[33]
  score = score + table[clamp(q - kv, -16, 16) + 16]
  mask = q >= kv && q - kv <= 40
})",
    // A learnable per-head scale (scale_grad) and a sigmoid with a learnable
    // bias (bias_grad).
    R"(attention head_scale {
  input temp: float[HQ]
  scale = (1.5 + temp[h]) / sqrt(D)
  mask = q + (LK - LQ) >= kv
})",
    R"(attention sigmoid_bias {
  input b0: float[HQ]
  normalize = sigmoid(bias = b0[h] - log(float(LK)))
  mask = q >= kv
})",
    // ?: with a read on one arm and, on the other, a value and derivative
    // that are -inf or NaN where that arm is not taken (log of <= 0).
    R"(attention guarded {
  input t: float[LQ]
  score = kv <= q ? score + t[q - kv] : score * log(float(kv - q))
})",
    // Logits far outside exp's float32 range, and -inf ones (exp(100) is
    // +inf in float32): the backward's polynomial exp at its edges.
    R"(attention wide_logits {
  score = kv % 3 == 2 ? score - exp(100.0) : 40.0 * score
  mask = q >= kv
})",
    // tanh saturated everywhere: its derivative (~1e-8) is all the gradient
    // dq and dk get, and 1 - tanh^2 would round it to 0 in float32.
    R"(attention saturated_tanh {
  input t: float[HQ]
  score = 2.0 * tanh(score - 10.25 + t[h]) + tanh(12.0 + score)
  mask = q >= kv
})",
    R"(attention wide_sigmoid {
  score = 40.0 * score
  normalize = sigmoid(bias = -3.0)
})",
    // Bounds read per row and per key: the forward's rows scan len[b, q]
    // per query tile, the backward's columns first[b, kv] per key tile.
    R"(attention row_key_bounds {
  input len: int[B, LQ]
  input first: int[B, LK]
  mask = kv < len[b, q] && q >= first[b, kv]
})",
    // exp2 and log2, and round and sign (zero derivative), on a float input
    // named bias (only built-in names are reserved).
    R"(attention base2_steps {
  input bias: float[HQ]
  input w: float[LK]
  score = 0.25 * exp2(0.5 * score + bias[h]) + log2(2.0 + w[kv] * w[kv]) * score
          + 0.1 * round(2.5 * w[kv]) + sign(w[kv]) * score + 0.125 * float(sign(q - kv))
  mask = q + 3 >= kv
})",
    // pow in both arguments, abs, min/max, clamp, exp/log, sin/cos, /, sigmoid.
    // Dropout with a sink and a learnable per-head bias: dZ = P (dP F -
    // delta), dV from P F, the forward's mask regenerated from its seed.
    R"(attention dropout_sink {
  input sinks: float[HQ]
  input t: float[HQ]
  score = score + t[h]
  mask = q >= kv
  normalize = softmax(sink = sinks[h], dropout = 0.25)
})",
    R"(attention all_rules {
  input e: float[HQ]
  input w: float[LK]
  score = pow(abs(score) + 1.0, 0.5 + 0.25 * e[h]) + max(score, 0.1 * w[kv])
          - sigmoid(score) + clamp(score, -0.5, 0.5) * cos(w[kv])
          + log(2.0 + sin(score)) / (1.5 + exp(-abs(w[kv]))) + min(score, w[kv])
})",
};

struct Case {
  std::string name, text;
  /// softmax(dropout = p): the training call's seed, for both passes.
  std::optional<runtime::DropoutSeed> dropout;
};

std::vector<Case> allSpecs() {
  std::vector<Case> cases;
  std::vector<fs::path> files;
  if (fs::is_directory(ATTNC_SHARED_SPECS_DIR))
    for (auto &e : fs::directory_iterator(ATTNC_SHARED_SPECS_DIR))
      if (e.path().extension() == ".attn")
        files.push_back(e.path());
  files.push_back(fs::path(ATTNC_EXAMPLES_DIR) / "relative_bias.attn");
  files.push_back(fs::path(ATTNC_EXAMPLES_DIR) / "sigmoid_softcap.attn");
  // let bindings (a bucketed bias table's gradient) and named masks.
  files.push_back(fs::path(ATTNC_EXAMPLES_DIR) / "t5_bucket.attn");
  files.push_back(fs::path(ATTNC_EXAMPLES_DIR) / "composed_masks.attn");
  // A softmax sink: d(sinks) = -sum over rows of P_sink delta.
  files.push_back(fs::path(ATTNC_EXAMPLES_DIR) / "gpt_oss_sinks.attn");
  // Dropout: the backward reuses the forward's mask without storing it.
  files.push_back(fs::path(ATTNC_EXAMPLES_DIR) / "dropout.attn");
  std::sort(files.begin(), files.end());
  for (const fs::path &f : files)
    cases.push_back({f.string(), readFile(f)}); // the path: imports resolve
  for (std::string text : kExtraSpecs) {
    size_t at = text.find(' ') + 1;
    cases.push_back({text.substr(at, text.find(' ', at) - at), text});
  }
  for (Case &c : cases)
    if (c.text.find("dropout =") != std::string::npos)
      c.dropout = runtime::DropoutSeed{0x9e3779b97f4a7c15ull, 3};
  return cases;
}

const Shape kShapes[] = {
    {1, 1, 1, 17, 17, 16, 16},   // one partial tile
    {2, 4, 2, 33, 70, 17, 23},   // GQA, LQ < LK, DV != D, B > 1
    {1, 2, 1, 70, 33, 32, 16},   // LQ > LK: bottom-right masks empty rows
    {1, 1, 1, 129, 129, 64, 64}, // several tiles of 64
};

mlir::attn::ProblemSizes sizesOf(const Shape &s) {
  mlir::attn::ProblemSizes p;
  p.B = s.B, p.HQ = s.HQ, p.HKV = s.HKV, p.LQ = s.LQ, p.LK = s.LK;
  p.D = s.D, p.DV = s.DV;
  return p;
}

Tensor poisoned(DType dtype, std::vector<int64_t> shape) {
  Tensor t = Tensor::zeros(dtype, shape).value();
  for (int64_t i = 0; i < t.numel(); ++i)
    t.setFromDouble(i, NAN);
  return t;
}

/// One problem: operands, the forward's results and the gradients' homes.
struct Problem {
  Shape s;
  Operand q, k, v, dout;
  std::vector<std::pair<std::string, Tensor>> inputs;
  Tensor out, lse, dq, dk, dv;
  std::vector<std::pair<std::string, Tensor>> dinputs;

  Problem(const Kernel &kernel, DType dtype, const Shape &shape,
          std::mt19937 &rng)
      : s(shape),
        q(randomOperand(dtype, {s.B, s.HQ, s.LQ, s.D}, rng, -2, 2)),
        k(randomOperand(dtype, {s.B, s.HKV, s.LK, s.D}, rng, -2, 2)),
        v(randomOperand(dtype, {s.B, s.HKV, s.LK, s.DV}, rng, -1, 1)),
        dout(randomOperand(dtype, {s.B, s.HQ, s.LQ, s.DV}, rng, -1, 1)),
        inputs(randomInputs(kernel.info(), s, rng)),
        out(poisoned(dtype, {s.B, s.HQ, s.LQ, s.DV})),
        lse(poisoned(DType::F32, {s.B, s.HQ, s.LQ})),
        dq(poisoned(dtype, {s.B, s.HQ, s.LQ, s.D})),
        dk(poisoned(dtype, {s.B, s.HKV, s.LK, s.D})),
        dv(poisoned(dtype, {s.B, s.HKV, s.LK, s.DV})) {
    for (const std::string &name : kernel.differentiableInputs())
      for (auto &[n, t] : inputs)
        if (n == name)
          dinputs.push_back({name, poisoned(DType::F32, t.shape())});
  }

  std::vector<std::pair<std::string, runtime::TensorView>> inputViews() {
    std::vector<std::pair<std::string, runtime::TensorView>> views;
    for (auto &[n, t] : inputs)
      views.push_back({n, t.view()});
    return views;
  }

  std::optional<runtime::DropoutSeed> dropout; // both passes'

  Status forward(const Kernel &kernel) {
    ForwardOptions fo;
    fo.dropout = dropout;
    runtime::TensorView lseView = lse.view();
    if (!kernel.info().sigmoid)
      fo.lse = &lseView;
    fo.inputs = inputViews();
    return kernel.forward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                          out.view(), fo);
  }

  Status backward(const Kernel &kernel, int threads = 0,
                  std::vector<int8_t> *trace = nullptr) {
    BackwardOptions bo;
    bo.dropout = dropout;
    bo.inputs = inputViews();
    for (auto &[n, t] : dinputs)
      bo.inputGrads.push_back({n, t.view()});
    bo.threads = threads;
    bo.tileTrace = trace;
    runtime::TensorView lseView =
        kernel.info().sigmoid ? runtime::TensorView() : lse.view();
    return kernel.backward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                           out.view(), lseView, dout.tensor.view(), dq.view(),
                           dk.view(), dv.view(), bo);
  }
};

/// The spec of `text` for the reference.
struct RefSpec {
  std::string errors;
  llvm::raw_string_ostream errorStream{errors};
  Driver driver{errorStream};
  mlir::OwningOpRef<mlir::ModuleOp> module;
  explicit RefSpec(const std::string &text,
                   const std::string &name = "reference.attn") {
    module = driver.loadSpecText(name, text, {});
    if (module && mlir::failed(driver.runSpecPipeline(*module)))
      module = nullptr;
  }
  mlir::attn::SpecOp op() {
    return *module->getOps<mlir::attn::SpecOp>().begin();
  }
};

double tolerance(DType t) { return t == DType::F32 ? 1e-4 : 3e-2; }


void checkSpec(const Case &c, DType dtype, const std::vector<Shape> &shapes) {
  SCOPED_TRACE(c.name + " " + runtime::dtypeName(dtype));
  RefSpec ref(c.text, c.name);
  ASSERT_TRUE(ref.module) << ref.errors;
  Compiler compiler;
  CompileOptions opts;
  opts.dtype = dtype;
  opts.backward = true;
  auto kernel = compiler.compile(c.text, opts, c.name);
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  uint32_t seed = testSeed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  for (const Shape &s : shapes) {
    SCOPED_TRACE("B=" + std::to_string(s.B) + " HQ=" + std::to_string(s.HQ) +
                 " HKV=" + std::to_string(s.HKV) + " LQ=" + std::to_string(s.LQ) +
                 " LK=" + std::to_string(s.LK) + " D=" + std::to_string(s.D) +
                 " DV=" + std::to_string(s.DV));
    Problem p(*kernel, dtype, s, rng);
    p.dropout = c.dropout;
    Status st = p.forward(*kernel);
    ASSERT_TRUE(st.ok()) << st.message();

    mlir::attn::ReferenceProblem rp;
    if (c.dropout)
      rp.dropout = mlir::attn::ReferenceProblem::Dropout{c.dropout->seed,
                                                         uint32_t(c.dropout->offset), 0};
    rp.sizes = sizesOf(s);
    rp.q = p.q.values.data(), rp.k = p.k.values.data(), rp.v = p.v.values.data();
    rp.inputs = mlir::attn::tensorInputReader(p.inputs);
    // The backward's inputs as the kernel got them, out included (rounded
    // to the storage type like q, k and v).
    std::vector<double> out(size_t(p.out.numel()));
    for (int64_t i = 0; i < p.out.numel(); ++i)
      out[size_t(i)] = p.out.getAsDouble(i);
    rp.forwardOut = out.data();
    mlir::attn::ReferenceGradients want;
    ASSERT_EQ(mlir::attn::referenceBackward(ref.op(), rp, p.dout.values.data(),
                                            want),
              "");
    if (removeAmbiguousRows(want, p.dout) > 0)
      ASSERT_EQ(mlir::attn::referenceBackward(ref.op(), rp,
                                              p.dout.values.data(), want),
                "");
    st = p.backward(*kernel);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_LE(gradientError(p.dq, want.dq, want.dqMagnitude), tolerance(dtype)) << "dq";
    EXPECT_LE(gradientError(p.dk, want.dk, want.dkMagnitude), tolerance(dtype)) << "dk";
    EXPECT_LE(relativeError(p.dv, want.dv), tolerance(dtype)) << "dv";
    EXPECT_EQ(p.dinputs.size(), want.dinputs.size());
    for (auto &[name, t] : p.dinputs) {
      ASSERT_TRUE(want.dinputs.count(name)) << name;
      EXPECT_LE(gradientError(t, want.dinputs[name],
                               want.dinputMagnitudes[name]),
                tolerance(dtype))
          << "d" << name;
    }
  }
}

TEST(Backward, EverySpecF32) {
  for (const Case &c : allSpecs())
    checkSpec(c, DType::F32, {std::begin(kShapes), std::end(kShapes)});
}

TEST(Backward, EverySpecBF16AndF16) {
  for (const Case &c : allSpecs()) {
    checkSpec(c, DType::BF16, {kShapes[1], kShapes[3]});
    // Its gradients (~1e-8) are below float16's range (bfloat16 has
    // float32's exponents).
    if (c.name != "saturated_tanh")
      checkSpec(c, DType::F16, {kShapes[2]});
  }
}

/// The bytes of a tensor, for bitwise comparisons.
std::vector<char> bytesOf(const Tensor &t) {
  const char *p = static_cast<const char *>(t.view().data);
  return std::vector<char>(p, p + t.numel() * runtime::dtypeSize(t.dtype()));
}

TEST(Backward, BitwiseIdenticalForEveryThreadCount) {
  // Input gradients (slopes) and dq are reduced from partials; GQA sums dk.
  std::string text = readFile(fs::path(ATTNC_SHARED_SPECS_DIR) /
                              "local_softcap_alibi.attn");
  if (text.empty())
    text = kExtraSpecs[0];
  Compiler compiler;
  CompileOptions opts;
  opts.backward = true;
  auto kernel = compiler.compile(text, opts);
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  std::mt19937 rng(7);
  Problem p(*kernel, DType::F32, {2, 4, 2, 300, 257, 64, 48}, rng);
  ASSERT_TRUE(p.forward(*kernel).ok());
  std::vector<std::vector<char>> first;
  for (int threads : {1, 2, 3, 0}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    ASSERT_TRUE(p.backward(*kernel, threads).ok());
    std::vector<std::vector<char>> now = {bytesOf(p.dq), bytesOf(p.dk),
                                          bytesOf(p.dv)};
    for (auto &[n, t] : p.dinputs)
      now.push_back(bytesOf(t));
    if (first.empty())
      first = now;
    else
      EXPECT_TRUE(now == first);
  }
}

/// The tiles the backward visits are exactly those the column schedule
/// keeps, with their kinds; ids_eq atoms (document masks) read the ids.
TEST(Backward, VisitsTheColumnSchedule) {
  for (const Case &c : allSpecs()) {
    SCOPED_TRACE(c.name);
    RefSpec ref(c.text, c.name);
    ASSERT_TRUE(ref.module) << ref.errors;
    Compiler compiler;
    CompileOptions opts;
    opts.backward = true;
    auto kernel = compiler.compile(c.text, opts, c.name);
    ASSERT_TRUE(kernel.ok()) << kernel.status().message();
    std::mt19937 rng(3);
    Shape s{1, 2, 1, 300, 200, 16, 16};
    Problem p(*kernel, DType::F32, s, rng);
    ASSERT_TRUE(p.forward(*kernel).ok());
    std::vector<int8_t> trace;
    ASSERT_TRUE(p.backward(*kernel, 0, &trace).ok());
    const int64_t tq = 64, tk = 64, nqt = (s.LQ + tq - 1) / tq,
                  nkt = (s.LK + tk - 1) / tk;
    ASSERT_EQ(int64_t(trace.size()), s.B * s.HQ * nqt * nkt);
    mlir::attn::MaskAttr columns = ref.op().getMaskScheduleColumnsAttr();
    ASSERT_TRUE(columns);
    int64_t visited = 0, withoutIds = 0;
    for (int64_t h = 0; h < s.HQ; ++h) {
      mlir::attn::ProblemSizes sizes = sizesOf(s);
      sizes.h = h;
      mlir::attn::IdsReader ids = [&](llvm::StringRef name,
                                      llvm::ArrayRef<int64_t> indices)
          -> std::optional<int64_t> {
        for (auto &[n, t] : p.inputs)
          if (n == name) {
            std::optional<mlir::attn::Scalar> v =
                mlir::attn::readTensorElement(t, indices);
            if (v && v->kind == mlir::attn::Scalar::Int)
              return v->i;
          }
        return std::nullopt;
      };
      mlir::attn::TileSchedule sched =
          mlir::attn::computeColumnSchedule(columns, sizes, tq, tk, &ids);
      mlir::attn::TileSchedule opaque =
          mlir::attn::computeColumnSchedule(columns, sizes, tq, tk);
      for (mlir::attn::TileKind kind : opaque.kinds)
        withoutIds += kind != mlir::attn::TileKind::Empty;
      for (int64_t qt = 0; qt < nqt; ++qt)
        for (int64_t kt = 0; kt < nkt; ++kt) {
          int8_t got = trace[size_t((h * nqt + qt) * nkt + kt)];
          int8_t want = int8_t(sched.at(kt, qt));
          visited += got != 0;
          // TileKind: Empty 0, Full 1, Partial 2, as the trace.
          ASSERT_EQ(got, want) << "h " << h << " qt " << qt << " kt " << kt;
        }
    }
    EXPECT_GT(visited, 0);
    if (fs::path(c.name).filename() == "document.attn")
      EXPECT_LT(visited, withoutIds)
          << "tiles of different documents are skipped by their ids";
  }
}

TEST(Backward, BadCallsAreErrorsThatWriteNothing) {
  const char *text = R"(attention alibi_ids {
  input slopes: float[HQ]
  input doc: int[LK]
  score = score - slopes[h] * float(q - kv)
  mask = doc[kv] >= 0
})";
  Compiler compiler;
  CompileOptions opts;
  auto forwardOnly = compiler.compile(text, opts);
  ASSERT_TRUE(forwardOnly.ok()) << forwardOnly.status().message();
  opts.backward = true;
  auto kernel = compiler.compile(text, opts);
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  EXPECT_EQ(kernel->differentiableInputs(),
            std::vector<std::string>{"slopes"});
  std::mt19937 rng(5);
  Problem p(*kernel, DType::F32, {1, 2, 1, 20, 30, 8, 8}, rng);
  ASSERT_TRUE(p.forward(*kernel).ok());
  auto expectError = [&](const Status &st, const std::string &needle) {
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
    for (const Tensor *t : {&p.dq, &p.dk, &p.dv})
      for (int64_t i = 0; i < t->numel(); ++i)
        ASSERT_TRUE(std::isnan(t->getAsDouble(i))) << "written on error";
  };
  BackwardOptions bo;
  bo.inputs = p.inputViews();
  auto call = [&](const Kernel &k, const runtime::TensorView &q,
                  const runtime::TensorView &dout,
                  const runtime::TensorView &dq) {
    return k.backward(q, p.k.tensor.view(), p.v.tensor.view(), p.out.view(),
                      p.lse.view(), dout, dq, p.dk.view(), p.dv.view(), bo);
  };
  expectError(call(*forwardOnly, p.q.tensor.view(), p.dout.tensor.view(),
                   p.dq.view()),
              "CompileOptions::backward");
  // dout of the wrong shape; dq aliasing q.
  Tensor shortDout = Tensor::zeros(DType::F32, {1, 2, 19, 8}).value();
  expectError(call(*kernel, p.q.tensor.view(), shortDout.view(), p.dq.view()),
              "dout");
  expectError(call(*kernel, p.q.tensor.view(), p.dout.tensor.view(),
                   p.q.tensor.view()),
              "dq");
  // An lse that is not this forward's (another call's: shifted by 0.5).
  Tensor otherLse = Tensor::zeros(DType::F32, p.lse.shape()).value();
  for (int64_t i = 0; i < otherLse.numel(); ++i)
    otherLse.setFromDouble(i, p.lse.getAsDouble(i) + 0.5);
  expectError(kernel->backward(p.q.tensor.view(), p.k.tensor.view(),
                               p.v.tensor.view(), p.out.view(), otherLse.view(),
                               p.dout.tensor.view(), p.dq.view(), p.dk.view(),
                               p.dv.view(), bo),
              "lse does not belong to this forward");
  // A gradient for an int input.
  Tensor ddoc = Tensor::zeros(DType::F32, {30}).value();
  bo.inputGrads = {{"doc", ddoc.view()}};
  expectError(call(*kernel, p.q.tensor.view(), p.dout.tensor.view(),
                   p.dq.view()),
              "doc");
}

} // namespace
