//===- CpuDispatch.cpp - Check the arguments, run a CPU kernel ------------===//
//
// forwardCpu works in three phases, and only the last touches memory that
// the caller owns:
//   1. check (shared with forwardCuda, ForwardChecks.h): the kernel's
//      description, q/k/v/out, lse, the inputs; then the
//      trace request, each failure an error that names the tensor;
//   2. prepare: converted copies of inputs the kernel reads in another type,
//      the buffer descriptors and the meta array of KernelABI.h;
//   3. run: the task space in chunks on the thread pool, each chunk a kernel
//      call with its own status words; every participating thread has its
//      own scratch arena for the kernel's tiles (KernelABI.h), which the
//      thread keeps for its next call (grown when a call needs more).
//
// Every allocation whose size the call decides (the tile trace, the ids
// pre-pass buffer, the arenas, converted inputs) is checked against the
// machine's memory first (checkAllocationSize), so an impossible size is
// an error, never an abort.
//
// Reported errors do not depend on the thread count: chunks are claimed in
// increasing order, a chunk above a known failure is skipped, and a kernel
// stops at the first failing task of its range, so the lowest failing chunk
// always holds the lowest failing task of the whole space.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/CpuDispatch.h"
#include "attnc/Runtime/CpuIsa.h"

#include "attnc/Runtime/ThreadPool.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>

using namespace attnc::runtime;

