//===- Baselines.cpp - Naive, unfused (OpenBLAS) and SGEMM baselines ------===//
//
// See Baselines.h. Everything here is float32 with float32 accumulation, on
// dense row-major tensors. The unfused baseline's softmax uses a vectorisable
// exp (below) so that it is not held back by a scalar libm call per element.
//
//===----------------------------------------------------------------------===//
#include "Baselines.h"

#include "attnc/Passes/MaskSchedule.h"
#include "attnc/Reference/SpecInterpreter.h"
#include "attnc/Runtime/ThreadPool.h"

#include "mlir/IR/AffineExpr.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>

namespace attnc::bench {

using namespace mlir::attn;

namespace {

/// Runs `body(participant, task)` for tasks [0, n) on `threads` threads,
/// each participant pulling the next task from a shared counter.
template <typename Body>
void forEachTask(int threads, int64_t n, const Body &body) {
  std::atomic<int64_t> next{0};
  auto drain = [&](int participant) {
    for (int64_t t; (t = next.fetch_add(1)) < n;)
      body(participant, t);
  };
  if (threads <= 1) {
    drain(0);
    return;
  }
  static std::mutex poolMutex;
  static std::unique_ptr<runtime::ThreadPool> pool;
  std::lock_guard<std::mutex> lock(poolMutex);
  if (!pool || pool->numThreads() != threads)
    pool = std::make_unique<runtime::ThreadPool>(threads);
  pool->parallelFor(
      threads,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
          drain(int(i));
      },
      1);
}

/// exp(x) for float32 to about 2 ulp, 0 below -87.3 (and for -inf): Cody-
/// Waite range reduction and a degree-6 polynomial, written so that the
/// compiler vectorises loops over it.
inline float fastExp(float x) {
  const float xc = std::min(std::max(x, -87.3f), 88.7f);
  const float n = std::nearbyint(xc * 1.44269504088896341f);
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < -87.3f ? 0.0f : p * scale;
}

} // namespace

MaskStructure maskStructure(SpecOp spec) {
  MaskAttr mask = spec.getMaskScheduleAttr();
  if (!mask)
    return MaskStructure::Other;
  if (mask.getKind() == MaskKind::always)
    return MaskStructure::Full;
  if (mask.getKind() == MaskKind::kv_le &&
      mask.getBoundExpr() == mlir::getAffineDimExpr(0, spec.getContext()))
    return MaskStructure::Causal;
  return MaskStructure::Other;
}

bool unfusedSupports(SpecOp spec, const Shape &s, std::string &why) {
  if (spec.getNormalize() != NormalizeKind::softmax) {
    why = "the unfused baseline is softmax only";
    return false;
  }
  if (maskStructure(spec) == MaskStructure::Other) {
    why = "the unfused baseline supports full and causal masks only";
    return false;
  }
  mlir::Value score = SpecOp::getYielded(spec.getScore());
  if (!score || !score.getDefiningOp<ScoreOp>()) {
    why = "the unfused baseline supports the plain score only";
    return false;
  }
  SpecInterpreter interp(spec, problemSizes(s));
  for (SpecInterpreter::Element e : {SpecInterpreter::Element{0, 0},
                                     SpecInterpreter::Element{s.LQ - 1, s.LK - 1}}) {
    std::optional<double> scale = interp.scale(e);
    if (!scale || std::abs(*scale * std::sqrt(double(s.D)) - 1) > 1e-6) {
      why = "the unfused baseline supports the default scale 1/sqrt(D) only";
      return false;
    }
  }
  return true;
}

