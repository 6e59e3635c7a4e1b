//===- SequenceWindowTest.cpp - Kernels on windows of longer sequences ----===//
//
// The kernel calls of context parallelism (runtime::SequenceWindow,
// KernelABI.h's window slots): the queries and the keys of a problem are
// cut into windows of odd lengths (one of a single key); every (query
// window, key window) pair runs with its positions, and the partial
// outputs merged with their lse must equal the float64 reference of the
// whole problem. The backward of every pair, given the whole rows' out and
// lse, must sum to the whole call's gradients. For every shared spec and a
// spec with a softmax sink (a
// grid mask takes its contiguous path on a window); a pair whose tiles are
// all EMPTY visits none; bad windows are errors.
//
//===----------------------------------------------------------------------===//
#include "../common/RandomTensors.h"
#include "../common/SharedSpecs.h"
#include "../common/SpecReference.h"

#include "attnc/Compiler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

using namespace attnc;
using namespace attnc::test;
using runtime::DType;
using runtime::SequenceWindow;
using runtime::Tensor;
using runtime::TensorView;
namespace fs = std::filesystem;

namespace {

/// Rows [begin, begin + len) of dimension 2 of `t`: a view, no copy.
TensorView rows(const Tensor &t, int64_t begin, int64_t len) {
  TensorView v = t.view();
  v.data = static_cast<char *>(v.data) +
           begin * v.strides[2] * int64_t(runtime::dtypeSize(v.dtype));
  v.shape[2] = len;
  return v;
}

/// (begin, length) pairs that cut [0, n) into pieces of odd lengths.
std::vector<std::pair<int64_t, int64_t>> cuts(int64_t n,
                                              std::vector<int64_t> ends) {
  std::vector<std::pair<int64_t, int64_t>> r;
  int64_t begin = 0;
  ends.push_back(n);
  for (int64_t e : ends) {
    r.push_back({begin, e - begin});
    begin = e;
  }
  return r;
}

struct Problem {
  Shape s{2, 4, 2, 70, 83, 16, 12};
  Operand q, k, v;
  std::vector<std::pair<std::string, Tensor>> inputs;
  std::vector<std::pair<std::string, TensorView>> inputViews() const {
    std::vector<std::pair<std::string, TensorView>> r;
    for (const auto &[n, t] : inputs)
      r.push_back({n, t.view()});
    return r;
  }
};

Problem makeProblem(const Kernel &kernel, std::mt19937 &rng) {
  Problem p;
  const Shape &s = p.s;
  p.q = randomOperand(DType::F32, {s.B, s.HQ, s.LQ, s.D}, rng, -1, 1);
  p.k = randomOperand(DType::F32, {s.B, s.HKV, s.LK, s.D}, rng, -1, 1);
  p.v = randomOperand(DType::F32, {s.B, s.HKV, s.LK, s.DV}, rng, -1, 1);
  p.inputs = randomInputs(kernel.info(), s, rng);
  return p;
}

const auto kQueryCuts = cuts(70, {23});
const auto kKeyCuts = cuts(83, {30, 31});

/// The whole problem's out and lse, merged from every pair of windows:
/// lse = log sum_p exp(lse_p), out = sum_p exp(lse_p - lse) out_p (sigmoid:
/// out = sum_p out_p).
void mergedForward(const Kernel &kernel, const Problem &p,
                   std::vector<double> &out, std::vector<double> &lse) {
  const Shape &s = p.s;
  const bool sigmoid = kernel.info().sigmoid;
  out.assign(size_t(s.B * s.HQ * s.LQ * s.DV), 0.0);
  lse.assign(size_t(s.B * s.HQ * s.LQ), -INFINITY);
  for (auto [q0, lq] : kQueryCuts) {
    std::vector<Tensor> outs, lses;
    for (auto [k0, lk] : kKeyCuts) {
      Tensor o = Tensor::zeros(DType::F32, {s.B, s.HQ, lq, s.DV}).value();
      Tensor l = Tensor::zeros(DType::F32, {s.B, s.HQ, lq}).value();
      for (int64_t i = 0; i < o.numel(); ++i)
        o.setFromDouble(i, NAN); // poison: unwritten rows fail
      ForwardOptions fo;
      fo.inputs = p.inputViews();
      TensorView lv = l.view();
      if (!sigmoid)
        fo.lse = &lv;
      fo.window = {q0, k0, s.LQ, s.LK};
      Status st = kernel.forward(rows(p.q.tensor, q0, lq), rows(p.k.tensor, k0, lk),
                                 rows(p.v.tensor, k0, lk), o.view(), fo);
      ASSERT_TRUE(st.ok()) << st.message();
      outs.push_back(std::move(o));
      lses.push_back(std::move(l));
    }
    for (int64_t bh = 0; bh < s.B * s.HQ; ++bh)
      for (int64_t i = 0; i < lq; ++i) {
        const size_t row = size_t(bh * s.LQ + q0 + i), local = size_t(bh * lq + i);
        double m = -INFINITY, sum = 0;
        for (const Tensor &l : lses)
          m = std::max(m, l.getAsDouble(int64_t(local)));
        for (const Tensor &l : lses)
          sum += m == -INFINITY ? 0 : std::exp(l.getAsDouble(int64_t(local)) - m);
        lse[row] = m == -INFINITY ? m : m + std::log(sum);
        for (size_t w = 0; w < outs.size(); ++w) {
          double weight =
              sigmoid ? 1.0
              : lse[row] == -INFINITY
                  ? 0.0
                  : std::exp(lses[w].getAsDouble(int64_t(local)) - lse[row]);
          for (int64_t d = 0; d < s.DV; ++d)
            out[row * size_t(s.DV) + size_t(d)] +=
                weight * outs[w].getAsDouble(int64_t(local) * s.DV + d);
        }
      }
  }
}

double relError(const std::vector<double> &got, const std::vector<double> &want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i]))
      return INFINITY;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return den == 0 ? (num == 0 ? 0 : INFINITY) : std::sqrt(num / den);
}

