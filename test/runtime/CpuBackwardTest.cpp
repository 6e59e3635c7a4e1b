//===- CpuBackwardTest.cpp - backwardCpu against hand-written helpers -----===//
//
// backwardCpu is tested without a compiler: the generated __bwd_kinds and
// __bwd_tile helpers (KernelABI.h) are replaced by hand-written functions of
// the same ABI for four variants: softmax without a mask (every tile FULL),
// bottom-right causal softmax (kinds EMPTY / FULL / PARTIAL from q + (LK -
// LQ) >= kv, fully masked rows when LQ > LK), sigmoid with bias -log(LK),
// and causal softmax with an ALiBi-like float input slopes[h] whose
// gradient the tile helper accumulates. dq, dk, dv and d(slopes) are
// compared with a float64 reference of the same functions, in every storage
// type, on odd shapes, GQA, LQ != LK, DV != D and strided views; runs with
// 1, 2 and 3 threads must agree bit for bit; bad arguments must be refused
// with the outputs untouched.
//
//===----------------------------------------------------------------------===//
#include "CpuDispatchTestUtil.h"

#include "attnc/Runtime/CpuBackward.h"

#include <cstring>

using namespace cpu_dispatch_test;

namespace {
enum Variant { kFull, kCausal, kSigmoid, kAlibi };

constexpr bool isCausal(int v) { return v == kCausal || v == kAlibi; }

/// Reads b, h, ... of the helpers' descriptor.
const int64_t *descOf(const attnc_buffer *buf) {
  return bufferAt<int64_t>(buf, ATTNC_BWD_DESC);
}

/// The kind of (query rows [q0, q1], keys [k0, k1]) under the bottom-right
/// causal mask q + off >= kv.
int64_t causalKind(int64_t q0, int64_t q1, int64_t k0, int64_t k1,
                   int64_t off) {
  if (q1 + off < k0)
    return 0;
  return q0 + off >= k1 ? 1 : 2;
}

/// __bwd_kinds: every tile FULL, or the causal schedule; only [first, last]
/// is written.
template <int V>
void kindsFn(const attnc_buffer *buf, const int64_t *meta, int64_t *, int64_t,
             int64_t) {
  const int64_t *desc = descOf(buf);
  const int64_t kt = desc[2], TQ = desc[3], TK = desc[4];
  const int64_t LQ = meta[ATTNC_META_LQ], LK = meta[ATTNC_META_LK];
  const int64_t nqt = ceilDiv(LQ, TQ), k0 = kt * TK,
                k1 = std::min(LK, k0 + TK) - 1;
  int64_t *kinds = bufferAt<int64_t>(buf, ATTNC_BWD_KINDS);
  std::vector<int64_t> all(size_t(nqt), 1);
  if (isCausal(V))
    for (int64_t qt = 0; qt < nqt; ++qt)
      all[size_t(qt)] = causalKind(qt * TQ, std::min(LQ, (qt + 1) * TQ) - 1,
                                   k0, k1, LK - LQ);
  int64_t first = 0, last = nqt - 1;
  while (first <= last && all[size_t(first)] == 0)
    ++first;
  while (last >= first && all[size_t(last)] == 0)
    --last;
  for (int64_t qt = first; qt <= last; ++qt)
    kinds[qt] = all[size_t(qt)];
  kinds[nqt] = first;
  kinds[nqt + 1] = last;
}

/// The ALiBi kernel declares slopes float [HQ], tag int [LQ], unused
/// float [4]; only slopes is differentiable (sum of ranks 3).
constexpr int kAlibiRankSum = 3;

/// __bwd_tile in float32, as generated code computes it.
template <int V>
void tileFn(const attnc_buffer *buf, const int64_t *meta, int64_t *, int64_t,
            int64_t) {
  const int64_t *desc = descOf(buf);
  const int64_t h = desc[1], q0 = desc[2], tq = desc[3], k0 = desc[4],
                tk = desc[5], kind = desc[6];
  const int64_t LQ = meta[ATTNC_META_LQ], LK = meta[ATTNC_META_LK];
  const float scale = 1.0f / std::sqrt(float(meta[ATTNC_META_D]));
  float *s = bufferAt<float>(buf, ATTNC_BWD_S);
  float *dp = bufferAt<float>(buf, ATTNC_BWD_DP);
  const float *lse = bufferAt<float>(buf, ATTNC_BWD_LSE);
  const float *delta = bufferAt<float>(buf, ATTNC_BWD_DELTA);
  float slope = 0, *dslope = nullptr;
  if (V == kAlibi) {
    const int64_t stride = meta[ATTNC_META_INPUTS + 1];
    slope = bufferAt<float>(buf, ATTNC_BUF_INPUTS)[h * stride];
    dslope = bufferAt<float>(buf, ATTNC_BWD_DINPUTS) +
             meta[ATTNC_META_INPUTS + 2 * kAlibiRankSum] + h;
  }
  const float bias = -std::log(float(LK));
  for (int64_t i = 0; i < tq; ++i)
    for (int64_t j = 0; j < tk; ++j) {
      const int64_t q = q0 + i, kv = k0 + j, e = i * tk + j;
      if (kind == 2 && isCausal(V) && !(q + (LK - LQ) >= kv)) {
        s[e] = 0;
        dp[e] = 0;
        continue;
      }
      float z = scale * s[e];
      if (V == kAlibi)
        z -= slope * float(q - kv);
      float p, dz;
      if (V == kSigmoid) {
        p = 1.0f / (1.0f + std::exp(-(z + bias)));
        dz = dp[e] * p * (1.0f - p);
      } else {
        p = std::exp(z - lse[i]);
        dz = p * (dp[e] - delta[i]);
      }
      s[e] = p;
      dp[e] = dz * scale;
      if (V == kAlibi)
        *dslope -= dz * float(q - kv);
    }
}

BackwardKernelInfo backwardKernel(int v, const KernelInfo &fwd) {
  BackwardKernelInfo k;
  k.forward = &fwd;
  static constexpr attnc_cpu_kernel_fn kinds[] = {
      kindsFn<kFull>, kindsFn<kCausal>, kindsFn<kSigmoid>, kindsFn<kAlibi>};
  static constexpr attnc_cpu_kernel_fn tiles[] = {
      tileFn<kFull>, tileFn<kCausal>, tileFn<kSigmoid>, tileFn<kAlibi>};
  k.kinds = kinds[v];
  k.tile = tiles[v];
  k.tileQ = 4;
  k.tileK = 3;
  if (v == kAlibi)
    k.differentiable = {0};
  return k;
}

KernelInfo forwardKernel(int v, DType storage) {
  KernelInfo k;
  k.name = "bwd" + std::to_string(v);
  k.storage = storage;
  k.sigmoid = v == kSigmoid;
  k.tileQ = 8;
  k.tileK = 8;
  if (v == kAlibi)
    k.inputs = {{"slopes", DType::F32, {sz(SizeName::HQ)}},
                {"tag", DType::I64, {sz(SizeName::LQ)}},
                {"unused", DType::F32, {lit(4)}}};
  return k;
}

/// One problem: the tensors, the float64 reference and the arguments.
struct Problem {
  Dims d;
  int variant;
  DType st;
  Tensor q, k, v, out, lse, dout, slopes, tag, unused;
  Tensor dq, dk, dv, dslopes;
  std::vector<double> rdq, rdk, rdv, rdslopes;
  KernelInfo fwd;
  BackwardKernelInfo bwd;
  CpuBackwardArgs args;

