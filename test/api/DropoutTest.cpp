//===- DropoutTest.cpp - softmax(dropout = p) on the CPU against float64 --===//
//
// A training call (a seed and an offset) drops the pairs Dropout.h's
// Philox draw says, and equals the float64 reference that regenerates the
// same mask, over odd sizes, LQ != LK, GQA, DV != D, fully masked rows and
// a sink, at f32 and bf16 and on every microkernel path; a call without a
// seed is plain softmax; the mask is one function of (seed, offset, b, h,
// q, kv): the same under another thread count, a split of the keys
// (decode), a sequence window, or a varlen batch; and bad seeds are errors.
//
//===----------------------------------------------------------------------===//
#include "attnc/Compiler.h"
#include "attnc/Reference/ReferenceAttention.h"
#include "attnc/Runtime/Dropout.h"
#include "attnc/Runtime/Microkernels.h"

#include "../common/RandomTensors.h"
#include "../common/SpecReference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

using namespace attnc;
using namespace attnc::test;
using runtime::DType;
using runtime::Tensor;

namespace {

// A causal mask shifted by 3 (rows q < 3 keep no key), a per-head sink,
// and dropout 0.3.
const char *kSpec = "attention drop {\n"
                    "  param p: float = 0.3\n"
                    "  input sinks: float[HQ]\n"
                    "  mask = kv <= q - 3\n"
                    "  normalize = softmax(sink = sinks[h], dropout = p)\n}\n";

const Shape kShapes[] = {
    {1, 1, 1, 1, 1, 16, 16},   {3, 4, 2, 17, 64, 17, 59}, {1, 8, 1, 113, 37, 59, 16},
    {2, 4, 2, 203, 256, 64, 64}, {1, 2, 1, 300, 300, 64, 64},
};

/// One problem's tensors and the reference's view of them.
struct Problem {
  Shape s;
  Operand q, k, v;
  Tensor sinks;
  Problem(const Shape &shape, DType dtype, std::mt19937 &rng)
      : s(shape), q(randomOperand(dtype, {s.B, s.HQ, s.LQ, s.D}, rng, -2, 2)),
        k(randomOperand(dtype, {s.B, s.HKV, s.LK, s.D}, rng, -2, 2)),
        v(randomOperand(dtype, {s.B, s.HKV, s.LK, s.DV}, rng, -1, 1)),
        sinks(Tensor::zeros(DType::F32, {s.HQ}).value()) {
    std::uniform_real_distribution<double> u(-1, 1);
    for (int64_t h = 0; h < s.HQ; ++h)
      sinks.setFromDouble(h, u(rng));
  }
  mlir::attn::ProblemSizes sizes() const {
    mlir::attn::ProblemSizes p;
    p.B = s.B, p.HQ = s.HQ, p.HKV = s.HKV, p.LQ = s.LQ, p.LK = s.LK, p.D = s.D, p.DV = s.DV;
    return p;
  }
  /// Runs \p kernel; out and lse are NaN-poisoned first.
  Status run(const Kernel &kernel, Tensor &out, Tensor &lse,
             std::optional<runtime::DropoutSeed> seed, ForwardOptions fo = {}) {
    out = Tensor::zeros(out.dtype(), {s.B, s.HQ, s.LQ, s.DV}).value();
    lse = Tensor::zeros(DType::F32, {s.B, s.HQ, s.LQ}).value();
    for (int64_t i = 0; i < out.numel(); ++i)
      out.setFromDouble(i, NAN);
    lseView = lse.view();
    fo.lse = &lseView;
    fo.inputs = {{"sinks", sinks.view()}};
    fo.dropout = seed;
    return kernel.forward(q.tensor.view(), k.tensor.view(), v.tensor.view(), out.view(), fo);
  }
  TensorView lseView;
};

Expected<Kernel> compileSpec(Compiler &compiler, DType dtype, const std::string &cpu = "") {
  CompileOptions opts;
  opts.dtype = dtype;
  opts.cpu = cpu;
  return compiler.compile(kSpec, opts, "drop.attn");
}

/// The kernel against the reference with and without a seed.
void checkShapes(const Kernel &kernel, DType dtype, uint32_t seed) {
  std::mt19937 rng(seed);
  const double tol = dtype == DType::F32 ? 1e-5 : 1e-2;
  for (const Shape &s : kShapes) {
    SCOPED_TRACE("LQ=" + std::to_string(s.LQ) + " LK=" + std::to_string(s.LK) +
                 " D=" + std::to_string(s.D) + " DV=" + std::to_string(s.DV));
    Problem pr(s, dtype, rng);
    mlir::attn::NamedTensors inputs;
    inputs.push_back({"sinks", runtime::makeContiguous(pr.sinks.view()).value()});
    for (std::optional<runtime::DropoutSeed> ds :
         {std::optional<runtime::DropoutSeed>(), std::optional(runtime::DropoutSeed{
                                                      0x1234567890abcdefull + rng(), rng()})}) {
      Tensor out = Tensor::zeros(dtype, {1}).value(), lse = out;
      ASSERT_TRUE(pr.run(kernel, out, lse, ds).ok());
      std::vector<double> refOut, refLse;
      std::optional<mlir::attn::ReferenceProblem::Dropout> rd;
      if (ds)
        rd = mlir::attn::ReferenceProblem::Dropout{ds->seed, uint32_t(ds->offset), 0};
      ASSERT_EQ(referenceOf(kSpec, pr.sizes(), inputs, pr.q.values, pr.k.values, pr.v.values,
                            refOut, refLse, rd),
                "");
      EXPECT_LT(outputError(out, refOut), tol) << (ds ? "with a seed" : "without");
      // The lse is the undropped softmax's (empty rows: the sink).
      for (int64_t i = 0; i < lse.numel(); ++i)
        ASSERT_NEAR(lse.getAsDouble(i), refLse[size_t(i)], 1e-4 * (1 + std::abs(refLse[size_t(i)])))
            << i;
    }
  }
}

TEST(CpuDropout, MatchesTheReference) {
  Compiler compiler;
  const uint32_t seed = testSeed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (ATTNC_TEST_SEED replays it)");
  for (DType dtype : {DType::F32, DType::BF16}) {
    auto kernel = compileSpec(compiler, dtype);
    ASSERT_TRUE(kernel.ok()) << kernel.status().message();
    checkShapes(*kernel, dtype, seed);
  }
}

/// The AVX2 and generic microkernel paths, and code for an AVX2-only CPU.
TEST(CpuDropout, MatchesTheReferenceOnEveryPath) {
  Compiler compiler;
  const uint32_t seed = testSeed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (ATTNC_TEST_SEED replays it)");
  const int before = attnc_uk_isa();
  for (int isa : {ATTNC_ISA_AVX2, ATTNC_ISA_GENERIC}) {
    if (attnc_uk_set_isa(isa) != 0)
      continue; // this CPU lacks the path
    SCOPED_TRACE(attnc_uk_isa_name(isa));
    auto kernel = compileSpec(compiler, DType::BF16, "haswell");
    ASSERT_TRUE(kernel.ok()) << kernel.status().message();
    checkShapes(*kernel, DType::BF16, seed);
  }
  attnc_uk_set_isa(before);
}

/// A grid mask (NATTEN, examples/natten2d.attn): its key tiles are gathered
/// keys, which draw per pair instead of per 4 keys.
TEST(CpuDropout, GatheredKeysMatchTheReference) {
  const std::string text = "attention natten_drop {\n"
                           "  param width: int = 16\n  param kernel: int = 5\n"
                           "  mask = abs(kv / width - clamp(q / width, kernel / 2, LK / width - 1 "
                           "- kernel / 2)) <= kernel / 2\n"
                           "      && abs(kv % width - clamp(q % width, kernel / 2, width - 1 - "
                           "kernel / 2)) <= kernel / 2\n"
                           "  normalize = softmax(dropout = 0.2)\n}\n";
  Compiler compiler;
  std::mt19937 rng(testSeed());
  for (DType dtype : {DType::F32, DType::BF16}) {
    CompileOptions opts;
    opts.dtype = dtype;
    auto kernel = compiler.compile(text, opts, "natten_drop.attn");
    ASSERT_TRUE(kernel.ok()) << kernel.status().message();
    Problem pr({1, 2, 1, 16 * 12 + 5, 16 * 12 + 5, 32, 32}, dtype, rng);
    const runtime::DropoutSeed ds{rng(), rng()};
    Tensor out = Tensor::zeros(dtype, {1, 2, pr.s.LQ, 32}).value();
    Tensor lse = Tensor::zeros(DType::F32, {1, 2, pr.s.LQ}).value();
    TensorView lseView = lse.view();
    ForwardOptions fo;
    fo.lse = &lseView;
    fo.dropout = ds;
    ASSERT_TRUE(kernel->forward(pr.q.tensor.view(), pr.k.tensor.view(), pr.v.tensor.view(),
                                out.view(), fo)
                    .ok());
    std::vector<double> refOut, refLse;
    ASSERT_EQ(referenceOf(text, pr.sizes(), {}, pr.q.values, pr.k.values, pr.v.values, refOut,
                          refLse,
                          mlir::attn::ReferenceProblem::Dropout{ds.seed, uint32_t(ds.offset), 0}),
              "");
    EXPECT_LT(outputError(out, refOut), dtype == DType::F32 ? 1e-5 : 1e-2);
  }
}

/// About p of the pairs are dropped (the generator, over 2^20 pairs, within
/// six standard deviations), and another offset draws another mask.
TEST(CpuDropout, DropsAboutPOfThePairs) {
  const double p = 0.3;
  const unsigned t = attnc_dropout_threshold(p);
  int64_t dropped = 0, same = 0, n = 0;
  for (uint64_t bh = 0; bh < 4; ++bh)
    for (uint64_t q = 0; q < 512; ++q)
      for (uint64_t kv = 0; kv < 512; ++kv, ++n) {
        bool keep = attnc_dropout_keep(42, 7, bh, q, kv, t);
        dropped += !keep;
        same += keep == bool(attnc_dropout_keep(42, 8, bh, q, kv, t));
      }
  const double sd = std::sqrt(p * (1 - p) / double(n));
  EXPECT_NEAR(double(dropped) / double(n), p, 6 * sd);
  // Independent masks agree on p^2 + (1 - p)^2 of the pairs.
  EXPECT_NEAR(double(same) / double(n), p * p + (1 - p) * (1 - p), 0.01);
}

/// One mask per (seed, offset): a decode step (rows of two heads per task)
/// matches the reference, gives the same bits on 1 and 2 threads and with
/// the keys split into chunks; a new offset changes the output.
TEST(CpuDropout, OneMaskPerSeed) {
  Compiler compiler;
  auto kernel = compileSpec(compiler, DType::F32);
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  std::mt19937 rng(testSeed());
  Problem pr({1, 4, 2, 8, 700, 64, 64}, DType::F32, rng); // rows 3.. keep keys
  runtime::DropoutSeed ds{99, 5};
  Tensor base = Tensor::zeros(DType::F32, {1}).value(), lse = base;
  ForwardOptions whole;
  whole.decodeChunk = -1;
  whole.threads = 1;
  ASSERT_TRUE(pr.run(*kernel, base, lse, ds, whole).ok());
  // A decode step packs the rows of a KV group's query heads into one task
  // (KernelABI.h, ATTNC_META_ROW_HEADS): each row still draws as its own.
  mlir::attn::NamedTensors inputs;
  inputs.push_back({"sinks", runtime::makeContiguous(pr.sinks.view()).value()});
  std::vector<double> refOut, refLse;
  ASSERT_EQ(referenceOf(kSpec, pr.sizes(), inputs, pr.q.values, pr.k.values, pr.v.values,
                        refOut, refLse,
                        mlir::attn::ReferenceProblem::Dropout{ds.seed, uint32_t(ds.offset), 0}),
            "");
  EXPECT_LT(outputError(base, refOut), 1e-5);
  Tensor other = base, lse2 = base;
  ForwardOptions split;
  split.decodeChunk = 37; // windows that start off a multiple of 4 keys
  split.threads = 2;
  ASSERT_TRUE(pr.run(*kernel, other, lse2, ds, split).ok());
  double maxDiff = 0;
  for (int64_t i = 0; i < base.numel(); ++i)
    maxDiff = std::max(maxDiff, std::abs(base.getAsDouble(i) - other.getAsDouble(i)));
  EXPECT_LT(maxDiff, 1e-5) << "the split keys drew another mask";
  ASSERT_TRUE(pr.run(*kernel, other, lse2, runtime::DropoutSeed{99, 6}, whole).ok());
  maxDiff = 0;
  for (int64_t i = 0; i < base.numel(); ++i)
    maxDiff = std::max(maxDiff, std::abs(base.getAsDouble(i) - other.getAsDouble(i)));
  EXPECT_GT(maxDiff, 1e-3) << "offset 6 drew offset 5's mask";
}

/// A varlen batch of two sequences draws what a [2, H, L, D] call draws:
/// sequence i is batch entry i of the stream.
TEST(CpuDropout, VarlenDrawsAsTheBatch) {
  Compiler compiler;
  auto kernel = compileSpec(compiler, DType::F32);
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  std::mt19937 rng(testSeed());
  const int64_t L = 45, H = 2, D = 16;
  Problem pr({2, H, H, L, L, D, D}, DType::F32, rng);
  runtime::DropoutSeed ds{7, 1};
  Tensor batched = Tensor::zeros(DType::F32, {1}).value(), lse = batched;
  ASSERT_TRUE(pr.run(*kernel, batched, lse, ds).ok());
  // The packed [2L, H, D] layout of the same rows.
  auto pack = [&](const Tensor &t, int64_t dim) {
    Tensor c = Tensor::zeros(t.dtype(), {2 * L, H, dim}).value();
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t r = 0; r < L; ++r)
          for (int64_t d = 0; d < dim; ++d)
            c.setFromDouble(((b * L + r) * H + h) * dim + d,
                            t.getAsDouble(((b * H + h) * L + r) * dim + d));
    return c;
  };
  Tensor q = pack(pr.q.tensor, D), k = pack(pr.k.tensor, D), v = pack(pr.v.tensor, D);
  Tensor out = Tensor::zeros(DType::F32, {2 * L, H, D}).value();
  Tensor lseV = Tensor::zeros(DType::F32, {H, 2 * L}).value();
  Tensor cu = Tensor::zeros(DType::I64, {3}).value();
  cu.setFromDouble(1, double(L));
  cu.setFromDouble(2, double(2 * L));
  ForwardOptions fo;
  TensorView lseView = lseV.view(), cuView = cu.view();
  fo.lse = &lseView;
  fo.varlen.cuSeqlensQ = &cuView;
  fo.varlen.cuSeqlensKv = &cuView;
  fo.inputs = {{"sinks", pr.sinks.view()}};
  fo.dropout = ds;
  ASSERT_TRUE(kernel->forward(q.view(), k.view(), v.view(), out.view(), fo).ok());
  double maxDiff = 0;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t r = 0; r < L; ++r)
        for (int64_t d = 0; d < D; ++d)
          maxDiff = std::max(maxDiff,
                             std::abs(out.getAsDouble(((b * L + r) * H + h) * D + d) -
                                      batched.getAsDouble(((b * H + h) * L + r) * D + d)));
  EXPECT_LT(maxDiff, 1e-5);
}

/// A seed for a kernel without dropout, and an offset past 32 bits, are
/// errors that write nothing.
TEST(CpuDropout, BadSeedsAreErrors) {
  Compiler compiler;
  auto plain = compiler.compile("attention plain {}\n", CompileOptions(), "plain.attn");
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  auto kernel = compileSpec(compiler, DType::F32);
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  std::mt19937 rng(1);
  Problem pr({1, 2, 2, 5, 5, 16, 16}, DType::F32, rng);
  Tensor out = Tensor::zeros(DType::F32, {1}).value(), lse = out;
  Status st = pr.run(*plain, out, lse, runtime::DropoutSeed{1, 0});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("has no softmax(dropout = ...)"), std::string::npos)
      << st.message();
  st = pr.run(*kernel, out, lse, runtime::DropoutSeed{1, uint64_t(1) << 32});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("does not fit 32 bits"), std::string::npos) << st.message();
  for (int64_t i = 0; i < out.numel(); ++i)
    ASSERT_TRUE(std::isnan(out.getAsDouble(i))) << "written at " << i;
}

} // namespace
