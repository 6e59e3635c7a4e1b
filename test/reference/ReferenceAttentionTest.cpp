//===- ReferenceAttentionTest.cpp - The float64 oracle against closed forms ===//
//
// The reference is what every kernel will be judged by, so it is checked
// here against cases with closed-form answers and against an independent
// direct implementation of a variant with scale, score and mask clauses.
//
//===----------------------------------------------------------------------===//
#include "attnc/Driver.h"
#include "attnc/Reference/ReferenceAttention.h"

#include "llvm/Support/raw_ostream.h"
#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace mlir;
using namespace mlir::attn;

namespace {

struct Spec {
  std::string errors;
  llvm::raw_string_ostream errorStream{errors};
  attnc::Driver driver{errorStream};
  OwningOpRef<ModuleOp> module;
  SpecOp op() { return *module->getOps<SpecOp>().begin(); }
};

std::unique_ptr<Spec> load(const std::string &text) {
  auto s = std::make_unique<Spec>();
  s->module = s->driver.loadSpecText("test.attn", text, {});
  EXPECT_TRUE(s->module) << s->errors;
  if (s->module)
    EXPECT_TRUE(succeeded(s->driver.runSpecPipeline(*s->module)));
  return s;
}

struct Data {
  ProblemSizes sizes;
  std::vector<double> q, k, v;
  Data(int64_t B, int64_t HQ, int64_t HKV, int64_t LQ, int64_t LK, int64_t D,
       int64_t DV, uint32_t seed) {
    sizes.B = B, sizes.HQ = HQ, sizes.HKV = HKV, sizes.LQ = LQ, sizes.LK = LK,
    sizes.D = D, sizes.DV = DV;
    std::mt19937 rng(seed);
    std::normal_distribution<double> n(0.0, 1.0);
    q.resize(B * HQ * LQ * D);
    k.resize(B * HKV * LK * D);
    v.resize(B * HKV * LK * DV);
    for (auto *t : {&q, &k, &v})
      for (double &x : *t)
        x = n(rng);
  }
  ReferenceProblem problem() const {
    ReferenceProblem p;
    p.sizes = sizes;
    p.q = q.data(), p.k = k.data(), p.v = v.data();
    return p;
  }
};

TEST(ReferenceAttention, SingleKeyReturnsItsValue) {
  auto s = load("attention full { }");
  Data d(1, 2, 2, 3, 1, 5, 4, 1);
  std::vector<double> out, lse;
  ASSERT_EQ(referenceAttention(s->op(), d.problem(), out, lse), "");
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t q = 0; q < 3; ++q) {
      double dot = 0;
      for (int64_t i = 0; i < 5; ++i)
        dot += d.q[(h * 3 + q) * 5 + i] * d.k[h * 5 + i];
      EXPECT_NEAR(lse[h * 3 + q], dot / std::sqrt(5.0), 1e-12);
      for (int64_t i = 0; i < 4; ++i)
        EXPECT_DOUBLE_EQ(out[(h * 3 + q) * 4 + i], d.v[h * 4 + i]);
    }
}

TEST(ReferenceAttention, ZeroQueriesAverageTheKeptValues) {
  auto s = load("attention causal { mask = q >= kv }");
  Data d(1, 1, 1, 6, 6, 3, 2, 2);
  std::fill(d.q.begin(), d.q.end(), 0.0);
  std::vector<double> out, lse;
  ASSERT_EQ(referenceAttention(s->op(), d.problem(), out, lse), "");
  for (int64_t q = 0; q < 6; ++q) {
    EXPECT_NEAR(lse[q], std::log(double(q + 1)), 1e-12);
    for (int64_t i = 0; i < 2; ++i) {
      double mean = 0;
      for (int64_t kv = 0; kv <= q; ++kv)
        mean += d.v[kv * 2 + i];
      EXPECT_NEAR(out[q * 2 + i], mean / double(q + 1), 1e-12);
    }
  }
}

TEST(ReferenceAttention, FullyMaskedRowsAreZeroWithLseMinusInfinity) {
  // Bottom-right causal with LQ > LK: the first LQ - LK rows see nothing.
  auto s = load("attention cc { mask = q + (LK - LQ) >= kv }");
  Data d(2, 2, 1, 7, 3, 4, 4, 3);
  std::vector<double> out, lse;
  ASSERT_EQ(referenceAttention(s->op(), d.problem(), out, lse), "");
  for (int64_t row = 0; row < 2 * 2; ++row)
    for (int64_t q = 0; q < 7; ++q) {
      bool empty = q < 4;
      double l = lse[row * 7 + q];
      EXPECT_EQ(empty, std::isinf(l) && l < 0) << q;
      for (int64_t i = 0; i < 4; ++i) {
        EXPECT_FALSE(std::isnan(out[(row * 7 + q) * 4 + i]));
        if (empty)
          EXPECT_EQ(out[(row * 7 + q) * 4 + i], 0.0);
      }
    }
}

TEST(ReferenceAttention, SigmoidHasNoRowSum) {
  auto s = load("attention sig { normalize = sigmoid }");
  Data d(1, 1, 1, 2, 5, 3, 3, 4);
  std::fill(d.q.begin(), d.q.end(), 0.0);
  std::vector<double> out, lse;
  ASSERT_EQ(referenceAttention(s->op(), d.problem(), out, lse), "");
  // score 0, bias -log(LK): p = 1 / (1 + LK) for every key.
  for (int64_t q = 0; q < 2; ++q) {
    EXPECT_TRUE(std::isnan(lse[q]));
    for (int64_t i = 0; i < 3; ++i) {
      double sum = 0;
      for (int64_t kv = 0; kv < 5; ++kv)
        sum += d.v[kv * 3 + i];
      EXPECT_NEAR(out[q * 3 + i], sum / 6.0, 1e-12);
    }
  }
}

