//===- CpuBackwardTasks.cpp - The tiled loops of the CPU backward pass ----===//
//
// Phase 3 of backwardCpu (CpuBackward.cpp): FlashAttention-2's backward
// with the key tiles outer. A task is (b, hkv, c): chunk c of the key tiles
// of KV head hkv. Per key tile it loads K and V once (float32), then, for
// every query head h of the group and every query tile the generated
// __bwd_kinds keeps:
//   S = Q K^T, dP = dO V^T                  (raw dot products)
//   __bwd_tile: S -> P, dP -> dL/d(dot), adds to the task's input partials
//   dV += P^T dO, dK += dDot^T Q, dq partial[c] rows += dDot K
// and writes the key tile's dK, dV rows. Every accumulator belongs to one
// task (dK, dV to the key tile, the dq rows of (b, h) to chunk c, the input
// partials to the task), the order inside a task is fixed, and dq and the
// input gradients are summed over the chunks / tasks in index order, so the
// results are bitwise identical for every thread count. A softmax sink that
// reads a float input adds its rows' gradients last, on one thread, into a
// partial of its own.
//
//===----------------------------------------------------------------------===//
#include "CpuBackwardImpl.h"

#include "attnc/Runtime/Microkernels.h"
#include "attnc/Runtime/ThreadPool.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <new>
#include <stdexcept>

using namespace attnc::runtime;
using namespace attnc::runtime::backward_impl;

namespace {
/// A status code of the driver itself: __bwd_kinds returned a schedule
/// outside its contract (status[1..3] = b, h, kt).
constexpr int64_t kInvalidKinds = -1;

/// Where the descriptor of an absent buffer points (size 0, never read).
alignas(64) char emptyStorage[64];
constexpr attnc_buffer kEmpty{emptyStorage, emptyStorage, 0, 0, 1};

attnc_buffer dense(void *p, int64_t n) { return attnc_buffer{p, p, 0, n, 1}; }

/// The address of element offset \p off (in elements) of \p t.
char *at(const TensorView &t, int64_t off) {
  return static_cast<char *>(t.data) + off * int64_t(dtypeSize(t.dtype));
}

/// dst[i] = float(row[i * stride]) for i < n; \p row is element 0.
void loadRow(const char *row, DType t, int64_t stride, int64_t n, float *dst) {
  switch (t) {
  case DType::F32: {
    const float *p = reinterpret_cast<const float *>(row);
    if (stride == 1) {
      std::memcpy(dst, p, size_t(n) * sizeof(float));
      return;
    }
    for (int64_t i = 0; i < n; ++i)
      dst[i] = p[i * stride];
    return;
  }
  case DType::BF16: {
    const uint16_t *p = reinterpret_cast<const uint16_t *>(row);
    for (int64_t i = 0; i < n; ++i)
      dst[i] = bfloat16ToFloat(p[i * stride]);
    return;
  }
  default: { // F16; checkSignature admits no other storage
    const uint16_t *p = reinterpret_cast<const uint16_t *>(row);
    for (int64_t i = 0; i < n; ++i)
      dst[i] = halfToFloat(p[i * stride]);
    return;
  }
  }
}

/// row[i * stride] = src[i] for i < n, rounded to nearest even.
void storeRow(char *row, DType t, int64_t stride, int64_t n, const float *src) {
  switch (t) {
  case DType::F32: {
    float *p = reinterpret_cast<float *>(row);
    for (int64_t i = 0; i < n; ++i)
      p[i * stride] = src[i];
    return;
  }
  case DType::BF16: {
    uint16_t *p = reinterpret_cast<uint16_t *>(row);
    for (int64_t i = 0; i < n; ++i)
      p[i * stride] = floatToBFloat16(src[i]);
    return;
  }
  default: {
    uint16_t *p = reinterpret_cast<uint16_t *>(row);
    for (int64_t i = 0; i < n; ++i)
      p[i * stride] = floatToHalf(src[i]);
    return;
  }
  }
}

/// Loads rows l0 .. l0 + n - 1 of (b, h) of a [B, H, L, C] view into a
/// dense n x C float32 tile.
void loadTile(const TensorView &t, int64_t b, int64_t h, int64_t l0, int64_t n,
              float *dst) {
  const int64_t C = t.shape[3];
  const std::vector<int64_t> &s = t.strides;
  for (int64_t r = 0; r < n; ++r)
    loadRow(at(t, b * s[0] + h * s[1] + (l0 + r) * s[2]), t.dtype, s[3], C,
            dst + r * C);
}

/// Rows of a float32 tile: row r at p + r * ld.
struct Rows {
  const float *p;
  int64_t ld;
};

/// Rows l0 .. l0 + n - 1 of (b, h) of a [B, H, L, C] view as float32: the
/// caller's memory itself when it is float32 with unit stride along C,
/// else converted into \p scratch (dense n x C).
Rows tileRows(const TensorView &t, int64_t b, int64_t h, int64_t l0,
              int64_t n, float *scratch) {
  const std::vector<int64_t> &s = t.strides;
  if (t.dtype == DType::F32 && s[3] == 1)
    return {reinterpret_cast<const float *>(
                at(t, b * s[0] + h * s[1] + l0 * s[2])),
            s[2]};
  loadTile(t, b, h, l0, n, scratch);
  return {scratch, t.shape[3]};
}

/// Stores a dense n x C float32 tile into rows l0 .. of (b, h) of \p t.
void storeTile(const TensorView &t, int64_t b, int64_t h, int64_t l0,
               int64_t n, const float *src) {
  const int64_t C = t.shape[3];
  const std::vector<int64_t> &s = t.strides;
  for (int64_t r = 0; r < n; ++r)
    storeRow(at(t, b * s[0] + h * s[1] + (l0 + r) * s[2]), t.dtype, s[3], C,
             src + r * C);
}

/// dst (cols x rows, leading dimension rows) = src (rows x cols) transposed.
void transpose(const float *src, int64_t rows, int64_t cols, float *dst) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      dst[c * rows + r] = src[r * cols + c];
}

