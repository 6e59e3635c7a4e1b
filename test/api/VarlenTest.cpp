//===- VarlenTest.cpp - Packed variable-length batches (cu_seqlens) -------===//
//
// ForwardOptions::varlen: q, k, v, out [total, H, X] and lse [HQ, total_q]
// hold sequences of different lengths back to back. Each sequence's rows
// must equal the float64 reference of that sequence alone (its own LQ,
// LK, positions and b). Sequences cover LQ != LK, LQ = LK, an empty
// sequence, one with queries and no keys (fully masked), GQA and DV != D,
// and sequences of more than 16 query rows, which run on dense copies of
// their keys and values; out is poisoned so an unwritten row fails. For every shared spec that
// can take a varlen batch, a padding mask on an int[B] input (its rows
// sliced per sequence), and the errors: bad offsets, mismatched counts,
// packed shapes, inputs over LQ or LK; nothing is written then.
//
//===----------------------------------------------------------------------===//
#include "../common/RandomTensors.h"
#include "../common/SequenceInputs.h"
#include "../common/SharedSpecs.h"
#include "../common/SpecReference.h"

#include "attnc/Compiler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

using namespace attnc;
using namespace attnc::test;
using runtime::DType;
using runtime::Tensor;
using runtime::TensorView;
namespace fs = std::filesystem;

namespace {

constexpr int64_t HQ = 4, HKV = 2, D = 16, DV = 12;
// (LQ, LK) per sequence: cross, empty, self, no keys, one query, long keys.
const std::vector<std::pair<int64_t, int64_t>> kLengths = {
    {5, 9}, {0, 0}, {37, 37}, {3, 0}, {1, 70}, {20, 51}};

std::vector<int32_t> offsets(bool keys) {
  std::vector<int32_t> cu = {0};
  for (auto [lq, lk] : kLengths)
    cu.push_back(cu.back() + int32_t(keys ? lk : lq));
  return cu;
}

/// Rows [r0, r0 + n) of packed [T, H, X] values as dense [1, H, n, X].
std::vector<double> sequenceRows(const std::vector<double> &packed, int64_t H,
                                 int64_t X, int64_t r0, int64_t n) {
  std::vector<double> r(size_t(H * n * X));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t x = 0; x < X; ++x)
        r[size_t((h * n + i) * X + x)] = packed[size_t(((r0 + i) * H + h) * X + x)];
  return r;
}

bool readsSequenceLengths(const Kernel &kernel) {
  for (const auto &d : kernel.info().inputs)
    for (const auto &dim : d.dims)
      if (dim.isSize && (dim.size == runtime::SizeName::LQ ||
                         dim.size == runtime::SizeName::LK))
        return true;
  return false;
}