std::vector<double> valuesOf(const Tensor &t) {
  std::vector<double> r(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i)
    r[size_t(i)] = t.getAsDouble(i);
  return r;
}

class SequenceWindow_ : public ::testing::TestWithParam<fs::path> {};

TEST_P(SequenceWindow_, MergedPairsMatchTheWholeProblem) {
  const std::string text = readTextFile(GetParam());
  Compiler compiler;
  CompileOptions opts;
  opts.tileQ = 16, opts.tileK = 32;
  opts.backward = true;
  auto kernel = compiler.compile(text, opts, GetParam().string());
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  const uint32_t seed = testSeed();
  SCOPED_TRACE("ATTNC_TEST_SEED=" + std::to_string(seed));
  std::mt19937 rng(seed);
  Problem p = makeProblem(*kernel, rng);
  const Shape &s = p.s;

  // Forward: the merged pairs against the float64 reference.
  std::vector<double> out, lse, refOut, refLse;
  mergedForward(*kernel, p, out, lse);
  if (HasFatalFailure())
    return;
  mlir::attn::ProblemSizes ps;
  ps.B = s.B, ps.HQ = s.HQ, ps.HKV = s.HKV, ps.LQ = s.LQ, ps.LK = s.LK,
  ps.D = s.D, ps.DV = s.DV;
  std::string err = referenceOf(text, ps, p.inputs, p.q.values, p.k.values,
                                p.v.values, refOut, refLse);
  ASSERT_EQ(err, "");
  EXPECT_LT(relError(out, refOut), 1e-5);
  if (!kernel->info().sigmoid)
    for (size_t i = 0; i < lse.size(); ++i) {
      if (std::isinf(refLse[i]))
        ASSERT_EQ(lse[i], refLse[i]) << "row " << i;
      else
        ASSERT_NEAR(lse[i], refLse[i], 1e-4) << "row " << i;
    }

  // Backward: the pairs' gradients, given the whole rows' out and lse, sum
  // to the whole call's.
  Tensor wOut = Tensor::zeros(DType::F32, {s.B, s.HQ, s.LQ, s.DV}).value();
  Tensor wLse = Tensor::zeros(DType::F32, {s.B, s.HQ, s.LQ}).value();
  ForwardOptions fo;
  fo.inputs = p.inputViews();
  TensorView lv = wLse.view();
  if (!kernel->info().sigmoid)
    fo.lse = &lv;
  ASSERT_TRUE(kernel->forward(p.q.tensor.view(), p.k.tensor.view(),
                              p.v.tensor.view(), wOut.view(), fo).ok());
  Operand dout = randomOperand(DType::F32, {s.B, s.HQ, s.LQ, s.DV}, rng, -1, 1);
  Tensor dq = Tensor::zeros(DType::F32, {s.B, s.HQ, s.LQ, s.D}).value();
  Tensor dk = Tensor::zeros(DType::F32, {s.B, s.HKV, s.LK, s.D}).value();
  Tensor dv = Tensor::zeros(DType::F32, {s.B, s.HKV, s.LK, s.DV}).value();
  const TensorView lseArg = kernel->info().sigmoid ? TensorView{} : wLse.view();
  std::vector<std::pair<std::string, Tensor>> grads;
  BackwardOptions bo;
  bo.inputs = p.inputViews();
  for (const std::string &n : kernel->differentiableInputs())
    for (const auto &[name, t] : p.inputs)
      if (name == n)
        grads.push_back({n, Tensor::zeros(DType::F32, t.shape()).value()});
  for (auto &[n, g] : grads)
    bo.inputGrads.push_back({n, g.view()});
  Status st = kernel->backward(p.q.tensor.view(), p.k.tensor.view(), p.v.tensor.view(),
                               wOut.view(), lseArg, dout.tensor.view(), dq.view(),
                               dk.view(), dv.view(), bo);
  ASSERT_TRUE(st.ok()) << st.message();

  std::vector<double> sumDq(size_t(dq.numel()), 0.0), sumDk(size_t(dk.numel()), 0.0),
      sumDv(size_t(dv.numel()), 0.0);
  std::vector<std::vector<double>> sumGrads;
  for (auto &[n, g] : grads)
    sumGrads.emplace_back(size_t(g.numel()), 0.0);
  auto addRows = [](std::vector<double> &sum, const Tensor &part, const Shape &s,
                    int64_t heads, int64_t L, int64_t begin, int64_t len, int64_t C) {
    for (int64_t bh = 0; bh < s.B * heads; ++bh)
      for (int64_t i = 0; i < len; ++i)
        for (int64_t c = 0; c < C; ++c)
          sum[size_t(((bh * L) + begin + i) * C + c)] +=
              part.getAsDouble((bh * len + i) * C + c);
  };
  for (auto [q0, lq] : kQueryCuts)
    for (auto [k0, lk] : kKeyCuts) {
      Tensor pq = Tensor::zeros(DType::F32, {s.B, s.HQ, lq, s.D}).value();
      Tensor pk = Tensor::zeros(DType::F32, {s.B, s.HKV, lk, s.D}).value();
      Tensor pv = Tensor::zeros(DType::F32, {s.B, s.HKV, lk, s.DV}).value();
      std::vector<Tensor> pg;
      BackwardOptions pbo;
      pbo.inputs = p.inputViews();
      pbo.window = {q0, k0, s.LQ, s.LK};
      for (auto &[n, g] : grads)
        pg.push_back(Tensor::zeros(DType::F32, g.shape()).value());
      for (size_t i = 0; i < grads.size(); ++i)
        pbo.inputGrads.push_back({grads[i].first, pg[i].view()});
      TensorView pl = kernel->info().sigmoid ? TensorView{}
                      : [&] {
                          TensorView v = wLse.view();
                          v.data = static_cast<float *>(v.data) + q0;
                          v.shape[2] = lq;
                          return v;
                        }();
      st = kernel->backward(rows(p.q.tensor, q0, lq), rows(p.k.tensor, k0, lk),
                            rows(p.v.tensor, k0, lk), rows(wOut, q0, lq), pl,
                            rows(dout.tensor, q0, lq), pq.view(), pk.view(),
                            pv.view(), pbo);
      ASSERT_TRUE(st.ok()) << "window q " << q0 << "+" << lq << ", kv " << k0
                           << "+" << lk << ": " << st.message();
      addRows(sumDq, pq, s, s.HQ, s.LQ, q0, lq, s.D);
      addRows(sumDk, pk, s, s.HKV, s.LK, k0, lk, s.D);
      addRows(sumDv, pv, s, s.HKV, s.LK, k0, lk, s.DV);
      for (size_t i = 0; i < pg.size(); ++i)
        for (int64_t e = 0; e < pg[i].numel(); ++e)
          sumGrads[i][size_t(e)] += pg[i].getAsDouble(e);
    }
  EXPECT_LT(relError(sumDq, valuesOf(dq)), 1e-5) << "dq";
  EXPECT_LT(relError(sumDk, valuesOf(dk)), 1e-5) << "dk";
  EXPECT_LT(relError(sumDv, valuesOf(dv)), 1e-5) << "dv";
  for (size_t i = 0; i < grads.size(); ++i)
    EXPECT_LT(relError(sumGrads[i], valuesOf(grads[i].second)), 1e-5)
        << grads[i].first;
}

