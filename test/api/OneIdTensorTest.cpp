//===- OneIdTensorTest.cpp - Document masks written with one id tensor ---===//
//
// `doc[q] == doc[kv]`, FlexAttention's way (one [LQ] tensor read at both
// positions), gets the ids pre-pass as the two-tensor form does: at LQ == LK
// both visit the same tiles, some of them skipped, and match the float64
// reference; at LQ > LK too. At LQ < LK the tiles whose keys reach past the
// tensor stay PARTIAL, so the kernel reports an out-of-range read where the
// mask makes one, as the reference does, instead of reading past the tensor.
//
//===----------------------------------------------------------------------===//
#include "../common/RandomTensors.h"
#include "../common/SpecReference.h"

#include "attnc/Compiler.h"

#include <gtest/gtest.h>

#include <algorithm>

using namespace attnc;
using namespace attnc::test;
using runtime::DType;
using runtime::Tensor;

namespace {

const char *kOneTensor = R"(attention doc_one {
  input doc: int[LQ]
  mask = doc[q] == doc[kv] && q >= kv
})";
const char *kOneTensorFull = R"(attention doc_full {
  input doc: int[LQ]
  mask = doc[q] == doc[kv]
})";
const char *kCausalFirst = R"(attention doc_guarded {
  input doc: int[LQ]
  mask = q >= kv && doc[q] == doc[kv]
})";
const char *kTwoTensors = R"(attention doc_two {
  input doc_q: int[LQ]
  input doc_kv: int[LK]
  mask = doc_q[q] == doc_kv[kv] && q >= kv
})";

struct Result {
  Status status;
  Tensor out;
  std::vector<int8_t> trace;
};

struct Case {
  Shape s;
  Operand q, k, v;
  Tensor ids; // [LQ], sorted: several documents
};

Case makeCase(Shape s, std::mt19937 &rng) {
  Case c{s, randomOperand(DType::F32, {s.B, s.HQ, s.LQ, s.D}, rng, -2, 2),
         randomOperand(DType::F32, {s.B, s.HKV, s.LK, s.D}, rng, -2, 2),
         randomOperand(DType::F32, {s.B, s.HKV, s.LK, s.DV}, rng, -1, 1),
         Tensor::zeros(DType::I64, {s.LQ}).value()};
  std::uniform_int_distribution<int> id(0, 5);
  std::vector<int64_t> v(size_t(s.LQ));
  for (int64_t &x : v)
    x = id(rng);
  std::sort(v.begin(), v.end());
  for (int64_t i = 0; i < s.LQ; ++i)
    c.ids.setFromDouble(i, double(v[size_t(i)]));
  return c;
}

Result run(const Kernel &kernel, const Case &c,
        std::vector<std::pair<std::string, runtime::TensorView>> inputs) {
  const Shape &s = c.s;
  Result r{{}, Tensor::zeros(DType::F32, {s.B, s.HQ, s.LQ, s.DV}).value(), {}};
  for (int64_t i = 0; i < r.out.numel(); ++i)
    r.out.setFromDouble(i, NAN);
  ForwardOptions fo;
  fo.inputs = std::move(inputs);
  fo.tileTrace = &r.trace;
  r.status = kernel.forward(c.q.tensor.view(), c.k.tensor.view(), c.v.tensor.view(),
                            r.out.view(), fo);
  return r;
}

std::string reference(const char *text, const Case &c, std::vector<double> &out) {
  const Shape &s = c.s;
  mlir::attn::ProblemSizes ps;
  ps.B = s.B, ps.HQ = s.HQ, ps.HKV = s.HKV, ps.LQ = s.LQ, ps.LK = s.LK,
  ps.D = s.D, ps.DV = s.DV;
  mlir::attn::NamedTensors named;
  named.push_back({"doc", Tensor::zeros(DType::I64, {s.LQ}).value()});
  for (int64_t i = 0; i < s.LQ; ++i)
    named[0].second.setFromDouble(i, c.ids.getAsDouble(i));
  std::vector<double> lse;
  return referenceOf(text, ps, named, c.q.values, c.k.values, c.v.values,
                     out, lse);
}

