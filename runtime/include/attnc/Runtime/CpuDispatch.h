//===- CpuDispatch.h - Check the arguments, run a CPU kernel ----*- C++ -*-===//
//
// The host side of a kernel call, shared by the JIT (attnc::Kernel) and by
// ahead-of-time objects (their generated header calls forwardCpu): checks
// every tensor against the kernel's declaration, converts what the kernel
// reads in another type (int32 inputs to int64, float16 float inputs to
// float32), fills the descriptors and the meta array of KernelABI.h, and runs
// the task space on the thread pool, each thread with its own scratch arena
// for the kernel's tiles (kept by the thread for its next call). Bad
// arguments return an error Status
// that names the tensor and what was wrong; nothing is written then. A
// kernel-reported error (an out-of-range input read) also comes back as a
// Status; `out` may then hold partial results.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_RUNTIME_CPUDISPATCH_H
#define ATTNC_RUNTIME_CPUDISPATCH_H

#include "attnc/Runtime/ForwardChecks.h"
#include "attnc/Runtime/KernelABI.h"
#include "attnc/Runtime/Tensor.h"

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace attnc::runtime {

/// Everything the dispatcher needs to know about a compiled kernel.
struct KernelInfo {
  std::string name;               // the spec's name
  attnc_cpu_kernel_fn fn = nullptr;
  DType storage = DType::F32;     // q, k, v and out: F32, F16 or BF16
  int64_t tileQ = 0, tileK = 0;   // the tile sizes the kernel was built for
  bool sigmoid = false;           // sigmoid normalisation: no lse
  bool traced = false;            // built to fill a tile trace
  /// Reads KernelABI.h's ATTNC_META_ROW_HEADS: a task may hold the rows
  /// of several query heads (FlashOp::packsQueryHeads).
  bool packsHeads = false;
  /// Reads a paged cache in place (KernelABI.h, ATTNC_META_PAGE_SIZE):
  /// every kernel without a grid patch (FlashOp::readsPagedKeys).
  bool pagedKeys = false;
  /// Masks with ids_eq atoms: the pre-pass entry and the number of atoms
  /// (KernelABI.h, ATTNC_BUF_IDS_SCRATCH); null / 0 otherwise.
  attnc_cpu_kernel_fn prepass = nullptr;
  int64_t numIdsAtoms = 0;
  /// The spec has softmax(dropout = p): a call may pass a DropoutSeed.
  bool dropout = false;
  std::vector<InputDecl> inputs;  // in declaration order

  /// The target-independent part, for the shared checks.
  Signature signature() const { return {name, storage, sigmoid, inputs}; }
};

/// Keys and values that the kernel reads from a paged cache itself
/// (KernelABI.h, ATTNC_META_PAGE_SIZE), set by forwardCpuPaged on the
/// call of one sequence after it checked the table: k and v are then the
/// [num_pages, pageSize, HKV, D | DV] caches and `table` the sequence's
/// `pages` page numbers, while the call's own k and v only carry the
/// shapes that are checked.
struct KernelPages {
  const TensorView *k = nullptr, *v = nullptr;
  const int64_t *table = nullptr;
  int64_t pages = 0, pageSize = 0;
  bool enabled() const { return pageSize > 0; }
};

/// The tensors of one call. q [B,HQ,LQ,D], k [B,HKV,LK,D], v [B,HKV,LK,DV],
/// out [B,HQ,LQ,DV] in the kernel's storage type; lse [B,HQ,LQ] float32.
struct CpuForwardArgs {
  TensorView q, k, v, out;
  const TensorView *lse = nullptr;
  std::vector<std::pair<std::string, TensorView>> inputs;
  /// The call as a window of longer sequences (ForwardChecks.h); the
  /// default is the whole sequences.
  SequenceWindow window;
  /// If enabled, q, k, v, out and lse are a packed variable-length batch
  /// (ForwardChecks.h, VarlenBatch) instead of the 4-D layouts above, and
  /// the window must be the default.
  VarlenBatch varlen;
  /// If enabled, k and v are a paged KV cache (ForwardChecks.h,
  /// PagedKvCache); the window must be the default and varlen off.
  PagedKvCache paged;
  /// Internal (forwardCpuPaged): a B = 1 call on a checked paged cache.
  KernelPages pages;
  /// A decode step (LQ <= 16) on contiguous keys runs them in chunks of
  /// this many, merged by lse (CpuDecode.cpp): 0 picks the size from the
  /// shape (or keeps the keys whole where chunks gain nothing), -1 always
  /// keeps them whole. Tests set small sizes.
  int64_t decodeChunk = 0;
  /// A training call of a spec with softmax(dropout = p): its seed and
  /// offset (KernelABI.h, ATTNC_META_DROPOUT); unset: no dropout.
  std::optional<DropoutSeed> dropout;
  /// Internal (varlen): the global number of the call's sequence b = 0,
  /// ATTNC_META_DROPOUT_BATCH.
  int64_t dropoutBatch = 0;
  /// Threads to use; 0 means the global pool's size.
  int threads = 0;
  /// If set (and the kernel is traced), receives numTasks * numKTiles
  /// entries: 0 for a key tile not visited, 1 FULL, 2 PARTIAL.
  std::vector<int8_t> *tileTrace = nullptr;
};

/// Checks the arguments and runs the kernel.
Status forwardCpu(const KernelInfo &kernel, const CpuForwardArgs &args);

/// forwardCpu of a packed variable-length batch (CpuVarlen.cpp): checks the
/// offsets and every sequence's call before any runs, then runs each
/// non-empty sequence as a call of its own. forwardCpu comes here when
/// args.varlen is enabled.
Status forwardCpuVarlen(const KernelInfo &kernel, const CpuForwardArgs &args);

/// forwardCpu on a paged KV cache (CpuPaged.cpp): checks the page table,
/// the lengths and every sequence's call before any runs, then runs each
/// sequence on its keys: a view of the cache when its pages are
/// consecutive, else the cache through its page table (KernelPages), or,
/// for pages of fewer than 16 rows or a kernel that cannot read pages, a
/// gathered copy. forwardCpu comes here when args.paged is enabled.
Status forwardCpuPaged(const KernelInfo &kernel, const CpuForwardArgs &args);

/// The given inputs with their dims declared B (as the spec names them)
/// sliced to [b, b + 1), for a call that runs sequence b of \p numSeqs on
/// its own; an input whose B dims do not have numSeqs entries stays whole,
/// for the call's checks to report.
std::vector<std::pair<std::string, TensorView>>
inputsOfSequence(const KernelInfo &kernel,
                 const std::vector<std::pair<std::string, TensorView>> &inputs,
                 int64_t b, int64_t numSeqs);

/// Appends KernelABI.h's dropout slots (ATTNC_META_DROPOUT ..
/// ATTNC_META_DROPOUT_BATCH) to \p meta.
void appendDropout(std::vector<int64_t> &meta, const std::optional<DropoutSeed> &seed,
                   int64_t batch);

/// The KernelABI.h descriptor of a validated view: `aligned` at the lowest
/// element the view touches, so that every element lies in [aligned,
/// aligned + size); an empty view gets a non-null buffer of size 0.
attnc_buffer describeView(const TensorView &t);

/// The keys per chunk with which forwardCpu runs the checked call \p checked
/// as a decode step split into chunks of keys (CpuDecode.cpp): few query
/// rows (at most 16), keys for at least two chunks, and query heads that
/// share KV heads or fewer tasks than threads (args.decodeChunk, when not
/// 0, decides instead); 0 when it runs whole.
int64_t decodeChunkKeys(const KernelInfo &kernel, const CpuForwardArgs &args,
                        const CheckedCall &checked);

/// The query heads per task (KernelABI.h, ATTNC_META_ROW_HEADS) of a
/// checked call: for a decode step (at most 16 rows, no trace) on a
/// kernel that packs heads, the largest divisor P of HQ / HKV with
/// P * LQ <= tileQ that leaves two tasks per thread (or any, on one
/// thread), so one K/V tile serves the rows of P heads; else 1.
int64_t rowHeadsOf(const KernelInfo &kernel, const CpuForwardArgs &args,
                   const CheckedCall &checked);

/// Where a chunk's keys come from: sets the [B, HKV, n, D | DV] views k and
/// v to keys [c0, c0 + n) of the call, on the thread that runs the chunk
/// (a paged cache gathers them there, into that thread's buffer).
using ChunkKeysFn = std::function<Status(int64_t c0, int64_t n, TensorView &k,
                                         TensorView &v)>;

/// Runs the checked call as chunks of \p chunkKeys keys, each a
/// single-threaded call over a sequence window, concurrently, then merges
/// their partial results by lse into out and lse. The chunks' keys are
/// views of args.k and args.v, or what \p keysOf gives. Writes nothing
/// when a chunk fails, and then returns the lowest failing chunk's error.
Status forwardCpuSplitKeys(const KernelInfo &kernel, const CpuForwardArgs &args,
                           const CheckedCall &checked, int64_t chunkKeys,
                           const ChunkKeysFn &keysOf = {});

/// The size of the task space and of the key-tile space for these sizes.
int64_t numQueryTiles(const KernelInfo &kernel, int64_t lq);
int64_t numKeyTiles(const KernelInfo &kernel, int64_t lk);

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_CPUDISPATCH_H