  Problem(const Dims &dims, int var, DType storage, uint32_t seed = 7)
      : d(dims), variant(var), st(storage),
        q(randomTensor({d.B, d.HQ, d.LQ, d.D}, seed, st)),
        k(randomTensor({d.B, d.HKV, d.LK, d.D}, seed + 1, st)),
        v(randomTensor({d.B, d.HKV, d.LK, d.DV}, seed + 2, st)),
        out(zeros(st, {d.B, d.HQ, d.LQ, d.DV})),
        lse(zeros(DType::F32, {d.B, d.HQ, d.LQ})),
        dout(randomTensor({d.B, d.HQ, d.LQ, d.DV}, seed + 3, st)),
        slopes(randomTensor({d.HQ}, seed + 4)), tag(zeros(DType::I64, {d.LQ})),
        unused(randomTensor({4}, seed + 5)),
        dq(zeros(st, {d.B, d.HQ, d.LQ, d.D})),
        dk(zeros(st, {d.B, d.HKV, d.LK, d.D})),
        dv(zeros(st, {d.B, d.HKV, d.LK, d.DV})),
        dslopes(zeros(DType::F32, {d.HQ})), fwd(forwardKernel(var, st)),
        bwd(backwardKernel(var, fwd)) {
    reference();
    for (Tensor *t : {&dq, &dk, &dv, &dslopes})
      poison(*t);
    args.q = q.view();
    args.k = k.view();
    args.v = v.view();
    args.out = out.view();
    if (variant != kSigmoid)
      args.lse = lse.view();
    args.dout = dout.view();
    args.dq = dq.view();
    args.dk = dk.view();
    args.dv = dv.view();
    if (variant == kAlibi) {
      args.inputs = {{"slopes", slopes.view()},
                     {"tag", tag.view()},
                     {"unused", unused.view()}};
      args.inputGrads = {{"slopes", dslopes.view()}};
    }
  }
  Problem(const Problem &) = delete;