namespace {
/// Chunks per participating thread: enough for uneven tasks (masked rows,
/// ragged ends) to balance, few enough that call overhead is nothing.
constexpr int64_t kChunksPerThread = 32;

/// The largest tile size a kernel may declare; with the head dims bounded
/// by kMaxHeadDim it keeps attnc_arena_bytes far from overflowing.
constexpr int64_t kMaxTile = 65536;

/// Where the descriptor of an empty tensor (or an absent lse or trace)
/// points, so that no descriptor carries a null pointer. Kernels never
/// read or write it: its size is 0.
alignas(64) char emptyStorage[64];

int64_t ceilDiv(int64_t n, int64_t d) {
  if (n <= 0 || d <= 0)
    return 0;
  return n / d + (n % d != 0);
}

/// Checks what only a CPU kernel has: an entry point and tile sizes (what
/// a compiler bug or a hand-built KernelInfo could get wrong).
Status checkCpuKernel(const KernelInfo &k) {
  const std::string who = kernelLabel(k.name);
  if (!k.fn)
    return Status::error(who + ": no entry point (fn is null)");
  if (k.tileQ <= 0 || k.tileK <= 0 || k.tileQ > kMaxTile || k.tileK > kMaxTile)
    return Status::error(who + ": tile sizes must be in 1.." +
                         std::to_string(kMaxTile) + ", got tileQ = " +
                         std::to_string(k.tileQ) +
                         ", tileK = " + std::to_string(k.tileK));
  return Status::success();
}

/// One participant's scratch arena (KernelABI.h), 64-byte aligned.
struct ArenaDeleter {
  void operator()(char *p) const {
    ::operator delete[](p, std::align_val_t(ATTNC_ARENA_ALIGN));
  }
};
using Arena = std::unique_ptr<char[], ArenaDeleter>;

/// The descriptor of a validated view: `aligned` at the lowest element the
/// view touches, so that every element lies in [aligned, aligned + size).
attnc_buffer describe(const TensorView &t) {
  attnc_buffer b{emptyStorage, emptyStorage, 0, 0, 1};
  if (t.numel() == 0)
    return b;
  // validate() proved that neither sum nor the byte offsets overflow.
  int64_t lo = 0, hi = 0;
  for (size_t d = 0; d < t.shape.size(); ++d) {
    const int64_t reach = (t.shape[d] - 1) * t.strides[d];
    (reach < 0 ? lo : hi) += reach;
  }
  char *lowest = static_cast<char *>(t.data) + lo * int64_t(dtypeSize(t.dtype));
  b.allocated = b.aligned = lowest;
  b.offset = -lo;
  b.size = hi - lo + 1;
  return b;
}

/// The calling thread's scratch arena of at least \p bytes, 64-byte
/// aligned: kept for the thread's next call and grown when a call needs
/// more, so that a call does not allocate (and fault in) its tiles' memory
/// again: a decode step is a short call. Null when out of memory.
char *threadArena(int64_t bytes) {
  thread_local Arena arena;
  thread_local int64_t size = 0;
  if (size < bytes) {
    arena.reset();
    size = 0;
    char *p = new (std::align_val_t(ATTNC_ARENA_ALIGN), std::nothrow)
        char[size_t(bytes)];
    if (!p)
      return nullptr;
    arena.reset(p);
    size = bytes;
  }
  return arena.get();
}

/// Runs tasks [0, numTasks) of `fn` in chunks on the pool (or inline for
/// one thread), each chunk with its own status words, each participant
/// with its own arena of \p arenaBytes in slot ATTNC_BUF_ARENA. Fills
/// \p failure with the status of the lowest failing chunk (empty on
/// success); an error only if the arenas cannot be allocated.
Status runTasks(attnc_cpu_kernel_fn fn, const std::vector<attnc_buffer> &shared,
                const int64_t *metaPtr, int64_t numTasks, int requested,
                int64_t arenaBytes, std::vector<int64_t> &failure) {
  failure.clear();
  if (numTasks <= 0)
    return Status::success();
  // threads = 1 never touches the pool (nor starts it); more than the
  // pool has are capped at its size.
  ThreadPool *pool = requested == 1 ? nullptr : &ThreadPool::global();
  int64_t threads = 1;
  if (pool)
    threads = requested == 0 ? pool->numThreads()
                                : std::min(requested, pool->numThreads());
  threads = std::min(threads, numTasks);
  const int64_t chunk =
      ceilDiv(numTasks, threads > 1 ? threads * kChunksPerThread : 1);
  const int64_t numChunks = ceilDiv(numTasks, chunk);

  // One copy of the descriptors per participant; each participating
  // thread brings its own arena (threadArena), checked here against the
  // machine's memory.
  std::vector<std::vector<attnc_buffer>> perThread(size_t(threads), shared);
  if (arenaBytes > 0) {
    int64_t total;
    if (__builtin_mul_overflow(arenaBytes, threads, &total))
      total = -1;
    if (Status s = checkAllocationSize(
            total, "the kernel's tile arenas (" + std::to_string(threads) +
                       " x " + std::to_string(arenaBytes) + " bytes)");
        !s.ok())
      return s;
  }
  std::atomic<bool> noArena{false};

  std::vector<std::array<int64_t, ATTNC_STATUS_WORDS>> failures(
      static_cast<size_t>(numChunks));
  std::atomic<int64_t> nextChunk{0};
  std::atomic<int64_t> firstFailed{numChunks};
  auto drain = [&](int64_t participant) {
    attnc_buffer *bufs = perThread[size_t(participant)].data();
    if (arenaBytes > 0) {
      char *arena = threadArena(arenaBytes);
      if (!arena) {
        noArena.store(true, std::memory_order_relaxed);
        firstFailed.store(-1, std::memory_order_relaxed); // stop the others
        return;
      }
      bufs[ATTNC_BUF_ARENA] = attnc_buffer{arena, arena, 0, arenaBytes, 1};
    }
    while (true) {
      const int64_t c = nextChunk.fetch_add(1, std::memory_order_relaxed);
      if (c >= numChunks || c > firstFailed.load(std::memory_order_relaxed))
        return;
      const int64_t begin = c * chunk;
      const int64_t end = std::min(numTasks, begin + chunk);
      int64_t status[ATTNC_STATUS_WORDS] = {};
      fn(bufs, metaPtr, status, begin, end);
      if (status[0] == ATTNC_STATUS_OK)
        continue;
      std::memcpy(failures[size_t(c)].data(), status, sizeof status);
      int64_t seen = firstFailed.load(std::memory_order_relaxed);
      while (c < seen && !firstFailed.compare_exchange_weak(
                             seen, c, std::memory_order_relaxed))
        ;
    }
  };
  if (threads <= 1) {
    drain(0); // on the calling thread
  } else {
    // One pool index per participant: at most `threads` run at once, and
    // each drains chunks until none are left.
    pool->parallelFor(
        threads,
        [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i)
            drain(i);
        },
        1);
  }
  // parallelFor's completion orders every chunk's writes before this read.
  if (noArena.load(std::memory_order_relaxed))
    return Status::error("out of memory for the kernel's tile arenas (" +
                         std::to_string(arenaBytes) + " bytes per thread)");
  const int64_t failed = firstFailed.load(std::memory_order_relaxed);
  if (failed < numChunks)
    failure.assign(failures[size_t(failed)].begin(),
                   failures[size_t(failed)].end());
  return Status::success();
}

/// \p trace as \p len zeros, or the error of a trace too large to hold.
Status allocateTrace(std::vector<int8_t> &trace, int64_t len) {
  const std::string what = "a tile trace of " + std::to_string(len) + " entries";
  if (Status st = checkAllocationSize(len, what); !st.ok())
    return st;
  try {
    trace.assign(size_t(len), int8_t(0));
  } catch (const std::exception &) { // bad_alloc, length_error
    return Status::error("out of memory for " + what);
  }
  return Status::success();
}

void appendStrides(std::vector<int64_t> &meta, const TensorView &t) {
  meta.insert(meta.end(), t.strides.begin(), t.strides.end());
}