/// Runs fn(i) for i < n on up to \p threads participants (0: the pool's
/// size); fn must not depend on which participant runs it.
template <class Fn> void parallelEach(int threads, int64_t n, Fn fn) {
  if (n <= 0)
    return;
  if (threads == 1 || n == 1) {
    for (int64_t i = 0; i < n; ++i)
      fn(i);
    return;
  }
  ThreadPool &pool = ThreadPool::global();
  const int64_t t = std::min<int64_t>(
      n, threads == 0 ? pool.numThreads() : std::min(threads, pool.numThreads()));
  pool.parallelFor(
      n,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
          fn(i);
      },
      ceilDiv(n, t * 8));
}

/// One participant's tiles, float32, sized for the call's largest tiles.
struct Scratch {
  std::vector<float> q, dout, kr, kt, vr, vt, s, dp, dk, dv, lse;
  std::vector<int64_t> kinds;
  std::vector<attnc_buffer> kindsBufs, tileBufs; // descriptors, inputs set
};

Status makeScratch(const Plan &p, int64_t participants,
                   std::vector<Scratch> &out) {
  const int64_t tq = std::min(p.tileQ, p.LQ()), tk = std::min(p.tileK, p.LK());
  const int64_t D = p.D(), DV = p.DV();
  // Each section is at most 65536 * 1024 floats; the sum fits easily.
  const int64_t floats = tq * D + tq * DV + 3 * tk * D + 3 * tk * DV +
                         2 * tq * tk + tq;
  int64_t bytes;
  if (__builtin_mul_overflow(floats * 4 + (p.nqt + 2) * 8, participants, &bytes))
    bytes = -1;
  if (Status s = checkAllocationSize(bytes, "the backward's tile scratch");
      !s.ok())
    return s;
  try {
    out.resize(size_t(participants));
    for (Scratch &s : out) {
      s.q.resize(size_t(tq * D));
      s.dout.resize(size_t(tq * DV));
      s.kr.resize(size_t(tk * D));
      s.kt.resize(size_t(tk * D));
      s.dk.resize(size_t(tk * D));
      s.vr.resize(size_t(tk * DV));
      s.vt.resize(size_t(tk * DV));
      s.dv.resize(size_t(tk * DV));
      s.s.resize(size_t(tq * tk));
      s.dp.resize(size_t(tq * tk));
      s.lse.resize(size_t(tq));
      s.kinds.resize(size_t(p.nqt + 2));
      s.kindsBufs.assign(ATTNC_BUF_INPUTS, kEmpty);
      s.kindsBufs.insert(s.kindsBufs.end(), p.inputBuffers.begin(),
                         p.inputBuffers.end());
      s.tileBufs = s.kindsBufs;
    }
  } catch (const std::bad_alloc &) {
    return Status::error("out of memory for the backward's tile scratch");
  }
  return Status::success();
}