  bool kept(int64_t i, int64_t j) const {
    return !isCausal(variant) || i + (d.LK - d.LQ) >= j;
  }

  /// The forward (stored into out and lse) and the gradients, in double.
  void reference() {
    const int64_t G = d.HKV ? d.HQ / d.HKV : 1;
    const double scale = 1.0 / std::sqrt(double(d.D));
    rdq.assign(size_t(q.numel()), 0);
    rdk.assign(size_t(k.numel()), 0);
    rdv.assign(size_t(v.numel()), 0);
    rdslopes.assign(size_t(d.HQ), 0);
    std::vector<double> p(size_t(d.LK)), dp(size_t(d.LK)), o(size_t(d.DV));
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t h = 0; h < d.HQ; ++h)
        for (int64_t i = 0; i < d.LQ; ++i)
          row(b, h, h / G, i, scale, p, dp, o);
  }

  void row(int64_t b, int64_t h, int64_t hk, int64_t i, double scale,
           std::vector<double> &p, std::vector<double> &dp,
           std::vector<double> &o) {
    auto Q = [&](int64_t c) { return q.getAsDouble(((b * d.HQ + h) * d.LQ + i) * d.D + c); };
    auto K = [&](int64_t j, int64_t c) { return k.getAsDouble(((b * d.HKV + hk) * d.LK + j) * d.D + c); };
    auto Vv = [&](int64_t j, int64_t c) { return v.getAsDouble(((b * d.HKV + hk) * d.LK + j) * d.DV + c); };
    auto DO = [&](int64_t c) { return dout.getAsDouble(((b * d.HQ + h) * d.LQ + i) * d.DV + c); };
    const double slope = variant == kAlibi ? slopes.getAsDouble(h) : 0;
    double m = -kInf;
    for (int64_t j = 0; j < d.LK; ++j) {
      p[size_t(j)] = -kInf;
      if (!kept(i, j))
        continue;
      double dot = 0;
      for (int64_t c = 0; c < d.D; ++c)
        dot += Q(c) * K(j, c);
      p[size_t(j)] = scale * dot - slope * double(i - j);
      m = std::max(m, p[size_t(j)]);
    }
    double l = 0;
    for (int64_t j = 0; j < d.LK; ++j) {
      double &x = p[size_t(j)];
      if (variant == kSigmoid)
        x = kept(i, j) ? 1 / (1 + std::exp(-(x - std::log(double(d.LK))))) : 0;
      else
        x = m == -kInf ? 0 : std::exp(x - m);
      l += x;
    }
    double delta = 0;
    for (int64_t c = 0; c < d.DV; ++c) {
      double acc = 0;
      for (int64_t j = 0; j < d.LK; ++j)
        acc += p[size_t(j)] * Vv(j, c);
      o[size_t(c)] = variant == kSigmoid ? acc : (l > 0 ? acc / l : 0);
      out.setFromDouble(((b * d.HQ + h) * d.LQ + i) * d.DV + c, o[size_t(c)]);
      delta += o[size_t(c)] * DO(c);
    }
    lse.setFromDouble((b * d.HQ + h) * d.LQ + i, l > 0 ? m + std::log(l) : -kInf);
    for (int64_t j = 0; j < d.LK; ++j) {
      if (!kept(i, j))
        continue;
      double pj = variant == kSigmoid ? p[size_t(j)] : p[size_t(j)] / l;
      double dpj = 0;
      for (int64_t c = 0; c < d.DV; ++c) {
        dpj += DO(c) * Vv(j, c);
        rdv[size_t(((b * d.HKV + hk) * d.LK + j) * d.DV + c)] += pj * DO(c);
      }
      const double dz = variant == kSigmoid ? dpj * pj * (1 - pj) : pj * (dpj - delta);
      rdslopes[size_t(h)] -= dz * double(i - j);
      for (int64_t c = 0; c < d.D; ++c) {
        rdq[size_t(((b * d.HQ + h) * d.LQ + i) * d.D + c)] += dz * scale * K(j, c);
        rdk[size_t(((b * d.HKV + hk) * d.LK + j) * d.D + c)] += dz * scale * Q(c);
      }
    }
  }
};

