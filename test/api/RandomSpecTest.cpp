//===- RandomSpecTest.cpp - Random specs: kernels against the reference ---===//
//
// Differential testing of the whole CPU pipeline on specs nobody wrote by
// hand: each case generates a random attention block (test/common/SpecGen.h:
// int and float expressions over every coordinate and size, params, an
// input, floor division and modulo, abs/min/max/clamp, ternaries, && || !,
// conversions, continuous float functions), compiles it, runs it on a
// random odd shape and compares with the float64 reference. Every fifth
// case is a grid mask (2-D neighbourhood style, for a W that attn-tile's
// grid tiling takes), on lengths that make patch tasks. The seed is fresh
// per run and printed on failure; ATTNC_TEST_SEED replays one. A second test runs the backward pass of
// random specs (compiled with CompileOptions::backward) against
// referenceBackward: dq, dk, dv and the gradient of the float input t.
//
//===----------------------------------------------------------------------===//
#include "attnc/Compiler.h"
#include "attnc/Driver.h"
#include "attnc/Passes/MaskAnalysis.h"
#include "attnc/Reference/ReferenceAttention.h"
#include "attnc/Reference/ReferenceBackward.h"
#include "attnc/Reference/TensorInputs.h"

#include "../common/AmbiguousRows.h"
#include "../common/RandomTensors.h"
#include "../common/SpecGen.h"

#include "llvm/Support/raw_ostream.h"
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <random>
#include <sstream>

using namespace attnc;
using attnc::testgen::SpecGen;
using runtime::Tensor;

