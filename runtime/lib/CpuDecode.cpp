//===- CpuDecode.cpp - forwardCpu for a decode step: keys split in chunks -===//
//
// A call with few query rows (a decode step, LQ <= 16) against many keys
// runs as flash-decoding: the keys are split into chunks, each chunk is a
// call of its own over a sequence window (KernelABI.h) that writes partial
// results (out and lse) to scratch, the chunk calls run concurrently on the
// thread pool, one thread each, and the partial results are merged by their
// lse. Two things come of it:
//   - split-KV: every thread has work even when B * HQ is smaller than the
//     pool;
//   - GQA: a chunk call runs on one thread, so its tasks pack the query
//     heads of a group as the rows of one tile (rowHeadsOf: one K/V tile
//     load serves them all), and heads in separate tasks read the chunk's
//     keys and values of head hkv one after the other, about 1 MiB,
//     from that thread's L2 cache: memory sees each key once per call,
//     not once per query head.
// The merge (per row: lse = log sum_c e^lse_c, out = sum_c e^(lse_c - lse)
// out_c; sigmoid: out = sum_c out_c) writes out and lse only after every
// chunk succeeded: a failing call writes nothing, and the error it reports
// is the lowest failing chunk's, whatever the thread count.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/CpuDispatch.h"
#include "attnc/Runtime/ThreadPool.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>

using namespace attnc::runtime;

namespace {

/// The decode path is for at most this many query rows.
constexpr int64_t kDecodeRows = 16;
/// About this many bytes of one KV head's keys and values per chunk: query
/// heads in separate tasks reread them from L2. (Decode at B1 HQ32 HKV8
/// D128 bf16, heads packed 4 per task, 2 threads, three alternating runs
/// each: 62-78%, 73-94% and 79-89% of the stream read with 256 KiB, 1 MiB
/// and 4 MiB; fewer, larger chunks pay less per-call overhead, and 1 MiB
/// still gives 16 chunks to balance 2 threads.)
constexpr int64_t kHeadChunkBytes = int64_t(1024) << 10;
/// A chunk's partial results are at most 1 / this of what it reads.
constexpr int64_t kPartialRatio = 8;

int64_t ceilDiv(int64_t n, int64_t d) { return (n + d - 1) / d; }

int poolThreads(int requested) {
  if (requested == 1)
    return 1;
  const int pool = ThreadPool::global().numThreads();
  return requested == 0 ? pool : std::min(requested, pool);
}

/// Keys [c0, c0 + n) of the [B, HKV, L, X] view \p t.
TensorView keyRange(const TensorView &t, int64_t c0, int64_t n) {
  TensorView r = t;
  r.shape[2] = n;
  if (n > 0)
    r.data = static_cast<char *>(t.data) +
             c0 * t.strides[2] * int64_t(dtypeSize(t.dtype));
  return r;
}

/// A dense row-major view of \p shape at \p data.
TensorView denseView(DType dtype, void *data, std::vector<int64_t> shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;)
    strides[d - 1] = strides[d] * shape[d];
  return TensorView{data, dtype, std::move(shape), std::move(strides)};
}

