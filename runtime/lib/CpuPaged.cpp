//===- CpuPaged.cpp - forwardCpu on a paged KV cache ----------------------===//
//
// A paged cache (ForwardChecks.h, PagedKvCache) keeps each sequence's keys
// in pages listed by a page table. Sequence b runs as an ordinary call on
// q[b], out[b], lse[b] and its keys: when its pages are consecutive in the
// cache (an unfragmented sequence) the keys are a strided view of it, no
// copy; otherwise, with pages of 16 rows or more, the kernel reads the
// cache through the sequence's page table (KernelPages, KernelABI.h's
// ATTNC_META_PAGE_SIZE), no copy either, prefetching each head's rows two
// pages ahead, and a decode step splits its keys as for contiguous ones
// (CpuDecode.cpp). Smaller pages, and kernels with a grid patch, are
// gathered: in table order and on the thread pool, into one buffer
// [kv_len, HKV, D | DV] that every sequence reuses and that the calling
// thread keeps for its next call; a decode step (at most 16 query rows)
// runs as the decode path's chunks of keys, about 2 MiB each over all
// heads, each gathered by the thread that runs it into a buffer that
// thread keeps. The table, the lengths and every sequence's
// call are checked before any sequence runs, so bad arguments (a page out
// of range, a length beyond the pages given) are errors that write
// nothing, never out-of-bounds reads.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/CpuDispatch.h"
#include "attnc/Runtime/ThreadPool.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

using namespace attnc::runtime;

