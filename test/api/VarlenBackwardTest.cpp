//===- VarlenBackwardTest.cpp - The backward of a packed varlen batch -----===//
//
// BackwardOptions::varlen: q, out, dout, dq [total_q, HQ, X], k, v, dk, dv
// [total_kv, HKV, X], lse [HQ, total_q]. Every sequence's gradients must
// equal those of the same sequence run alone as a dense B = 1 call (whose
// backward BackwardTest checks against float64), for sequences with LQ !=
// LK, LQ = LK, none, queries without keys (fully masked rows), keys
// without queries (dk = dv = 0), GQA and DV != D. The gradient of an input
// with a B dimension is each sequence's own row; a shared input's is the
// sum over the sequences. Gradients start as NaN, so an unwritten one
// fails; and a bad call (offsets, shapes, another forward's lse) writes
// nothing.
//
//===----------------------------------------------------------------------===//
#include "../common/RandomTensors.h"
#include "../common/SequenceInputs.h"

#include "attnc/Compiler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>

using namespace attnc;
using namespace attnc::test;
using runtime::DType;
using runtime::Tensor;
using runtime::TensorView;

namespace {

constexpr int64_t HQ = 4, HKV = 2, D = 16, DV = 12;
// (LQ, LK) per sequence: cross, empty, self, no keys, keys only, one query.
const std::vector<std::pair<int64_t, int64_t>> kLengths = {
    {5, 9}, {0, 0}, {37, 37}, {3, 0}, {0, 11}, {1, 70}, {20, 51}};

const char *const kSpec = R"(attention varlen_grads {
  input slopes: float[HQ]
  input temp: float[B, HQ]
  score = score * (1.0 + 0.5 * temp[b, h]) - slopes[h] * float(q - kv)
  mask = q + (LK - LQ) >= kv
})";

Tensor filled(std::vector<int64_t> shape, double value) {
  Tensor t = Tensor::zeros(DType::F32, std::move(shape)).value();
  for (int64_t i = 0; i < t.numel(); ++i)
    t.setFromDouble(i, value);
  return t;
}

Tensor copyOf(const Tensor &from) {
  Tensor t = Tensor::zeros(DType::F32, from.shape()).value();
  for (int64_t i = 0; i < t.numel(); ++i)
    t.setFromDouble(i, from.getAsDouble(i));
  return t;
}

/// Rows [r0, r0 + n) of the packed [T, H, X] tensor as a dense [1, H, n, X].
Tensor rows(const Tensor &packed, int64_t r0, int64_t n) {
  const int64_t H = packed.shape()[1], X = packed.shape()[2];
  Tensor t = Tensor::zeros(DType::F32, {1, H, n, X}).value();
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t x = 0; x < X; ++x)
        t.setFromDouble((h * n + i) * X + x,
                        packed.getAsDouble(((r0 + i) * H + h) * X + x));
  return t;
}

/// The packed batch, its forward, and the gradients of one backward call.
struct Batch {
  std::vector<int32_t> cuQ = {0}, cuKv = {0};
  Operand q, k, v, dout, slopes, temp;
  Tensor out, lse, dq, dk, dv, gSlopes, gTemp;
  TensorView cuQv, cuKvv;

  explicit Batch(std::mt19937 &rng) {
    for (auto [lq, lk] : kLengths) {
      cuQ.push_back(cuQ.back() + int32_t(lq));
      cuKv.push_back(cuKv.back() + int32_t(lk));
    }
    const int64_t TQ = cuQ.back(), TK = cuKv.back(), B = int64_t(kLengths.size());
    q = randomOperand(DType::F32, {TQ, HQ, D}, rng, -1, 1);
    k = randomOperand(DType::F32, {TK, HKV, D}, rng, -1, 1);
    v = randomOperand(DType::F32, {TK, HKV, DV}, rng, -1, 1);
    dout = randomOperand(DType::F32, {TQ, HQ, DV}, rng, -1, 1);
    slopes = randomOperand(DType::F32, {HQ}, rng, 0.01, 0.5);
    temp = randomOperand(DType::F32, {B, HQ}, rng, -1, 1);
    out = filled({TQ, HQ, DV}, NAN);
    lse = filled({HQ, TQ}, NAN);
    dq = filled({TQ, HQ, D}, NAN), dk = filled({TK, HKV, D}, NAN);
    dv = filled({TK, HKV, DV}, NAN);
    gSlopes = filled({HQ}, NAN), gTemp = filled({B, HQ}, NAN);
    cuQv = offsetsView(cuQ), cuKvv = offsetsView(cuKv);
  }

