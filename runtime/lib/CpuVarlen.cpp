//===- CpuVarlen.cpp - forwardCpu on a packed variable-length batch -------===//
//
// A varlen batch (ForwardChecks.h, VarlenBatch) is B problems packed along
// the rows: sequence i's queries and keys are slices of the packed q, k, v,
// out and lse, which become the 4-D views [1, H, L_i, D] of an ordinary
// call by strides alone. A prefill sequence (more than 16 query rows)
// rereads its keys and values once per query tile, so they are first copied
// dense, rows D apart instead of H * D, into a buffer the calling thread
// keeps. Every sequence's call is checked before any runs, so bad
// arguments write nothing; the calls then run one after another, each on
// the thread pool. Sequences without queries are skipped;
// sequences without keys get fully masked rows (out 0, lse -inf), as any
// call with LK = 0.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/CpuDispatch.h"
#include "attnc/Runtime/ThreadPool.h"

#include "CpuVarlenViews.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

using namespace attnc::runtime;
using namespace attnc::runtime::varlen;

namespace {

/// Query rows above which a sequence's keys and values are copied dense
/// before its call: a prefill sequence rereads them once per query tile,
/// and rows D apart read faster than the packed rows, H * D apart.
constexpr int64_t kDenseKeysRows = 16;

/// Whether \p t, a [1, H, L, X] view of packed rows, is worth a dense copy.
bool packedRows(const TensorView &t) {
  return t.shape[1] > 1 && t.shape[2] > 1 && t.strides[3] == 1 &&
         t.strides[2] != t.shape[3];
}

/// Copies the [1, H, L, X] view \p t (unit column stride) to \p dst,
/// dense, on the pool unless \p threads is 1 or the rows are few; returns
/// the copy's view.
TensorView denseCopy(const TensorView &t, char *dst, int threads) {
  const int64_t H = t.shape[1], L = t.shape[2], X = t.shape[3];
  const int64_t es = int64_t(dtypeSize(t.dtype));
  auto copyRows = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const char *src = static_cast<const char *>(t.data) +
                        ((r / L) * t.strides[1] + (r % L) * t.strides[2]) * es;
      std::memcpy(dst + r * X * es, src, size_t(X * es));
    }
  };
  if (threads == 1 || H * L < 1024)
    copyRows(0, H * L);
  else
    ThreadPool::global().parallelFor(H * L, copyRows, 256);
  return TensorView{dst, t.dtype, {1, H, L, X}, {H * L * X, L * X, X, 1}};
}

/// The packed tensors' ranks and rows, and input dims that no varlen batch
/// can have: LQ and LK differ between sequences.
Status checkPackedShapes(const KernelInfo &kernel, const CpuForwardArgs &args) {
  const std::pair<const TensorView *, const char *> packed[] = {
      {&args.q, "q [total_q, HQ, D]"},
      {&args.k, "k [total_kv, HKV, D]"},
      {&args.v, "v [total_kv, HKV, DV]"},
      {&args.out, "out [total_q, HQ, DV]"}};
  for (auto [t, layout] : packed)
    if (Status s = checkPacked3(*t, layout, kernel.storage); !s.ok())
      return s;
  if (Status s = checkSameRows(args.out, "out", args.q, "q"); !s.ok())
    return s;
  if (Status s = checkSameRows(args.v, "v", args.k, "k"); !s.ok())
    return s;
  if (args.lse) {
    if (Status s = validate(*args.lse, "lse", DType::F32); !s.ok())
      return s;
    if (args.lse->rank() != 2)
      return Status::error("lse: a varlen batch expects rank 2 [HQ, total_q], "
                           "got shape " + shapeToString(args.lse->shape));
  }
  return checkWholeSequences(kernel, args.window);
}