/// Element i of a dense storage-type buffer as float, and back.
float loadStored(DType t, const void *p, int64_t i) {
  switch (t) {
  case DType::BF16: {
    const uint32_t bits = uint32_t(static_cast<const uint16_t *>(p)[i]) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
  case DType::F16:
    return halfToFloat(static_cast<const uint16_t *>(p)[i]);
  default:
    return static_cast<const float *>(p)[i];
  }
}

void storeAt(const TensorView &t, int64_t offset, float value) {
  char *at = static_cast<char *>(t.data) + offset * int64_t(dtypeSize(t.dtype));
  switch (t.dtype) {
  case DType::BF16: {
    const uint16_t h = floatToBFloat16(value);
    std::memcpy(at, &h, sizeof h);
    return;
  }
  case DType::F16: {
    const uint16_t h = floatToHalf(value);
    std::memcpy(at, &h, sizeof h);
    return;
  }
  default:
    std::memcpy(at, &value, sizeof value);
  }
}

/// The chunks' partial results: out [chunks][B, HQ, LQ, DV] in the storage
/// type and lse [chunks][B, HQ, LQ] (softmax), dense. The calling thread
/// keeps the buffer for its next call: a decode step comes every token.
struct Partials {
  char *out = nullptr;
  float *lse = nullptr;
  int64_t rows = 0, dv = 0, outBytes = 0; // per chunk
};

Status allocatePartials(DType storage, int64_t chunks, int64_t rows,
                        int64_t dv, bool withLse, Partials &p) {
  p.rows = rows;
  p.dv = dv;
  int64_t outBytes, lseBytes = 0, total;
  if (__builtin_mul_overflow(rows * dv, int64_t(dtypeSize(storage)), &outBytes) ||
      (withLse && __builtin_mul_overflow(rows, int64_t(sizeof(float)), &lseBytes)) ||
      __builtin_mul_overflow(outBytes + lseBytes, chunks, &total))
    total = -1;
  if (Status s = checkAllocationSize(total, "the decode chunks' partial results");
      !s.ok())
    return s;
  thread_local std::unique_ptr<char[]> buffer;
  thread_local int64_t bufferBytes = 0;
  if (total > bufferBytes) {
    buffer.reset();
    bufferBytes = 0;
    buffer.reset(new (std::nothrow) char[size_t(total)]);
    if (!buffer)
      return Status::error("out of memory for the decode chunks' partial "
                           "results (" + std::to_string(total) + " bytes)");
    bufferBytes = total;
  }
  p.outBytes = outBytes;
  p.out = buffer.get();
  p.lse = withLse ? reinterpret_cast<float *>(p.out + chunks * outBytes) : nullptr;
  return Status::success();
}

/// Row r (flat over B, HQ, LQ) of the merged result, written to out and lse.
void mergeRow(const KernelInfo &kernel, const CpuForwardArgs &args,
              const Partials &p, int64_t chunks, int64_t r,
              const int64_t idx[3], std::vector<float> &acc) {
  const int64_t dv = p.dv;
  std::fill(acc.begin(), acc.end(), 0.0f);
  double lse = -INFINITY;
  if (kernel.sigmoid) {
    for (int64_t c = 0; c < chunks; ++c) {
      const char *part = p.out + c * p.outBytes;
      for (int64_t x = 0; x < dv; ++x)
        acc[size_t(x)] += loadStored(kernel.storage, part, r * dv + x);
    }
  } else {
    double m = -INFINITY;
    for (int64_t c = 0; c < chunks; ++c)
      m = std::max(m, double(p.lse[c * p.rows + r]));
    if (m != -INFINITY) { // else no chunk keeps a key of this row: out 0
      double sum = 0;
      for (int64_t c = 0; c < chunks; ++c)
        sum += std::exp(double(p.lse[c * p.rows + r]) - m);
      lse = m + std::log(sum);
      for (int64_t c = 0; c < chunks; ++c) {
        const double l = p.lse[c * p.rows + r];
        if (l == -INFINITY)
          continue;
        const float w = float(std::exp(l - lse));
        const char *part = p.out + c * p.outBytes;
        for (int64_t x = 0; x < dv; ++x)
          acc[size_t(x)] += w * loadStored(kernel.storage, part, r * dv + x);
      }
    }
  }
  const TensorView &out = args.out;
  const int64_t base =
      idx[0] * out.strides[0] + idx[1] * out.strides[1] + idx[2] * out.strides[2];
  for (int64_t x = 0; x < dv; ++x)
    storeAt(out, base + x * out.strides[3], acc[size_t(x)]);
  if (args.lse && !kernel.sigmoid) {
    const TensorView &l = *args.lse;
    storeAt(l, idx[0] * l.strides[0] + idx[1] * l.strides[1] + idx[2] * l.strides[2],
            float(lse));
  }
}

} // namespace

int64_t attnc::runtime::rowHeadsOf(const KernelInfo &kernel,
                                   const CpuForwardArgs &args,
                                   const CheckedCall &checked) {
  using S = SizeName;
  const int64_t B = checked.size(S::B), HQ = checked.size(S::HQ),
                HKV = checked.size(S::HKV), LQ = checked.size(S::LQ);
  if (!kernel.packsHeads || args.tileTrace || LQ == 0 || LQ > kDecodeRows ||
      HKV == 0 || HQ % HKV != 0)
    return 1;
  const int64_t group = HQ / HKV, threads = poolThreads(args.threads);
  for (int64_t p = std::min(group, kernel.tileQ / LQ); p > 1; --p)
    if (group % p == 0 && (threads == 1 || B * (HQ / p) >= 2 * threads))
      return p;
  return 1;
}