/// ||got - ref|| / ||ref||; 0 needs an exact 0; NaN never passes.
double relError(const Tensor &got, const std::vector<double> &ref) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double g = got.getAsDouble(i), r = ref[size_t(i)];
    if (std::isnan(g))
      return kInf;
    num += (g - r) * (g - r);
    den += r * r;
  }
  return den == 0 ? (num == 0 ? 0 : kInf) : std::sqrt(num / den);
}

void expectMatches(const Problem &p, double tol, const std::string &what) {
  EXPECT_LE(relError(p.dq, p.rdq), tol) << what << ": dq";
  EXPECT_LE(relError(p.dk, p.rdk), tol) << what << ": dk";
  EXPECT_LE(relError(p.dv, p.rdv), tol) << what << ": dv";
  if (p.variant == kAlibi)
    EXPECT_LE(relError(p.dslopes, p.rdslopes), tol) << what << ": dslopes";
}

double tolerance(DType st) { return st == DType::F32 ? 1e-5 : 3e-2; }

const Dims kOdd{2, 4, 2, 13, 11, 5, 7};   // GQA, LQ > LK, DV != D
const Dims kCross{2, 4, 2, 7, 17, 6, 3};  // LQ < LK

TEST(CpuBackward, EveryVariantMatchesTheReference) {
  for (int v : {kFull, kCausal, kSigmoid, kAlibi})
    for (const Dims &d : {kOdd, kCross}) {
      Problem p(d, v, DType::F32);
      ASSERT_OK(backwardCpu(p.bwd, p.args));
      expectMatches(p, 1e-5, "variant " + std::to_string(v) + " LQ " +
                                 std::to_string(d.LQ));
    }
}

TEST(CpuBackward, SixteenBitStorage) {
  for (DType st : {DType::BF16, DType::F16})
    for (int v : {kCausal, kSigmoid, kAlibi}) {
      Problem p(kOdd, v, st);
      ASSERT_OK(backwardCpu(p.bwd, p.args));
      expectMatches(p, tolerance(st), std::string(dtypeName(st)) + " variant " +
                                          std::to_string(v));
    }
}

TEST(CpuBackward, FullyMaskedRowsGetNoGradient) {
  // Causal bottom-right with LQ = 13 > LK = 11: rows 0 and 1 keep nothing.
  Problem p(kOdd, kAlibi, DType::F32);
  ASSERT_EQ(p.lse.getAsDouble(0), -kInf);
  ASSERT_OK(backwardCpu(p.bwd, p.args));
  for (int64_t c = 0; c < 2 * kOdd.D; ++c)
    EXPECT_EQ(p.dq.getAsDouble(c), 0.0) << c;
  expectMatches(p, 1e-5, "masked rows");
}