std::string naiveAttention(const BaselineProblem &p, std::vector<float> &out) {
  const Shape &s = p.shape;
  out.assign(size_t(s.B * s.HQ * s.LQ * s.DV), 0.0f);
  SpecOp spec = p.spec; // MLIR ops are handles; their getters are not const
  const bool sigmoid = spec.getNormalize() == NormalizeKind::sigmoid;
  // One interpreter per participant (they hold registers), built here on
  // one thread.
  const int threads = std::max(1, p.threads);
  std::vector<std::unique_ptr<SpecInterpreter>> interps;
  for (int i = 0; i < threads; ++i)
    interps.push_back(
        std::make_unique<SpecInterpreter>(spec, problemSizes(s), p.inputs));
  std::vector<std::string> errors(static_cast<size_t>(threads));
  std::vector<std::vector<float>> scratch(static_cast<size_t>(threads));
  forEachTask(threads, s.B * s.HQ * s.LQ, [&](int part, int64_t row) {
    std::string &error = errors[size_t(part)];
    if (!error.empty())
      return;
    SpecInterpreter &in = *interps[size_t(part)];
    const int64_t b = row / (s.HQ * s.LQ), h = row / s.LQ % s.HQ,
                  qi = row % s.LQ, hkv = h / (s.HQ / s.HKV);
    ProblemSizes ps = problemSizes(s);
    ps.b = b, ps.h = h;
    in.setSizes(ps);
    std::vector<float> &sc = scratch[size_t(part)];
    sc.assign(size_t(s.LK), -std::numeric_limits<float>::infinity());
    const float *qrow = p.q + row * s.D;
    const float *kh = p.k + (b * s.HKV + hkv) * s.LK * s.D;
    const float *vh = p.v + (b * s.HKV + hkv) * s.LK * s.DV;
    float *o = out.data() + row * s.DV;
    float rowMax = -std::numeric_limits<float>::infinity();
    for (int64_t kv = 0; kv < s.LK; ++kv) {
      SpecInterpreter::Element e{qi, kv};
      std::optional<bool> keep = in.mask(e);
      std::optional<double> scale = keep && *keep ? in.scale(e) : 0.0;
      if (!keep || !scale) {
        error = in.error();
        return;
      }
      if (!*keep)
        continue;
      float dot = 0;
      for (int64_t d = 0; d < s.D; ++d)
        dot += qrow[d] * kh[kv * s.D + d];
      std::optional<double> score = in.score(e, float(*scale) * dot);
      if (!score) {
        error = in.error();
        return;
      }
      if (sigmoid) {
        std::optional<double> bias = in.bias(e);
        if (!bias) {
          error = in.error();
          return;
        }
        sc[size_t(kv)] = 1.0f / (1.0f + std::exp(-float(*score + *bias)));
      } else {
        sc[size_t(kv)] = float(*score);
        rowMax = std::max(rowMax, sc[size_t(kv)]);
      }
    }
    float sum = 1;
    if (!sigmoid) {
      sum = 0;
      for (int64_t kv = 0; kv < s.LK; ++kv) {
        float &x = sc[size_t(kv)];
        x = std::isinf(x) ? 0.0f : std::exp(x - rowMax);
        sum += x;
      }
    }
    for (int64_t kv = 0; kv < s.LK; ++kv) {
      float pkv = sc[size_t(kv)];
      if (sigmoid && std::isinf(pkv))
        continue;
      if (pkv == 0)
        continue;
      for (int64_t d = 0; d < s.DV; ++d)
        o[d] += pkv * vh[kv * s.DV + d];
    }
    if (sum > 0 && sum != 1)
      for (int64_t d = 0; d < s.DV; ++d)
        o[d] /= sum;
  });
  for (const std::string &e : errors)
    if (!e.empty())
      return e;
  return "";
}

std::string unfusedAttention(const BaselineProblem &p, std::vector<float> &out) {
  constexpr int64_t kBlock = 256;
  const Shape &s = p.shape;
  out.assign(size_t(s.B * s.HQ * s.LQ * s.DV), 0.0f);
  const bool causal = maskStructure(SpecOp(p.spec)) == MaskStructure::Causal;
  const float scale = 1.0f / std::sqrt(float(s.D));
  const int threads = std::max(1, p.threads);
  openblas_set_num_threads(1);
  std::vector<std::vector<float>> scratch(static_cast<size_t>(threads));
  const int64_t blocks = (s.LQ + kBlock - 1) / kBlock;
  forEachTask(threads, s.B * s.HQ * blocks, [&](int part, int64_t task) {
    const int64_t bh = task / blocks, q0 = task % blocks * kBlock;
    const int64_t b = bh / s.HQ, h = bh % s.HQ, hkv = h / (s.HQ / s.HKV);
    const int64_t rows = std::min(kBlock, s.LQ - q0);
    // Causal (kv <= q): the keys past the block's last row are all masked.
    const int64_t keys = causal ? std::min(s.LK, q0 + rows) : s.LK;
    if (keys <= 0)
      return; // every row empty: out stays 0
    std::vector<float> &S = scratch[size_t(part)];
    S.resize(size_t(kBlock * s.LK));
    const float *q = p.q + (bh * s.LQ + q0) * s.D;
    const float *k = p.k + (b * s.HKV + hkv) * s.LK * s.D;
    const float *v = p.v + (b * s.HKV + hkv) * s.LK * s.DV;
    float *o = out.data() + (bh * s.LQ + q0) * s.DV;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows), int(keys),
                int(s.D), scale, q, int(s.D), k, int(s.D), 0.0f, S.data(),
                int(keys));
    std::vector<float> inv(static_cast<size_t>(rows));
    for (int64_t i = 0; i < rows; ++i) {
      float *srow = S.data() + i * keys;
      const int64_t kept = causal ? std::min(keys, q0 + i + 1) : keys;
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < kept; ++j)
        m = std::max(m, srow[j]);
      float sum = 0;
      for (int64_t j = 0; j < kept; ++j) {
        srow[j] = fastExp(srow[j] - m);
        sum += srow[j];
      }
      for (int64_t j = kept; j < keys; ++j)
        srow[j] = 0;
      inv[size_t(i)] = sum > 0 ? 1 / sum : 0;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows),
                int(s.DV), int(keys), 1.0f, S.data(), int(keys), v, int(s.DV),
                0.0f, o, int(s.DV));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t d = 0; d < s.DV; ++d)
        o[i * s.DV + d] *= inv[size_t(i)];
  });
  return "";
}

