//===- EvaluationRuleTest.cpp - The language's evaluation rule, NaN rows --===//
//
// The evaluation rule (DESIGN.md, docs/design.md): `score` and every input
// read are evaluated only on pairs the mask keeps, `c ? a : b` evaluates
// only the chosen arm and `a && b` / `a || b` their right operand only
// where the left one does not decide, so a read the mask or a condition
// guards never fails, and the result never depends on the tile sizes. Each
// spec below reads in range only under that rule; it must run on the CPU
// kernel at tiles 16, 32, 64 and the tuned ones, f32 and bf16, and agree
// with the float64 reference (whose interpreter follows the same rule),
// while a truly out-of-range read on a kept pair is still reported.
// NaN rows: a +inf or NaN score on a kept pair gives out and lse NaN, a
// fully masked row out 0 and lse -inf.
//
//===----------------------------------------------------------------------===//
#include "attnc/Compiler.h"
#include "attnc/Reference/TensorInputs.h"

#include "../common/SpecReference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <random>

using namespace attnc;
using runtime::Tensor;

namespace {

struct Sizes {
  int64_t B, HQ, HKV, LQ, LK, D, DV;
};

/// One input: its dtype, shape and how element i is filled.
struct InputSpec {
  runtime::DType dtype;
  std::vector<int64_t> shape;
  std::function<double(int64_t)> fill;
};

struct RunResult {
  Status status = Status::success();
  Tensor out, lse;
};

/// Runs `text` on the CPU with tiles (tq, tk) (0: tuned) on random q, k, v.
RunResult runKernel(const std::string &text, DType dtype, int64_t tq, int64_t tk,
                    const Sizes &s, const mlir::attn::NamedTensors &inputs,
                    std::vector<double> &qv, std::vector<double> &kv,
                    std::vector<double> &vv) {
  Compiler compiler;
  CompileOptions opts;
  opts.dtype = dtype;
  opts.tileQ = tq;
  opts.tileK = tk;
  auto kernel = compiler.compile(text, opts, "rule.attn");
  EXPECT_TRUE(kernel.ok()) << kernel.status().message();
  RunResult r;
  if (!kernel.ok()) {
    r.status = kernel.status();
    return r;
  }
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-1, 1);
  auto make = [&](std::vector<int64_t> shape, std::vector<double> &vals) {
    Tensor t = Tensor::zeros(dtype, shape).value();
    vals.resize(t.numel());
    for (int64_t i = 0; i < t.numel(); ++i) {
      t.setFromDouble(i, u(rng));
      vals[i] = t.getAsDouble(i);
    }
    return t;
  };
  Tensor q = make({s.B, s.HQ, s.LQ, s.D}, qv), k = make({s.B, s.HKV, s.LK, s.D}, kv),
         v = make({s.B, s.HKV, s.LK, s.DV}, vv);
  r.out = Tensor::zeros(dtype, {s.B, s.HQ, s.LQ, s.DV}).value();
  r.lse = Tensor::zeros(DType::F32, {s.B, s.HQ, s.LQ}).value();
  for (int64_t i = 0; i < r.out.numel(); ++i)
    r.out.setFromDouble(i, 12345.0);
  for (int64_t i = 0; i < r.lse.numel(); ++i)
    r.lse.setFromDouble(i, 12345.0);
  ForwardOptions fo;
  TensorView lseView = r.lse.view();
  if (!kernel->info().sigmoid)
    fo.lse = &lseView;
  for (auto &[name, t] : inputs)
    fo.inputs.push_back({name, t.view()});
  r.status = kernel->forward(q.view(), k.view(), v.view(), r.out.view(), fo);
  return r;
}

mlir::attn::NamedTensors makeInputs(const std::map<std::string, InputSpec> &specs) {
  mlir::attn::NamedTensors out;
  for (auto &[name, in] : specs) {
    Tensor t = Tensor::zeros(in.dtype, in.shape).value();
    for (int64_t i = 0; i < t.numel(); ++i)
      t.setFromDouble(i, in.fill(i));
    out.emplace_back(name, std::move(t));
  }
  return out;
}