/// Runs \p text on the packed batch of kLengths and compares each sequence
/// with its own float64 reference.
void checkVarlen(const std::string &text, const std::string &label) {
  Compiler compiler;
  CompileOptions opts;
  opts.tileQ = 16, opts.tileK = 32; // several tiles per sequence
  auto kernel = compiler.compile(text, opts, label);
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  const uint32_t seed = testSeed();
  SCOPED_TRACE("ATTNC_TEST_SEED=" + std::to_string(seed));
  std::mt19937 rng(seed);
  std::vector<int32_t> cuQ = offsets(false), cuKv = offsets(true);
  const int64_t TQ = cuQ.back(), TK = cuKv.back(), B = int64_t(kLengths.size());
  Operand q = randomOperand(DType::F32, {TQ, HQ, D}, rng, -1, 1);
  Operand k = randomOperand(DType::F32, {TK, HKV, D}, rng, -1, 1);
  Operand v = randomOperand(DType::F32, {TK, HKV, DV}, rng, -1, 1);
  auto inputs = randomInputs(kernel->info(), Shape{B, HQ, HKV, 1, 1, D, DV}, rng);
  Tensor out = Tensor::zeros(DType::F32, {TQ, HQ, DV}).value();
  Tensor lse = Tensor::zeros(DType::F32, {HQ, TQ}).value();
  for (int64_t i = 0; i < out.numel(); ++i)
    out.setFromDouble(i, NAN);
  TensorView cuQv = offsetsView(cuQ), cuKvv = offsetsView(cuKv), lseView = lse.view();
  ForwardOptions fo;
  for (const auto &[n, t] : inputs)
    fo.inputs.push_back({n, t.view()});
  fo.varlen = {&cuQv, &cuKvv};
  const bool sigmoid = kernel->info().sigmoid;
  if (!sigmoid)
    fo.lse = &lseView;
  Status st = kernel->forward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                              out.view(), fo);
  ASSERT_TRUE(st.ok()) << st.message();

  for (int64_t b = 0; b < B; ++b) {
    auto [lq, lk] = kLengths[size_t(b)];
    SCOPED_TRACE("sequence " + std::to_string(b));
    mlir::attn::ProblemSizes ps;
    ps.B = 1, ps.HQ = HQ, ps.HKV = HKV, ps.LQ = lq, ps.LK = lk, ps.D = D, ps.DV = DV;
    std::vector<double> refOut, refLse;
    ASSERT_EQ(referenceOf(text, ps, sequenceInputs(*kernel, inputs, b),
                          sequenceRows(q.values, HQ, D, cuQ[size_t(b)], lq),
                          sequenceRows(k.values, HKV, D, cuKv[size_t(b)], lk),
                          sequenceRows(v.values, HKV, DV, cuKv[size_t(b)], lk),
                          refOut, refLse),
              "");
    for (int64_t h = 0; h < HQ; ++h)
      for (int64_t i = 0; i < lq; ++i) {
        const int64_t row = cuQ[size_t(b)] + i;
        for (int64_t x = 0; x < DV; ++x)
          ASSERT_NEAR(out.getAsDouble((row * HQ + h) * DV + x),
                      refOut[size_t((h * lq + i) * DV + x)], 2e-5)
              << "h " << h << " row " << i << " col " << x;
        if (sigmoid)
          continue;
        const double want = refLse[size_t(h * lq + i)];
        const double got = lse.getAsDouble(h * TQ + row);
        if (std::isinf(want))
          ASSERT_EQ(got, want) << "h " << h << " row " << i;
        else
          ASSERT_NEAR(got, want, 1e-4) << "h " << h << " row " << i;
      }
  }
}

class Varlen_ : public ::testing::TestWithParam<fs::path> {};

TEST_P(Varlen_, EverySequenceMatchesItsReference) {
  const std::string text = readTextFile(GetParam());
  Compiler compiler;
  auto kernel = compiler.compile(text, CompileOptions(), GetParam().string());
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  if (readsSequenceLengths(*kernel))
    GTEST_SKIP() << "an input over LQ or LK cannot take a varlen batch "
                    "(Errors covers the message)";
  checkVarlen(text, GetParam().string());
}

std::string specName(const ::testing::TestParamInfo<fs::path> &info) {
  return info.param.stem().string();
}

INSTANTIATE_TEST_SUITE_P(SharedSpecs, Varlen_,
                         ::testing::ValuesIn(sharedSpecFiles()), specName);
// A softmax sink, counted once per row however the keys are split.
INSTANTIATE_TEST_SUITE_P(
    Sinks, Varlen_,
    ::testing::Values(fs::path(ATTNC_EXAMPLES_DIR) / "gpt_oss_sinks.attn"),
    specName);

TEST(Varlen, PaddingMaskReadsEachSequencesEntry) {
  checkVarlen("attention padded {\n  input kv_len: int[B]\n"
              "  mask = kv < kv_len[b] && q + LK - LQ >= kv\n}\n",
              "padded.attn");
}

/// The error of a call on the kLengths batch after \p edit changed it;
/// also requires out to be untouched.
std::string varlenError(const std::string &text,
                        const std::function<void(std::vector<int32_t> &cuQ,
                                                 std::vector<int32_t> &cuKv,
                                                 TensorView &q, TensorView &lse,
                                                 ForwardOptions &fo)> &edit) {
  Compiler compiler;
  auto kernel = compiler.compile(text, CompileOptions(), "e.attn");
  EXPECT_TRUE(kernel.ok());
  if (!kernel.ok())
    return "";
  std::vector<int32_t> cuQ = offsets(false), cuKv = offsets(true);
  const int64_t TQ = cuQ.back(), TK = cuKv.back();
  Tensor q = Tensor::zeros(DType::F32, {TQ, HQ, D}).value();
  Tensor k = Tensor::zeros(DType::F32, {TK, HKV, D}).value();
  Tensor v = Tensor::zeros(DType::F32, {TK, HKV, DV}).value();
  Tensor out = Tensor::zeros(DType::F32, {TQ, HQ, DV}).value();
  Tensor lse = Tensor::zeros(DType::F32, {HQ, TQ}).value();
  for (int64_t i = 0; i < out.numel(); ++i)
    out.setFromDouble(i, 7.0);
  TensorView qv = q.view(), lv = lse.view(), cuQv, cuKvv;
  ForwardOptions fo;
  fo.lse = &lv;
  edit(cuQ, cuKv, qv, lv, fo);
  cuQv = offsetsView(cuQ), cuKvv = offsetsView(cuKv);
  if (!fo.varlen.cuSeqlensQ && !fo.varlen.cuSeqlensKv)
    fo.varlen = {&cuQv, &cuKvv};
  else if (fo.varlen.cuSeqlensKv)
    fo.varlen = {nullptr, &cuKvv};
  Status st = kernel->forward(qv, k.view(), v.view(), out.view(), fo);
  EXPECT_FALSE(st.ok());
  for (int64_t i = 0; i < out.numel(); ++i)
    if (out.getAsDouble(i) != 7.0) {
      ADD_FAILURE() << "a failed call wrote out[" << i << "]";
      break;
    }
  return st.message();
}

