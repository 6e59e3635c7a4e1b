//===- DecodeTest.cpp - Decode steps: few query rows against many keys ----===//
//
// forwardCpu runs a decode step (LQ <= 16) as chunks of keys merged by
// their lse (CpuDecode.cpp). out and lse must equal the float64 reference:
// every shared spec with LQ in {1, 3, 16} and LK in {1, 1000}, in forced
// chunks of 7 and 64 keys (windows off the key tiles) and in the chunks
// chosen from the shape; LK = 70000 in the chosen chunks for GQA and MQA,
// f32 and bf16; rows that every key or a whole chunk masks; B = 2, DV !=
// D; the query heads of a group packed as the rows of a tile. A chunk
// that fails (an input read out of range) writes nothing and reports the
// error of the whole call.
//
//===----------------------------------------------------------------------===//
#include "../common/RandomTensors.h"
#include "../common/SharedSpecs.h"
#include "../common/SpecReference.h"

#include "attnc/Compiler.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace attnc;
using namespace attnc::test;
using runtime::DType;
using runtime::Tensor;
using runtime::TensorView;
namespace fs = std::filesystem;

namespace {

/// Runs \p kernel (compiled from \p text) on random data of shape \p s in
/// \p dtype, its keys in chunks of \p chunk (0: chosen from the shape, -1:
/// whole), on \p threads (0: the pool), and compares out and lse with the
/// float64 reference.
void checkDecode(const Kernel &kernel, const std::string &text, const Shape &s,
                 DType dtype, int64_t chunk, std::mt19937 &rng, int threads = 0) {
  SCOPED_TRACE("LQ " + std::to_string(s.LQ) + ", LK " + std::to_string(s.LK) +
               ", HQ " + std::to_string(s.HQ) + ", HKV " + std::to_string(s.HKV) +
               ", chunk " + std::to_string(chunk) + ", " + runtime::dtypeName(dtype));
  Operand q = randomOperand(dtype, {s.B, s.HQ, s.LQ, s.D}, rng, -1, 1);
  Operand k = randomOperand(dtype, {s.B, s.HKV, s.LK, s.D}, rng, -1, 1);
  Operand v = randomOperand(dtype, {s.B, s.HKV, s.LK, s.DV}, rng, -1, 1);
  auto inputs = randomInputs(kernel.info(), s, rng);
  Tensor out = Tensor::zeros(dtype, {s.B, s.HQ, s.LQ, s.DV}).value();
  Tensor lse = Tensor::zeros(DType::F32, {s.B, s.HQ, s.LQ}).value();
  for (int64_t i = 0; i < out.numel(); ++i)
    out.setFromDouble(i, NAN);
  for (int64_t i = 0; i < lse.numel(); ++i)
    lse.setFromDouble(i, NAN);
  const bool sigmoid = kernel.info().sigmoid;
  ForwardOptions fo;
  for (const auto &[n, t] : inputs)
    fo.inputs.push_back({n, t.view()});
  TensorView lseView = lse.view();
  if (!sigmoid)
    fo.lse = &lseView;
  fo.decodeChunk = chunk;
  fo.threads = threads;
  Status st = kernel.forward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                             out.view(), fo);
  ASSERT_TRUE(st.ok()) << st.message();

  mlir::attn::ProblemSizes ps;
  ps.B = s.B, ps.HQ = s.HQ, ps.HKV = s.HKV, ps.LQ = s.LQ, ps.LK = s.LK,
  ps.D = s.D, ps.DV = s.DV;
  std::vector<double> refOut, refLse;
  ASSERT_EQ(referenceOf(text, ps, inputs, q.values, k.values, v.values, refOut,
                        refLse),
            "");
  // bf16: the chunks' partial results are stored in bf16 before the merge.
  const bool bf16 = dtype == DType::BF16;
  EXPECT_LT(outputError(out, refOut), bf16 ? 1e-2 : 1e-5);
  if (sigmoid)
    return;
  for (int64_t i = 0; i < lse.numel(); ++i) {
    const double want = refLse[size_t(i)], got = lse.getAsDouble(i);
    if (std::isinf(want))
      ASSERT_EQ(got, want) << "row " << i;
    else
      ASSERT_NEAR(got, want, bf16 ? 2e-2 : 1e-4) << "row " << i;
  }
}