/// The call-wide state a task reads.
struct TaskContext {
  const BackwardKernelInfo &kernel;
  const CpuBackwardArgs &args;
  Plan &plan;
};

/// One (query tile, key tile) pair of head h: the products around the
/// generated __bwd_tile. Returns false (status set) on a kernel error.
bool runPair(const TaskContext &c, Scratch &s, float *partial, int64_t chunk,
             int64_t b, int64_t h, int64_t qt, int64_t k0, int64_t tk,
             int64_t kind, int64_t *status) {
  const Plan &p = c.plan;
  const int64_t D = p.D(), DV = p.DV(), LQ = p.LQ();
  const int64_t q0 = qt * p.tileQ, tq = std::min(p.tileQ, LQ - q0);
  const Rows q = tileRows(c.args.q, b, h, q0, tq, s.q.data());
  const Rows dout = tileRows(c.args.dout, b, h, q0, tq, s.dout.data());
  const int64_t row0 = (b * p.HQ() + h) * LQ + q0;
  if (p.hasLse) {
    const TensorView &lse = c.args.lse;
    loadRow(at(lse, b * lse.strides[0] + h * lse.strides[1] +
                        q0 * lse.strides[2]),
            DType::F32, lse.strides[2], tq, s.lse.data());
  }
  // S = Q K^T, dP = dO V^T (K and V stored transposed: D x tk, DV x tk).
  attnc_uk_qk_f32(q.p, q.ld, s.kt.data(), tk, s.s.data(), tk, tq, tk, D,
                  1.0f);
  attnc_uk_qk_f32(dout.p, dout.ld, s.vt.data(), tk, s.dp.data(), tk, tq, tk,
                  DV, 1.0f);
  int64_t desc[7] = {b, h, q0, tq, k0, tk, kind};
  std::vector<attnc_buffer> &bufs = s.tileBufs;
  bufs[ATTNC_BWD_DESC] = dense(desc, 7);
  bufs[ATTNC_BWD_S] = dense(s.s.data(), tq * tk);
  bufs[ATTNC_BWD_DP] = dense(s.dp.data(), tq * tk);
  bufs[ATTNC_BWD_LSE] = p.hasLse ? dense(s.lse.data(), tq) : kEmpty;
  bufs[ATTNC_BWD_DELTA] =
      p.hasLse ? dense(const_cast<float *>(p.delta.data()) + row0, tq) : kEmpty;
  bufs[ATTNC_BWD_DINPUTS] =
      p.partialWords > 0 ? dense(partial, p.partialWords) : kEmpty;
  c.kernel.tile(bufs.data(), p.meta.data(), status, 0, 0);
  if (status[0] != ATTNC_STATUS_OK)
    return false;
  // dV += P^T dO, dK += dDot^T Q (P and dDot read transposed in place).
  attnc_uk_pv_t_f32(s.s.data(), tk, dout.p, dout.ld, s.dv.data(), DV, tk, tq,
                    DV, nullptr);
  attnc_uk_pv_t_f32(s.dp.data(), tk, q.p, q.ld, s.dk.data(), D, tk, tq, D,
                    nullptr);
  // dq rows += dDot K, straight into the chunk's partial.
  float *dq = const_cast<float *>(p.dqPartial.data()) +
              (chunk * p.B() * p.HQ() * LQ + row0) * D;
  attnc_uk_qk_acc_f32(s.dp.data(), tk, s.kr.data(), D, dq, D, tq, D, tk, 1.0f);
  return true;
}