  std::vector<std::pair<std::string, TensorView>> inputs() const {
    return {{"slopes", slopes.tensor.view()}, {"temp", temp.tensor.view()}};
  }

  Status forward(const Kernel &kernel) {
    ForwardOptions fo;
    fo.inputs = inputs();
    TensorView lv = lse.view();
    fo.lse = &lv;
    fo.varlen = {&cuQv, &cuKvv};
    return kernel.forward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                          out.view(), fo);
  }

  Status backward(const Kernel &kernel, int threads = 0) {
    BackwardOptions bo;
    bo.inputs = inputs();
    bo.inputGrads = {{"slopes", gSlopes.view()}, {"temp", gTemp.view()}};
    bo.varlen = {&cuQv, &cuKvv};
    bo.threads = threads;
    return kernel.backward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                           out.view(), lse.view(), dout.tensor.view(), dq.view(),
                           dk.view(), dv.view(), bo);
  }
};

std::unique_ptr<Kernel> compileSpec() {
  Compiler compiler;
  CompileOptions opts;
  opts.backward = true;
  opts.tileQ = 16, opts.tileK = 32; // several tiles per sequence
  auto kernel = compiler.compile(kSpec, opts);
  EXPECT_TRUE(kernel.ok()) << kernel.status().message();
  return kernel.ok() ? std::make_unique<Kernel>(std::move(kernel.value())) : nullptr;
}

void expectRowsNear(const Tensor &packed, int64_t r0, const Tensor &dense,
                    const char *what) {
  const int64_t H = packed.shape()[1], X = packed.shape()[2], n = dense.shape()[2];
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t x = 0; x < X; ++x) {
        const double want = dense.getAsDouble((h * n + i) * X + x);
        ASSERT_NEAR(packed.getAsDouble(((r0 + i) * H + h) * X + x), want,
                    1e-5 * (1 + std::abs(want)))
            << what << " h " << h << " row " << i << " col " << x;
      }
}

TEST(VarlenBackward, EverySequenceMatchesItsOwnCall) {
  std::unique_ptr<Kernel> kernel = compileSpec();
  ASSERT_TRUE(kernel);
  const uint32_t seed = testSeed();
  SCOPED_TRACE("ATTNC_TEST_SEED=" + std::to_string(seed));
  std::mt19937 rng(seed);
  Batch p(rng);
  ASSERT_TRUE(p.forward(*kernel).ok());
  Status st = p.backward(*kernel);
  ASSERT_TRUE(st.ok()) << st.message();

  std::vector<double> slopesSum(HQ, 0.0);
  for (size_t b = 0; b < kLengths.size(); ++b) {
    SCOPED_TRACE("sequence " + std::to_string(b));
    auto [lq, lk] = kLengths[b];
    const int64_t q0 = p.cuQ[b], k0 = p.cuKv[b];
    Tensor q = rows(p.q.tensor, q0, lq), k = rows(p.k.tensor, k0, lk),
           v = rows(p.v.tensor, k0, lk), out = rows(p.out, q0, lq),
           dout = rows(p.dout.tensor, q0, lq);
    Tensor lse = Tensor::zeros(DType::F32, {1, HQ, lq}).value();
    for (int64_t h = 0; h < HQ; ++h)
      for (int64_t i = 0; i < lq; ++i)
        lse.setFromDouble(h * lq + i, p.lse.getAsDouble(h * p.cuQ.back() + q0 + i));
    Tensor temp = Tensor::zeros(DType::F32, {1, HQ}).value();
    for (int64_t h = 0; h < HQ; ++h)
      temp.setFromDouble(h, p.temp.tensor.getAsDouble(int64_t(b) * HQ + h));
    Tensor dq = filled({1, HQ, lq, D}, NAN), dk = filled({1, HKV, lk, D}, NAN),
           dv = filled({1, HKV, lk, DV}, NAN), gSlopes = filled({HQ}, NAN),
           gTemp = filled({1, HQ}, NAN);
    BackwardOptions bo;
    bo.inputs = {{"slopes", p.slopes.tensor.view()}, {"temp", temp.view()}};
    bo.inputGrads = {{"slopes", gSlopes.view()}, {"temp", gTemp.view()}};
    Status s = kernel->backward(q.view(), k.view(), v.view(), out.view(), lse.view(),
                                dout.view(), dq.view(), dk.view(), dv.view(), bo);
    ASSERT_TRUE(s.ok()) << s.message();
    expectRowsNear(p.dq, q0, dq, "dq");
    expectRowsNear(p.dk, k0, dk, "dk");
    expectRowsNear(p.dv, k0, dv, "dv");
    if (lq == 0)
      for (int64_t i = 0; i < dk.numel(); ++i)
        ASSERT_EQ(dk.getAsDouble(i), 0.0) << "keys without queries get no gradient";
    for (int64_t h = 0; h < HQ; ++h) {
      const double want = gTemp.getAsDouble(h);
      EXPECT_NEAR(p.gTemp.getAsDouble(int64_t(b) * HQ + h), want,
                  1e-5 * (1 + std::abs(want)));
      slopesSum[size_t(h)] += gSlopes.getAsDouble(h);
    }
  }
  for (int64_t h = 0; h < HQ; ++h)
    EXPECT_NEAR(p.gSlopes.getAsDouble(h), slopesSum[size_t(h)],
                1e-5 * (1 + std::abs(slopesSum[size_t(h)])))
        << "the shared input's gradient sums the sequences'";
}