int64_t attnc::runtime::decodeChunkKeys(const KernelInfo &kernel,
                                        const CpuForwardArgs &args,
                                        const CheckedCall &checked) {
  using S = SizeName;
  const int64_t B = checked.size(S::B), HQ = checked.size(S::HQ),
                HKV = checked.size(S::HKV), LQ = checked.size(S::LQ),
                LK = checked.size(S::LK), D = checked.size(S::D),
                DV = checked.size(S::DV);
  if (LQ > kDecodeRows || LQ == 0 || args.tileTrace || B == 0 || HQ == 0 ||
      args.decodeChunk < 0)
    return 0;
  if (args.decodeChunk > 0)
    return LK > args.decodeChunk ? args.decodeChunk : 0;
  const int threads = poolThreads(args.threads);
  // Without a group to share the keys and with a task per thread, a chunk
  // would only add the merge.
  const int64_t tasks = B * HQ * numQueryTiles(kernel, LQ);
  if (HQ == HKV && tasks >= 2 * int64_t(threads))
    return 0;
  const int64_t es = int64_t(dtypeSize(kernel.storage));
  const int64_t headKeyBytes = std::max<int64_t>(1, (D + DV) * es);
  int64_t keys = std::max<int64_t>(64, kHeadChunkBytes / headKeyBytes);
  // Partial results small beside the keys and values a chunk reads.
  const int64_t partialKeys = ceilDiv(
      kPartialRatio * HQ * LQ * (DV * es + 4), std::max<int64_t>(1, HKV) * headKeyBytes);
  // Enough chunks for every thread, if they stay large enough.
  keys = std::max(partialKeys, std::min(keys, ceilDiv(LK, threads)));
  // Whole key tiles: each chunk tiles its keys as the whole call would.
  const int64_t tk = std::max<int64_t>(1, kernel.tileK);
  keys = ceilDiv(keys, tk) * tk;
  return LK >= 2 * keys ? keys : 0;
}

Status attnc::runtime::forwardCpuSplitKeys(const KernelInfo &kernel,
                                           const CpuForwardArgs &args,
                                           const CheckedCall &checked,
                                           int64_t chunkKeys,
                                           const ChunkKeysFn &keysOf) {
  using S = SizeName;
  const int64_t B = checked.size(S::B), HQ = checked.size(S::HQ),
                LQ = checked.size(S::LQ), LK = checked.size(S::LK),
                DV = checked.size(S::DV);
  const int64_t chunks = ceilDiv(LK, chunkKeys), rows = B * HQ * LQ;
  Partials p;
  if (Status s = allocatePartials(kernel.storage, chunks, rows, DV,
                                  !kernel.sigmoid, p);
      !s.ok())
    return s;

  // Each chunk's call: its keys, its window, its partial results.
  std::vector<CpuForwardArgs> calls(static_cast<size_t>(chunks));
  std::vector<TensorView> lses(static_cast<size_t>(chunks));
  for (int64_t c = 0; c < chunks; ++c) {
    CpuForwardArgs &call = calls[size_t(c)];
    const int64_t c0 = c * chunkKeys, n = std::min(chunkKeys, LK - c0);
    call.q = args.q;
    call.k = keyRange(args.k, c0, n);
    call.v = keyRange(args.v, c0, n);
    call.out = denseView(kernel.storage, p.out + c * p.outBytes, {B, HQ, LQ, DV});
    if (p.lse) {
      lses[size_t(c)] = denseView(DType::F32, p.lse + c * rows, {B, HQ, LQ});
      call.lse = &lses[size_t(c)];
    }
    call.pages = args.pages;
    call.inputs = args.inputs;
    call.window = checked.window;
    call.window.kvOffset += c0;
    call.threads = 1;
    call.decodeChunk = -1; // whole: this is the chunk
    call.dropout = args.dropout; // the merge by lse is linear in P V
    call.dropoutBatch = args.dropoutBatch;
  }

  // The chunks, claimed in order by up to `threads` participants.
  const int threads = int(std::min<int64_t>(poolThreads(args.threads), chunks));
  std::vector<Status> results(static_cast<size_t>(chunks));
  std::atomic<int64_t> next{0}, firstFailed{chunks};
  auto drain = [&] {
    while (true) {
      const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= chunks || c > firstFailed.load(std::memory_order_relaxed))
        return;
      CpuForwardArgs &call = calls[size_t(c)];
      Status &result = results[size_t(c)];
      if (keysOf)
        result = keysOf(c * chunkKeys, call.k.shape[2], call.k, call.v);
      if (result.ok())
        result = forwardCpu(kernel, call);
      if (result.ok())
        continue;
      int64_t seen = firstFailed.load(std::memory_order_relaxed);
      while (c < seen && !firstFailed.compare_exchange_weak(
                             seen, c, std::memory_order_relaxed))
        ;
    }
  };
  if (threads <= 1)
    drain();
  else
    ThreadPool::global().parallelFor(
        threads, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i)
            drain();
        }, 1);
  if (const int64_t failed = firstFailed.load(); failed < chunks)
    return results[size_t(failed)];

  // The merge, the rows split among the same participants.
  auto mergeRows = [&](int64_t part) {
    std::vector<float> acc(static_cast<size_t>(DV));
    for (int64_t r = rows * part / threads; r < rows * (part + 1) / threads; ++r) {
      const int64_t idx[3] = {r / (HQ * LQ), (r / LQ) % HQ, r % LQ};
      mergeRow(kernel, args, p, chunks, r, idx, acc);
    }
  };
  if (threads <= 1)
    mergeRows(0);
  else
    ThreadPool::global().parallelFor(
        threads, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i)
            mergeRows(i);
        }, 1);
  return Status::success();
}
