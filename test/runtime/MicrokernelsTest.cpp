//===- MicrokernelsTest.cpp - The tile microkernels against plain loops ---===//
//
// Every path this CPU has (avx512, avx2, generic: the microkernels of each,
// forced with attnc_uk_set_isa; a path the CPU lacks is skipped) over odd
// tile shapes (tails of every vector width), against double
// precision loops; the softmax update with masked (-inf) logits and with
// rows that keep nothing, which must give exactly 0 and keep m = -inf.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/Dropout.h"
#include "attnc/Runtime/Microkernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

std::vector<float> randomVec(size_t n, std::mt19937 &rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(n);
  for (float &x : v)
    x = u(rng);
  return v;
}

class Microkernels : public ::testing::TestWithParam<int> {
protected:
  void SetUp() override {
    before = attnc_uk_isa();
    if (attnc_uk_set_isa(GetParam()) != 0)
      GTEST_SKIP() << "this CPU lacks the " << attnc_uk_isa_name(GetParam())
                   << " path";
  }
  void TearDown() override { attnc_uk_set_isa(before); }
  int before = ATTNC_ISA_GENERIC;
};

TEST_P(Microkernels, QkMatchesLoops) {
  std::mt19937 rng(1);
  for (int64_t tq : {1, 7, 8, 9, 31, 64, 70})
    for (int64_t tk : {1, 15, 16, 17, 33, 64})
      for (int64_t d : {1, 17, 64}) {
        int64_t ldq = d + 3, ldkt = tk + 5, lds = tk + 2;
        auto q = randomVec(tq * ldq, rng), kt = randomVec(d * ldkt, rng);
        std::vector<float> s(tq * lds, 42.0f);
        attnc_uk_qk_f32(q.data(), ldq, kt.data(), ldkt, s.data(), lds, tq, tk, d, 0.5f);
        for (int64_t i = 0; i < tq; ++i) {
          for (int64_t j = 0; j < tk; ++j) {
            double ref = 0;
            for (int64_t k = 0; k < d; ++k)
              ref += double(q[i * ldq + k]) * kt[k * ldkt + j];
            ASSERT_NEAR(s[i * lds + j], 0.5 * ref, 1e-5) << tq << " " << tk << " " << d;
          }
          for (int64_t j = tk; j < lds; ++j)
            ASSERT_EQ(s[i * lds + j], 42.0f) << "wrote outside the tile";
        }
      }
}

// The backward's dq += dDot K: adds to what the output holds (random, not
// zero, so an overwrite fails) and touches nothing outside the tile.
TEST_P(Microkernels, QkAccAddsToTheOutput) {
  std::mt19937 rng(3);
  for (int64_t tq : {1, 7, 8, 9, 64, 70})
    for (int64_t tk : {1, 15, 16, 17, 33, 64, 128})
      for (int64_t d : {1, 17, 64}) {
        int64_t ldq = d + 3, ldkt = tk + 5, lds = tk + 2;
        auto q = randomVec(tq * ldq, rng), kt = randomVec(d * ldkt, rng);
        auto s = randomVec(tq * lds, rng);
        const std::vector<float> before = s;
        attnc_uk_qk_acc_f32(q.data(), ldq, kt.data(), ldkt, s.data(), lds, tq,
                            tk, d, 0.5f);
        for (int64_t i = 0; i < tq; ++i) {
          for (int64_t j = 0; j < tk; ++j) {
            double ref = 0;
            for (int64_t k = 0; k < d; ++k)
              ref += double(q[i * ldq + k]) * kt[k * ldkt + j];
            ASSERT_NEAR(s[i * lds + j], before[i * lds + j] + 0.5 * ref, 1e-5)
                << tq << " " << tk << " " << d;
          }
          for (int64_t j = tk; j < lds; ++j)
            ASSERT_EQ(s[i * lds + j], before[i * lds + j]) << "wrote outside the tile";
        }
      }
}