Expected<Kernel> compileForDecode(Compiler &compiler, const std::string &text,
                                  const std::string &label, DType storage) {
  CompileOptions opts;
  opts.tileQ = 16, opts.tileK = 32;
  opts.dtype = storage;
  return compiler.compile(text, opts, label);
}

class Decode_ : public ::testing::TestWithParam<fs::path> {};

TEST_P(Decode_, MatchesTheReferenceInChunks) {
  const std::string text = readTextFile(GetParam());
  Compiler compiler;
  auto kernel = compileForDecode(compiler, text, GetParam().string(), DType::F32);
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  const uint32_t seed = testSeed();
  SCOPED_TRACE("ATTNC_TEST_SEED=" + std::to_string(seed));
  std::mt19937 rng(seed);
  for (int64_t lq : {1, 3, 16}) {
    const Shape s{2, 4, 2, lq, 1000, 16, 12};
    for (int64_t chunk : {7, 64, 0})
      checkDecode(*kernel, text, s, DType::F32, chunk, rng);
    checkDecode(*kernel, text, Shape{2, 4, 2, lq, 1, 16, 12}, DType::F32, 0, rng);
  }
}

std::string specName(const ::testing::TestParamInfo<fs::path> &info) {
  return info.param.stem().string();
}

INSTANTIATE_TEST_SUITE_P(SharedSpecs, Decode_,
                         ::testing::ValuesIn(sharedSpecFiles()), specName);
// A softmax sink, counted once per row however the keys are split.
INSTANTIATE_TEST_SUITE_P(
    Sinks, Decode_,
    ::testing::Values(fs::path(ATTNC_EXAMPLES_DIR) / "gpt_oss_sinks.attn"),
    specName);

/// LK = 70000 in the chunks chosen from the shape: GQA and MQA, f32 and
/// bf16, a bottom-right causal mask and a padding mask on a length input.
TEST(Decode, LongKeysInChosenChunks) {
  const std::string causal = "attention c {\n  mask = q + LK - LQ >= kv\n}\n";
  const std::string padded = "attention p {\n  input len: int[B]\n"
                             "  mask = kv < len[b] * 200\n}\n";
  const uint32_t seed = testSeed();
  SCOPED_TRACE("ATTNC_TEST_SEED=" + std::to_string(seed));
  std::mt19937 rng(seed);
  Compiler compiler;
  for (DType dtype : {DType::F32, DType::BF16}) {
    auto c = compileForDecode(compiler, causal, "c.attn", dtype);
    auto p = compileForDecode(compiler, padded, "p.attn", dtype);
    ASSERT_TRUE(c.ok() && p.ok());
    checkDecode(*c, causal, Shape{2, 8, 2, 1, 70000, 16, 8}, dtype, 0, rng);
    checkDecode(*c, causal, Shape{1, 4, 1, 16, 70000, 16, 8}, dtype, 0, rng);
    checkDecode(*p, padded, Shape{2, 8, 2, 3, 70000, 16, 8}, dtype, 0, rng);
  }
}

/// Rows that every key masks (causal with LQ > LK: out 0, lse -inf), and
/// rows that whole chunks mask (a window of 3 keys: most chunks keep
/// nothing of a row).
TEST(Decode, MaskedRowsAndChunks) {
  const std::string causal = "attention c {\n  mask = q + LK - LQ >= kv\n}\n";
  const std::string window =
      "attention w {\n  mask = q + LK - LQ >= kv && q + LK - LQ - kv < 3\n}\n";
  std::mt19937 rng(testSeed());
  Compiler compiler;
  auto c = compileForDecode(compiler, causal, "c.attn", DType::F32);
  auto w = compileForDecode(compiler, window, "w.attn", DType::F32);
  ASSERT_TRUE(c.ok() && w.ok());
  checkDecode(*c, causal, Shape{2, 4, 2, 16, 5, 16, 12}, DType::F32, 2, rng);
  checkDecode(*w, window, Shape{2, 4, 2, 16, 300, 16, 12}, DType::F32, 7, rng);
  checkDecode(*w, window, Shape{2, 4, 2, 3, 300, 16, 12}, DType::F32, 64, rng);
}

