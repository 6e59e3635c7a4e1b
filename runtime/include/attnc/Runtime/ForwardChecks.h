//===- ForwardChecks.h - The argument checks of every forward call -*- C++ -*-//
//
// forwardCpu and forwardCuda check a call the same way, before they touch
// any memory the caller owns: the kernel's declaration (storage type,
// inputs), q/k/v/out/lse against each other, the named inputs against
// their declarations. The views are only inspected, never dereferenced
// (except bool inputs, which must be host memory), so device pointers can
// be checked too. Kernel-reported status words (KernelABI.h) become the
// same errors on every target.
//
// The rules every call follows:
//  - sizes: B, HQ, HKV, LQ and LK may be 0; an empty problem (B, HQ or LQ
//    zero) is a no-op that writes nothing; LK = 0 with LQ > 0 leaves every
//    row fully masked (out 0, lse -inf). HQ must be a multiple of HKV
//    (HKV = 0 only with HQ = 0);
//  - head dims: kMinHeadDim <= D, DV <= kMaxHeadDim on every target (a
//    back end may take fewer: the CUDA kernels' entries);
//  - outputs (out, lse) must not overlap themselves (no zero stride on a
//    dimension of extent > 1, strides that keep elements apart) nor any
//    other tensor of the call (q, k, v, the other output, every input), by
//    the byte ranges the views span, as PyTorch's assert_no_overlap.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_RUNTIME_FORWARDCHECKS_H
#define ATTNC_RUNTIME_FORWARDCHECKS_H

#include "attnc/Runtime/Tensor.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace attnc::runtime {

/// The supported head dims D and DV, on every target. 1024 holds the
/// largest head dims in use (MLA's D = 576, DV = 512) with room; a CPU
/// thread's tiles then take about 1 MiB (attnc_arena_bytes, KernelABI.h),
/// still within a core's L2 on current server CPUs.
constexpr int64_t kMinHeadDim = 1;
constexpr int64_t kMaxHeadDim = 1024;

/// The sizes an input dimension may name, in the order of the meta array.
enum class SizeName { B = 0, HQ, HKV, LQ, LK, D, DV };

/// "B", "HQ", ... for messages.
const char *sizeName(SizeName s);

/// One dimension of a declared input: a size name or a literal extent.
struct InputDim {
  bool isSize = false;
  SizeName size = SizeName::B;
  int64_t literal = 0;
};

/// An input tensor as the spec declares it. `dtype` is what the kernel reads:
/// I64 for int, F32 for float, Bool for bool.
struct InputDecl {
  std::string name;
  DType dtype = DType::F32;
  std::vector<InputDim> dims;
};

/// What a call is checked against: the target-independent part of a
/// kernel's description.
struct Signature {
  const std::string &name;            // the spec's name
  DType storage;                      // q, k, v and out
  bool sigmoid;                       // sigmoid normalisation: no lse
  const std::vector<InputDecl> &inputs;
};

/// Where a call's rows and keys lie in longer sequences (context
/// parallelism, KernelABI.h's sequence window): the call's LQ rows are
/// query positions qOffset .. qOffset + LQ - 1 of totalLQ, its LK keys key
/// positions kvOffset .. kvOffset + LK - 1 of totalLK. The spec's q, kv,
/// LQ and LK (masks, scores, input reads, input dims named LQ or LK) see
/// these global terms. A total of -1 means the call's own length: the
/// default is a plain call.
struct SequenceWindow {
  int64_t qOffset = 0, kvOffset = 0;
  int64_t totalLQ = -1, totalLK = -1;
  bool isWhole() const {
    return qOffset == 0 && kvOffset == 0 && totalLQ == -1 && totalLK == -1;
  }
};

/// The random numbers of one training call of a spec with
/// softmax(dropout = p) (Dropout.h): the Philox key and counter word 3.
/// A call given one drops pairs; a call without one (inference) does not.
/// `offset` must be below 2^32: a training loop advances it by one per
/// step (or changes the seed), so every step draws a fresh mask, and a
/// backward pass gets the forward's seed and offset to reuse its mask.
struct DropoutSeed {
  uint64_t seed = 0;
  uint64_t offset = 0;
};

/// Checks \p seed against a kernel with (\p hasDropout) or without
/// softmax(dropout = ...); messages name \p kernel.
Status checkDropoutSeed(const std::string &kernel, bool hasDropout,
                        const std::optional<DropoutSeed> &seed);

