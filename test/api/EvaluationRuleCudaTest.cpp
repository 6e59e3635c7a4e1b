//===- EvaluationRuleCudaTest.cpp - Evaluation rule, NaN rows on CUDA -----===//
//
// EvaluationRuleTest.cpp's cases for the CUDA kernels, which the CPU test
// cannot reach: run with --gpu (CompilerCudaTest.cpp's main), so on a GPU
// (ctest api-cuda-gpu) and on the CPU emulation of the emitted kernels with
// the fake driver (api-cuda-emulated: sm_80, tiles 64x64;
// api-cuda-emulated-sm90a: sm_90a, tiles 128x128). The specs are built into
// the emulation (test/CMakeLists.txt):
//   - examples/relative_bias.attn: rel[kv - q] is in range only on the
//     pairs the mask keeps, doc[q] only where `&&` evaluates it;
//   - cuda-emu/Inputs/rule_select.attn: `kv >= q ? rel[kv - q] : 0.0` on kept
//     pairs where the unchosen arm's index is negative;
//   - cuda-emu/Inputs/nan_rows.attn: +inf and NaN scores on kept pairs, and rows
//     with no kept pair;
//   - examples/gpt_oss_sinks.attn: a softmax sink, on rows with and without
//     kept keys;
//   - cuda-emu/Inputs/dropout_rows.attn, dropout_sink.attn: softmax(dropout
//     = p), alone with empty rows and with a causal mask and a sink, with
//     and without a seed (the reference draws the same mask).
// Each runs in bf16 and f16 with no error and agrees with the float64
// reference on the same rounded inputs; a NaN row has lse NaN (not -inf),
// a fully masked row out 0 and lse -inf.
//
//===----------------------------------------------------------------------===//
#include "attnc/Compiler.h"
#include "attnc/Runtime/Npy.h"
#include "bench-common/BenchCommon.h"

#include "../common/SpecReference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <optional>
#include <random>

using namespace attnc;
using runtime::Tensor;
namespace fs = std::filesystem;