TEST(CpuBackward, StridedViews) {
  // q and dq as [B, L, H, D] buffers viewed as BHLD, dk walked backwards.
  Problem p(kOdd, kAlibi, DType::F32);
  const Dims &d = kOdd;
  Tensor qb = zeros(DType::F32, {d.B, d.LQ, d.HQ, d.D});
  Tensor dqb = zeros(DType::F32, {d.B, d.LQ, d.HQ, d.D});
  poison(dqb);
  Expected<TensorView> qv = viewBHLDFromBLHD(qb.view());
  Expected<TensorView> dqv = viewBHLDFromBLHD(dqb.view());
  ASSERT_TRUE(qv.ok() && dqv.ok());
  for (int64_t i = 0; i < p.q.numel(); ++i) {
    const int64_t c = i % d.D, l = i / d.D % d.LQ, h = i / d.D / d.LQ % d.HQ,
                  b = i / d.D / d.LQ / d.HQ;
    storeFromDouble(*qv, qv->offsetOf({b, h, l, c}), p.q.getAsDouble(i));
  }
  p.args.q = *qv;
  p.args.dq = *dqv;
  p.args.dk = reversed(p.dk.view(), 2);
  ASSERT_OK(backwardCpu(p.bwd, p.args));
  Tensor dqDense = zeros(DType::F32, {d.B, d.HQ, d.LQ, d.D});
  for (int64_t i = 0; i < dqDense.numel(); ++i) {
    const int64_t c = i % d.D, l = i / d.D % d.LQ, h = i / d.D / d.LQ % d.HQ,
                  b = i / d.D / d.LQ / d.HQ;
    dqDense.setFromDouble(i, at(*dqv, {b, h, l, c}));
  }
  EXPECT_LE(relError(dqDense, p.rdq), 1e-5);
  // Key j of the reversed view is row LK - 1 - j of the tensor.
  std::vector<double> rdkRev(p.rdk.size());
  for (int64_t i = 0; i < p.dk.numel(); ++i) {
    const int64_t c = i % d.D, j = i / d.D % d.LK, rest = i / d.D / d.LK;
    rdkRev[size_t((rest * d.LK + (d.LK - 1 - j)) * d.D + c)] = p.rdk[size_t(i)];
  }
  EXPECT_LE(relError(p.dk, rdkRev), 1e-5);
  EXPECT_LE(relError(p.dslopes, p.rdslopes), 1e-5);
}

TEST(CpuBackward, BitwiseIdenticalForAnyThreadCount) {
  // 14 key tiles, B * HKV = 4: 4 chunks per head, so dq and d(slopes) are
  // sums of several partials.
  const Dims d{2, 4, 2, 21, 40, 9, 6};
  std::vector<std::vector<char>> first;
  for (int threads : {1, 2, 3, 0}) {
    Problem p(d, kAlibi, DType::F32);
    p.args.threads = threads;
    ASSERT_OK(backwardCpu(p.bwd, p.args));
    expectMatches(p, 1e-5, "threads " + std::to_string(threads));
    std::vector<std::vector<char>> bytes;
    for (const Tensor *t : {&p.dq, &p.dk, &p.dv, &p.dslopes}) {
      const char *c = static_cast<const char *>(t->data());
      bytes.emplace_back(c, c + t->nbytes());
    }
    if (first.empty())
      first = bytes;
    else
      EXPECT_TRUE(bytes == first) << "threads " << threads;
  }
  EXPECT_EQ(backwardChunks(2, 2, 14), 4);
  EXPECT_EQ(backwardChunks(1, 1, 100), 8);
  EXPECT_EQ(backwardChunks(1, 1, 3), 3);
  EXPECT_EQ(backwardChunks(4, 8, 100), 1);
  EXPECT_EQ(backwardChunks(1, 1, 0), 0);
}

