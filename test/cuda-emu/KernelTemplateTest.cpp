//===- KernelTemplateTest.cpp - The CUDA kernel templates on their own ----===//
//
// codegen/cuda/attnc_sm80.cuh and attnc_sm90.cuh included as headers (no
// emitter, no pasted text: they include what they need), instantiated for
// hand-written spec structs that follow CudaModule.h's contract, and run on
// the CPU under test/cuda-emu (CudaEmu.h is force-included) against
// float64 references on fresh random data: odd LQ != LK, GQA, B > 1,
// DV != D, head dims the templates pad (96 and 40 on 128-wide
// instantiations), fully masked rows, softmax with a folded scale, with a
// negative one (u.pre), and sigmoid.
//
//===----------------------------------------------------------------------===//
#include "attnc_sm80.cuh"
#include "attnc_sm90.cuh"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

extern "C" int attnc_emu_launch(void *entry, unsigned gx, unsigned gy, unsigned gz, unsigned threads,
                                unsigned smemBytes, const void *args, const void *maps, char *error,
                                unsigned errorBytes);

namespace {
/// The diagonal of a query row: q + LK - LQ (the last rows meet the last keys).
inline int64_t diagonal(const attnc_ctx &c, int64_t q) { return q + c.LK - c.LQ; }

/// A sliding window of kW keys ending at the diagonal, a softcap score
/// cap * tanh(s scale / cap). With LQ > LK the first rows keep no key.
struct WindowSoftcap {
  static constexpr bool sigmoid = false, prescale = false, has_sink = false;
  static constexpr int ids = 0, kW = 45;
  static constexpr float kCap = 4.f;
  struct rowset {
    int64_t hullLo, hullHi, q0, q1;
  };
  static rowset rows(const attnc_ctx &c, int64_t q0, int64_t q1) {
    return {std::max<int64_t>(0, diagonal(c, q0) - kW + 1), std::min(c.LK - 1, diagonal(c, q1)), q0, q1};
  }
  static int tile_kind(const attnc_ctx &c, const rowset &r, int64_t k0, int64_t k1, const int64_t *) {
    if (k0 > diagonal(c, r.q1) || k1 <= diagonal(c, r.q0) - kW)
      return 0;
    return k1 <= diagonal(c, r.q0) && k0 > diagonal(c, r.q1) - kW ? 1 : 2;
  }
  static attnc_uniforms uniforms(const attnc_ctx &c) { return {1.f / std::sqrt(float(c.D)), 0.f, 1.f, 1.f}; }
  template <bool PARTIAL>
  static float element(const attnc_ctx &c, const attnc_uniforms &u, int q, int kv, bool inb, float s) {
    bool keep = inb;
    if constexpr (PARTIAL)
      keep = keep && kv <= diagonal(c, q) && kv > diagonal(c, q) - kW;
    const float x = kCap * std::tanh(s * u.scale / kCap);
    return keep ? x * 1.4426950408889634f : -INFINITY;
  }
  static double logit(double s, double scale) { return kCap * std::tanh(s * scale / kCap); }
  static bool kept(const attnc_ctx &c, int64_t q, int64_t kv) {
    return kv <= diagonal(c, q) && kv > diagonal(c, q) - kW;
  }
  static double scale(int64_t d) { return 1.0 / std::sqrt(double(d)); }
};

/// Causal on the diagonal with a negative scale: the raw logit cannot fold
/// into the exponent, so S is first multiplied by u.pre.
struct CausalNegative {
  static constexpr bool sigmoid = false, prescale = true, has_sink = false;
  static constexpr int ids = 0;
  struct rowset {
    int64_t hullLo, hullHi, q0, q1;
  };
  static rowset rows(const attnc_ctx &c, int64_t q0, int64_t q1) {
    return {0, std::min(c.LK - 1, diagonal(c, q1)), q0, q1};
  }
  static int tile_kind(const attnc_ctx &c, const rowset &r, int64_t k0, int64_t, const int64_t *) {
    return k0 > diagonal(c, r.q1) ? 0 : 2;
  }
  static attnc_uniforms uniforms(const attnc_ctx &c) {
    const float l2 = float(scale(c.D)) * 1.4426950408889634f;
    return {float(scale(c.D)), 0.f, 1.f, l2};
  }
  template <bool PARTIAL>
  static float element(const attnc_ctx &c, const attnc_uniforms &, int q, int kv, bool inb, float s) {
    const bool keep = inb && (!PARTIAL || kv <= diagonal(c, q));
    return keep ? s : -INFINITY;
  }
  static double logit(double s, double scale) { return s * scale; }
  static bool kept(const attnc_ctx &c, int64_t q, int64_t kv) { return kv <= diagonal(c, q); }
  static double scale(int64_t d) { return -0.7 / std::sqrt(double(d)); }
};

/// Sigmoid over every pair: P = sigmoid(s scale + bias), no normalisation.
struct SigmoidFull {
  static constexpr bool sigmoid = true, prescale = false, has_sink = false;
  static constexpr int ids = 0;
  static constexpr float kBias = -1.5f;
  struct rowset {
    int64_t hullLo, hullHi;
  };
  static rowset rows(const attnc_ctx &c, int64_t, int64_t) { return {0, c.LK - 1}; }
  static int tile_kind(const attnc_ctx &, const rowset &, int64_t, int64_t, const int64_t *) { return 1; }
  static attnc_uniforms uniforms(const attnc_ctx &c) { return {0.5f * float(scale(c.D)), 0.5f * kBias, 1.f, 1.f}; }
  template <bool PARTIAL>
  static float element(const attnc_ctx &, const attnc_uniforms &u, int, int, bool inb, float s) {
    return inb ? std::fma(0.5f, std::tanh(std::fma(s, u.scale, u.bias)), 0.5f) : 0.f;
  }
  static double logit(double s, double scale) { return s * scale + kBias; }
  static bool kept(const attnc_ctx &, int64_t, int64_t) { return true; }
  static double scale(int64_t d) { return 1.0 / std::sqrt(double(d)); }
};

} // namespace

