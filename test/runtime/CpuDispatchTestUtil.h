//===- CpuDispatchTestUtil.h - Fake kernels and helpers for forwardCpu ----===//
//
// Shared by the dispatcher's tests (CpuDispatchTest.cpp for results and
// layout, CpuDispatchErrorsTest.cpp for argument errors). The fake kernels
// are plain C++ functions with the attnc_cpu_kernel_fn signature that read
// and write through KernelABI.h the way generated code does: descriptors,
// meta strides, task ranges, status words, the trace.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TEST_UNIT_CPUDISPATCHTESTUTIL_H
#define ATTNC_TEST_UNIT_CPUDISPATCHTESTUTIL_H

#include "attnc/Runtime/CpuDispatch.h"
#include "attnc/Runtime/KernelABI.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <deque>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace cpu_dispatch_test {
using namespace attnc::runtime;

constexpr int64_t kTQ = 4, kTK = 3; // the tiles the fakes are "built" for
constexpr double kInf = std::numeric_limits<double>::infinity();
inline const double kNaN = std::numeric_limits<double>::quiet_NaN();

inline std::atomic<int> gCalls{0}; // kernel calls, all fakes together

template <class T> T *bufferAt(const attnc_buffer *b, int slot) {
  return static_cast<T *>(b[slot].aligned) + b[slot].offset;
}
inline int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The input-reading fake declares, in this order: doc_q int [LQ], doc_kv int
// [LK], table float [4], idx int [B, LQ], keep bool [LK]. Pair (i, j) is
// kept if keep[j] and doc_q[i] == doc_kv[j]; row i's scores get
// table[idx[b, i]], an index the kernel bounds-checks as generated code does.
enum { kDocQ, kDocKv, kTable, kIdx, kKeep, kNumDocInputs };

/// Naive softmax attention, f32 storage, computed in double.
template <bool WithInputs>
void fakeAttention(const attnc_buffer *buf, const int64_t *meta,
                   int64_t *status, int64_t taskBegin, int64_t taskEnd) {
  gCalls.fetch_add(1, std::memory_order_relaxed);
  const int64_t HQ = meta[ATTNC_META_HQ], HKV = meta[ATTNC_META_HKV],
                LQ = meta[ATTNC_META_LQ], LK = meta[ATTNC_META_LK],
                D = meta[ATTNC_META_D], DV = meta[ATTNC_META_DV];
  const int64_t *sq = meta + ATTNC_META_Q_STRIDES,
                *sk = meta + ATTNC_META_K_STRIDES,
                *sv = meta + ATTNC_META_V_STRIDES,
                *so = meta + ATTNC_META_OUT_STRIDES,
                *sl = meta + ATTNC_META_LSE_STRIDES;
  const float *q = bufferAt<float>(buf, ATTNC_BUF_Q),
              *k = bufferAt<float>(buf, ATTNC_BUF_K),
              *v = bufferAt<float>(buf, ATTNC_BUF_V);
  float *out = bufferAt<float>(buf, ATTNC_BUF_OUT);
  float *lse = bufferAt<float>(buf, ATTNC_BUF_LSE);
  int8_t *trace = bufferAt<int8_t>(buf, ATTNC_BUF_TRACE);
  const bool hasLse = meta[ATTNC_META_HAS_LSE] != 0;
  const bool hasTrace = meta[ATTNC_META_HAS_TRACE] != 0;
  const int64_t nqt = ceilDiv(LQ, kTQ), nkt = ceilDiv(LK, kTK);
  const int64_t group = HQ / HKV;
  const double scale = D > 0 ? 1.0 / std::sqrt(double(D)) : 1.0;
  // Inputs in meta: each one's dims, then its strides.
  const int64_t *im = meta + ATTNC_META_INPUTS;
  const int64_t *docQ = nullptr, *docKv = nullptr, *idx = nullptr;
  const float *table = nullptr;
  const uint8_t *keepIn = nullptr;
  if (WithInputs) {
    docQ = bufferAt<int64_t>(buf, ATTNC_BUF_INPUTS + kDocQ);
    docKv = bufferAt<int64_t>(buf, ATTNC_BUF_INPUTS + kDocKv);
    table = bufferAt<float>(buf, ATTNC_BUF_INPUTS + kTable);
    idx = bufferAt<int64_t>(buf, ATTNC_BUF_INPUTS + kIdx);
    keepIn = bufferAt<uint8_t>(buf, ATTNC_BUF_INPUTS + kKeep);
  }
  std::vector<double> p(static_cast<size_t>(LK));
  std::vector<int64_t> kept(static_cast<size_t>(nkt)),
      valid(static_cast<size_t>(nkt));
  for (int64_t task = taskBegin; task < taskEnd; ++task) {
    const int64_t qt = task % nqt, h = task / nqt % HQ, b = task / nqt / HQ;
    const int64_t hk = h / group;
    std::fill(kept.begin(), kept.end(), 0);
    std::fill(valid.begin(), valid.end(), 0);
    for (int64_t i = qt * kTQ; i < std::min(LQ, (qt + 1) * kTQ); ++i) {
      double bias = 0;
      if (WithInputs) {
        const int64_t t = idx[b * im[8] + i * im[9]];
        if (t < 0 || t >= im[4]) {
          status[0] = ATTNC_STATUS_INPUT_OUT_OF_RANGE;
          status[1] = kTable;
          status[2] = 0;
          status[3] = t;
          return;
        }
        bias = table[t * im[5]];
      }
      double m = -kInf;
      for (int64_t j = 0; j < LK; ++j) {
        ++valid[size_t(j / kTK)];
        p[size_t(j)] = -kInf;
        if (WithInputs &&
            !(keepIn[j * im[11]] != 0 && docQ[i * im[1]] == docKv[j * im[3]]))
          continue;
        ++kept[size_t(j / kTK)];
        double dot = 0;
        for (int64_t d = 0; d < D; ++d)
          dot += double(q[b * sq[0] + h * sq[1] + i * sq[2] + d * sq[3]]) *
                 k[b * sk[0] + hk * sk[1] + j * sk[2] + d * sk[3]];
        p[size_t(j)] = scale * dot + bias;
        m = std::max(m, p[size_t(j)]);
      }
      double l = 0;
      for (double &x : p) {
        x = m == -kInf ? 0.0 : std::exp(x - m);
        l += x;
      }
      for (int64_t dv = 0; dv < DV; ++dv) {
        double acc = 0;
        for (int64_t j = 0; j < LK; ++j)
          acc +=
              p[size_t(j)] * v[b * sv[0] + hk * sv[1] + j * sv[2] + dv * sv[3]];
        out[b * so[0] + h * so[1] + i * so[2] + dv * so[3]] =
            float(l > 0 ? acc / l : 0.0);
      }
      if (hasLse)
        lse[b * sl[0] + h * sl[1] + i * sl[2]] =
            float(l > 0 ? m + std::log(l) : -kInf);
    }
    if (hasTrace)
      for (int64_t kt = 0; kt < nkt; ++kt)
        trace[task * nkt + kt] =
            int8_t(kept[size_t(kt)] == 0                   ? 0
                   : kept[size_t(kt)] == valid[size_t(kt)] ? 1
                                                           : 2);
  }
}