std::string specName(const ::testing::TestParamInfo<fs::path> &info) {
  return info.param.stem().string();
}

INSTANTIATE_TEST_SUITE_P(SharedSpecs, SequenceWindow_,
                         ::testing::ValuesIn(sharedSpecFiles()), specName);
// A softmax sink is counted once, by the key window that starts at key 0,
// in the forward and in its gradient.
INSTANTIATE_TEST_SUITE_P(
    Sinks, SequenceWindow_,
    ::testing::Values(fs::path(ATTNC_EXAMPLES_DIR) / "gpt_oss_sinks.attn"),
    specName);

/// Causal: the pair of the first queries and the last keys has only EMPTY
/// tiles, and neither pass visits one; the rows see no key.
TEST(SequenceWindow, AllEmptyPairVisitsNoTile) {
  Compiler compiler;
  CompileOptions opts;
  opts.tileQ = 16, opts.tileK = 32, opts.traceTiles = true, opts.backward = true;
  auto kernel = compiler.compile("attention causal { mask = q >= kv }", opts);
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  std::mt19937 rng(testSeed());
  const int64_t lq = 23, lk = 52;
  Operand q = randomOperand(DType::F32, {1, 2, lq, 8}, rng, -1, 1);
  Operand k = randomOperand(DType::F32, {1, 1, lk, 8}, rng, -1, 1);
  Operand v = randomOperand(DType::F32, {1, 1, lk, 8}, rng, -1, 1);
  Tensor out = Tensor::zeros(DType::F32, {1, 2, lq, 8}).value();
  Tensor lse = Tensor::zeros(DType::F32, {1, 2, lq}).value();
  TensorView lv = lse.view();
  std::vector<int8_t> trace;
  ForwardOptions fo;
  fo.lse = &lv;
  fo.tileTrace = &trace;
  fo.window = {0, 31, 70, 83}; // queries 0..22, keys 31..82
  Status st = kernel->forward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                              out.view(), fo);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(trace.size(), size_t(2 * 2 * 2)); // tasks * key tiles
  for (int8_t t : trace)
    EXPECT_EQ(t, 0);
  for (int64_t i = 0; i < out.numel(); ++i)
    ASSERT_EQ(out.getAsDouble(i), 0.0);
  for (int64_t i = 0; i < lse.numel(); ++i)
    ASSERT_EQ(lse.getAsDouble(i), -INFINITY);

  // The diagonal pair has PARTIAL tiles; shifting its keys past the
  // queries leaves none.
  fo.window = {31, 31, 70, 83};
  ASSERT_TRUE(kernel->forward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                              out.view(), fo).ok());
  EXPECT_NE(std::count(trace.begin(), trace.end(), 2), 0);

  Operand dout = randomOperand(DType::F32, {1, 2, lq, 8}, rng, -1, 1);
  Tensor dq = Tensor::zeros(DType::F32, {1, 2, lq, 8}).value();
  Tensor dk = Tensor::zeros(DType::F32, {1, 1, lk, 8}).value();
  Tensor dv = Tensor::zeros(DType::F32, {1, 1, lk, 8}).value();
  for (int64_t i = 0; i < lse.numel(); ++i)
    lse.setFromDouble(i, -INFINITY); // the rows' whole lse: no key
  std::vector<int8_t> bwdTrace;
  BackwardOptions bo;
  bo.tileTrace = &bwdTrace;
  bo.window = {0, 31, 70, 83};
  st = kernel->backward(q.tensor.view(), k.tensor.view(), v.tensor.view(), out.view(),
                        lse.view(), dout.tensor.view(), dq.view(), dk.view(),
                        dv.view(), bo);
  ASSERT_TRUE(st.ok()) << st.message();
  for (int8_t t : bwdTrace)
    EXPECT_EQ(t, 0);
  for (const Tensor *g : {&dq, &dk, &dv})
    for (int64_t i = 0; i < g->numel(); ++i)
      ASSERT_EQ(g->getAsDouble(i), 0.0);
}

