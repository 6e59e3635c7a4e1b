//===- InputBoundsTest.cpp - Masks bounded by int inputs read at b or h ---===//
//
// `kv < kv_len[b]` (padding) and `kv >= start[b] && q >= kv` bound the keys
// by an input element of each sequence: the analysis makes it a symbol of
// the atom (reads(...)), and the kernels load it per task, so key tiles past
// a sequence's length are EMPTY and tiles wholly inside it FULL (no mask
// code), as for a param. Checked tile by tile on a traced kernel and against
// the float64 reference, with a sequence of length 0 (fully masked rows)
// and lengths that are not tile multiples; the backward (column view)
// against the whole-gradient reference is BackwardTest's (moa_head_windows
// reads window[h]).
//
//===----------------------------------------------------------------------===//
#include "../common/RandomTensors.h"
#include "../common/SpecReference.h"

#include "attnc/Compiler.h"

#include <gtest/gtest.h>

#include <functional>

using namespace attnc;
using namespace attnc::test;
using runtime::DType;
using runtime::Tensor;

namespace {

struct Traced {
  Status status;
  Tensor out, lse;
  std::vector<int8_t> trace;
};

Traced runTraced(const Kernel &kernel, const Shape &s, const Operand &q,
                 const Operand &k, const Operand &v, const Tensor &bound) {
  Traced r{{}, Tensor::zeros(DType::F32, {s.B, s.HQ, s.LQ, s.DV}).value(),
           Tensor::zeros(DType::F32, {s.B, s.HQ, s.LQ}).value(), {}};
  for (int64_t i = 0; i < r.out.numel(); ++i)
    r.out.setFromDouble(i, NAN);
  runtime::TensorView lv = r.lse.view();
  ForwardOptions fo;
  fo.lse = &lv;
  fo.tileTrace = &r.trace;
  fo.inputs = {{kernel.info().inputs[0].name, bound.view()}};
  r.status = kernel.forward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                            r.out.view(), fo);
  return r;
}

void checkSpec(const char *text, const std::vector<int64_t> &perSequence,
               const std::function<int8_t(int64_t b, int64_t q0, int64_t q1,
                                          int64_t k0, int64_t k1)> &kind) {
  Compiler compiler;
  CompileOptions opts;
  opts.traceTiles = true;
  opts.tileQ = 16, opts.tileK = 32;
  auto kernel = compiler.compile(text, opts);
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  const uint32_t seed = testSeed();
  SCOPED_TRACE("ATTNC_TEST_SEED=" + std::to_string(seed));
  std::mt19937 rng(seed);
  const Shape s{int64_t(perSequence.size()), 2, 1, 50, 83, 16, 12};
  Operand q = randomOperand(DType::F32, {s.B, s.HQ, s.LQ, s.D}, rng, -2, 2);
  Operand k = randomOperand(DType::F32, {s.B, s.HKV, s.LK, s.D}, rng, -2, 2);
  Operand v = randomOperand(DType::F32, {s.B, s.HKV, s.LK, s.DV}, rng, -1, 1);
  Tensor bound = Tensor::zeros(DType::I64, {s.B}).value();
  for (int64_t b = 0; b < s.B; ++b)
    bound.setFromDouble(b, double(perSequence[size_t(b)]));
  Traced r = runTraced(*kernel, s, q, k, v, bound);
  ASSERT_TRUE(r.status.ok()) << r.status.message();

  // Every tile's kind, from the bounds alone.
  const int64_t nq = (s.LQ + 15) / 16, nk = (s.LK + 31) / 32;
  ASSERT_EQ(int64_t(r.trace.size()), s.B * s.HQ * nq * nk);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.HQ; ++h)
      for (int64_t qt = 0; qt < nq; ++qt)
        for (int64_t kt = 0; kt < nk; ++kt) {
          int64_t q0 = qt * 16, q1 = std::min(q0 + 16, s.LQ) - 1;
          int64_t k0 = kt * 32, k1 = std::min(k0 + 32, s.LK) - 1;
          EXPECT_EQ(int(r.trace[size_t(((b * s.HQ + h) * nq + qt) * nk + kt)]),
                    int(kind(b, q0, q1, k0, k1)))
              << "b " << b << " h " << h << " tile (" << qt << ", " << kt << ")";
        }

  mlir::attn::ProblemSizes ps;
  ps.B = s.B, ps.HQ = s.HQ, ps.HKV = s.HKV, ps.LQ = s.LQ, ps.LK = s.LK,
  ps.D = s.D, ps.DV = s.DV;
  mlir::attn::NamedTensors named;
  named.push_back({kernel->info().inputs[0].name, std::move(bound)});
  std::vector<double> refOut, refLse;
  ASSERT_EQ(referenceOf(text, ps, named, q.values, k.values, v.values, refOut,
                        refLse),
            "");
  EXPECT_LT(relativeError(r.out, refOut), 1e-5);
  for (int64_t i = 0; i < r.lse.numel(); ++i) {
    if (std::isinf(refLse[size_t(i)]))
      ASSERT_EQ(r.lse.getAsDouble(i), refLse[size_t(i)]) << "row " << i;
    else
      ASSERT_NEAR(r.lse.getAsDouble(i), refLse[size_t(i)], 1e-4) << "row " << i;
  }
}

constexpr int8_t kEmpty = 0, kFull = 1, kPartial = 2;

TEST(InputBounds, PaddingMask) {
  // Lengths 0 (every row masked), inside the first key tile, at a tile
  // boundary, in the last tile, and past LK.
  checkSpec("attention padded {\n input kv_len: int[B]\n mask = kv < kv_len[b]\n}",
            {0, 7, 64, 70, 100}, [](int64_t b, int64_t, int64_t, int64_t k0, int64_t k1) {
              const int64_t len[] = {0, 7, 64, 70, 100};
              if (k0 >= len[b])
                return kEmpty;
              return k1 < len[b] ? kFull : kPartial;
            });
}

TEST(InputBounds, StartAndCausal) {
  checkSpec("attention started {\n input start: int[B]\n"
            " mask = kv >= start[b] && q >= kv\n}",
            {0, 5, 40}, [](int64_t b, int64_t q0, int64_t q1, int64_t k0, int64_t k1) {
              const int64_t start[] = {0, 5, 40};
              // Some row keeps a key: k1 >= start and k0 <= q1; every row
              // keeps every key: k0 >= start and k1 <= q0.
              if (k1 < start[b] || k0 > q1 || q1 < start[b])
                return kEmpty;
              return k0 >= start[b] && k1 <= q0 ? kFull : kPartial;
            });
}

} // namespace