TEST(CpuBackward, TraceIsTheColumnSchedule) {
  Problem p(kOdd, kCausal, DType::F32);
  std::vector<int8_t> trace;
  p.args.tileTrace = &trace;
  ASSERT_OK(backwardCpu(p.bwd, p.args));
  const int64_t nqt = ceilDiv(kOdd.LQ, 4), nkt = ceilDiv(kOdd.LK, 3);
  ASSERT_EQ(int64_t(trace.size()), kOdd.B * kOdd.HQ * nqt * nkt);
  int kinds[3] = {};
  for (int64_t bh = 0; bh < kOdd.B * kOdd.HQ; ++bh)
    for (int64_t qt = 0; qt < nqt; ++qt)
      for (int64_t kt = 0; kt < nkt; ++kt) {
        const int64_t want = causalKind(
            qt * 4, std::min(kOdd.LQ, qt * 4 + 4) - 1, kt * 3,
            std::min(kOdd.LK, kt * 3 + 3) - 1, kOdd.LK - kOdd.LQ);
        EXPECT_EQ(trace[size_t((bh * nqt + qt) * nkt + kt)], want)
            << bh << " " << qt << " " << kt;
        ++kinds[want];
      }
  EXPECT_GT(kinds[0], 0);
  EXPECT_GT(kinds[1], 0);
  EXPECT_GT(kinds[2], 0);
}

TEST(CpuBackward, EmptySizesZeroTheGradients) {
  for (const Dims &d : {Dims{2, 4, 2, 0, 5, 3, 2}, Dims{2, 4, 2, 6, 0, 3, 2},
                        Dims{0, 4, 2, 6, 5, 3, 2}}) {
    Problem p(d, kAlibi, DType::F32);
    ASSERT_OK(backwardCpu(p.bwd, p.args));
    for (const Tensor *t : {&p.dq, &p.dk, &p.dv, &p.dslopes})
      for (int64_t i = 0; i < t->numel(); ++i)
        EXPECT_EQ(t->getAsDouble(i), 0.0)
            << "LQ " << d.LQ << " LK " << d.LK << " B " << d.B;
  }
}

/// backwardCpu must refuse \p p's arguments with \p what, outputs untouched.
void expectRefused(Problem &p, const std::string &what) {
  Status s = backwardCpu(p.bwd, p.args);
  EXPECT_FALSE(s.ok()) << what;
  EXPECT_NE(s.message().find(what), std::string::npos)
      << "message: " << s.message() << "\nexpected: " << what;
  for (const Tensor *t : {&p.dq, &p.dk, &p.dv, &p.dslopes})
    EXPECT_TRUE(allNaN(*t)) << what;
}

TEST(CpuBackward, BadArgumentsWriteNothing) {
  const Dims &d = kOdd;
  {
    Problem p(d, kAlibi, DType::F32);
    Tensor bad = zeros(DType::F32, {d.B, d.HQ, d.LQ, d.DV + 1});
    p.args.dout = bad.view();
    expectRefused(p, "dout");
  }
  {
    Problem p(d, kAlibi, DType::F32);
    Tensor bad = zeros(DType::F32, {d.B, d.HQ, d.LQ + 1});
    p.args.lse = bad.view();
    expectRefused(p, "lse");
  }
  {
    Problem p(d, kAlibi, DType::F32);
    p.args.lse = TensorView{};
    expectRefused(p, "lse is required");
  }
  {
    Problem p(d, kAlibi, DType::F32);
    p.args.dq = p.args.q; // dq aliasing q
    expectRefused(p, "dq overlaps q");
  }
  {
    Problem p(d, kAlibi, DType::F32);
    Tensor bad = zeros(DType::F32, {d.B, d.HQ, d.LK, d.D}); // HQ, not HKV
    p.args.dk = bad.view();
    expectRefused(p, "dk");
  }
  {
    Problem p(d, kAlibi, DType::F32);
    Tensor g = zeros(DType::F32, {d.LQ});
    p.args.inputGrads.push_back({"tag", g.view()});
    expectRefused(p, "input 'tag' is an int input");
  }
  {
    Problem p(d, kAlibi, DType::F32);
    Tensor g = zeros(DType::F32, {4});
    p.args.inputGrads.push_back({"unused", g.view()});
    expectRefused(p, "does not depend on input 'unused'");
  }
  {
    Problem p(d, kAlibi, DType::F32);
    Tensor g = zeros(DType::F32, {4});
    p.args.inputGrads.push_back({"nope", g.view()});
    expectRefused(p, "declares no input 'nope'");
  }
  {
    Problem p(d, kAlibi, DType::F32);
    p.args.inputGrads.push_back({"slopes", p.dslopes.view()});
    expectRefused(p, "given twice");
  }
  {
    Problem p(d, kAlibi, DType::F32);
    Tensor g = zeros(DType::F64, {d.HQ});
    p.args.inputGrads = {{"slopes", g.view()}};
    expectRefused(p, "float32");
  }
  {
    Problem p(d, kAlibi, DType::F32);
    p.args.inputGrads = {{"slopes", p.slopes.view()}};
    expectRefused(p, "overlaps input 'slopes'");
  }
  {
    Problem p(d, kAlibi, DType::F32);
    Tensor bad = zeros(DType::BF16, {d.B, d.HKV, d.LK, d.DV}); // not storage
    p.args.dv = bad.view();
    expectRefused(p, "dv");
  }
}