/// The query heads of a GQA group as the rows of one tile (KernelABI.h,
/// ATTNC_META_ROW_HEADS; a single-threaded call packs them): whole and in
/// chunks, 4 heads of LQ 1 or 3 per task, 2 heads of LQ 5 (4 * 5 rows
/// would exceed tileQ 16), MQA; a score that reads each row's head
/// (ALiBi); and a mask that reads h, which never packs.
TEST(Decode, PacksTheQueryHeadsOfAGroup) {
  const std::string causal = "attention c {\n  mask = q + LK - LQ >= kv\n}\n";
  const std::string alibi = "attention a {\n  input slope: float[HQ]\n"
                            "  score = score - slope[h] * (q + LK - LQ - kv)\n"
                            "  mask = q + LK - LQ >= kv\n}\n";
  const std::string window = "attention w {\n  input win: int[HQ]\n"
                             "  mask = q + LK - LQ >= kv && q + LK - LQ - kv < win[h]\n}\n";
  const uint32_t seed = testSeed();
  SCOPED_TRACE("ATTNC_TEST_SEED=" + std::to_string(seed));
  std::mt19937 rng(seed);
  Compiler compiler;
  auto w = compileForDecode(compiler, window, "w.attn", DType::F32);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_FALSE(w->info().packsHeads);
  checkDecode(*w, window, Shape{2, 8, 2, 3, 300, 16, 12}, DType::F32, -1, rng, 1);
  for (DType dtype : {DType::F32, DType::BF16}) {
    for (const std::string *text : {&causal, &alibi}) {
      auto c = compileForDecode(compiler, *text, "c.attn", dtype);
      ASSERT_TRUE(c.ok()) << c.status().message();
      EXPECT_TRUE(c->info().packsHeads);
      for (int64_t lq : {1, 3, 5})
        for (int64_t chunk : {-1, 64})
          checkDecode(*c, *text, Shape{2, 8, 2, lq, 300, 16, 12}, dtype, chunk, rng, 1);
      checkDecode(*c, *text, Shape{1, 6, 1, 2, 200, 16, 12}, dtype, -1, rng, 1);
    }
  }
}

/// A read out of range in the last chunk only: the split call reports the
/// whole call's error and writes nothing.
TEST(Decode, AFailingChunkWritesNothing) {
  const std::string text = "attention e {\n  input shift: float[4]\n"
                           "  score = score + shift[kv / 250]\n}\n";
  Compiler compiler;
  auto kernel = compileForDecode(compiler, text, "e.attn", DType::F32);
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  std::mt19937 rng(1);
  const int64_t B = 1, HQ = 4, HKV = 2, LQ = 2, LK = 1100, D = 8;
  Operand q = randomOperand(DType::F32, {B, HQ, LQ, D}, rng, -1, 1);
  Operand k = randomOperand(DType::F32, {B, HKV, LK, D}, rng, -1, 1);
  Operand v = randomOperand(DType::F32, {B, HKV, LK, D}, rng, -1, 1);
  Operand shift = randomOperand(DType::F32, {4}, rng, -1, 1);
  std::string messages[2];
  for (int64_t chunk : {-1, 100}) {
    Tensor out = Tensor::zeros(DType::F32, {B, HQ, LQ, D}).value();
    for (int64_t i = 0; i < out.numel(); ++i)
      out.setFromDouble(i, 7.0);
    ForwardOptions fo;
    fo.inputs.push_back({"shift", shift.tensor.view()});
    fo.decodeChunk = chunk;
    Status st = kernel->forward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                                out.view(), fo);
    ASSERT_FALSE(st.ok());
    messages[chunk < 0 ? 0 : 1] = st.message();
    if (chunk > 0)
      for (int64_t i = 0; i < out.numel(); ++i)
        ASSERT_EQ(out.getAsDouble(i), 7.0) << "a failed call wrote out[" << i << "]";
  }
  EXPECT_NE(messages[0].find("shift"), std::string::npos) << messages[0];
  EXPECT_EQ(messages[1], messages[0]);
  // A chunk size below -1 is refused.
  Tensor out = Tensor::zeros(DType::F32, {B, HQ, LQ, D}).value();
  ForwardOptions fo;
  fo.inputs.push_back({"shift", shift.tensor.view()});
  fo.decodeChunk = -2;
  Status st = kernel->forward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                              out.view(), fo);
  EXPECT_NE(st.message().find("the decode chunk must be"), std::string::npos)
      << st.message();
}

} // namespace