/// Head h's query tiles of key tile kt. Returns false (status set) on an
/// error.
bool runHead(const TaskContext &c, Scratch &s, float *partial, int64_t chunk,
             int64_t b, int64_t h, int64_t kt, int64_t *status) {
  const Plan &p = c.plan;
  const int64_t nqt = p.nqt;
  if (nqt == 0)
    return true; // LQ = 0: no query tiles, dK and dV stay 0
  int64_t desc[5] = {b, h, kt, p.tileQ, p.tileK};
  std::vector<attnc_buffer> &bufs = s.kindsBufs;
  bufs[ATTNC_BWD_DESC] = dense(desc, 5);
  bufs[ATTNC_BWD_KINDS] = dense(s.kinds.data(), nqt + 2);
  c.kernel.kinds(bufs.data(), p.meta.data(), status, 0, 0);
  if (status[0] != ATTNC_STATUS_OK)
    return false;
  const int64_t first = s.kinds[size_t(nqt)], last = s.kinds[size_t(nqt + 1)];
  auto invalid = [&] {
    status[0] = kInvalidKinds;
    status[1] = b;
    status[2] = h;
    status[3] = kt;
    return false;
  };
  if (first <= last && (first < 0 || last >= nqt))
    return invalid();
  const int64_t k0 = kt * p.tileK, tk = std::min(p.tileK, p.LK() - k0);
  for (int64_t qt = first; qt <= last; ++qt) {
    const int64_t kind = s.kinds[size_t(qt)];
    if (kind < 0 || kind > 2)
      return invalid();
    if (kind == 0)
      continue;
    if (!runPair(c, s, partial, chunk, b, h, qt, k0, tk, kind, status))
      return false;
    if (c.args.tileTrace)
      (*c.args.tileTrace)[size_t(((b * p.HQ() + h) * nqt + qt) * p.nkt + kt)] =
          int8_t(kind);
  }
  return true;
}

/// Task (b, hkv, chunk). Returns false (status set) on an error.
bool runTask(const TaskContext &c, Scratch &s, int64_t task, int64_t *status) {
  Plan &p = c.plan;
  const int64_t chunk = task % p.chunks, hkv = task / p.chunks % p.HKV(),
                b = task / p.chunks / p.HKV();
  const int64_t D = p.D(), DV = p.DV();
  const int64_t ktBegin = chunk * p.nkt / p.chunks,
                ktEnd = (chunk + 1) * p.nkt / p.chunks;
  float *partial = p.gradPartial.data() + task * p.partialWords;
  for (int64_t kt = ktBegin; kt < ktEnd; ++kt) {
    const int64_t k0 = kt * p.tileK, tk = std::min(p.tileK, p.LK() - k0);
    loadTile(c.args.k, b, hkv, k0, tk, s.kr.data());
    transpose(s.kr.data(), tk, D, s.kt.data());
    loadTile(c.args.v, b, hkv, k0, tk, s.vr.data());
    transpose(s.vr.data(), tk, DV, s.vt.data());
    std::fill(s.dk.begin(), s.dk.begin() + tk * D, 0.0f);
    std::fill(s.dv.begin(), s.dv.begin() + tk * DV, 0.0f);
    for (int64_t h = hkv * p.group; h < (hkv + 1) * p.group; ++h)
      if (!runHead(c, s, partial, chunk, b, h, kt, status))
        return false;
    storeTile(c.args.dk, b, hkv, k0, tk, s.dk.data());
    storeTile(c.args.dv, b, hkv, k0, tk, s.dv.data());
  }
  return true;
}