inline InputDim sz(SizeName s) {
  InputDim d;
  d.isSize = true;
  d.size = s;
  return d;
}
inline InputDim lit(int64_t n) {
  InputDim d;
  d.literal = n;
  return d;
}

inline KernelInfo softmaxKernel() {
  KernelInfo k;
  k.name = "fake";
  k.fn = fakeAttention<false>;
  k.tileQ = kTQ;
  k.tileK = kTK;
  return k;
}

inline KernelInfo docKernel() {
  KernelInfo k = softmaxKernel();
  k.name = "docs";
  k.fn = fakeAttention<true>;
  k.inputs = {{"doc_q", DType::I64, {sz(SizeName::LQ)}},
              {"doc_kv", DType::I64, {sz(SizeName::LK)}},
              {"table", DType::F32, {lit(4)}},
              {"idx", DType::I64, {sz(SizeName::B), sz(SizeName::LQ)}},
              {"keep", DType::Bool, {sz(SizeName::LK)}}};
  return k;
}

inline Tensor zeros(DType t, std::vector<int64_t> shape) {
  Expected<Tensor> e = Tensor::zeros(t, std::move(shape));
  EXPECT_TRUE(e.ok()) << e.status().message();
  return std::move(e).value();
}
inline Tensor randomTensor(std::vector<int64_t> shape, uint32_t seed,
                           DType t = DType::F32) {
  Tensor x = zeros(t, std::move(shape));
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  for (int64_t i = 0; i < x.numel(); ++i)
    x.setFromDouble(i, u(gen));
  return x;
}
inline void poison(Tensor &t) {
  for (int64_t i = 0; i < t.numel(); ++i)
    t.setFromDouble(i, kNaN);
}
inline bool allNaN(const Tensor &t) {
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isnan(t.getAsDouble(i)))
      return false;
  return true;
}
inline double at(const TensorView &t, std::vector<int64_t> index) {
  return loadAsDouble(t, t.offsetOf(index));
}
/// \p t with dimension \p dim walked backwards (a negative stride).
inline TensorView reversed(TensorView t, int dim) {
  if (t.shape[size_t(dim)] > 0)
    t.data = static_cast<char *>(t.data) + (t.shape[size_t(dim)] - 1) *
                                               t.strides[size_t(dim)] *
                                               int64_t(dtypeSize(t.dtype));
  t.strides[size_t(dim)] = -t.strides[size_t(dim)];
  return t;
}