TEST(SequenceWindow, BadWindowsAreErrors) {
  Compiler compiler;
  auto kernel = compiler.compile(
      "attention doc { input d: int[LQ]\n mask = d[q] >= 0 && q >= kv }", {});
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  Tensor q = Tensor::zeros(DType::F32, {1, 1, 5, 4}).value();
  Tensor k = Tensor::zeros(DType::F32, {1, 1, 6, 4}).value();
  Tensor out = Tensor::zeros(DType::F32, {1, 1, 5, 4}).value();
  Tensor ids = Tensor::zeros(DType::I64, {9}).value();
  auto run = [&](SequenceWindow w) {
    ForwardOptions fo;
    fo.inputs = {{"d", ids.view()}};
    fo.window = w;
    return kernel->forward(q.view(), k.view(), k.view(), out.view(), fo);
  };
  EXPECT_TRUE(run({4, 0, 9, 6}).ok()) << run({4, 0, 9, 6}).message();
  for (SequenceWindow w : {SequenceWindow{-1, 0, 9, 6}, SequenceWindow{5, 0, 9, 6},
                           SequenceWindow{0, 1, 9, 6}, SequenceWindow{0, -3, 9, -1},
                           SequenceWindow{INT64_MAX, 0, -1, -1}}) {
    Status st = run(w);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("sequence window"), std::string::npos) << st.message();
  }
  // Input dims named LQ are the sequence's length, not the call's.
  Status st = run({0, 0, -1, -1});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("input 'd'"), std::string::npos) << st.message();
}

} // namespace