/// The meta array of KernelABI.h for a checked call.
std::vector<int64_t> buildMeta(const CheckedCall &checked, const CpuForwardArgs &args,
                               const std::vector<CheckedInput> &inputs,
                               int64_t rowHeads) {
  std::vector<int64_t> meta(checked.sizes, checked.sizes + 7);
  appendStrides(meta, args.q);
  const KernelPages &pages = args.pages;
  if (pages.enabled()) { // [page, row, head, d] into the slots (b, h, l, d)
    for (const TensorView *t : {pages.k, pages.v})
      meta.insert(meta.end(), {t->strides[0], t->strides[2], t->strides[1], t->strides[3]});
  } else {
    appendStrides(meta, args.k);
    appendStrides(meta, args.v);
  }
  appendStrides(meta, args.out);
  if (args.lse)
    appendStrides(meta, *args.lse);
  else
    meta.insert(meta.end(), 3, 0);
  meta.push_back(args.lse ? 1 : 0);
  meta.push_back(args.tileTrace ? 1 : 0);
  checked.appendWindow(meta);
  meta.push_back(rowHeads);
  meta.insert(meta.end(), {pages.pageSize, 0, pages.pages});
  appendDropout(meta, args.dropout, args.dropoutBatch);
  for (const CheckedInput &p : inputs) {
    meta.insert(meta.end(), p.view.shape.begin(), p.view.shape.end());
    appendStrides(meta, p.view);
  }
  if (pages.enabled()) {
    meta[ATTNC_META_PAGE_TABLE] = int64_t(meta.size());
    meta.insert(meta.end(), pages.table, pages.table + pages.pages);
  }
  return meta;
}
} // namespace

void attnc::runtime::appendDropout(std::vector<int64_t> &meta,
                                   const std::optional<DropoutSeed> &seed, int64_t batch) {
  meta.insert(meta.end(), {seed ? 1 : 0, seed ? int64_t(seed->seed) : 0,
                           seed ? int64_t(seed->offset) : 0, batch});
}

attnc_buffer attnc::runtime::describeView(const TensorView &t) {
  return describe(t);
}

int64_t attnc::runtime::numQueryTiles(const KernelInfo &kernel, int64_t lq) {
  return ceilDiv(lq, kernel.tileQ);
}

int64_t attnc::runtime::numKeyTiles(const KernelInfo &kernel, int64_t lk) {
  return ceilDiv(lk, kernel.tileK);
}