std::string unfusedBackward(const BaselineProblem &p, const float *out,
                            const float *lse, const float *dout,
                            std::vector<float> &dq, std::vector<float> &dk,
                            std::vector<float> &dv) {
  constexpr int64_t kBlock = 256;
  const Shape &s = p.shape;
  dq.assign(size_t(s.B * s.HQ * s.LQ * s.D), 0.0f);
  dk.assign(size_t(s.B * s.HKV * s.LK * s.D), 0.0f);
  dv.assign(size_t(s.B * s.HKV * s.LK * s.DV), 0.0f);
  const bool causal = maskStructure(SpecOp(p.spec)) == MaskStructure::Causal;
  const float scale = 1.0f / std::sqrt(float(s.D));
  const int threads = std::max(1, p.threads);
  const int64_t group = s.HQ / s.HKV;
  openblas_set_num_threads(1);
  // Per participant: P and dP (then dS) for one block of query rows.
  std::vector<std::vector<float>> scratchP(static_cast<size_t>(threads)),
      scratchDP(static_cast<size_t>(threads));
  // One task per (b, hkv): it owns dk and dv of that head, so the query
  // heads of its group add into them without races.
  forEachTask(threads, s.B * s.HKV, [&](int part, int64_t task) {
    const int64_t b = task / s.HKV, hkv = task % s.HKV;
    std::vector<float> &P = scratchP[size_t(part)], &dP = scratchDP[size_t(part)];
    P.resize(size_t(kBlock * s.LK));
    dP.resize(size_t(kBlock * s.LK));
    const float *k = p.k + task * s.LK * s.D, *v = p.v + task * s.LK * s.DV;
    float *dkh = dk.data() + task * s.LK * s.D;
    float *dvh = dv.data() + task * s.LK * s.DV;
    for (int64_t h = hkv * group; h < (hkv + 1) * group; ++h)
      for (int64_t q0 = 0; q0 < s.LQ; q0 += kBlock) {
        const int64_t bh = b * s.HQ + h, rows = std::min(kBlock, s.LQ - q0);
        const int64_t keys = causal ? std::min(s.LK, q0 + rows) : s.LK;
        if (keys <= 0)
          continue; // every row empty: no gradient
        const int64_t row0 = bh * s.LQ + q0;
        const float *q = p.q + row0 * s.D, *o = out + row0 * s.DV,
                    *dO = dout + row0 * s.DV, *l = lse + row0;
        // P = exp(scale * Q K^T - lse), 0 on masked pairs.
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows),
                    int(keys), int(s.D), scale, q, int(s.D), k, int(s.D), 0.0f,
                    P.data(), int(keys));
        // dP = dO V^T.
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows),
                    int(keys), int(s.DV), 1.0f, dO, int(s.DV), v, int(s.DV),
                    0.0f, dP.data(), int(keys));
        // dS = P * (dP - delta), delta = rowsum(dO * O).
        for (int64_t i = 0; i < rows; ++i) {
          float *pr = P.data() + i * keys, *dpr = dP.data() + i * keys;
          const int64_t kept = causal ? std::min(keys, q0 + i + 1) : keys;
          float delta = 0;
          for (int64_t d = 0; d < s.DV; ++d)
            delta += dO[i * s.DV + d] * o[i * s.DV + d];
          const float li = l[i];
          const bool empty = std::isinf(li) && li < 0;
          for (int64_t j = 0; j < kept; ++j) {
            pr[j] = empty ? 0.0f : fastExp(pr[j] - li);
            dpr[j] = pr[j] * (dpr[j] - delta);
          }
          for (int64_t j = kept; j < keys; ++j)
            pr[j] = dpr[j] = 0;
        }
        // dV += P^T dO, dK += scale * dS^T Q, dQ = scale * dS K.
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(keys),
                    int(s.DV), int(rows), 1.0f, P.data(), int(keys), dO,
                    int(s.DV), 1.0f, dvh, int(s.DV));
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(keys),
                    int(s.D), int(rows), scale, dP.data(), int(keys), q,
                    int(s.D), 1.0f, dkh, int(s.D));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows),
                    int(s.D), int(keys), scale, dP.data(), int(keys), k,
                    int(s.D), 0.0f, dq.data() + row0 * s.D, int(s.D));
      }
  });
  return "";
}