// An independent, direct implementation of a Gemma-2 style layer with GQA,
// DV != D and LQ != LK, compared element by element.
TEST(ReferenceAttention, MatchesADirectImplementation) {
  auto s = load("attention g {\n"
                "  param window: int = 5\n"
                "  param cap: float = 2.5\n"
                "  input slopes: float[HQ]\n"
                "  scale = 0.3\n"
                "  score = cap * tanh(score / cap) - slopes[h] * float(q - kv)\n"
                "  mask = q >= kv && q - kv < window\n"
                "}\n");
  const int64_t B = 2, HQ = 4, HKV = 2, LQ = 9, LK = 11, D = 3, DV = 5;
  Data d(B, HQ, HKV, LQ, LK, D, DV, 5);
  std::vector<double> slopes = {0.5, 0.25, 0.125, 0.0625};
  ReferenceProblem p = d.problem();
  p.inputs = [&](StringRef name, ArrayRef<int64_t> idx) -> std::optional<Scalar> {
    if (name != "slopes" || idx.size() != 1 || idx[0] < 0 || idx[0] >= HQ)
      return std::nullopt;
    // The kernel reads float inputs: round like f32 storage would.
    return Scalar::ofFloat(float(slopes[idx[0]]));
  };
  std::vector<double> out, lse;
  ASSERT_EQ(referenceAttention(s->op(), p, out, lse), "");
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < HQ; ++h)
      for (int64_t q = 0; q < LQ; ++q) {
        int64_t hkv = h / (HQ / HKV);
        std::vector<double> sc(LK, -INFINITY);
        double m = -INFINITY;
        for (int64_t kv = 0; kv < LK; ++kv) {
          if (!(q >= kv && q - kv < 5))
            continue;
          double dot = 0;
          for (int64_t i = 0; i < D; ++i)
            dot += d.q[((b * HQ + h) * LQ + q) * D + i] *
                   d.k[((b * HKV + hkv) * LK + kv) * D + i];
          double x = double(0.3f) * dot;
          sc[kv] = 2.5 * std::tanh(x / 2.5) - slopes[h] * double(q - kv);
          m = std::max(m, sc[kv]);
        }
        double l = 0;
        std::vector<double> o(DV, 0.0);
        for (int64_t kv = 0; kv < LK; ++kv) {
          if (sc[kv] == -INFINITY)
            continue;
          double e = std::exp(sc[kv] - m);
          l += e;
          for (int64_t i = 0; i < DV; ++i)
            o[i] += e * d.v[((b * HKV + hkv) * LK + kv) * DV + i];
        }
        int64_t row = (b * HQ + h) * LQ + q;
        EXPECT_NEAR(lse[row], m + std::log(l), 1e-12);
        for (int64_t i = 0; i < DV; ++i)
          EXPECT_NEAR(out[row * DV + i], o[i] / l, 1e-12);
      }
}

// The row filter (checks on a sample) computes exactly the accepted rows,
// as the full run does, leaves the others NaN, and counts their kept pairs.
TEST(ReferenceAttention, RowFilterAndKeptPairs) {
  auto s = load("attention causal { mask = q >= kv }");
  const int64_t B = 2, HQ = 2, LQ = 6, DV = 3;
  Data d(B, HQ, 1, LQ, LQ, 4, DV, 8);
  std::vector<double> full, fullLse, out, lse;
  int64_t kept = -1;
  ReferenceProblem p = d.problem();
  p.keptPairs = &kept;
  ASSERT_EQ(referenceAttention(s->op(), p, full, fullLse), "");
  EXPECT_EQ(kept, B * HQ * 21); // 1 + 2 + ... + 6 per head
  auto accepted = [](int64_t b, int64_t h, int64_t q) {
    return b == 1 && h == 0 && q % 2 == 1;
  };
  p.rows = accepted;
  ASSERT_EQ(referenceAttention(s->op(), p, out, lse), "");
  EXPECT_EQ(kept, 2 + 4 + 6);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < HQ; ++h)
      for (int64_t q = 0; q < LQ; ++q) {
        int64_t row = (b * HQ + h) * LQ + q;
        bool in = accepted(b, h, q);
        EXPECT_EQ(std::isnan(lse[row]), !in);
        if (in)
          EXPECT_EQ(lse[row], fullLse[row]);
        for (int64_t i = 0; i < DV; ++i) {
          if (in)
            EXPECT_EQ(out[row * DV + i], full[row * DV + i]);
          else
            EXPECT_TRUE(std::isnan(out[row * DV + i]));
        }
      }
}

TEST(ReferenceAttention, ReportsOutOfRangeReads) {
  auto s = load("attention w {\n  input win: int[HQ]\n"
                "  mask = q - kv < win[h + 1]\n}\n");
  Data d(1, 2, 2, 3, 3, 2, 2, 6);
  ReferenceProblem p = d.problem();
  p.inputs = [](StringRef, ArrayRef<int64_t> idx) -> std::optional<Scalar> {
    if (idx[0] < 0 || idx[0] >= 2)
      return std::nullopt;
    return Scalar::ofInt(2);
  };
  std::vector<double> out, lse;
  EXPECT_EQ(referenceAttention(s->op(), p, out, lse),
            "cannot read input 'win' at index [2]");
}

TEST(ReferenceAttention, RejectsBadSizes) {
  auto s = load("attention full { }");
  Data d(1, 3, 2, 2, 2, 2, 2, 7);
  std::vector<double> out, lse;
  EXPECT_NE(referenceAttention(s->op(), d.problem(), out, lse), "");
}

} // namespace
