//===- CpuBackwardLse.cpp - Does the lse belong to this forward? ---------===//
//
// Before the backward writes anything: for a few rows spread over the call
// (up to kSampleRows), the probabilities P = exp(z - lse) that the
// generated __bwd_tile computes from the given lse must sum to 1 over the
// row's kept keys and its sink, if the spec has one (to 0 for a row with
// none, whose lse is -inf). An lse of
// another call, another spec or other inputs fails that, and the call is
// refused with an error that names the row; a NaN row (NaN lse) is not
// checked. A call on a window of the keys (SequenceWindow) only needs a sum
// of at most 1. With dropout the helpers run with it off (the meta's
// ATTNC_META_DROPOUT = 0): the lse is the undropped softmax's. Cost: the forward of those rows, O(kSampleRows * LK * D).
//
//===----------------------------------------------------------------------===//
#include "CpuBackwardImpl.h"

#include "attnc/Runtime/ForwardChecks.h"

#include <cmath>

using namespace attnc::runtime;
using namespace attnc::runtime::backward_impl;

namespace {

constexpr int64_t kSampleRows = 8;
/// |sum P - 1| above this is another forward's lse (float32 P summed over
/// up to LK keys, each with a relative error of a few ulps).
constexpr double kSumTolerance = 1e-3;

attnc_buffer dense(void *p, int64_t n) { return attnc_buffer{p, p, 0, n, 1}; }

/// Row `l` of (b, h) of a [B, H, L, C] view, as float32.
void loadRow(const TensorView &t, int64_t b, int64_t h, int64_t l,
             std::vector<float> &row) {
  const std::vector<int64_t> &s = t.strides;
  row.resize(size_t(t.shape[3]));
  for (int64_t c = 0; c < t.shape[3]; ++c)
    row[size_t(c)] =
        float(loadAsDouble(t, b * s[0] + h * s[1] + l * s[2] + c * s[3]));
}

struct RowCheck {
  const BackwardKernelInfo &kernel;
  const CpuBackwardArgs &args;
  const Plan &p;
  std::vector<attnc_buffer> bufs;
  std::vector<int64_t> kinds;
  std::vector<float> q, k, s, dp, grads;
  std::vector<int64_t> meta; // p.meta with dropout off: the undropped P
  int64_t status[ATTNC_STATUS_WORDS] = {};
  bool invalidKinds = false;

  /// sum_kv P for row q of (b, h); false after a kernel error (status set).
  bool sumP(int64_t b, int64_t h, int64_t qi, float lse, double &sum);

  /// __bwd_tile on one row: `n` entries of s (and dp) for `desc`; false
  /// after a kernel error (status set).
  bool callTile(int64_t (&desc)[7], int64_t n, float &lse, float &delta) {
    bufs[ATTNC_BWD_DESC] = dense(desc, 7);
    bufs[ATTNC_BWD_S] = dense(s.data(), n);
    bufs[ATTNC_BWD_DP] = dense(dp.data(), n);
    bufs[ATTNC_BWD_LSE] = dense(&lse, 1);
    bufs[ATTNC_BWD_DELTA] = dense(&delta, 1);
    bufs[ATTNC_BWD_DINPUTS] = dense(grads.data(), int64_t(grads.size()));
    kernel.tile(bufs.data(), meta.data(), status, 0, 0);
    return status[0] == ATTNC_STATUS_OK;
  }
};

bool RowCheck::sumP(int64_t b, int64_t h, int64_t qi, float lse,
                    double &sum) {
  const int64_t qt = qi / p.tileQ, hkv = h / p.group;
  loadRow(args.q, b, h, qi, q);
  float delta = 0;
  sum = 0;
  for (int64_t kt = 0; kt < p.nkt; ++kt) {
    int64_t kdesc[5] = {b, h, kt, p.tileQ, p.tileK};
    bufs[ATTNC_BWD_DESC] = dense(kdesc, 5);
    bufs[ATTNC_BWD_KINDS] = dense(kinds.data(), int64_t(kinds.size()));
    kernel.kinds(bufs.data(), meta.data(), status, 0, 0);
    if (status[0] != ATTNC_STATUS_OK)
      return false;
    int64_t first = kinds[size_t(p.nqt)], last = kinds[size_t(p.nqt + 1)];
    if (qt < first || qt > last || kinds[size_t(qt)] == 0)
      continue;
    if (first < 0 || last >= p.nqt || kinds[size_t(qt)] > 2) {
      invalidKinds = true; // the driver reports it
      return true;
    }
    const int64_t k0 = kt * p.tileK, tk = std::min(p.tileK, p.LK() - k0);
    for (int64_t j = 0; j < tk; ++j) {
      loadRow(args.k, b, hkv, k0 + j, k);
      float dot = 0;
      for (int64_t d = 0; d < p.D(); ++d)
        dot += q[size_t(d)] * k[size_t(d)];
      s[size_t(j)] = dot;
      dp[size_t(j)] = 0;
    }
    int64_t desc[7] = {b, h, qi, 1, k0, tk, kinds[size_t(qt)]};
    if (!callTile(desc, tk, lse, delta))
      return false;
    for (int64_t j = 0; j < tk; ++j)
      sum += s[size_t(j)];
  }
  if (kernel.sinkRows) { // the sink's share of the row (0 off key 0)
    int64_t desc[7] = {b, h, qi, 1, 0, 0, ATTNC_BWD_SINK_ROWS};
    if (!callTile(desc, 1, lse, delta))
      return false;
    sum += s[0];
  }
  return true;
}

} // namespace