double sgemmMs(int threads, int runs, int n) {
  std::vector<float> a(size_t(n) * n), b(size_t(n) * n), c(size_t(n) * n);
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = float(i % 7) * 0.25f - 0.75f;
    b[i] = float(i % 5) * 0.5f - 1.0f;
  }
  openblas_set_num_threads(std::max(1, threads));
  std::vector<double> times;
  for (int i = 0; i < runs + 1; ++i) {
    auto start = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f,
                a.data(), n, b.data(), n, 0.0f, c.data(), n);
    if (i > 0)
      times.push_back(msSince(start));
  }
  openblas_set_num_threads(1);
  return median(times);
}

double streamReadMs(const std::vector<std::pair<const void *, size_t>> &parts,
                    int threads, int runs) {
  // 64 KiB blocks over the threads; four 8-byte sums per step keep the
  // loads independent, and the sum is kept so the reads are not dropped.
  constexpr size_t kBlock = 64 << 10;
  std::vector<std::pair<const char *, size_t>> blocks;
  for (auto [data, bytes] : parts)
    for (size_t at = 0; at < bytes; at += kBlock)
      blocks.push_back({static_cast<const char *>(data) + at,
                        std::min(kBlock, bytes - at)});
  const int64_t n = int64_t(blocks.size());
  const int64_t workers = std::max<int64_t>(1, threads);
  std::vector<uint64_t> sums(size_t(workers), 0);
  auto readBlocks = [&](int64_t w) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (int64_t i = w * n / workers; i < (w + 1) * n / workers; ++i) {
      const char *p = blocks[size_t(i)].first;
      const size_t words = blocks[size_t(i)].second / 8;
      size_t x = 0;
      for (; x + 4 <= words; x += 4) {
        uint64_t v[4];
        std::memcpy(v, p + 8 * x, 32);
        a += v[0], b += v[1], c += v[2], d += v[3];
      }
      for (; x < words; ++x) {
        uint64_t v;
        std::memcpy(&v, p + 8 * x, 8);
        a += v;
      }
    }
    sums[size_t(w)] += a + b + c + d;
  };
  std::vector<double> times;
  for (int r = 0; r < runs + 1; ++r) {
    auto start = std::chrono::steady_clock::now();
    if (workers == 1)
      readBlocks(0);
    else
      runtime::ThreadPool::global().parallelFor(
          workers, [&](int64_t b, int64_t e) {
            for (int64_t w = b; w < e; ++w)
              readBlocks(w);
          }, 1);
    if (r > 0)
      times.push_back(msSince(start));
  }
  volatile uint64_t keep = 0;
  for (uint64_t x : sums)
    keep = keep + x;
  (void)keep;
  return median(times);
}

std::string openblasCoreName() {
  const char *name = openblas_get_corename();
  return name ? name : "unknown";
}

double relativeError(const std::vector<float> &a, const std::vector<float> &b) {
  if (a.size() != b.size())
    return std::numeric_limits<double>::quiet_NaN();
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i]))
      return std::numeric_limits<double>::quiet_NaN();
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

} // namespace attnc::bench