/// The call of sequence \p i: its rows of every tensor, its inputs.
CpuForwardArgs sequenceCall(const KernelInfo &kernel, const CpuForwardArgs &args,
                            const std::vector<int64_t> &cuQ,
                            const std::vector<int64_t> &cuKv, size_t i,
                            TensorView &lseStorage) {
  const int64_t q0 = cuQ[i], lq = cuQ[i + 1] - q0;
  const int64_t k0 = cuKv[i], lk = cuKv[i + 1] - k0;
  CpuForwardArgs call;
  call.q = rowsOf(args.q, q0, lq);
  call.k = rowsOf(args.k, k0, lk);
  call.v = rowsOf(args.v, k0, lk);
  call.out = rowsOf(args.out, q0, lq);
  if (args.lse) {
    lseStorage = lseRowsOf(*args.lse, q0, lq);
    call.lse = &lseStorage;
  }
  call.inputs =
      inputsOfSequence(kernel, args.inputs, int64_t(i), int64_t(cuQ.size()) - 1);
  call.threads = args.threads;
  call.decodeChunk = args.decodeChunk;
  call.dropout = args.dropout;
  call.dropoutBatch = args.dropoutBatch + int64_t(i);
  return call;
}

} // namespace

std::vector<std::pair<std::string, TensorView>> attnc::runtime::inputsOfSequence(
    const KernelInfo &kernel,
    const std::vector<std::pair<std::string, TensorView>> &inputs, int64_t b,
    int64_t numSeqs) {
  std::vector<std::pair<std::string, TensorView>> result = inputs;
  for (auto &[name, view] : result)
    for (const InputDecl &d : kernel.inputs) {
      if (d.name != name || view.rank() != int64_t(d.dims.size()))
        continue;
      for (size_t dim = 0; dim < d.dims.size(); ++dim)
        if (d.dims[dim].isSize && d.dims[dim].size == SizeName::B &&
            view.shape[dim] == numSeqs && numSeqs > 0) {
          view.data = static_cast<char *>(view.data) +
                      b * view.strides[dim] * int64_t(dtypeSize(view.dtype));
          view.shape[dim] = 1;
        }
    }
  return result;
}