TEST_P(Microkernels, PvMatchesLoops) {
  std::mt19937 rng(2);
  for (int64_t tq : {1, 3, 4, 5, 17, 64})
    for (int64_t tk : {1, 7, 64})
      for (int64_t dv : {1, 16, 17, 48, 59, 64, 100, 128}) {
        int64_t ldp = tq + 1, ldv = dv + 2, ldacc = dv + 3;
        auto pt = randomVec(tk * ldp, rng), v = randomVec(tk * ldv, rng);
        auto acc = randomVec(tq * ldacc, rng), alpha = randomVec(tq, rng);
        std::vector<float> before = acc;
        attnc_uk_pv_t_f32(pt.data(), ldp, v.data(), ldv, acc.data(), ldacc, tq, tk, dv,
                          alpha.data());
        for (int64_t i = 0; i < tq; ++i) {
          for (int64_t c = 0; c < dv; ++c) {
            double ref = double(alpha[i]) * before[i * ldacc + c];
            for (int64_t j = 0; j < tk; ++j)
              ref += double(pt[j * ldp + i]) * v[j * ldv + c];
            ASSERT_NEAR(acc[i * ldacc + c], ref, 1e-4) << tq << " " << tk << " " << dv;
          }
          for (int64_t c = dv; c < ldacc; ++c)
            ASSERT_EQ(acc[i * ldacc + c], before[i * ldacc + c]);
        }
      }
}

TEST_P(Microkernels, SoftmaxUpdate) {
  const float negInf = -std::numeric_limits<float>::infinity();
  std::mt19937 rng(3);
  // 1..4 rows: the few-row path (along the keys), across 16-key blocks.
  for (int64_t tq : {1, 2, 3, 4, 5, 15, 16, 17, 64})
    for (int64_t tk : {1, 5, 16, 17, 64}) {
      int64_t ld = tq + 1;
      auto st = randomVec(tk * ld, rng);
      std::vector<float> m(tq), l(tq), alpha(tq, 7.0f);
      for (int64_t i = 0; i < tq; ++i) {
        m[i] = i % 3 == 0 ? negInf : 0.25f; // some rows saw nothing yet
        l[i] = i % 3 == 0 ? 0.0f : 2.0f;
        for (int64_t j = 0; j < tk; ++j) {
          if (i % 4 == 1)
            st[j * ld + i] = negInf; // rows with nothing kept in this tile
          else if ((i + j) % 5 == 0)
            st[j * ld + i] = negInf; // masked logits
          else
            st[j * ld + i] *= 10.0f;
        }
      }
      std::vector<float> s0 = st, m0 = m, l0 = l;
      attnc_uk_softmax_t_f32(st.data(), ld, tq, tk, m.data(), l.data(), alpha.data());
      for (int64_t i = 0; i < tq; ++i) {
        double mNew = m0[i];
        for (int64_t j = 0; j < tk; ++j)
          mNew = std::max<double>(mNew, s0[j * ld + i]);
        double z = std::isinf(mNew) ? 0 : mNew;
        double sum = 0;
        for (int64_t j = 0; j < tk; ++j) {
          double p = std::exp(double(s0[j * ld + i]) - z);
          sum += p;
          if (std::isinf(s0[j * ld + i]))
            ASSERT_EQ(st[j * ld + i], 0.0f) << "exp(-inf) must be exactly 0";
          else
            ASSERT_NEAR(st[j * ld + i], p, 1e-6 * std::max(1.0, p));
        }
        double a = std::exp(double(m0[i]) - z);
        ASSERT_EQ(m[i], float(mNew));
        ASSERT_NEAR(alpha[i], a, 1e-6);
        ASSERT_NEAR(l[i], a * l0[i] + sum, 1e-5 * (1 + sum));
        if (std::isinf(mNew)) {
          ASSERT_EQ(l[i], 0.0f) << "a row with nothing kept keeps l = 0";
          ASSERT_TRUE(std::isinf(m[i]) && m[i] < 0);
        }
      }
    }
}