/// Runs every task; \p failure gets the status of the lowest failing task
/// (empty on success). Tasks above a known failure are skipped, which
/// never skips the lowest one, so the error does not depend on threads.
Status runTasks(const TaskContext &c, std::vector<int64_t> &failure) {
  const Plan &p = c.plan;
  failure.clear();
  if (p.numTasks == 0)
    return Status::success();
  ThreadPool *pool = c.args.threads == 1 ? nullptr : &ThreadPool::global();
  int64_t threads = 1;
  if (pool)
    threads = c.args.threads == 0 ? pool->numThreads()
                                  : std::min(c.args.threads, pool->numThreads());
  threads = std::min(threads, p.numTasks);
  std::vector<Scratch> scratch;
  if (Status s = makeScratch(p, threads, scratch); !s.ok())
    return s;
  std::vector<std::array<int64_t, ATTNC_STATUS_WORDS>> statuses(
      size_t(p.numTasks));
  std::atomic<int64_t> next{0}, firstFailed{p.numTasks};
  auto drain = [&](int64_t participant) {
    Scratch &s = scratch[size_t(participant)];
    while (true) {
      const int64_t t = next.fetch_add(1, std::memory_order_relaxed);
      if (t >= p.numTasks || t > firstFailed.load(std::memory_order_relaxed))
        return;
      int64_t *status = statuses[size_t(t)].data();
      if (runTask(c, s, t, status))
        continue;
      int64_t seen = firstFailed.load(std::memory_order_relaxed);
      while (t < seen && !firstFailed.compare_exchange_weak(
                             seen, t, std::memory_order_relaxed))
        ;
    }
  };
  if (threads <= 1)
    drain(0);
  else
    pool->parallelFor(
        threads,
        [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i)
            drain(i);
        },
        1);
  const int64_t failed = firstFailed.load(std::memory_order_relaxed);
  if (failed < p.numTasks)
    failure.assign(statuses[size_t(failed)].begin(),
                   statuses[size_t(failed)].end());
  return Status::success();
}

/// delta[b, h, i] = sum_c dout * out, float32 (softmax only).
void computeDelta(const CpuBackwardArgs &a, Plan &p) {
  const int64_t LQ = p.LQ(), DV = p.DV();
  parallelEach(a.threads, p.B() * p.HQ(), [&](int64_t bh) {
    const int64_t b = bh / p.HQ(), h = bh % p.HQ();
    std::vector<float> o(static_cast<size_t>(DV)), d(static_cast<size_t>(DV));
    for (int64_t i = 0; i < LQ; ++i) {
      loadTile(a.out, b, h, i, 1, o.data());
      loadTile(a.dout, b, h, i, 1, d.data());
      float sum = 0;
      for (int64_t c = 0; c < DV; ++c)
        sum += o[size_t(c)] * d[size_t(c)];
      p.delta[size_t(bh * LQ + i)] = sum;
    }
  });
}

/// dq = the chunks' partials summed in chunk order, converted.
void reduceDq(const CpuBackwardArgs &a, const Plan &p) {
  const int64_t LQ = p.LQ(), D = p.D(), chunkWords = p.B() * p.HQ() * LQ * D;
  parallelEach(a.threads, p.B() * p.HQ(), [&](int64_t bh) {
    const int64_t b = bh / p.HQ(), h = bh % p.HQ();
    std::vector<float> row(static_cast<size_t>(D));
    for (int64_t i = 0; i < LQ; ++i) {
      std::fill(row.begin(), row.end(), 0.0f);
      for (int64_t c = 0; c < p.chunks; ++c) {
        const float *src = p.dqPartial.data() + c * chunkWords + (bh * LQ + i) * D;
        for (int64_t e = 0; e < D; ++e)
          row[size_t(e)] += src[e];
      }
      storeTile(a.dq, b, h, i, 1, row.data());
    }
  });
}