Status attnc::runtime::backward_impl::checkLseSample(
    const BackwardKernelInfo &kernel, const CpuBackwardArgs &args,
    const Plan &p) {
  const int64_t rows = p.B() * p.HQ() * p.LQ();
  if (!p.hasLse || rows == 0 || p.LK() == 0)
    return Status::success();
  static char empty[64];
  RowCheck c{kernel, args, p, {}, {}, {}, {}, {}, {}, {}, p.meta};
  c.meta[ATTNC_META_DROPOUT] = 0;
  c.bufs.assign(ATTNC_BUF_INPUTS, attnc_buffer{empty, empty, 0, 0, 1});
  c.bufs.insert(c.bufs.end(), p.inputBuffers.begin(), p.inputBuffers.end());
  c.kinds.assign(size_t(p.nqt + 2), 0);
  c.s.resize(size_t(std::max<int64_t>(p.tileK, 1)));
  c.dp.resize(c.s.size());
  // The helper adds to input gradients; these are thrown away.
  c.grads.assign(size_t(std::max<int64_t>(p.partialWords, 1)), 0.0f);
  const int64_t n = std::min(kSampleRows, rows);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = (2 * i + 1) * rows / (2 * n);
    const int64_t qi = r % p.LQ(), bh = r / p.LQ();
    const int64_t b = bh / p.HQ(), h = bh % p.HQ();
    const TensorView &l = args.lse;
    const float lse = float(loadAsDouble(
        l, b * l.strides[0] + h * l.strides[1] + qi * l.strides[2]));
    if (std::isnan(lse))
      continue;
    double sum = 0;
    if (!c.sumP(b, h, qi, lse, sum))
      return kernelStatusError(kernel.forward->signature(), p.inputs,
                               c.status);
    if (c.invalidKinds)
      return Status::success();
    const double want = lse == -INFINITY ? 0.0 : 1.0;
    // A window of the keys holds a share of the row's probability.
    const bool someKeys = p.window.kvOffset != 0 || p.window.totalLK != p.LK();
    const bool fits = someKeys && want == 1.0
                          ? sum <= want + kSumTolerance
                          : std::abs(sum - want) <= kSumTolerance;
    if (!fits)
      return Status::error(
          "lse does not belong to this forward: with it, the probabilities "
          "of row (b = " + std::to_string(b) + ", h = " + std::to_string(h) +
          ", q = " + std::to_string(qi) + ") sum to " + std::to_string(sum) +
          ", not " + (want == 0 ? "0 (lse -inf: no kept key)"
                      : someKeys ? "at most 1 (a window of the keys)" : "1") +
          "; pass the lse that the forward wrote for these q, k and inputs");
  }
  return Status::success();
}