// The instantiations, as the emitter writes them for a spec.
ATTNC_SM80_ENTRY(t80_window_64_64, WindowSoftcap, attnc_bf16, 64, 64)
ATTNC_SM80_ENTRY(t80_window_96_40, WindowSoftcap, attnc_f16, attnc_sm80_pad_hd(96), 40)
ATTNC_SM80_ENTRY(t80_causal_128_64, CausalNegative, attnc_bf16, 128, 64)
ATTNC_SM80_ENTRY(t80_sigmoid_64_128, SigmoidFull, attnc_f16, 64, 128)
ATTNC_SM90_ENTRY(t90_window_128_128, WindowSoftcap, attnc_bf16, 128, 128)
ATTNC_SM90_ENTRY(t90_window_96_40, WindowSoftcap, attnc_f16, attnc_sm90_pad(96), attnc_sm90_pad(40))
ATTNC_SM90_ENTRY(t90_causal_64_128, CausalNegative, attnc_bf16, 64, 128)
ATTNC_SM90_ENTRY(t90_sigmoid_128_64, SigmoidFull, attnc_f16, 128, 64)

namespace {

struct Shape {
  int64_t B, HQ, HKV, LQ, LK, D, DV;
};

double toDouble(unsigned short h, bool bf16) {
  return bf16 ? attnc_emu::bf16ToFloat(h) : attnc_emu::f16ToFloat(h);
}

/// A 16-bit tensor [B, H, L, d] of random values in [-1, 1], contiguous.
std::vector<unsigned short> randomTensor(std::mt19937 &rng, size_t n, bool bf16) {
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<unsigned short> t(n);
  for (auto &x : t)
    x = bf16 ? attnc_emu::floatToBf16(u(rng)) : attnc_emu::floatToF16(u(rng));
  return t;
}

/// The fake driver's tensor-map words that CudaEmu.cpp's TMA reads.
attnc_tensor_map tensorMap(const void *base, int64_t d, int64_t L, int64_t H, int64_t B, unsigned rows) {
  attnc_tensor_map m = {};
  const uint64_t words[12] = {uint64_t(reinterpret_cast<uintptr_t>(base)), uint64_t(d), uint64_t(L),
                              uint64_t(H), uint64_t(B), uint64_t(d * 2), uint64_t(L * d * 2),
                              uint64_t(H * L * d * 2), 64, rows, 1, 2};
  std::copy(words, words + 12, m.opaque);
  return m;
}

/// Runs `entry` (instantiated for S) on fresh data of `shape` and checks out
/// and lse against the float64 reference.
template <class S>
void runAndCheck(void *entry, bool sm90, int hd, int hdv, bool bf16, const Shape &sh, unsigned seed) {
  std::mt19937 rng(seed);
  auto q = randomTensor(rng, size_t(sh.B * sh.HQ * sh.LQ * sh.D), bf16);
  auto k = randomTensor(rng, size_t(sh.B * sh.HKV * sh.LK * sh.D), bf16);
  auto v = randomTensor(rng, size_t(sh.B * sh.HKV * sh.LK * sh.DV), bf16);
  std::vector<unsigned short> out(size_t(sh.B * sh.HQ * sh.LQ * sh.DV), 0x7fff);
  std::vector<float> lse(size_t(sh.B * sh.HQ * sh.LQ), 12345.f);
  int64_t error[4] = {};
  attnc_cuda_args a = {};
  a.q = q.data(), a.k = k.data(), a.v = v.data(), a.out = out.data(), a.lse = lse.data();
  auto strides = [](int64_t *s, int64_t H, int64_t L, int64_t d) {
    s[0] = H * L * d, s[1] = L * d, s[2] = d, s[3] = 1;
  };
  strides(a.qs, sh.HQ, sh.LQ, sh.D), strides(a.ks, sh.HKV, sh.LK, sh.D);
  strides(a.vs, sh.HKV, sh.LK, sh.DV), strides(a.os, sh.HQ, sh.LQ, sh.DV);
  a.ls[0] = sh.HQ * sh.LQ, a.ls[1] = sh.LQ, a.ls[2] = 1;
  a.B = sh.B, a.HQ = sh.HQ, a.HKV = sh.HKV, a.LQ = sh.LQ, a.LK = sh.LK, a.D = sh.D, a.DV = sh.DV;
  a.dtype = bf16 ? 1 : 0, a.error = error;
  const unsigned rows = sm90 ? kAttncSm90Rows : kAttncSm80Rows;
  attnc_tma_maps maps = {tensorMap(a.q, sh.D, sh.LQ, sh.HQ, sh.B, rows),
                         tensorMap(a.k, sh.D, sh.LK, sh.HKV, sh.B, kAttncSm90Keys),
                         tensorMap(a.v, sh.DV, sh.LK, sh.HKV, sh.B, kAttncSm90Keys)};
  char msg[256] = "";
  int rc = attnc_emu_launch(entry, unsigned((sh.LQ + rows - 1) / rows), unsigned(sh.HQ), unsigned(sh.B),
                            sm90 ? kAttncSm90Threads : kAttncSm80Threads,
                            sm90 ? attnc_sm90_smem(hd, hdv) : attnc_sm80_smem(hd, hdv), &a, sm90 ? &maps : nullptr,
                            msg, sizeof msg);
  ASSERT_EQ(rc, 0) << msg;
  ASSERT_EQ(error[0], 0);
  int empty = 0;
  for (int64_t b = 0; b < sh.B; ++b)
    for (int64_t h = 0; h < sh.HQ; ++h) {
      attnc_ctx c = {sh.B, sh.HQ, sh.HKV, sh.LQ, sh.LK, sh.D, sh.DV, b, h, h / (sh.HQ / sh.HKV), nullptr, error};
      for (int64_t i = 0; i < sh.LQ; ++i) {
        // Logits, their max, the weights P and the reference row.
        std::vector<double> z(size_t(sh.LK), -INFINITY);
        double mx = -INFINITY;
        for (int64_t j = 0; j < sh.LK; ++j) {
          if (!S::kept(c, i, j))
            continue;
          double dot = 0;
          for (int64_t d = 0; d < sh.D; ++d)
            dot += toDouble(q[size_t(((b * sh.HQ + h) * sh.LQ + i) * sh.D + d)], bf16) *
                   toDouble(k[size_t(((b * sh.HKV + c.hkv) * sh.LK + j) * sh.D + d)], bf16);
          z[size_t(j)] = S::logit(dot, S::scale(sh.D));
          mx = std::max(mx, z[size_t(j)]);
        }
        double sum = 0, mag = 0;
        std::vector<double> ref(size_t(sh.DV), 0.0);
        for (int64_t j = 0; j < sh.LK; ++j) {
          if (z[size_t(j)] == -INFINITY)
            continue;
          const double p = S::sigmoid ? 1 / (1 + std::exp(-z[size_t(j)])) : std::exp(z[size_t(j)] - mx);
          sum += p;
          for (int64_t e = 0; e < sh.DV; ++e) {
            const double pv = p * toDouble(v[size_t(((b * sh.HKV + c.hkv) * sh.LK + j) * sh.DV + e)], bf16);
            ref[size_t(e)] += pv;
            mag += std::fabs(pv);
          }
        }
        const double norm = S::sigmoid || sum == 0 ? 1 : sum;
        empty += sum == 0;
        // Per element, and per row in norm (a 2% error of a whole row is
        // within the elements' bounds, not within the row's).
        double err2 = 0, ref2 = 0;
        for (int64_t e = 0; e < sh.DV; ++e) {
          const double got = toDouble(out[size_t(((b * sh.HQ + h) * sh.LQ + i) * sh.DV + e)], bf16);
          const double want = ref[size_t(e)] / norm;
          ASSERT_NEAR(got, want, 2e-3 + 6e-3 * mag / norm) << "b " << b << " h " << h << " row " << i << " col " << e;
          err2 += (got - want) * (got - want), ref2 += want * want;
        }
        ASSERT_LE(std::sqrt(err2), 1e-2 * std::sqrt(ref2) + 1e-4) << "b " << b << " h " << h << " row " << i;
        const float l = lse[size_t((b * sh.HQ + h) * sh.LQ + i)];
        if (S::sigmoid)
          ASSERT_EQ(l, 12345.f) << "sigmoid writes no lse";
        else if (sum == 0)
          ASSERT_EQ(l, -INFINITY) << "row " << i;
        else
          ASSERT_NEAR(l, mx + std::log(sum), 2e-3 * (1 + std::fabs(mx + std::log(sum)))) << "row " << i;
      }
    }
  if (std::is_same_v<S, WindowSoftcap> && sh.LQ > sh.LK)
    EXPECT_GT(empty, 0) << "the shape should have fully masked rows";
}

// Odd sizes, LQ != LK (LQ > LK: fully masked rows), GQA, B = 2.
const Shape kRagged = {2, 4, 2, 150, 93, 64, 64};

TEST(KernelTemplateSm80, WindowSoftcapBf16) { runAndCheck<WindowSoftcap>((void *)t80_window_64_64, false, 64, 64, true, kRagged, 1); }
TEST(KernelTemplateSm80, PaddedHeadDimsF16) {
  runAndCheck<WindowSoftcap>((void *)t80_window_96_40, false, 96, 40, false, {1, 2, 1, 77, 130, 96, 40}, 2);
}
TEST(KernelTemplateSm80, NegativeScalePrescales) {
  runAndCheck<CausalNegative>((void *)t80_causal_128_64, false, 128, 64, true, {1, 3, 3, 70, 131, 128, 64}, 3);
}
TEST(KernelTemplateSm80, SigmoidF16) {
  runAndCheck<SigmoidFull>((void *)t80_sigmoid_64_128, false, 64, 128, false, {1, 2, 2, 65, 71, 64, 128}, 4);
}
TEST(KernelTemplateSm90, WindowSoftcapBf16) {
  runAndCheck<WindowSoftcap>((void *)t90_window_128_128, true, 128, 128, true, {2, 4, 2, 150, 93, 128, 128}, 5);
}
TEST(KernelTemplateSm90, PaddedHeadDimsF16) {
  runAndCheck<WindowSoftcap>((void *)t90_window_96_40, true, 128, 64, false, {1, 2, 1, 77, 300, 96, 40}, 6);
}
TEST(KernelTemplateSm90, NegativeScalePrescales) {
  runAndCheck<CausalNegative>((void *)t90_causal_64_128, true, 64, 128, true, {1, 2, 1, 130, 259, 64, 128}, 7);
}
TEST(KernelTemplateSm90, SigmoidF16) {
  runAndCheck<SigmoidFull>((void *)t90_sigmoid_128_64, true, 128, 64, false, {1, 2, 2, 129, 140, 128, 64}, 8);
}
} // namespace