namespace {

TEST(RandomSpecs, KernelsMatchReference) {
  uint32_t seed = test::testSeed();
  std::mt19937 rng(seed);
  SpecGen gen(seed);
  Compiler compiler;
  const int kCases = 40;
  for (int c = 0; c < kCases; ++c) {
    bool sigmoid = c % 4 == 3;
    static const int kWidths[] = {16, 24, 32};
    int gridWidth = c % 5 == 4 ? kWidths[c % 3] : 0;
    std::string text = gen.spec(sigmoid, gridWidth);
    SCOPED_TRACE("seed " + std::to_string(seed) + ", case " + std::to_string(c) +
                 ":\n" + text);
    std::string errors;
    llvm::raw_string_ostream es(errors);
    Driver driver(es);
    auto module = driver.loadSpecText("rnd.attn", text, {});
    ASSERT_TRUE(module) << errors;
    ASSERT_TRUE(succeeded(driver.runSpecPipeline(*module))) << errors;
    auto spec = *module->getOps<mlir::attn::SpecOp>().begin();
    if (gridWidth && spec.getMaskScheduleAttr().getKind() != mlir::attn::MaskKind::never)
      ASSERT_TRUE(mlir::attn::getGridMask(spec).has_value()) << "no grid view";

    CompileOptions opts;
    opts.dtype = c % 3 == 2 ? runtime::DType::BF16 : runtime::DType::F32;
    auto kernel = compiler.compile(text, opts, "rnd.attn");
    ASSERT_TRUE(kernel.ok()) << kernel.status().message();

    // Grid cases need complete bands of 8 grid rows (TQ = 64) for patches.
    std::uniform_int_distribution<int> len(gridWidth ? 8 * gridWidth : 1,
                                           gridWidth ? 12 * gridWidth : 150),
        dim(1, 40);
    int64_t B = 1 + c % 2, HKV = 1 + c % 2, HQ = HKV * (1 + c % 3);
    int64_t LQ = len(rng), LK = len(rng), D = dim(rng), DV = dim(rng);
    std::uniform_real_distribution<double> u(-1, 1);
    auto make = [&](std::vector<int64_t> shape, std::vector<double> &vals) {
      Tensor t = Tensor::zeros(opts.dtype, shape).value();
      vals.resize(t.numel());
      for (int64_t i = 0; i < t.numel(); ++i) {
        t.setFromDouble(i, u(rng));
        vals[i] = t.getAsDouble(i);
      }
      return t;
    };
    std::vector<double> qv, kv, vv, tv(HQ);
    Tensor q = make({B, HQ, LQ, D}, qv), k = make({B, HKV, LK, D}, kv),
           v = make({B, HKV, LK, DV}, vv);
    Tensor tIn = Tensor::zeros(runtime::DType::F32, {HQ}).value();
    for (int64_t i = 0; i < HQ; ++i) {
      tIn.setFromDouble(i, u(rng));
      tv[i] = tIn.getAsDouble(i);
    }
    Tensor out = Tensor::zeros(opts.dtype, {B, HQ, LQ, DV}).value();
    for (int64_t i = 0; i < out.numel(); ++i)
      out.setFromDouble(i, NAN);
    // A spec with dropout runs as a training call; the reference draws the
    // same mask.
    const runtime::DropoutSeed drop{seed + uint64_t(c), uint64_t(c)};
    ForwardOptions fo;
    fo.inputs = {{"t", tIn.view()}};
    if (kernel->info().dropout)
      fo.dropout = drop;
    Status st = kernel->forward(q.view(), k.view(), v.view(), out.view(), fo);
    ASSERT_TRUE(st.ok()) << st.message();

    mlir::attn::ReferenceProblem p;
    if (kernel->info().dropout)
      p.dropout = mlir::attn::ReferenceProblem::Dropout{drop.seed, uint32_t(drop.offset), 0};
    p.sizes.B = B, p.sizes.HQ = HQ, p.sizes.HKV = HKV, p.sizes.LQ = LQ,
    p.sizes.LK = LK, p.sizes.D = D, p.sizes.DV = DV;
    p.q = qv.data(), p.k = kv.data(), p.v = vv.data();
    p.inputs = [&](llvm::StringRef, llvm::ArrayRef<int64_t> idx)
        -> std::optional<mlir::attn::Scalar> {
      if (idx[0] < 0 || idx[0] >= HQ)
        return std::nullopt;
      return mlir::attn::Scalar::ofFloat(tv[idx[0]]);
    };
    std::vector<double> refOut, refLse;
    ASSERT_EQ(mlir::attn::referenceAttention(spec, p, refOut, refLse), "");
    // outputError: NaN fails; an all-empty problem must give exact zeros;
    // the storage type's own rounding of the answer is allowed for.
    double tol = opts.dtype == runtime::DType::F32 ? 1e-5 : 1e-2;
    EXPECT_LT(test::outputError(out, refOut), tol);
  }
}

TEST(RandomSpecs, BackwardMatchesReference) {
  uint32_t seed = test::testSeed();
  std::mt19937 rng(seed);
  SpecGen gen(seed);
  Compiler compiler;
  const int kCases = 24;
  for (int c = 0; c < kCases; ++c) {
    bool sigmoid = c % 4 == 3;
    std::string text = gen.spec(sigmoid, /*gridWidth=*/0);
    SCOPED_TRACE("seed " + std::to_string(seed) + ", case " + std::to_string(c) +
                 ":\n" + text);
    std::string errors;
    llvm::raw_string_ostream es(errors);
    Driver driver(es);
    auto module = driver.loadSpecText("rnd.attn", text, {});
    ASSERT_TRUE(module) << errors;
    ASSERT_TRUE(succeeded(driver.runSpecPipeline(*module))) << errors;
    auto spec = *module->getOps<mlir::attn::SpecOp>().begin();

    CompileOptions opts;
    opts.dtype = c % 3 == 2 ? runtime::DType::BF16 : runtime::DType::F32;
    opts.backward = true;
    auto kernel = compiler.compile(text, opts, "rnd.attn");
    ASSERT_TRUE(kernel.ok()) << kernel.status().message();

    std::uniform_int_distribution<int> len(1, 150), dim(1, 40);
    test::Shape s{1 + c % 2, (1 + c % 2) * (1 + c % 3), 1 + c % 2, len(rng),
                  len(rng), dim(rng), dim(rng)};
    test::Operand q = test::randomOperand(opts.dtype, {s.B, s.HQ, s.LQ, s.D}, rng, -1, 1);
    test::Operand k = test::randomOperand(opts.dtype, {s.B, s.HKV, s.LK, s.D}, rng, -1, 1);
    test::Operand v = test::randomOperand(opts.dtype, {s.B, s.HKV, s.LK, s.DV}, rng, -1, 1);
    test::Operand dout =
        test::randomOperand(opts.dtype, {s.B, s.HQ, s.LQ, s.DV}, rng, -1, 1);
    auto inputs = test::randomInputs(kernel->info(), s, rng);
    std::vector<std::pair<std::string, runtime::TensorView>> views;
    for (auto &[n, t] : inputs)
      views.push_back({n, t.view()});
    Tensor out = Tensor::zeros(opts.dtype, {s.B, s.HQ, s.LQ, s.DV}).value();
    Tensor lse = Tensor::zeros(runtime::DType::F32, {s.B, s.HQ, s.LQ}).value();
    runtime::TensorView lseView = lse.view();
    const runtime::DropoutSeed drop{seed + uint64_t(c), uint64_t(c)};
    const std::optional<runtime::DropoutSeed> dropout =
        kernel->info().dropout ? std::optional(drop) : std::nullopt;
    ForwardOptions fo;
    fo.inputs = views;
    fo.dropout = dropout;
    if (!sigmoid)
      fo.lse = &lseView;
    Status st = kernel->forward(q.tensor.view(), k.tensor.view(),
                                v.tensor.view(), out.view(), fo);
    ASSERT_TRUE(st.ok()) << st.message();

    auto poisoned = [&](std::vector<int64_t> shape, runtime::DType t) {
      Tensor x = Tensor::zeros(t, shape).value();
      for (int64_t i = 0; i < x.numel(); ++i)
        x.setFromDouble(i, NAN);
      return x;
    };
    Tensor dq = poisoned({s.B, s.HQ, s.LQ, s.D}, opts.dtype);
    Tensor dk = poisoned({s.B, s.HKV, s.LK, s.D}, opts.dtype);
    Tensor dv = poisoned({s.B, s.HKV, s.LK, s.DV}, opts.dtype);
    std::vector<std::pair<std::string, Tensor>> dinputs;
    BackwardOptions bo;
    bo.inputs = views;
    bo.dropout = dropout;
    for (const std::string &name : kernel->differentiableInputs())
      for (auto &[n, t] : inputs)
        if (n == name)
          dinputs.push_back({name, poisoned(t.shape(), runtime::DType::F32)});
    for (auto &[n, t] : dinputs)
      bo.inputGrads.push_back({n, t.view()});

    mlir::attn::ReferenceProblem p;
    p.sizes.B = s.B, p.sizes.HQ = s.HQ, p.sizes.HKV = s.HKV, p.sizes.LQ = s.LQ,
    p.sizes.LK = s.LK, p.sizes.D = s.D, p.sizes.DV = s.DV;
    p.q = q.values.data(), p.k = k.values.data(), p.v = v.values.data();
    p.inputs = mlir::attn::tensorInputReader(inputs);
    if (dropout)
      p.dropout = mlir::attn::ReferenceProblem::Dropout{drop.seed, uint32_t(drop.offset), 0};
    std::vector<double> outValues(size_t(out.numel()));
    for (int64_t i = 0; i < out.numel(); ++i)
      outValues[size_t(i)] = out.getAsDouble(i);
    p.forwardOut = outValues.data();
    mlir::attn::ReferenceGradients want;
    ASSERT_EQ(mlir::attn::referenceBackward(spec, p, dout.values.data(), want), "");
    if (test::removeAmbiguousRows(want, dout) > 0)
      ASSERT_EQ(mlir::attn::referenceBackward(spec, p, dout.values.data(), want),
                "");
    st = kernel->backward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                          out.view(), sigmoid ? runtime::TensorView() : lseView,
                          dout.tensor.view(), dq.view(), dk.view(), dv.view(),
                          bo);
    ASSERT_TRUE(st.ok()) << st.message();
    double tol = opts.dtype == runtime::DType::F32 ? 1e-4 : 3e-2;
    EXPECT_LE(test::gradientError(dq, want.dq, want.dqMagnitude), tol) << "dq";
    EXPECT_LE(test::gradientError(dk, want.dk, want.dkMagnitude), tol) << "dk";
    EXPECT_LE(test::relativeError(dv, want.dv), tol) << "dv";
    for (auto &[n, t] : dinputs)
      EXPECT_LE(test::gradientError(t, want.dinputs[n], want.dinputMagnitudes[n]),
                tol)
          << "d" << n;
  }
}

} // namespace