namespace {

/// The kernel's results and the float64 reference's on the same data.
struct Outcome {
  Status status = Status::success();
  Tensor out, lse;
  std::vector<double> refOut, refLse;
};

/// Compiles `path` for CUDA (the device's arch), runs it on random q, k, v
/// of `dt` and `inputs` (a training call when `seed` is set), and computes
/// the reference of the rounded values with the same dropout seed.
Outcome runBoth(const fs::path &path, DType dt, const bench::Shape &s,
                const mlir::attn::NamedTensors &inputs,
                const std::optional<runtime::DropoutSeed> &seed = std::nullopt) {
  Outcome r;
  Compiler c;
  CompileOptions o;
  o.target = Target::CUDA;
  o.dtype = dt;
  Expected<Kernel> kernel = c.compileFile(path.string(), o);
  if (!kernel.ok()) {
    r.status = kernel.status();
    return r;
  }
  std::mt19937 rng(20261205);
  auto q = bench::randomOperand(dt, {s.B, s.HQ, s.LQ, s.D}, rng, -2, 2);
  auto k = bench::randomOperand(dt, {s.B, s.HKV, s.LK, s.D}, rng, -2, 2);
  auto v = bench::randomOperand(dt, {s.B, s.HKV, s.LK, s.DV}, rng, -1, 1);
  EXPECT_TRUE(q.ok() && k.ok() && v.ok());
  r.out = Tensor::zeros(dt, {s.B, s.HQ, s.LQ, s.DV}).value();
  r.lse = Tensor::zeros(DType::F32, {s.B, s.HQ, s.LQ}).value();
  // Poisoned, so an element the kernel does not write fails.
  for (int64_t i = 0; i < r.out.numel(); ++i)
    r.out.setFromDouble(i, 1234.0);
  for (int64_t i = 0; i < r.lse.numel(); ++i)
    r.lse.setFromDouble(i, 1234.0);
  TensorView lseView = r.lse.view();
  ForwardOptions fo;
  fo.lse = &lseView;
  fo.dropout = seed;
  for (const auto &[name, t] : inputs)
    fo.inputs.push_back({name, t.view()});
  r.status = kernel->forward(q->tensor.view(), k->tensor.view(),
                             v->tensor.view(), r.out.view(), fo);
  Expected<std::string> text = runtime::readFile(path.string());
  EXPECT_TRUE(text.ok()) << text.status().message();
  std::optional<mlir::attn::ReferenceProblem::Dropout> refDropout;
  if (seed)
    refDropout = mlir::attn::ReferenceProblem::Dropout{seed->seed, uint32_t(seed->offset), 0};
  std::string why = test::referenceOf(text.ok() ? *text : "", bench::problemSizes(s),
                                      inputs, q->values, k->values, v->values,
                                      r.refOut, r.refLse, refDropout);
  EXPECT_EQ(why, "") << "the reference fails";
  return r;
}

/// One input tensor whose element i is fill(i).
std::pair<std::string, Tensor> input(const std::string &name, DType dt,
                                     std::vector<int64_t> shape,
                                     const std::function<double(int64_t)> &fill) {
  Tensor t = Tensor::zeros(dt, std::move(shape)).value();
  for (int64_t i = 0; i < t.numel(); ++i)
    t.setFromDouble(i, fill(i));
  return {name, std::move(t)};
}

double ramp(int64_t i) { return std::sin(0.7 * double(i) + 0.3); }

/// Runs `path` in bf16 and f16: no error, out within 1e-2 (relative
/// Frobenius) and lse within 1e-3 of the reference; the `emptyRows` rows
/// the reference leaves empty are exactly 0 / -inf. `seed`: a training
/// call of a spec with softmax(dropout = p).
void expectMatches(const fs::path &path, const bench::Shape &s,
                   const mlir::attn::NamedTensors &inputs, int64_t emptyRows,
                   const std::optional<runtime::DropoutSeed> &seed = std::nullopt) {
  for (DType dt : {DType::BF16, DType::F16}) {
    SCOPED_TRACE(path.filename().string() + " " + runtime::dtypeName(dt) +
                 " " + s.str() + (seed ? " with a dropout seed" : ""));
    Outcome r = runBoth(path, dt, s, inputs, seed);
    ASSERT_TRUE(r.status.ok()) << r.status.message();
    ASSERT_EQ(r.refOut.size(), size_t(r.out.numel()));
    double num = 0, den = 0;
    for (int64_t i = 0; i < r.out.numel(); ++i) {
      double o = r.out.getAsDouble(i), ref = r.refOut[size_t(i)];
      ASSERT_FALSE(std::isnan(o)) << "out element " << i;
      num += (o - ref) * (o - ref);
      den += ref * ref;
    }
    ASSERT_GT(den, 0);
    EXPECT_LT(std::sqrt(num / den), 1e-2);
    int64_t empty = 0;
    for (int64_t row = 0; row < r.lse.numel(); ++row) {
      double l = r.lse.getAsDouble(row), ref = r.refLse[size_t(row)];
      if (ref == -INFINITY) {
        ++empty;
        EXPECT_EQ(l, -INFINITY) << "row " << row;
        for (int64_t d = 0; d < s.DV; ++d)
          EXPECT_EQ(r.out.getAsDouble(row * s.DV + d), 0.0) << "row " << row;
      } else {
        EXPECT_NEAR(l, ref, 1e-3 * (1 + std::abs(ref))) << "row " << row;
      }
    }
    EXPECT_EQ(empty, emptyRows);
  }
}

fs::path emuSpec(const char *name) {
  return fs::path(ATTNC_CUDA_EMU_SPECS_DIR) / name;
}

// The relative-bias spec: its table read is guarded by the mask
// (and by a ternary); rows q >= LK keep no pair, and doc[q] is read only
// for q < LK. Query and key tiles of 64 and of 128 see partial tiles.
TEST(CudaEvaluationRule, ReadGuardedByMask) {
  const int64_t LK = 150;
  mlir::attn::NamedTensors inputs;
  inputs.push_back(input("rel", DType::F32, {LK}, ramp));
  inputs.push_back(input("doc", DType::I32, {LK},
                         [](int64_t i) { return double(i / 37); }));
  bench::Shape s{1, 2, 1, 170, LK, 64, 64};
  const fs::path spec = fs::path(ATTNC_EXAMPLES_DIR) / "relative_bias.attn";
  expectMatches(spec, s, inputs, s.HQ * (s.LQ - LK));
  bench::Shape wide{1, 2, 2, 97, 150, 128, 128};
  expectMatches(spec, wide, inputs, 0);
}

// softmax(sink = sinks[h]) (examples/gpt_oss_sinks.attn, window 128): rows
// q >= LK + 127 keep no key, so they get out 0 and lse = their head's sink;
// the others' lse includes it. Sinks of both signs, one near the rows' lse.
TEST(CudaSinks, MatchTheReference) {
  mlir::attn::NamedTensors inputs;
  inputs.push_back(input("sinks", DType::F32, {4},
                         [](int64_t i) { return 1.5 * double(i) - 2.0; }));
  bench::Shape s{1, 4, 2, 300, 140, 64, 64};
  expectMatches(fs::path(ATTNC_EXAMPLES_DIR) / "gpt_oss_sinks.attn", s,
                inputs, 0);
}

// softmax(dropout = p): a call with a seed keeps pair (b, h, q, kv) scaled
// by 1 / (1 - p) where Dropout.h says so, as the float64 reference does from
// the same seed and offset, with the row sums and lse of the whole P; a call
// without one is plain softmax. dropout_rows: rows q < 3 keep no key (out 0,
// lse -inf); LQ != LK, GQA and DV != D, with partial tiles. dropout_sink:
// causal with a sink (the row sums and lse include it), D != DV. Offsets
// above 2^31 and seeds using both key words.
TEST(CudaDropout, MatchTheReference) {
  const runtime::DropoutSeed seed{0x9e3779b97f4a7c15ull, 0x80000007ull};
  bench::Shape s{2, 4, 2, 131, 97, 64, 128};
  const fs::path rows = emuSpec("dropout_rows.attn");
  expectMatches(rows, s, {}, s.B * s.HQ * 3, seed);
  expectMatches(rows, s, {}, s.B * s.HQ * 3);
  // The seed changes out (about 30% of the pairs go) but not lse.
  Outcome on = runBoth(rows, DType::BF16, s, {}, seed), off = runBoth(rows, DType::BF16, s, {});
  ASSERT_TRUE(on.status.ok() && off.status.ok());
  double num = 0, den = 0;
  for (int64_t i = 0; i < on.out.numel(); ++i) {
    const double d = on.out.getAsDouble(i) - off.out.getAsDouble(i);
    num += d * d;
    den += off.out.getAsDouble(i) * off.out.getAsDouble(i);
  }
  EXPECT_GT(std::sqrt(num / den), 0.1);
  for (int64_t row = 0; row < on.lse.numel(); ++row)
    EXPECT_EQ(on.lse.getAsDouble(row), off.lse.getAsDouble(row)) << "row " << row;
  mlir::attn::NamedTensors inputs;
  inputs.push_back(input("sinks", DType::F32, {3},
                         [](int64_t i) { return 1.25 * double(i) - 1.0; }));
  bench::Shape c{1, 3, 3, 150, 201, 128, 64};
  const fs::path sink = emuSpec("dropout_sink.attn");
  expectMatches(sink, c, inputs, 0, runtime::DropoutSeed{42, 3});
  expectMatches(sink, c, inputs, 0);
  // A seed for a spec without dropout, or an offset past 32 bits, is
  // refused before anything runs.
  for (bool hasDropout : {false, true}) {
    const fs::path path = hasDropout ? rows : emuSpec("nan_rows.attn");
    const runtime::DropoutSeed bad = hasDropout ? runtime::DropoutSeed{1, 1ull << 32} : seed;
    inputs.clear();
    if (!hasDropout) { // nan_rows' inputs
      inputs.push_back(input("rb", DType::F32, {s.LQ}, ramp));
      inputs.push_back(input("kb", DType::F32, {s.LK}, ramp));
    }
    Compiler comp;
    CompileOptions o;
    o.target = Target::CUDA;
    o.dtype = DType::BF16;
    Expected<Kernel> kernel = comp.compileFile(path.string(), o);
    ASSERT_TRUE(kernel.ok()) << kernel.status().message();
    Tensor q = Tensor::zeros(DType::BF16, {s.B, s.HQ, s.LQ, s.D}).value();
    Tensor k = Tensor::zeros(DType::BF16, {s.B, s.HKV, s.LK, s.D}).value();
    Tensor v = Tensor::zeros(DType::BF16, {s.B, s.HKV, s.LK, s.DV}).value();
    Tensor out = Tensor::zeros(DType::BF16, {s.B, s.HQ, s.LQ, s.DV}).value();
    ForwardOptions fo;
    fo.dropout = bad;
    for (const auto &[name, t] : inputs)
      fo.inputs.push_back({name, t.view()});
    Status st = kernel->forward(q.view(), k.view(), v.view(), out.view(), fo);
    EXPECT_FALSE(st.ok()) << path;
    EXPECT_NE(st.message().find("dropout"), std::string::npos) << st.message();
  }
}

// `c ? t[i] : 0` whose unchosen arm would read rel[-1..-40] on kept pairs.
TEST(CudaEvaluationRule, ReadInUnchosenArm) {
  const int64_t LK = 130;
  mlir::attn::NamedTensors inputs;
  inputs.push_back(input("rel", DType::F32, {LK}, ramp));
  // LQ > LK + 40: the last rows keep no pair. DV != D.
  bench::Shape s{1, 2, 2, 180, LK, 64, 128};
  expectMatches(emuSpec("rule_select.attn"), s, inputs,
                s.HQ * (s.LQ - (LK + 40)));
}

// +inf (rows 9, 100) and NaN (row 20) in rb, NaN in kb[LK - 1] (kept by
// rows >= LK + 4): those rows' out and lse are NaN; rows < 5 are 0/-inf.
TEST(CudaNanRows, LseIsNanToo) {
  const int64_t LQ = 150, LK = 130;
  mlir::attn::NamedTensors inputs;
  inputs.push_back(input("rb", DType::F32, {LQ}, [](int64_t i) {
    return i == 9 || i == 100 ? INFINITY : i == 20 ? NAN : 0.1;
  }));
  inputs.push_back(input("kb", DType::F32, {LK}, [](int64_t i) {
    return i == LK - 1 ? NAN : 0.0;
  }));
  bench::Shape s{1, 1, 1, LQ, LK, 64, 64};
  for (DType dt : {DType::BF16, DType::F16}) {
    SCOPED_TRACE(runtime::dtypeName(dt));
    Outcome r = runBoth(emuSpec("nan_rows.attn"), dt, s, inputs);
    ASSERT_TRUE(r.status.ok()) << r.status.message();
    for (int64_t q = 0; q < LQ; ++q) {
      SCOPED_TRACE("row " + std::to_string(q));
      bool nanRow = q == 9 || q == 20 || q == 100 || q >= LK + 4;
      bool empty = q < 5;
      double lse = r.lse.getAsDouble(q), ref = r.refLse[size_t(q)];
      if (nanRow) {
        EXPECT_TRUE(std::isnan(lse)) << lse;
        EXPECT_TRUE(std::isnan(ref)) << ref;
      } else if (empty) {
        EXPECT_EQ(lse, -INFINITY);
        EXPECT_EQ(ref, -INFINITY);
      } else {
        EXPECT_NEAR(lse, ref, 1e-3 * (1 + std::abs(ref)));
      }
      for (int64_t d = 0; d < s.DV; ++d) {
        double o = r.out.getAsDouble(q * s.DV + d);
        double want = r.refOut[size_t(q * s.DV + d)];
        if (nanRow) {
          EXPECT_TRUE(std::isnan(o)) << o;
          EXPECT_TRUE(std::isnan(want)) << want;
        } else if (empty) {
          EXPECT_EQ(o, 0.0);
          EXPECT_EQ(want, 0.0);
        } else {
          EXPECT_NEAR(o, want, 2e-2);
        }
      }
    }
  }
}

} // namespace