/// The float64 reference of `text` on the same data; "" or its error.
std::string reference(const std::string &text, const Sizes &s,
                      const mlir::attn::NamedTensors &inputs,
                      const std::vector<double> &qv, const std::vector<double> &kv,
                      const std::vector<double> &vv, std::vector<double> &out,
                      std::vector<double> &lse) {
  mlir::attn::ProblemSizes sizes;
  sizes.B = s.B, sizes.HQ = s.HQ, sizes.HKV = s.HKV, sizes.LQ = s.LQ,
  sizes.LK = s.LK, sizes.D = s.D, sizes.DV = s.DV;
  return attnc::test::referenceOf(text, sizes, inputs, qv, kv, vv, out, lse);
}

/// The tile sizes of the rule: 16, 32, 64 (square and mixed) and tuned.
const std::pair<int64_t, int64_t> kTiles[] = {{16, 16}, {32, 32}, {64, 64},
                                              {16, 64}, {64, 32}, {0, 0}};

/// `text` runs at every tile size and dtype and matches the reference.
void expectRuns(const std::string &text, const Sizes &s,
                const std::map<std::string, InputSpec> &specs) {
  auto inputs = makeInputs(specs);
  for (DType dtype : {DType::F32, DType::BF16})
    for (auto [tq, tk] : kTiles) {
      SCOPED_TRACE(std::string(runtime::dtypeName(dtype)) + " tiles " + std::to_string(tq) +
                   "x" + std::to_string(tk));
      std::vector<double> qv, kv, vv, ref, refLse;
      RunResult r = runKernel(text, dtype, tq, tk, s, inputs, qv, kv, vv);
      ASSERT_TRUE(r.status.ok()) << r.status.message();
      ASSERT_EQ(reference(text, s, inputs, qv, kv, vv, ref, refLse), "");
      double num = 0, den = 0;
      for (int64_t i = 0; i < r.out.numel(); ++i) {
        double o = r.out.getAsDouble(i);
        ASSERT_FALSE(std::isnan(o)) << "element " << i;
        num += (o - ref[i]) * (o - ref[i]);
        den += ref[i] * ref[i];
      }
      ASSERT_GT(den, 0);
      EXPECT_LT(std::sqrt(num / den), dtype == DType::F32 ? 1e-5 : 1e-2);
      for (int64_t i = 0; i < r.lse.numel(); ++i) {
        if (std::isnan(refLse[i])) // sigmoid: no lse
          continue;
        double l = r.lse.getAsDouble(i);
        if (std::isinf(refLse[i]))
          EXPECT_EQ(l, refLse[i]) << "lse " << i;
        else
          EXPECT_NEAR(l, refLse[i], 1e-4 * (1 + std::abs(refLse[i]))) << "lse " << i;
      }
    }
}

/// `text` fails at every tile size, in the kernel and in the reference,
/// with a message containing `what`.
void expectFails(const std::string &text, const Sizes &s,
                 const std::map<std::string, InputSpec> &specs, const std::string &what) {
  auto inputs = makeInputs(specs);
  for (auto [tq, tk] : kTiles) {
    SCOPED_TRACE("tiles " + std::to_string(tq) + "x" + std::to_string(tk));
    std::vector<double> qv, kv, vv, ref, refLse;
    RunResult r = runKernel(text, DType::F32, tq, tk, s, inputs, qv, kv, vv);
    ASSERT_FALSE(r.status.ok());
    EXPECT_NE(r.status.message().find(what), std::string::npos) << r.status.message();
    EXPECT_NE(reference(text, s, inputs, qv, kv, vv, ref, refLse), "");
  }
}

std::function<double(int64_t)> ramp(double scale) {
  return [scale](int64_t i) { return scale * std::sin(0.7 * double(i) + 0.3); };
}

// Relative position bias over a causal (upper) mask: rel[kv - q] is in
// range exactly on the kept pairs kv >= q (LQ = LK).
const char *kRelativeBias = R"(
attention relbias {
  input rel: float[LK]
  score = score + rel[kv - q]
  mask = kv >= q
}
)";