namespace {

/// The values of the host int32 or int64 tensor \p t of rank \p rank, in C
/// order (\p name for messages).
Status readInts(const TensorView *t, const char *name, int64_t rank,
                const char *layout, std::vector<int64_t> &values) {
  if (!t)
    return Status::error(std::string("a paged KV cache needs a page table and "
                                     "kv_lens; ") + name + " is missing");
  if (Status s = validate(*t, name); !s.ok())
    return s;
  if (t->dtype != DType::I32 && t->dtype != DType::I64)
    return Status::error(std::string(name) + ": expected int32 or int64, got " +
                         dtypeName(t->dtype));
  if (t->rank() != rank)
    return Status::error(std::string(name) + ": expected rank " +
                         std::to_string(rank) + " " + layout + ", got shape " +
                         shapeToString(t->shape));
  // A view with zero strides may claim more entries than memory holds.
  int64_t bytes;
  if (__builtin_mul_overflow(t->numel(), int64_t(sizeof(int64_t)), &bytes))
    bytes = -1;
  if (Status s = checkAllocationSize(bytes, std::string("a copy of ") + name);
      !s.ok())
    return s;
  values.resize(size_t(t->numel()));
  visitOffsets(*t, [&](int64_t flat, int64_t offset) {
    values[size_t(flat)] =
        t->dtype == DType::I32
            ? int64_t(static_cast<const int32_t *>(t->data)[offset])
            : static_cast<const int64_t *>(t->data)[offset];
    return true;
  });
  return Status::success();
}

/// The cache's tensors and the table, checked against each other.
struct PagedLayout {
  int64_t B = 0, numPages = 0, pageSize = 0, maxPages = 0;
  std::vector<int64_t> table, lens; // [B, maxPages], [B]
  int64_t page(int64_t b, int64_t i) const {
    return table[size_t(b * maxPages + i)];
  }
  int64_t pagesOf(int64_t b) const {
    const int64_t len = lens[size_t(b)]; // 0 <= len: no overflow below
    return len / pageSize + (len % pageSize != 0);
  }
};

Status checkPagedLayout(const KernelInfo &kernel, const CpuForwardArgs &args,
                        PagedLayout &p) {
  if (args.varlen.enabled())
    return Status::error("a varlen batch on a paged KV cache is not supported "
                         "(yet)");
  if (!args.window.isWhole())
    return Status::error("a paged KV cache takes no sequence window");
  if (args.tileTrace)
    return Status::error("a tile trace is not recorded on a paged KV cache");
  const std::pair<const TensorView *, const char *> caches[] = {
      {&args.k, "k"}, {&args.v, "v"}};
  for (auto [t, name] : caches) {
    if (Status s = validate(*t, name, kernel.storage); !s.ok())
      return s;
    if (t->rank() != 4)
      return Status::error(std::string(name) +
                           ": a paged KV cache expects rank 4 [num_pages, "
                           "page_size, HKV, " + (t == &args.k ? "D" : "DV") +
                           "], got shape " + shapeToString(t->shape));
  }
  const TensorView &k = args.k, &v = args.v;
  if (v.shape[0] != k.shape[0] || v.shape[1] != k.shape[1] ||
      v.shape[2] != k.shape[2])
    return Status::error("v has shape " + shapeToString(v.shape) +
                         ", k has shape " + shapeToString(k.shape) +
                         ": their pages, page sizes and heads must agree");
  p.numPages = k.shape[0];
  p.pageSize = k.shape[1];
  if (args.paged.pageSize != 0 && args.paged.pageSize != p.pageSize)
    return Status::error("the page size is " + std::to_string(args.paged.pageSize) +
                         ", but k's pages hold " + std::to_string(p.pageSize) +
                         " rows (k has shape " + shapeToString(k.shape) + ")");
  if (p.pageSize < 1)
    return Status::error("k: pages of " + std::to_string(p.pageSize) +
                         " rows; a page holds at least one");
  if (Status s = readInts(args.paged.pageTable, "page_table", 2,
                          "[B, max_pages]", p.table);
      !s.ok())
    return s;
  if (Status s = readInts(args.paged.kvLens, "kv_lens", 1, "[B]", p.lens);
      !s.ok())
    return s;
  p.B = args.paged.pageTable->shape[0];
  p.maxPages = args.paged.pageTable->shape[1];
  if (args.paged.kvLens->shape[0] != p.B)
    return Status::error("kv_lens has " + std::to_string(args.paged.kvLens->shape[0]) +
                         " entries, the page table " + std::to_string(p.B) +
                         " rows: both are one per sequence");
  // The table's capacity in rows; a product past int64 (views with zero
  // strides can claim any extent) caps at INT64_MAX, above every length.
  int64_t capacity;
  if (__builtin_mul_overflow(p.maxPages, p.pageSize, &capacity))
    capacity = INT64_MAX;
  for (int64_t b = 0; b < p.B; ++b) {
    const int64_t len = p.lens[size_t(b)];
    if (len < 0 || len > capacity)
      return Status::error(
          "kv_lens[" + std::to_string(b) + "] = " + std::to_string(len) +
          " is not in 0.." + std::to_string(capacity) + " (" +
          std::to_string(p.maxPages) + " pages of " + std::to_string(p.pageSize) +
          " rows)");
    for (int64_t i = 0; i < p.pagesOf(b); ++i)
      if (p.page(b, i) < 0 || p.page(b, i) >= p.numPages)
        return Status::error("page_table[" + std::to_string(b) + ", " +
                             std::to_string(i) + "] = " +
                             std::to_string(p.page(b, i)) +
                             " is not a page of the cache (0.." +
                             std::to_string(p.numPages - 1) + ")");
  }
  for (const InputDecl &d : kernel.inputs)
    for (const InputDim &dim : d.dims)
      if (dim.isSize && dim.size == SizeName::LK)
        return Status::error("input '" + d.name + "' has a dimension LK, which "
                             "differs between the sequences of a paged KV "
                             "cache; run the sequences as separate calls");
  return Status::success();
}

/// True if sequence b's pages follow each other in the cache.
bool consecutivePages(const PagedLayout &p, int64_t b) {
  for (int64_t i = 1; i < p.pagesOf(b); ++i)
    if (p.page(b, i) != p.page(b, 0) + i)
      return false;
  return true;
}

/// The [1, HKV, len, X] view of \p len rows from row \p row0 of the cache
/// \p t viewed as one run of rows [num_pages * page_size, HKV, X].
TensorView cacheRows(const TensorView &t, char *data, int64_t rowStride,
                     int64_t len) {
  TensorView r;
  r.dtype = t.dtype;
  r.data = data;
  r.shape = {1, t.shape[2], len, t.shape[3]};
  r.strides = {0, t.strides[2], rowStride, t.strides[3]};
  return r;
}

/// The [1, H, len, X] view of a dense [len, H, X] buffer at \p data.
TensorView denseRows(DType dtype, char *data, int64_t H, int64_t X,
                     int64_t len) {
  return TensorView{data, dtype, {1, H, len, X}, {0, X, H * X, 1}};
}

/// The k or v a chunked sequence's call is checked with before its chunks
/// are gathered: [1, H, len, X], never read (all rows alias one row).
TensorView placeholderRows(DType dtype, int64_t H, int64_t X, int64_t len) {
  alignas(64) static char row[sizeof(float) * kMaxHeadDim];
  return TensorView{row, dtype, {1, H, len, X}, {0, 0, 0, 1}};
}

/// Copies rows [r0, r1) of sequence b in cache \p t, page by page, into
/// the dense [rows, HKV, X] buffer \p dst whose first row is row \p base.
void gatherRows(const PagedLayout &p, const TensorView &t, int64_t b,
                int64_t r0, int64_t r1, int64_t base, char *dst) {
  const int64_t es = int64_t(dtypeSize(t.dtype));
  const int64_t H = t.shape[2], X = t.shape[3];
  const bool rowsDense = t.strides[3] == 1;
  for (int64_t r = r0; r < r1; ++r) {
    const char *page = static_cast<const char *>(t.data) +
                       p.page(b, r / p.pageSize) * t.strides[0] * es;
    for (int64_t h = 0; h < H; ++h) {
      const char *src = page + ((r % p.pageSize) * t.strides[1] + h * t.strides[2]) * es;
      char *out = dst + (((r - base) * H + h) * X) * es;
      if (rowsDense) {
        std::memcpy(out, src, size_t(X * es));
        continue;
      }
      for (int64_t x = 0; x < X; ++x)
        std::memcpy(out + x * es, src + x * t.strides[3] * es, size_t(es));
    }
  }
}

/// Gathers rows [r0, r1) of sequence b's keys and values to the start of
/// \p dstK and \p dstV, on the pool unless \p threads is 1 or the rows
/// are few (the copy is memory-bound; more threads take more bandwidth).
void gatherSequence(const PagedLayout &p, const TensorView &k,
                    const TensorView &v, int64_t b, int64_t r0, int64_t r1,
                    int threads, char *dstK, char *dstV) {
  auto copy = [&](int64_t from, int64_t to) {
    gatherRows(p, k, b, r0 + from, r0 + to, r0, dstK);
    gatherRows(p, v, b, r0 + from, r0 + to, r0, dstV);
  };
  if (threads == 1 || r1 - r0 < 128) {
    copy(0, r1 - r0);
    return;
  }
  ThreadPool::global().parallelFor(r1 - r0, copy, 64);
}

/// Few query rows (a decode step): a fragmented sequence whose pages are
/// gathered runs in chunks of about this many bytes of keys (all heads),
/// each gathered by the thread that runs it, into a buffer it keeps.
constexpr int64_t kDecodeRows = 16;
constexpr int64_t kChunkBytes = int64_t(2) << 20;
/// Pages of at least this many rows are read by the kernel in place
/// (KernelPages); smaller ones are gathered.
constexpr int64_t kKernelPageRows = 16;

/// The decode path's chunk provider for sequence b: gathers keys [c0, c0 +
/// n) into the calling thread's buffer (kept for its next chunk) and views
/// them as [1, HKV, n, D | DV].
ChunkKeysFn gatherChunks(const PagedLayout &p, const TensorView &k,
                         const TensorView &v, int64_t b) {
  return [&p, &k, &v, b](int64_t c0, int64_t n, TensorView &ck,
                         TensorView &cv) -> Status {
    const int64_t es = int64_t(dtypeSize(k.dtype));
    const int64_t kBytes = n * k.shape[2] * k.shape[3] * es,
                  bytes = kBytes + n * v.shape[2] * v.shape[3] * es;
    thread_local std::unique_ptr<char[]> buffer;
    thread_local int64_t bufferBytes = 0;
    if (bytes > bufferBytes) {
      buffer.reset();
      bufferBytes = 0;
      buffer.reset(new (std::nothrow) char[size_t(bytes)]);
      if (!buffer)
        return Status::error("out of memory for a decode chunk's gathered keys (" +
                             std::to_string(bytes) + " bytes)");
      bufferBytes = bytes;
    }
    gatherRows(p, k, b, c0, c0 + n, c0, buffer.get());
    gatherRows(p, v, b, c0, c0 + n, c0, buffer.get() + kBytes);
    ck = denseRows(k.dtype, buffer.get(), k.shape[2], k.shape[3], n);
    cv = denseRows(v.dtype, buffer.get() + kBytes, v.shape[2], v.shape[3], n);
    return Status::success();
  };
}

/// Rows [b, b + 1) of dimension 0 of \p t.
TensorView batchRow(const TensorView &t, int64_t b) {
  TensorView r = t;
  r.shape[0] = 1;
  r.data = static_cast<char *>(t.data) +
           b * t.strides[0] * int64_t(dtypeSize(t.dtype));
  return r;
}

} // namespace