struct Dims {
  int64_t B, HQ, HKV, LQ, LK, D, DV;
};

/// The tensors of one call, owned, and the args that view them; out and lse
/// start poisoned with NaN.
struct Call {
  Tensor q, k, v, out, lse;
  TensorView lseView;
  CpuForwardArgs args;
  std::deque<Tensor> extra; // storage for views that tests swap in

  explicit Call(const Dims &d, uint32_t seed = 1, DType st = DType::F32)
      : q(randomTensor({d.B, d.HQ, d.LQ, d.D}, seed, st)),
        k(randomTensor({d.B, d.HKV, d.LK, d.D}, seed + 1, st)),
        v(randomTensor({d.B, d.HKV, d.LK, d.DV}, seed + 2, st)),
        out(zeros(st, {d.B, d.HQ, d.LQ, d.DV})),
        lse(zeros(DType::F32, {d.B, d.HQ, d.LQ})) {
    poison(out);
    poison(lse);
    args.q = q.view();
    args.k = k.view();
    args.v = v.view();
    args.out = out.view();
    lseView = lse.view();
    args.lse = &lseView;
  }
  Call(const Call &) = delete;
  /// Keeps \p t alive with the call and returns a view of it.
  TensorView keep(Tensor t) {
    extra.push_back(std::move(t));
    return extra.back().view();
  }
};

/// The inputs of docKernel for sizes \p d, ints stored as \p intType.
struct DocInputs {
  Tensor docQ, docKv, table, idx, keep;
  DocInputs(const Dims &d, DType intType = DType::I64)
      : docQ(zeros(intType, {d.LQ})), docKv(zeros(intType, {d.LK})),
        table(zeros(DType::F32, {4})), idx(zeros(intType, {d.B, d.LQ})),
        keep(zeros(DType::Bool, {d.LK})) {
    for (int64_t i = 0; i < d.LQ; ++i)
      docQ.setFromDouble(i, double(i / 5));
    for (int64_t j = 0; j < d.LK; ++j) {
      docKv.setFromDouble(j, double(j / 5));
      keep.setFromDouble(j, j % 7 != 5);
    }
    const double values[] = {0.5, -0.25, 1.0, 0.0};
    for (int64_t i = 0; i < 4; ++i)
      table.setFromDouble(i, values[i]);
    for (int64_t i = 0; i < idx.numel(); ++i)
      idx.setFromDouble(i, double(i % 4));
  }
  std::vector<std::pair<std::string, TensorView>> list() const {
    return {{"doc_q", docQ.view()},
            {"doc_kv", docKv.view()},
            {"table", table.view()},
            {"idx", idx.view()},
            {"keep", keep.view()}};
  }
  bool keepPair(int64_t i, int64_t j) const {
    return keep.getAsDouble(j) != 0 &&
           docQ.getAsDouble(i) == docKv.getAsDouble(j);
  }
  double bias(int64_t b, int64_t i) const {
    return table.getAsDouble(int64_t(idx.getAsDouble(b * docQ.numel() + i)));
  }
};

/// forwardCpu on arguments it must reject: an error containing \p what, no
/// kernel call, out and lse still all NaN.
inline void expectRejected(const KernelInfo &kernel, Call &c,
                           const std::string &what) {
  const int before = gCalls.load();
  Status s = forwardCpu(kernel, c.args);
  EXPECT_FALSE(s.ok()) << "expected an error containing: " << what;
  EXPECT_NE(s.message().find(what), std::string::npos)
      << "message: " << s.message() << "\nexpected to contain: " << what;
  EXPECT_EQ(gCalls.load(), before) << what;
  EXPECT_TRUE(allNaN(c.out)) << what;
  EXPECT_TRUE(allNaN(c.lse)) << what;
}

#define ASSERT_OK(expr)                                                        \
  do {                                                                         \
    Status s_ = (expr);                                                        \
    ASSERT_TRUE(s_.ok()) << s_.message();                                      \
  } while (0)

} // namespace cpu_dispatch_test

#endif // ATTNC_TEST_UNIT_CPUDISPATCHTESTUTIL_H