/// The rows' sinks (BackwardKernelInfo::sinkRows): __bwd_tile with kind
/// ATTNC_BWD_SINK_ROWS per (b, h, query tile), in that order on one thread,
/// into the last input partial. Returns false (status set) on an error.
bool runSinkRows(const TaskContext &c, int64_t *status) {
  Plan &p = c.plan;
  const int64_t LQ = p.LQ();
  std::vector<float> lse(size_t(std::max<int64_t>(p.tileQ, 1))),
      pSink(lse.size());
  std::vector<attnc_buffer> bufs(ATTNC_BUF_INPUTS, kEmpty);
  bufs.insert(bufs.end(), p.inputBuffers.begin(), p.inputBuffers.end());
  float *partial = p.gradPartial.data() + p.numTasks * p.partialWords;
  for (int64_t b = 0; b < p.B(); ++b)
    for (int64_t h = 0; h < p.HQ(); ++h)
      for (int64_t q0 = 0; q0 < LQ; q0 += p.tileQ) {
        const int64_t tq = std::min(p.tileQ, LQ - q0);
        const TensorView &l = c.args.lse;
        loadRow(at(l, b * l.strides[0] + h * l.strides[1] + q0 * l.strides[2]),
                DType::F32, l.strides[2], tq, lse.data());
        int64_t desc[7] = {b, h, q0, tq, 0, 0, ATTNC_BWD_SINK_ROWS};
        const int64_t row0 = (b * p.HQ() + h) * LQ + q0;
        bufs[ATTNC_BWD_DESC] = dense(desc, 7);
        bufs[ATTNC_BWD_S] = dense(pSink.data(), tq);
        bufs[ATTNC_BWD_LSE] = dense(lse.data(), tq);
        bufs[ATTNC_BWD_DELTA] = dense(p.delta.data() + row0, tq);
        bufs[ATTNC_BWD_DINPUTS] = dense(partial, p.partialWords);
        c.kernel.tile(bufs.data(), p.meta.data(), status, 0, 0);
        if (status[0] != ATTNC_STATUS_OK)
          return false;
      }
  return true;
}

/// Each requested input gradient = the tasks' partials summed in task
/// order, then the rows' sinks' partial.
void reduceInputGrads(const Plan &p) {
  for (const GradTarget &g : p.grads) {
    const int64_t off = p.partialOffsets[size_t(g.slot)];
    float *base = static_cast<float *>(g.view.data);
    visitOffsets(g.view, [&](int64_t flat, int64_t offset) {
      float sum = 0;
      for (int64_t t = 0; t <= p.numTasks; ++t)
        sum += p.gradPartial[size_t(t * p.partialWords + off + flat)];
      base[offset] = sum;
      return true;
    });
  }
}
} // namespace

Status attnc::runtime::backward_impl::runBackward(
    const BackwardKernelInfo &kernel, const CpuBackwardArgs &args, Plan &plan) {
  if (plan.hasLse)
    computeDelta(args, plan);
  const TaskContext ctx{kernel, args, plan};
  std::vector<int64_t> failure;
  if (Status s = runTasks(ctx, failure); !s.ok())
    return s;
  if (failure.empty() && kernel.sinkRows && plan.hasLse &&
      plan.partialWords > 0) {
    failure.assign(ATTNC_STATUS_WORDS, 0);
    if (runSinkRows(ctx, failure.data()))
      failure.clear();
  }
  if (!failure.empty()) {
    const KernelInfo &f = *kernel.forward;
    if (failure[0] == kInvalidKinds)
      return Status::error(
          kernelLabel(f.name) +
          ": the backward's tile schedule (__bwd_kinds) is invalid for b = " +
          std::to_string(failure[1]) + ", h = " + std::to_string(failure[2]) +
          ", key tile " + std::to_string(failure[3]));
    return kernelStatusError(f.signature(), plan.inputs, failure.data());
  }
  reduceDq(args, plan);
  reduceInputGrads(plan);
  return Status::success();
}