Status attnc::runtime::forwardCpuVarlen(const KernelInfo &kernel,
                                        const CpuForwardArgs &args) {
  if (args.tileTrace)
    return Status::error("a tile trace is not recorded for a varlen batch");
  if (Status s = checkPackedShapes(kernel, args); !s.ok())
    return s;
  std::vector<int64_t> cuQ, cuKv;
  if (Status s = readBatchOffsets(args.varlen, args.q.shape[0], args.k.shape[0],
                                  cuQ, cuKv);
      !s.ok())
    return s;
  if (args.lse && args.lse->shape[1] != args.q.shape[0])
    return Status::error("lse: expected [HQ, total_q] with total_q = " +
                         std::to_string(args.q.shape[0]) + ", got shape " +
                         shapeToString(args.lse->shape));
  // The packed outputs apart from everything else, as one call's would be.
  ForwardTensors whole{args.q, args.k, args.v, args.out, args.lse, args.inputs};
  if (Status s = checkOutputsApart(whole); !s.ok())
    return s;
  if (Status s = checkNoInternalOverlap(args.out, "out"); !s.ok())
    return s;
  if (args.lse)
    if (Status s = checkNoInternalOverlap(*args.lse, "lse"); !s.ok())
      return s;

  // Every sequence's call checked before any runs: nothing is written on
  // bad arguments.
  const size_t numSeqs = cuQ.size() - 1;
  const Signature sig = kernel.signature();
  std::vector<CpuForwardArgs> calls(numSeqs);
  std::vector<TensorView> lses(numSeqs);
  for (size_t i = 0; i < numSeqs; ++i) {
    calls[i] = sequenceCall(kernel, args, cuQ, cuKv, i, lses[i]);
    CheckedCall checked;
    const CpuForwardArgs &c = calls[i];
    if (Status s = checkForwardCall(
            sig, {c.q, c.k, c.v, c.out, c.lse, c.inputs, c.window}, checked);
        !s.ok())
      return s.withContext("sequence " + std::to_string(i) + " of the varlen batch");
  }
  // One buffer for the dense keys and values of the longest prefill
  // sequence with packed rows, kept by the calling thread for its next call.
  auto dense = [&](const CpuForwardArgs &c) {
    return c.q.shape[2] > kDenseKeysRows && packedRows(c.k) && packedRows(c.v);
  };
  int64_t denseBytes = 0;
  for (const CpuForwardArgs &c : calls)
    if (dense(c)) // the views were checked: their sizes fit memory
      denseBytes = std::max(denseBytes, (c.k.numel() + c.v.numel()) *
                                            int64_t(dtypeSize(c.k.dtype)));
  if (Status s = checkAllocationSize(denseBytes, "the varlen batch's dense keys");
      !s.ok())
    return s;
  thread_local std::unique_ptr<char[]> buffer;
  thread_local int64_t bufferBytes = 0;
  if (denseBytes > bufferBytes) {
    buffer.reset();
    bufferBytes = 0;
    buffer.reset(new (std::nothrow) char[size_t(denseBytes)]);
    if (!buffer)
      return Status::error("out of memory for the varlen batch's dense keys (" +
                           std::to_string(denseBytes) + " bytes)");
    bufferBytes = denseBytes;
  }
  for (size_t i = 0; i < numSeqs; ++i) {
    CpuForwardArgs &c = calls[i];
    if (c.q.shape[2] == 0)
      continue;
    if (dense(c)) {
      char *k = buffer.get();
      c.k = denseCopy(c.k, k, c.threads);
      c.v = denseCopy(c.v, k + c.k.numel() * int64_t(dtypeSize(c.k.dtype)),
                      c.threads);
    }
    if (Status s = forwardCpu(kernel, c); !s.ok())
      return s.withContext("sequence " + std::to_string(i) + " of the varlen batch");
  }
  return Status::success();
}

/// Reads the offsets vector \p t (\p name for messages) of a batch of
/// \p rows packed rows: a host int32 or int64 vector of B + 1 entries,
/// 0 first, non-decreasing, \p rows last.
Status attnc::runtime::varlen::readOffsets(const TensorView *t,
                                           const char *name, int64_t rows,
                                           std::vector<int64_t> &offsets) {
  if (!t)
    return Status::error(std::string("a varlen batch needs both cu_seqlens_q "
                                     "and cu_seqlens_kv; ") +
                         name + " is missing");
  if (Status s = validate(*t, name); !s.ok())
    return s;
  if (t->dtype != DType::I32 && t->dtype != DType::I64)
    return Status::error(std::string(name) + ": expected int32 or int64, got " +
                         dtypeName(t->dtype));
  if (t->rank() != 1 || t->shape[0] < 1)
    return Status::error(std::string(name) +
                         ": expected a vector of B + 1 >= 1 offsets, got shape " +
                         shapeToString(t->shape));
  offsets.resize(size_t(t->shape[0]));
  for (int64_t i = 0; i < t->shape[0]; ++i) {
    const int64_t at = i * t->strides[0];
    offsets[size_t(i)] = t->dtype == DType::I32
                             ? int64_t(static_cast<const int32_t *>(t->data)[at])
                             : static_cast<const int64_t *>(t->data)[at];
  }
  auto bad = [&](const std::string &why) {
    return Status::error(std::string(name) + ": " + why + " (offsets " +
                         shapeToString(offsets) + ")");
  };
  if (offsets[0] != 0)
    return bad("must start at 0, not " + std::to_string(offsets[0]));
  for (size_t i = 1; i < offsets.size(); ++i)
    if (offsets[i] < offsets[i - 1])
      return bad("must not decrease, but entry " + std::to_string(i) + " (" +
                 std::to_string(offsets[i]) + ") is below entry " +
                 std::to_string(i - 1) + " (" +
                 std::to_string(offsets[i - 1]) + ")");
  if (offsets.back() != rows)
    return bad("must end at the " + std::to_string(rows) +
               " packed rows, not " + std::to_string(offsets.back()));
  return Status::success();
}