TEST(CpuBackward, KernelErrorsAreReported) {
  {
    // slopes declared [2]: a helper that bounds-checks slopes[h] as
    // generated code does reports h = 2 (task b 0, hkv 1, the lowest
    // failing task, whatever the thread count).
    Problem p(kOdd, kAlibi, DType::F32);
    p.fwd.inputs[0].dims = {lit(2)};
    Tensor small = zeros(DType::F32, {2});
    for (int64_t i = 0; i < 2; ++i) // heads 0, 1 keep their slopes (and lse)
      small.setFromDouble(i, p.slopes.getAsDouble(i));
    p.args.inputs[0].second = small.view();
    Tensor g = zeros(DType::F32, {2});
    poison(g);
    p.args.inputGrads = {{"slopes", g.view()}};
    p.bwd.tile = [](const attnc_buffer *buf, const int64_t *meta,
                    int64_t *status, int64_t, int64_t) {
      // Check before reading, as generated code does: slopes[2] is
      // outside the buffer.
      const int64_t h = descOf(buf)[1];
      if (h >= meta[ATTNC_META_INPUTS]) {
        status[0] = ATTNC_STATUS_INPUT_OUT_OF_RANGE;
        status[1] = 0;
        status[2] = 0;
        status[3] = h;
        return;
      }
      tileFn<kAlibi>(buf, meta, status, 0, 0);
    };
    Status s = backwardCpu(p.bwd, p.args);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("input 'slopes' read out of range: index 2"),
              std::string::npos)
        << s.message();
    EXPECT_TRUE(allNaN(p.dq));
    EXPECT_TRUE(allNaN(g));
  }
  {
    Problem p(kOdd, kFull, DType::F32);
    p.bwd.kinds = [](const attnc_buffer *buf, const int64_t *meta, int64_t *,
                     int64_t, int64_t) {
      const int64_t nqt = ceilDiv(meta[ATTNC_META_LQ], descOf(buf)[3]);
      int64_t *kinds = bufferAt<int64_t>(buf, ATTNC_BWD_KINDS);
      for (int64_t qt = 0; qt < nqt; ++qt)
        kinds[qt] = 3; // not a kind
      kinds[nqt] = 0;
      kinds[nqt + 1] = nqt - 1;
    };
    Status s = backwardCpu(p.bwd, p.args);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("tile schedule (__bwd_kinds) is invalid"),
              std::string::npos)
        << s.message();
    EXPECT_TRUE(allNaN(p.dq));
  }
}

TEST(CpuBackward, BadKernelDescriptions) {
  Problem p(kOdd, kAlibi, DType::F32);
  BackwardKernelInfo k = p.bwd;
  k.tileQ = 0;
  EXPECT_NE(backwardCpu(k, p.args).message().find("tile sizes"),
            std::string::npos);
  k = p.bwd;
  k.differentiable = {1}; // tag is an int input
  EXPECT_NE(backwardCpu(k, p.args).message().find("not a float input"),
            std::string::npos);
  k = p.bwd;
  k.tile = nullptr;
  EXPECT_NE(backwardCpu(k, p.args).message().find("no backward entry points"),
            std::string::npos);
  k = p.bwd;
  k.forward = nullptr;
  EXPECT_FALSE(backwardCpu(k, p.args).ok());
  EXPECT_TRUE(allNaN(p.dq));
}
} // namespace