Status attnc::runtime::forwardCpu(const KernelInfo &kernel,
                                  const CpuForwardArgs &args) {
  if (Status st = checkDropoutSeed(kernel.name, kernel.dropout, args.dropout); !st.ok())
    return st;
  if (args.paged.enabled())
    return forwardCpuPaged(kernel, args);
  if (args.varlen.enabled())
    return forwardCpuVarlen(kernel, args);
  // --- 1. Check. -----------------------------------------------------------
  Status s = checkCpuKernel(kernel);
  if (!s.ok() || !(s = checkCpuIsaEnvironment()).ok())
    return s;
  if (args.threads < 0)
    return Status::error("threads must be 0 (the pool's size) or more, got " +
                         std::to_string(args.threads));
  if (args.decodeChunk < -1)
    return Status::error("the decode chunk must be -1 (keys whole), 0 "
                         "(automatic) or a number of keys, not " +
                         std::to_string(args.decodeChunk));
  const Signature sig = kernel.signature();
  CheckedCall checked;
  if (!(s = checkForwardCall(sig, {args.q, args.k, args.v, args.out, args.lse,
                                   args.inputs, args.window},
                             checked))
           .ok())
    return s;
  const TensorView &q = args.q, &k = args.k, &v = args.v, &out = args.out;
  using S = SizeName;
  const int64_t B = checked.size(S::B), HQ = checked.size(S::HQ),
                LQ = checked.size(S::LQ), LK = checked.size(S::LK);
  const int64_t *sizes = checked.sizes;
  std::vector<CheckedInput> &inputs = checked.inputs;

  if (args.tileTrace && !kernel.traced)
    return Status::error("a tile trace was requested, but " +
                         kernelLabel(kernel.name) + " was not built to record one");
  if (args.pages.enabled() && (B != 1 || !kernel.pagedKeys))
    return Status::error("a call on a paged cache read in place runs one "
                         "sequence on a kernel that reads pages");
  // P query heads per task (KernelABI.h): (b, head block, row tile).
  const int64_t rowHeads = rowHeadsOf(kernel, args, checked);
  const int64_t nqt = numQueryTiles(kernel, rowHeads * LQ),
                nkt = numKeyTiles(kernel, LK);
  int64_t numTasks, traceLen = 0;
  if (__builtin_mul_overflow(B, HQ / rowHeads, &numTasks) ||
      __builtin_mul_overflow(numTasks, nqt, &numTasks))
    return Status::error("the task count B * HQ * ceil(LQ / tileQ) = " +
                         std::to_string(B) + " * " + std::to_string(HQ) +
                         " * " + std::to_string(nqt) + " overflows int64");
  const bool trace = args.tileTrace != nullptr;
  if (trace && __builtin_mul_overflow(numTasks, nkt, &traceLen))
    return Status::error("the tile trace needs " + std::to_string(numTasks) +
                         " * " + std::to_string(nkt) +
                         " entries, which overflows int64");

  // A decode step against many keys runs as chunks of keys (CpuDecode.cpp).
  if (const int64_t chunkKeys = decodeChunkKeys(kernel, args, checked))
    return forwardCpuSplitKeys(kernel, args, checked, chunkKeys);

  // --- 2. Prepare. ---------------------------------------------------------
  // Nothing below fails on the caller's arguments; only allocation can fail.
  if (trace)
    if (Status st = allocateTrace(*args.tileTrace, traceLen); !st.ok())
      return st;
  if (numTasks == 0)
    return Status::success(); // B, HQ or LQ is 0: nothing to write

  for (size_t j = 0; j < inputs.size(); ++j) {
    CheckedInput &p = inputs[j];
    if (!p.target)
      continue;
    Expected<Tensor> c = convert(p.view, *p.target);
    if (!c.ok())
      return c.status().withContext("input '" + kernel.inputs[j].name + "'");
    p.owned.emplace(std::move(*c));
    p.view = p.owned->view();
  }

  std::vector<attnc_buffer> buffers;
  buffers.reserve(ATTNC_BUF_INPUTS + inputs.size());
  buffers.push_back(describe(q));
  buffers.push_back(describe(args.pages.enabled() ? *args.pages.k : k));
  buffers.push_back(describe(args.pages.enabled() ? *args.pages.v : v));
  buffers.push_back(describe(out));
  buffers.push_back(args.lse
                        ? describe(*args.lse)
                        : attnc_buffer{emptyStorage, emptyStorage, 0, 0, 1});
  attnc_buffer traceBuf{emptyStorage, emptyStorage, 0, 0, 1};
  if (trace && traceLen > 0) {
    traceBuf.allocated = traceBuf.aligned = args.tileTrace->data();
    traceBuf.size = traceLen;
  }
  buffers.push_back(traceBuf);
  // The ids pre-pass results: min and max per (b, h, atom, key tile).
  std::vector<int64_t> idsScratch;
  attnc_buffer scratchBuf{emptyStorage, emptyStorage, 0, 0, 1};
  if (kernel.prepass && kernel.numIdsAtoms > 0 && nkt > 0) {
    int64_t words;
    if (__builtin_mul_overflow(B * HQ, kernel.numIdsAtoms, &words) ||
        __builtin_mul_overflow(words, nkt, &words) ||
        __builtin_mul_overflow(words, int64_t(2), &words))
      return Status::error("the ids pre-pass buffer size overflows int64");
    int64_t bytes;
    if (__builtin_mul_overflow(words, int64_t(sizeof(int64_t)), &bytes))
      bytes = -1;
    if (Status st = checkAllocationSize(bytes, "the ids pre-pass buffer"); !st.ok())
      return st;
    try {
      idsScratch.assign(size_t(words), 0);
    } catch (const std::exception &) {
      return Status::error("out of memory for the ids pre-pass (" +
                           std::to_string(words) + " words)");
    }
    scratchBuf.allocated = scratchBuf.aligned = idsScratch.data();
    scratchBuf.size = words;
  }
  buffers.push_back(scratchBuf);
  buffers.push_back(attnc_buffer{emptyStorage, emptyStorage, 0, 0, 1}); // arena
  for (const CheckedInput &p : inputs)
    buffers.push_back(describe(p.view));

  const std::vector<int64_t> meta = buildMeta(checked, args, inputs, rowHeads);

  // --- 3. Run: the ids pre-pass (over b * HQ + h), then the tasks. --------
  const int64_t *metaPtr = meta.data();
  std::vector<int64_t> status;
  if (kernel.prepass) {
    if (!(s = runTasks(kernel.prepass, buffers, metaPtr, B * HQ, args.threads,
                       0, status))
             .ok())
      return s;
    if (!status.empty())
      return kernelStatusError(sig, inputs, status.data());
  }
  const int64_t arenaBytes =
      attnc_arena_bytes(kernel.tileQ, kernel.tileK, checked.size(S::D),
                        checked.size(S::DV));
  if (!(s = runTasks(kernel.fn, buffers, metaPtr, numTasks, args.threads,
                     arenaBytes, status))
           .ok())
    return s;
  if (!status.empty())
    return kernelStatusError(sig, inputs, status.data());
  return Status::success();
}