TEST(EvaluationRule, ReadGuardedByMask) {
  Sizes s{2, 2, 1, 77, 77, 16, 24};
  expectRuns(kRelativeBias, s, {{"rel", {DType::F32, {77}, ramp(1.0)}}});
}

// The same read, guarded by a ternary instead of the mask.
TEST(EvaluationRule, ReadInUnchosenArm) {
  Sizes s{1, 2, 2, 70, 90, 8, 8};
  expectRuns(R"(
attention relbias_select {
  input rel: float[LK]
  score = kv >= q ? score + rel[kv - q] : score - 1.0
  mask = kv + 40 >= q
}
)",
             s, {{"rel", {DType::F32, {90}, ramp(1.0)}}});
}

// Nested arms, an index read from another input (t[idx[kv]] needs idx[kv]
// in range first) and a division by zero in an unchosen arm.
TEST(EvaluationRule, NestedArmsAndDivision) {
  Sizes s{1, 1, 1, 65, 100, 8, 8};
  expectRuns(R"(
attention nested {
  input idx: int[LK]
  input t: float[64]
  score = kv < 64 ? (idx[kv] >= 0 ? score + t[idx[kv]] : score)
                  : (kv < 0 ? score + float(q / (kv - kv)) : score)
  mask = kv <= q + 40
}
)",
             s,
             {{"idx", {DType::I64, {100}, [](int64_t i) { return i % 7 == 3 ? -1 : (i * 5) % 64; }}},
              {"t", {DType::F32, {64}, ramp(2.0)}}});
}

// A mask that reads document ids only where the row has one (LQ > LK):
// `&&` evaluates its right operand only where the left one is true.
TEST(EvaluationRule, MaskShortCircuit) {
  Sizes s{1, 2, 1, 100, 60, 16, 16};
  expectRuns(R"(
attention docs {
  input doc: int[LK]
  mask = q < LK && doc[q] == doc[kv]
}
)",
             s, {{"doc", {DType::I64, {60}, [](int64_t i) { return double(i / 13); }}}});
  expectRuns(R"(
attention docs_or {
  input doc: int[LK]
  mask = q >= LK || doc[q] == doc[kv]
}
)",
             s, {{"doc", {DType::I64, {60}, [](int64_t i) { return double(i / 13); }}}});
}

// Bitwise operators and shifts: & | ^ on negative values (two's
// complement), shifts by counts read from an input, and a shift by an
// out-of-range count in an arm that is never chosen (no error).
TEST(EvaluationRule, BitwiseAndShifts) {
  Sizes s{2, 3, 1, 37, 53, 8, 8};
  expectRuns(R"(
attention bits {
  input sh: int[HQ]
  score = score + 0.1 * float(((q - kv) ^ kv) & 7) - 0.01 * float((q - kv) >> sh[h])
          + (kv < 0 ? float(q << (kv + 70)) : 0.0) + 0.001 * float(-5 | (kv << 2))
  mask = (q & 1) == (kv & 1) || kv <= q
}
)",
             s, {{"sh", {DType::I64, {3}, [](int64_t i) { return double(i * 2); }}}});
}

// Sigmoid: the bias region is evaluated on kept pairs only, so an
// infinite bias where the mask drops changes nothing.
TEST(EvaluationRule, SigmoidBiasOnKeptPairs) {
  Sizes s{1, 1, 1, 50, 50, 8, 8};
  expectRuns(R"(
attention sig {
  input hb: float[LK]
  input rel: float[LK]
  score = score + rel[q - kv]
  mask = kv <= q
  normalize = sigmoid(bias = hb[q - kv])
}
)",
             s,
             {{"hb", {DType::F32, {50}, [](int64_t i) { return i % 5 == 4 ? INFINITY : -1.0; }}},
              {"rel", {DType::F32, {50}, ramp(1.0)}}});
}