TEST(VarlenBackward, ThreadCountDoesNotChangeTheBits) {
  std::unique_ptr<Kernel> kernel = compileSpec();
  ASSERT_TRUE(kernel);
  std::mt19937 rng(testSeed());
  Batch p(rng);
  ASSERT_TRUE(p.forward(*kernel).ok());
  ASSERT_TRUE(p.backward(*kernel, 1).ok());
  const Tensor dq = copyOf(p.dq), dk = copyOf(p.dk), gSlopes = copyOf(p.gSlopes);
  ASSERT_TRUE(p.backward(*kernel, 3).ok());
  for (auto [a, b] : {std::pair{&dq, &p.dq}, {&dk, &p.dk}, {&gSlopes, &p.gSlopes}})
    for (int64_t i = 0; i < a->numel(); ++i)
      ASSERT_EQ(a->getAsDouble(i), b->getAsDouble(i)) << "element " << i;
}

/// Every bad call is an error that leaves the gradients as they were (NaN).
TEST(VarlenBackward, BadCallsWriteNothing) {
  std::unique_ptr<Kernel> kernel = compileSpec();
  ASSERT_TRUE(kernel);
  std::mt19937 rng(testSeed());
  auto untouched = [](const Batch &p) {
    for (const Tensor *t : {&p.dq, &p.dk, &p.dv, &p.gSlopes, &p.gTemp})
      for (int64_t i = 0; i < t->numel(); ++i)
        if (!std::isnan(t->getAsDouble(i)))
          return false;
    return true;
  };
  auto expectError = [&](const std::function<void(Batch &)> &spoil,
                         const std::string &message) {
    Batch p(rng);
    ASSERT_TRUE(p.forward(*kernel).ok());
    spoil(p);
    Status s = p.backward(*kernel);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find(message), std::string::npos) << s.message();
    EXPECT_TRUE(untouched(p)) << message;
  };
  expectError([](Batch &p) { p.cuQ[2] = p.cuQ[1] - 1; },
              "cu_seqlens_q: must not decrease");
  expectError([](Batch &p) { p.cuKv.back() += 1; }, "cu_seqlens_kv: must end at");
  expectError([](Batch &p) { p.dq = filled({p.cuQ.back() - 1, HQ, D}, NAN); },
              "dq:");
  // The last sequence's lse from another forward: the earlier sequences
  // must not be written either.
  expectError(
      [](Batch &p) {
        for (int64_t h = 0; h < HQ; ++h)
          for (int64_t i = p.cuQ[p.cuQ.size() - 2]; i < p.cuQ.back(); ++i)
            p.lse.setFromDouble(h * p.cuQ.back() + i,
                                p.lse.getAsDouble(h * p.cuQ.back() + i) + 1.0);
      },
      "sequence 6 of the varlen batch");
}

} // namespace