Status attnc::runtime::forwardCpuPaged(const KernelInfo &kernel,
                                       const CpuForwardArgs &args) {
  PagedLayout p;
  if (Status s = checkPagedLayout(kernel, args, p); !s.ok())
    return s;
  const TensorView &k = args.k, &v = args.v;
  // The q checks here, so that they name q before a sequence's call does.
  if (Status s = validate(args.q, "q", kernel.storage); !s.ok())
    return s;
  if (args.q.rank() != 4 || args.q.shape[0] != p.B)
    return Status::error("q: expected [B, HQ, LQ, D] with B = " +
                         std::to_string(p.B) + " (the page table's rows), got "
                         "shape " + shapeToString(args.q.shape));

  // One gather buffer for the longest fragmented sequence that runs whole;
  // a decode step's chunks are gathered by the threads that run them.
  const int64_t es = int64_t(dtypeSize(k.dtype));
  const int64_t kRow = k.shape[2] * k.shape[3], vRow = v.shape[2] * v.shape[3];
  if (args.paged.decodeChunk < 0)
    return Status::error("the decode chunk must be 0 (automatic) or a number "
                         "of keys, not " + std::to_string(args.paged.decodeChunk));
  const int64_t chunkRows =
      args.paged.decodeChunk > 0
          ? args.paged.decodeChunk
          : std::max<int64_t>(64, kChunkBytes / std::max<int64_t>(1, (kRow + vRow) * es));
  const bool decode = args.q.shape[2] <= kDecodeRows;
  // The kernel reads a fragmented sequence's pages itself, a key tile in
  // pieces of one page each, unless the pieces would be too small.
  const bool kernelPages = kernel.pagedKeys && p.pageSize >= kKernelPageRows;
  auto chunked = [&](int64_t b) {
    return decode && !kernelPages && !consecutivePages(p, b) &&
           p.lens[size_t(b)] > chunkRows;
  };
  int64_t longest = 0, chunkBytes = 0;
  for (int64_t b = 0; b < p.B; ++b) {
    if (chunked(b))
      chunkBytes = chunkRows * (kRow + vRow) * es; // chunkRows < a length
    else if (!consecutivePages(p, b) && !kernelPages)
      longest = std::max(longest, p.lens[size_t(b)]);
  }
  const int64_t bytes = longest * (kRow + vRow) * es; // lengths are checked
  if (Status s = checkAllocationSize(bytes, "the paged cache's gather buffer");
      !s.ok())
    return s;
  if (Status s = checkAllocationSize(chunkBytes, "a decode chunk's gather buffer");
      !s.ok())
    return s;
  // The calling thread keeps its buffer for the next call: a fresh one
  // would be faulted in, page by page, on every decode step.
  thread_local std::unique_ptr<char[]> gathered;
  thread_local int64_t gatheredBytes = 0;
  if (bytes > gatheredBytes) {
    gathered.reset();
    gatheredBytes = 0;
    gathered.reset(new (std::nothrow) char[size_t(bytes)]);
    if (!gathered)
      return Status::error("out of memory for the paged cache's gather "
                           "buffer (" + std::to_string(bytes) + " bytes)");
    gatheredBytes = bytes;
  }
  char *gatheredK = gathered.get(), *gatheredV = gatheredK + longest * kRow * es;

  // Every sequence's call, checked before any runs.
  std::vector<CpuForwardArgs> calls(size_t(p.B));
  std::vector<TensorView> lses(size_t(p.B));
  std::vector<bool> gather(size_t(p.B), false);
  std::vector<CheckedCall> checkedCalls(static_cast<size_t>(p.B));
  const Signature sig = kernel.signature();
  for (int64_t b = 0; b < p.B; ++b) {
    CpuForwardArgs &c = calls[size_t(b)];
    const int64_t len = p.lens[size_t(b)];
    if (consecutivePages(p, b) && len > 0) {
      auto at = [&](const TensorView &t) {
        return static_cast<char *>(t.data) +
               p.page(b, 0) * t.strides[0] * int64_t(dtypeSize(t.dtype));
      };
      // Consecutive pages are one run of rows when a page's rows are.
      const bool run = k.strides[0] == k.shape[1] * k.strides[1] &&
                       v.strides[0] == v.shape[1] * v.strides[1];
      if (run) {
        c.k = cacheRows(k, at(k), k.strides[1], len);
        c.v = cacheRows(v, at(v), v.strides[1], len);
      }
    }
    if (c.k.shape.empty() && (chunked(b) || kernelPages)) {
      c.k = placeholderRows(k.dtype, k.shape[2], k.shape[3], len);
      c.v = placeholderRows(v.dtype, v.shape[2], v.shape[3], len);
      if (kernelPages)
        c.pages = {&k, &v, p.table.data() + b * p.maxPages, p.maxPages, p.pageSize};
    } else if (c.k.shape.empty()) {
      gather[size_t(b)] = len > 0;
      c.k = denseRows(k.dtype, gatheredK, k.shape[2], k.shape[3], len);
      c.v = denseRows(v.dtype, gatheredV, v.shape[2], v.shape[3], len);
    }
    c.q = batchRow(args.q, b);
    c.out = batchRow(args.out, b);
    if (args.lse) {
      lses[size_t(b)] = batchRow(*args.lse, b);
      c.lse = &lses[size_t(b)];
    }
    c.inputs = inputsOfSequence(kernel, args.inputs, b, p.B);
    c.threads = args.threads;
    c.dropout = args.dropout;
    c.dropoutBatch = args.dropoutBatch + b;
    // The kernel reading the pages splits a decode step as it would
    // contiguous keys (CpuDecode.cpp), in chunks of paged.decodeChunk if set.
    c.decodeChunk = c.pages.enabled() && args.paged.decodeChunk > 0
                        ? args.paged.decodeChunk
                        : args.decodeChunk;
    if (Status s = checkForwardCall(sig, {c.q, c.k, c.v, c.out, c.lse, c.inputs,
                                          c.window},
                                    checkedCalls[size_t(b)]);
        !s.ok())
      return s.withContext("sequence " + std::to_string(b) + " of the paged cache");
  }
  // The whole outputs apart from the cache and each other.
  ForwardTensors whole{args.q, k, v, args.out, args.lse, args.inputs};
  if (Status s = checkOutputsApart(whole); !s.ok())
    return s;

  for (int64_t b = 0; b < p.B; ++b) {
    CpuForwardArgs &c = calls[size_t(b)];
    if (c.q.shape[2] == 0 || c.q.shape[1] == 0)
      continue;
    Status s;
    if (chunked(b)) {
      s = forwardCpuSplitKeys(kernel, c, checkedCalls[size_t(b)], chunkRows,
                              gatherChunks(p, k, v, b));
    } else {
      if (gather[size_t(b)])
        gatherSequence(p, k, v, b, 0, p.lens[size_t(b)], args.threads,
                       gatheredK, gatheredV);
      s = forwardCpu(kernel, c);
    }
    if (!s.ok())
      return s.withContext("sequence " + std::to_string(b) + " of the paged cache");
  }
  return Status::success();
}