// Still an error: a read out of range on a kept pair (rel[kv - q + 1] at
// kv = LK - 1), a division by zero in a chosen arm, a bad index in a mask.
TEST(EvaluationRule, KeptPairsStillReport) {
  Sizes s{1, 1, 1, 77, 77, 16, 16};
  std::map<std::string, InputSpec> rel = {{"rel", {DType::F32, {77}, ramp(1.0)}}};
  expectFails(R"(
attention off_by_one {
  input rel: float[LK]
  score = score + rel[kv - q + 1]
  mask = kv >= q
}
)",
              s, rel, "index 77");
  expectFails(R"(
attention chosen_div {
  input rel: float[LK]
  score = kv == q ? score + float(1 / (kv - q)) : score + rel[kv - q]
  mask = kv >= q
}
)",
              s, rel, "by zero");
  expectFails(R"(
attention mask_read {
  input rel: float[LK]
  mask = rel[q - kv] > 0.0 || kv >= q
}
)",
              s, rel, "index -");
  for (double count : {64.0, -1.0})
    expectFails(R"(
attention bad_shift {
  input sh: int[HQ]
  score = score + float(kv >> sh[h])
  mask = kv >= q
}
)",
                s, {{"sh", {DType::I64, {1}, [=](int64_t) { return count; }}}},
                "by " + std::to_string(int64_t(count)) + ", outside [0, 63]");
}

// NaN rows: +inf or NaN on a kept pair makes the row's out and lse NaN;
// on a dropped pair it changes nothing; a row with no kept pair is 0/-inf.
TEST(NanRows, LseIsNanToo) {
  const int64_t LQ = 40, LK = 30;
  Sizes s{1, 1, 1, LQ, LK, 8, 8};
  const char *text = R"(
attention nanrows {
  input rb: float[LQ]
  input kb: float[LK]
  score = score + rb[q] + kb[kv]
  mask = kv <= q - 5
}
)";
  // Rows 9 and 20 get +inf and NaN; kb[29] is NaN, kept only by rows >= 34.
  auto inputs = makeInputs(
      {{"rb", {DType::F32, {LQ}, [](int64_t i) { return i == 9 ? INFINITY : i == 20 ? NAN : 0.1; }}},
       {"kb", {DType::F32, {LK}, [](int64_t i) { return i == LK - 1 ? NAN : 0.0; }}}});
  for (auto [tq, tk] : kTiles) {
    SCOPED_TRACE("tiles " + std::to_string(tq) + "x" + std::to_string(tk));
    std::vector<double> qv, kv, vv, ref, refLse;
    RunResult r = runKernel(text, DType::F32, tq, tk, s, inputs, qv, kv, vv);
    ASSERT_TRUE(r.status.ok()) << r.status.message();
    ASSERT_EQ(reference(text, s, inputs, qv, kv, vv, ref, refLse), "");
    for (int64_t q = 0; q < LQ; ++q) {
      bool nanRow = q == 9 || q == 20 || q >= LK - 1 + 5, empty = q < 5;
      double lse = r.lse.getAsDouble(q);
      SCOPED_TRACE("row " + std::to_string(q));
      if (nanRow) {
        EXPECT_TRUE(std::isnan(lse)) << lse;
        EXPECT_TRUE(std::isnan(refLse[q])) << refLse[q];
      } else if (empty) {
        EXPECT_EQ(lse, -INFINITY);
        EXPECT_EQ(refLse[q], -INFINITY);
      } else {
        EXPECT_NEAR(lse, refLse[q], 1e-4 * (1 + std::abs(refLse[q])));
      }
      for (int64_t d = 0; d < s.DV; ++d) {
        double o = r.out.getAsDouble(q * s.DV + d);
        if (nanRow) {
          EXPECT_TRUE(std::isnan(o));
          EXPECT_TRUE(std::isnan(ref[q * s.DV + d]));
        } else if (empty) {
          EXPECT_EQ(o, 0.0);
          EXPECT_EQ(ref[q * s.DV + d], 0.0);
        } else {
          EXPECT_NEAR(o, ref[q * s.DV + d], 1e-4);
        }
      }
    }
  }
}

} // namespace