/// A packed batch of variable-length sequences (FlashAttention's varlen
/// layout): q [total_q, HQ, D], k [total_kv, HKV, D], v [total_kv, HKV, DV],
/// out [total_q, HQ, DV] and lse [HQ, total_q]; sequence i has the query
/// rows cuSeqlensQ[i] .. cuSeqlensQ[i+1] - 1 and the key rows
/// cuSeqlensKv[i] .. cuSeqlensKv[i+1] - 1. Both are host int32 (or int64)
/// vectors of B + 1 entries, starting at 0, non-decreasing, ending at the
/// packed row counts. Each sequence is a problem of its own: the spec's b
/// is its number, its q, kv, LQ and LK are positions in and lengths of that
/// sequence, and input dims named B index sequences. No work is done for
/// rows outside a sequence (there are none: the rows are packed).
struct VarlenBatch {
  const TensorView *cuSeqlensQ = nullptr, *cuSeqlensKv = nullptr;
  bool enabled() const { return cuSeqlensQ || cuSeqlensKv; }
};

/// A paged KV cache (vLLM's and FlashInfer's layout): k [num_pages,
/// page_size, HKV, D] and v [num_pages, page_size, HKV, DV] hold pages;
/// sequence b's keys are the first kvLens[b] rows of its pages
/// pageTable[b, 0], pageTable[b, 1], ... in that order. pageTable is a
/// host int32 (or int64) [B, max_pages], kvLens [B]; every page a sequence
/// uses must exist, and kvLens[b] <= max_pages * page_size. q, out and lse
/// keep their layouts ([B, HQ, LQ, ...]). The spec's kv and LK are the
/// logical position and length in sequence b, so every spec runs
/// unchanged; pageSize, when not 0, must equal k's page_size. A decode
/// call (LQ <= 16) runs a fragmented sequence in chunks of decodeChunk keys
/// (0: as for contiguous keys when the kernel reads the pages, pages of 16
/// rows or more; else about 2 MiB of keys and values; tests set small
/// ones).
struct PagedKvCache {
  const TensorView *pageTable = nullptr, *kvLens = nullptr;
  int64_t pageSize = 0;
  int64_t decodeChunk = 0;
  bool enabled() const { return pageTable || kvLens; }
};

/// The tensors of one call (see CpuForwardArgs for the shapes).
struct ForwardTensors {
  const TensorView &q, &k, &v, &out;
  const TensorView *lse;
  const std::vector<std::pair<std::string, TensorView>> &inputs;
  SequenceWindow window = {};
};

/// A given input matched to its declaration.
struct CheckedInput {
  TensorView view;             // the caller's
  std::optional<DType> target; // set when the kernel needs a converted copy
  std::optional<Tensor> owned; // the converted copy, once made
};

/// The result of the checks: the sizes of the tensors (in SizeName order),
/// the sequence window with its totals resolved, and the inputs in
/// declaration order.
struct CheckedCall {
  int64_t sizes[7] = {};
  SequenceWindow window;
  std::vector<CheckedInput> inputs;
  int64_t size(SizeName s) const { return sizes[int(s)]; }
  /// KernelABI.h's window slots: Q_POS, KV_POS, LQ_TOTAL, LK_TOTAL.
  void appendWindow(std::vector<int64_t> &meta) const {
    meta.insert(meta.end(), {window.qOffset, window.kvOffset, window.totalLQ,
                             window.totalLK});
  }
};

/// "kernel 'NAME'" (or "kernel" for an empty name), for messages.
std::string kernelLabel(const std::string &name);

/// Checks the declaration itself: the storage type and the inputs.
Status checkSignature(const Signature &sig);

/// Checks the declaration and every tensor of the call; fills \p result.
Status checkForwardCall(const Signature &sig, const ForwardTensors &call,
                        CheckedCall &result);

/// Requires output \p t's elements to lie apart: no zero stride on a
/// dimension of extent > 1, and, with the dimensions sorted by |stride|,
/// each |stride| beyond the reach of the smaller ones (the layouts of
/// dense tensors, permuted or sliced). Other layouts may overlap; they are
/// refused rather than searched. Requires a validated view; messages start
/// with \p name.
Status checkNoInternalOverlap(const TensorView &t, const char *name);

/// Requires the outputs (out, lse) not to share a byte with each other or
/// with q, k, v or any input of \p call (byte ranges; any ranks).
Status checkOutputsApart(const ForwardTensors &call);

/// The error for the kernel-reported status words \p status (code != 0).
Status kernelStatusError(const Signature &sig,
                         const std::vector<CheckedInput> &inputs,
                         const int64_t *status);

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_FORWARDCHECKS_H