/// Rows [start, start + len) of the packed [T, H, X] view \p t as the 4-D
/// [1, H, len, X] view of one call.
TensorView attnc::runtime::varlen::rowsOf(const TensorView &t, int64_t start,
                                          int64_t len) {
  TensorView r;
  r.dtype = t.dtype;
  r.shape = {1, t.shape[1], len, t.shape[2]};
  r.strides = {0, t.strides[1], t.strides[0], t.strides[2]};
  r.data = static_cast<char *>(t.data) +
           start * t.strides[0] * int64_t(dtypeSize(t.dtype));
  return r;
}


/// Columns [start, start + len) of the packed lse [HQ, T] as [1, HQ, len].
TensorView attnc::runtime::varlen::lseRowsOf(const TensorView &t,
                                             int64_t start, int64_t len) {
  TensorView r;
  r.dtype = t.dtype;
  r.shape = {1, t.shape[0], len};
  r.strides = {0, t.strides[0], t.strides[1]};
  r.data = static_cast<char *>(t.data) +
           start * t.strides[1] * int64_t(dtypeSize(t.dtype));
  return r;
}

Status attnc::runtime::varlen::readBatchOffsets(const VarlenBatch &batch,
                                                int64_t qRows, int64_t kvRows,
                                                std::vector<int64_t> &cuQ,
                                                std::vector<int64_t> &cuKv) {
  if (Status s = readOffsets(batch.cuSeqlensQ, "cu_seqlens_q", qRows, cuQ);
      !s.ok())
    return s;
  if (Status s = readOffsets(batch.cuSeqlensKv, "cu_seqlens_kv", kvRows, cuKv);
      !s.ok())
    return s;
  if (cuQ.size() != cuKv.size())
    return Status::error("cu_seqlens_q has " + std::to_string(cuQ.size()) +
                         " entries and cu_seqlens_kv " +
                         std::to_string(cuKv.size()) +
                         ": both must be B + 1 for the same B");
  return Status::success();
}

Status attnc::runtime::varlen::checkWholeSequences(const KernelInfo &kernel,
                                                   const SequenceWindow &window) {
  if (!window.isWhole())
    return Status::error("a varlen batch takes no sequence window: each "
                         "sequence is a whole problem");
  for (const InputDecl &d : kernel.inputs)
    for (const InputDim &dim : d.dims)
      if (dim.isSize && (dim.size == SizeName::LQ || dim.size == SizeName::LK))
        return Status::error(
            "input '" + d.name + "' has a dimension " + sizeName(dim.size) +
            ", which differs between the sequences of a varlen batch; run "
            "the sequences as separate calls");
  return Status::success();
}

Status attnc::runtime::varlen::checkPacked3(const TensorView &t,
                                            const char *layout, DType storage) {
  std::string name(layout, std::string(layout).find(' '));
  if (Status s = validate(t, name, storage); !s.ok())
    return s;
  if (t.rank() != 3)
    return Status::error(name + ": a varlen batch expects rank 3 " +
                         std::string(layout).substr(name.size() + 1) +
                         ", got shape " + shapeToString(t.shape));
  return Status::success();
}

Status attnc::runtime::varlen::checkSameRows(const TensorView &t,
                                             const char *name,
                                             const TensorView &like,
                                             const char *likeName) {
  if (t.shape[0] == like.shape[0])
    return Status::success();
  return Status::error(std::string(name) + " has " + std::to_string(t.shape[0]) +
                       " packed rows, but " + likeName + " has " +
                       std::to_string(like.shape[0]));
}