Expected<Kernel> compileTraced(Compiler &compiler, const char *text) {
  CompileOptions opts;
  opts.traceTiles = true;
  opts.tileQ = 16, opts.tileK = 32;
  return compiler.compile(text, opts);
}

TEST(OneIdTensor, SkipsTheTilesOfTheTwoTensorForm) {
  Compiler compiler;
  auto one = compileTraced(compiler, kOneTensor);
  auto two = compileTraced(compiler, kTwoTensors);
  ASSERT_TRUE(one.ok()) << one.status().message();
  ASSERT_TRUE(two.ok()) << two.status().message();
  ASSERT_GT(one->info().numIdsAtoms, 0) << "no ids pre-pass for one tensor";
  const uint32_t seed = testSeed();
  SCOPED_TRACE("ATTNC_TEST_SEED=" + std::to_string(seed));
  std::mt19937 rng(seed);
  Case c = makeCase({2, 2, 1, 203, 203, 16, 12}, rng);
  Result a = run(*one, c, {{"doc", c.ids.view()}});
  Result b = run(*two, c, {{"doc_q", c.ids.view()}, {"doc_kv", c.ids.view()}});
  ASSERT_TRUE(a.status.ok()) << a.status.message();
  ASSERT_TRUE(b.status.ok()) << b.status.message();
  EXPECT_EQ(a.trace, b.trace);
  // Tiles below the diagonal across two documents are skipped.
  int64_t lower = 0, visited = 0;
  for (int64_t qt = 0; qt < 13; ++qt)
    for (int64_t kt = 0; kt <= qt * 16 / 32; ++kt) {
      ++lower;
      visited += a.trace[size_t(qt * 7 + kt)] != 0;
    }
  EXPECT_LT(visited, lower);
  std::vector<double> ref;
  ASSERT_EQ(reference(kOneTensor, c, ref), "");
  EXPECT_LT(relativeError(a.out, ref), 1e-5);
}

TEST(OneIdTensor, MoreQueriesThanKeys) {
  Compiler compiler;
  auto one = compileTraced(compiler, kOneTensor);
  ASSERT_TRUE(one.ok()) << one.status().message();
  std::mt19937 rng(testSeed());
  Case c = makeCase({1, 3, 3, 203, 113, 16, 16}, rng);
  Result a = run(*one, c, {{"doc", c.ids.view()}});
  ASSERT_TRUE(a.status.ok()) << a.status.message();
  std::vector<double> ref;
  ASSERT_EQ(reference(kOneTensor, c, ref), "");
  EXPECT_LT(relativeError(a.out, ref), 1e-5);
}

/// At LQ < LK a mask that reads doc[kv] on keys past the tensor is an
/// error, in the kernel as in the reference; `q >= kv && ...` never reads
/// them (`&&` stops first) and matches the reference.
TEST(OneIdTensor, KeysPastTheTensorAreAnError) {
  Compiler compiler;
  std::mt19937 rng(testSeed());
  Case c = makeCase({1, 1, 1, 113, 203, 16, 16}, rng);
  std::vector<double> ref;
  for (const char *text : {kOneTensorFull, kOneTensor}) {
    auto kernel = compileTraced(compiler, text);
    ASSERT_TRUE(kernel.ok()) << kernel.status().message();
    Result a = run(*kernel, c, {{"doc", c.ids.view()}});
    ASSERT_FALSE(a.status.ok()) << text;
    EXPECT_NE(a.status.message().find("read out of range"), std::string::npos)
        << a.status.message();
    EXPECT_NE(reference(text, c, ref), "") << text;
  }
  auto guarded = compileTraced(compiler, kCausalFirst);
  ASSERT_TRUE(guarded.ok()) << guarded.status().message();
  ASSERT_GT(guarded->info().numIdsAtoms, 0);
  Result b = run(*guarded, c, {{"doc", c.ids.view()}});
  ASSERT_TRUE(b.status.ok()) << b.status.message();
  ASSERT_EQ(reference(kCausalFirst, c, ref), "");
  EXPECT_LT(relativeError(b.out, ref), 1e-5);
}

} // namespace