TEST(Varlen, Errors) {
  const std::string causal = "attention c {\n  mask = q >= kv\n}\n";
  auto none = [](auto &, auto &, auto &, auto &, auto &) {};
  EXPECT_NE(varlenError(causal, [](auto &cuQ, auto &, auto &, auto &, auto &) {
              cuQ[2] = cuQ[1] - 1;
            }).find("cu_seqlens_q: must not decrease"),
            std::string::npos);
  EXPECT_NE(varlenError(causal, [](auto &, auto &cuKv, auto &, auto &, auto &) {
              cuKv.back() += 1;
            }).find("cu_seqlens_kv: must end at the"),
            std::string::npos);
  EXPECT_NE(varlenError(causal, [](auto &cuQ, auto &, auto &, auto &, auto &) {
              cuQ[0] = 1;
            }).find("must start at 0"),
            std::string::npos);
  EXPECT_NE(varlenError(causal, [](auto &, auto &cuKv, auto &, auto &, auto &) {
              const int32_t rows = cuKv.back(); // one sequence fewer
              cuKv.pop_back();
              cuKv.back() = rows;
            }).find("both must be B + 1"),
            std::string::npos);
  EXPECT_NE(varlenError(causal, [](auto &, auto &, auto &, auto &, ForwardOptions &fo) {
              static TensorView dummy;
              fo.varlen.cuSeqlensKv = &dummy; // marks: give only cu_seqlens_kv
            }).find("cu_seqlens_q is missing"),
            std::string::npos);
  // q one row shorter (the last sequence too), out as it was: each
  // sequence's view of out must lie inside it, so the rows must agree.
  EXPECT_NE(varlenError(causal, [](auto &cuQ, auto &, TensorView &q, TensorView &lse,
                                   auto &) {
              cuQ.back() -= 1;
              q.shape[0] -= 1;
              lse.shape[1] -= 1;
            }).find("out has 66 packed rows, but q has 65"),
            std::string::npos);
  EXPECT_NE(varlenError(causal, [](auto &, auto &, TensorView &q, auto &, auto &) {
              q.shape = {1, q.shape[0], HQ, D};
              q.strides.insert(q.strides.begin(), 0);
            }).find("q: a varlen batch expects rank 3"),
            std::string::npos);
  EXPECT_NE(varlenError(causal, [](auto &, auto &, auto &, TensorView &lse, auto &) {
              lse.shape = {lse.shape[1], lse.shape[0]};
              std::swap(lse.strides[0], lse.strides[1]);
            }).find("lse: expected [HQ, total_q]"),
            std::string::npos);
  EXPECT_NE(varlenError(causal, [](auto &, auto &, auto &, auto &, ForwardOptions &fo) {
              fo.window = {0, 0, 100, 100};
            }).find("no sequence window"),
            std::string::npos);
  EXPECT_NE(varlenError("attention d {\n  input doc: int[LK]\n  mask = doc[kv] == 0\n}\n",
                        none).find("input 'doc' has a dimension LK"),
            std::string::npos);
  // A sequence's own check (here: the input's B extent) names the sequence.
  EXPECT_NE(varlenError("attention p {\n  input n: int[B]\n  mask = kv < n[b]\n}\n",
                        [](auto &, auto &, auto &, auto &, ForwardOptions &fo) {
                          static std::vector<int32_t> two = {1, 2};
                          static TensorView t = offsetsView(two);
                          fo.inputs.push_back({"n", t});
                        }).find("sequence 0 of the varlen batch"),
            std::string::npos);
}

} // namespace