uint16_t toBf16(float f) { // round to nearest even
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFF + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}
float fromBf16(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST_P(Microkernels, QkBf16MatchesLoops) {
  std::mt19937 rng(4);
  // Past 64 in every dimension: the AVX2 path works in 64 x 64 x 64 chunks.
  // 1..4 rows: the few-row path (along D, in chunks of 16 pairs).
  for (int64_t tq : {1, 2, 3, 4, 5, 15, 16, 17, 32, 64, 70})
    for (int64_t tk : {1, 7, 8, 9, 64, 65})
      for (int64_t dpairs : {1, 8, 16, 17, 33, 64}) {
        int64_t ldk = 2 * dpairs + 2, ldq2 = 2 * tq + 4, ldst = tq + 1;
        std::vector<uint16_t> k(tk * ldk), q(dpairs * ldq2);
        for (auto &x : k) x = toBf16(randomVec(1, rng)[0]);
        for (auto &x : q) x = toBf16(randomVec(1, rng)[0]);
        std::vector<float> st(tk * ldst, 42.0f);
        attnc_uk_qk_bf16(k.data(), ldk, q.data(), ldq2, st.data(), ldst, tk, tq, dpairs, 0.5f);
        for (int64_t j = 0; j < tk; ++j) {
          for (int64_t i = 0; i < tq; ++i) {
            double ref = 0;
            for (int64_t d = 0; d < 2 * dpairs; ++d)
              ref += double(fromBf16(k[j * ldk + d])) *
                     fromBf16(q[(d / 2) * ldq2 + 2 * i + d % 2]);
            ASSERT_NEAR(st[j * ldst + i], 0.5 * ref, 1e-4) << tq << " " << tk << " " << dpairs;
          }
          ASSERT_EQ(st[j * ldst + tq], 42.0f) << "wrote outside the tile";
        }
      }
}

TEST_P(Microkernels, PvBf16MatchesLoops) {
  std::mt19937 rng(5);
  // 1..4 rows: the AVX2 few-row path (32- and 8-column blocks, a scalar
  // tail).
  for (int64_t tq : {1, 2, 3, 4, 5, 17, 64})
    for (int64_t tk : {1, 2, 7, 64, 129})
      for (int64_t dv : {1, 17, 40, 64, 100}) {
        int64_t ldp = tq + 1, ldv2 = 2 * dv + 2, ldacc = dv + 1;
        auto pt = randomVec(tk * ldp, rng);
        for (float &x : pt) x = std::abs(x);
        std::vector<uint16_t> v2(((tk + 1) / 2) * ldv2, 0);
        for (int64_t j = 0; j < tk; ++j)
          for (int64_t c = 0; c < dv; ++c)
            v2[(j / 2) * ldv2 + 2 * c + j % 2] = toBf16(randomVec(1, rng)[0]);
        auto acc = randomVec(tq * ldacc, rng), alpha = randomVec(tq, rng);
        std::vector<float> before = acc;
        attnc_uk_pv_t_bf16(pt.data(), ldp, v2.data(), ldv2, acc.data(), ldacc, tq, tk, dv,
                           alpha.data());
        for (int64_t i = 0; i < tq; ++i) {
          for (int64_t c = 0; c < dv; ++c) {
            double ref = double(alpha[i]) * before[i * ldacc + c], mag = 0;
            for (int64_t j = 0; j < tk; ++j) {
              double t = double(pt[j * ldp + i]) * fromBf16(v2[(j / 2) * ldv2 + 2 * c + j % 2]);
              ref += t;
              mag += std::abs(t);
            }
            // P is rounded to bfloat16 (8 bits): a relative error of 2^-8.
            ASSERT_NEAR(acc[i * ldacc + c], ref, 1e-5 + mag / 256) << tq << " " << tk << " " << dv;
          }
          ASSERT_EQ(acc[i * ldacc + dv], before[i * ldacc + dv]);
        }
      }
}

/// P V on bf16 V as stored: a few rows with unit column stride read it in
/// place on the avx2 and avx512 paths (P kept f32: a tight tolerance);
/// otherwise, or with column stride 2, it is packed into the scratch first
/// (P rounded to bf16).
TEST_P(Microkernels, PvBf16UnpackedMatchesLoops) {
  std::mt19937 rng(6);
  for (int64_t tq : {1, 2, 3, 4, 5, 17})
    for (int64_t tk : {1, 2, 7, 64, 129})
      for (int64_t dv : {1, 17, 40, 64, 100, 130})
        for (int64_t ldvc : {1, 2}) {
          const int64_t ldp = tq + 1, ldvr = dv * ldvc + 3, ldacc = dv + 1;
          auto pt = randomVec(tk * ldp, rng);
          for (float &x : pt) x = std::abs(x);
          std::vector<uint16_t> v(tk * ldvr);
          for (auto &x : v) x = toBf16(randomVec(1, rng)[0]);
          std::vector<uint16_t> v2(2 * ((tk + 1) / 2) * dv, 0xABCD);
          auto acc = randomVec(tq * ldacc, rng), alpha = randomVec(tq, rng);
          std::vector<float> before = acc;
          attnc_uk_pv_t_bf16_unpacked(pt.data(), ldp, v.data(), ldvr, ldvc, acc.data(),
                                      ldacc, tq, tk, dv, alpha.data(), v2.data());
          const bool inPlace = tq <= 4 && ldvc == 1 && GetParam() != ATTNC_ISA_GENERIC;
          for (int64_t i = 0; i < tq; ++i) {
            for (int64_t c = 0; c < dv; ++c) {
              double ref = double(alpha[i]) * before[i * ldacc + c], mag = 0;
              for (int64_t j = 0; j < tk; ++j) {
                double t = double(pt[j * ldp + i]) * fromBf16(v[j * ldvr + c * ldvc]);
                ref += t;
                mag += std::abs(t);
              }
              ASSERT_NEAR(acc[i * ldacc + c], ref,
                          inPlace ? 1e-5 + mag * 1e-6 : 1e-5 + mag / 256)
                  << tq << " " << tk << " " << dv << " " << ldvc;
            }
            ASSERT_EQ(acc[i * ldacc + dv], before[i * ldacc + dv]);
          }
        }
}

/// The grid tiling's row gathers: exact copies of the indexed rows, the
/// row past an odd count zero in the pair layout, nothing else written.
/// attnc_uk_dropout_t_f32 against Dropout.h's attnc_dropout_keep per pair:
/// rows of two heads (rowsPerHead), a first key off a multiple of 4, row
/// counts past every vector width's tail, and a seed using all 64 bits.
TEST_P(Microkernels, DropoutMatchesThePairs) {
  std::mt19937 rng(17);
  const float scale = 1.0f / 0.7f;
  const unsigned threshold = attnc_dropout_threshold(0.3);
  for (int64_t tq : {1, 7, 16, 37, 300})
    for (int64_t firstKey : {0, 5, 4093}) {
      const int64_t tk = 13, ld = tq + 3, r0 = 3, rowsPerHead = 20, qPos = 100,
                    bh0 = 9;
      const uint64_t seed = 0xfedcba9876543210ull;
      const int64_t offset = 77;
      std::vector<float> st = randomVec(size_t(tk * ld), rng), want = st;
      for (int64_t j = 0; j < tk; ++j)
        for (int64_t i = 0; i < tq; ++i) {
          const int64_t r = r0 + i;
          const bool keep = attnc_dropout_keep(seed, unsigned(offset), uint64_t(bh0 + r / rowsPerHead),
                                               uint64_t(qPos + r % rowsPerHead),
                                               uint64_t(firstKey + j), threshold);
          float &w = want[size_t(j * ld + i)];
          w = keep ? w * scale : 0.0f;
        }
      attnc_uk_dropout_t_f32(st.data(), ld, tq, tk, firstKey, r0, rowsPerHead, qPos, bh0,
                             int64_t(seed), offset, threshold, scale);
      ASSERT_EQ(st, want) << "tq " << tq << " firstKey " << firstKey;
    }
}

TEST(MicrokernelGather, RowsAndPairs) {
  std::mt19937 rng(9);
  const int64_t rows = 50, ld = 37, cols = 33;
  auto srcF = randomVec(rows * ld, rng);
  std::vector<uint16_t> srcH(rows * ld);
  for (size_t i = 0; i < srcH.size(); ++i)
    srcH[i] = uint16_t(rng());
  for (int64_t n : {1, 2, 7, 48}) {
    std::vector<int64_t> idx(n);
    for (int64_t &x : idx)
      x = int64_t(rng() % rows);
    const int64_t lddst = cols + 3;
    std::vector<float> dstF(n * lddst, -7.f);
    attnc_uk_gather_rows_f32(srcF.data(), ld, idx.data(), n, cols, dstF.data(), lddst);
    std::vector<uint16_t> dstH(n * lddst, 0xABCD);
    attnc_uk_gather_rows_bf16(srcH.data(), ld, idx.data(), n, cols, dstH.data(), lddst);
    std::vector<uint16_t> pairs(((n + 1) / 2) * 2 * cols + 5, 0xABCD);
    attnc_uk_pack_pairs_gather_bf16(srcH.data(), ld, idx.data(), n, cols, pairs.data());
    for (int64_t j = 0; j < n; ++j)
      for (int64_t c = 0; c < lddst; ++c) {
        if (c < cols) {
          ASSERT_EQ(dstF[j * lddst + c], srcF[idx[j] * ld + c]);
          ASSERT_EQ(dstH[j * lddst + c], srcH[idx[j] * ld + c]);
        } else {
          ASSERT_EQ(dstF[j * lddst + c], -7.f);
          ASSERT_EQ(dstH[j * lddst + c], 0xABCD);
        }
      }
    for (int64_t j = 0; j < n + n % 2; ++j)
      for (int64_t c = 0; c < cols; ++c)
        ASSERT_EQ(pairs[(j / 2) * 2 * cols + 2 * c + j % 2],
                  j < n ? srcH[idx[j] * ld + c] : uint16_t(0));
    ASSERT_EQ(pairs[((n + 1) / 2) * 2 * cols], 0xABCD);
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, Microkernels,
                         ::testing::Values(ATTNC_ISA_AVX512, ATTNC_ISA_AVX2,
                                           ATTNC_ISA_GENERIC),
                         [](const auto &info) {
                           return std::string(attnc_uk_isa_name(info.param));
                         });

/// The names round-trip; an unknown path cannot be set and changes nothing.
TEST(MicrokernelIsa, NamesAndRefusals) {
  for (int isa : {ATTNC_ISA_GENERIC, ATTNC_ISA_AVX2, ATTNC_ISA_AVX512})
    EXPECT_EQ(attnc_uk_isa_from_name(attnc_uk_isa_name(isa)), isa);
  EXPECT_EQ(attnc_uk_isa_from_name("sse2"), -1);
  EXPECT_EQ(attnc_uk_isa_from_name(nullptr), -1);
  EXPECT_EQ(attnc_uk_isa_supported(ATTNC_ISA_GENERIC), 1);
  const int before = attnc_uk_isa();
  EXPECT_EQ(attnc_uk_set_isa(7), -1);
  EXPECT_EQ(attnc_uk_isa(), before);
}

/// attnc_uk_set_generic_kernels: the generic path (only) runs the table
/// given, under its name, until NULL restores the built-in copies.
int fakeQkCalls = 0;
void fakeQk(const float *, int64_t, const float *, int64_t, float *s, int64_t,
            int64_t, int64_t, int64_t, float) {
  ++fakeQkCalls;
  s[0] = -7.0f;
}

TEST(MicrokernelIsa, GenericKernelsCanBeReplaced) {
  const int before = attnc_uk_isa();
  const std::string builtin = attnc_uk_generic_build();
  EXPECT_EQ(builtin.rfind("built-in ", 0), 0u) << builtin;
  attnc_uk_generic_kernels table = {};
  table.qk_f32 = fakeQk;
  attnc_uk_set_generic_kernels(&table, "fake");
  EXPECT_STREQ(attnc_uk_generic_build(), "fake");
  float q = 1, kt = 1, s = 0;
  ASSERT_EQ(attnc_uk_set_isa(ATTNC_ISA_GENERIC), 0);
  attnc_uk_qk_f32(&q, 1, &kt, 1, &s, 1, 1, 1, 1, 1.0f);
  EXPECT_EQ(fakeQkCalls, 1);
  EXPECT_EQ(s, -7.0f);
  for (int isa : {ATTNC_ISA_AVX2, ATTNC_ISA_AVX512}) {
    if (attnc_uk_set_isa(isa) != 0)
      continue; // this CPU lacks it
    attnc_uk_qk_f32(&q, 1, &kt, 1, &s, 1, 1, 1, 1, 1.0f);
    EXPECT_EQ(s, 1.0f) << attnc_uk_isa_name(isa) << " ran the generic table";
  }
  attnc_uk_set_generic_kernels(nullptr, nullptr);
  EXPECT_EQ(attnc_uk_generic_build(), builtin);
  ASSERT_EQ(attnc_uk_set_isa(ATTNC_ISA_GENERIC), 0);
  attnc_uk_qk_f32(&q, 1, &kt, 1, &s, 1, 1, 1, 1, 1.0f);
  EXPECT_EQ(s, 1.0f);
  EXPECT_EQ(fakeQkCalls, 1);
  attnc_uk_set_isa(before);
}

} // namespace
