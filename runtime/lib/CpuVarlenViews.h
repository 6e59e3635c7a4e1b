//===- CpuVarlenViews.h - Views of a packed variable-length batch -*- C++ -*-===//
//
// What the forward (CpuVarlen.cpp) and the backward (CpuBackwardVarlen.cpp)
// of a varlen batch share: the checked offsets, and the per-sequence views
// of the packed tensors, by strides alone.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_RUNTIME_LIB_CPUVARLENVIEWS_H
#define ATTNC_RUNTIME_LIB_CPUVARLENVIEWS_H

#include "attnc/Runtime/ForwardChecks.h"
#include "attnc/Runtime/Status.h"
#include "attnc/Runtime/Tensor.h"

#include <vector>

namespace attnc::runtime::varlen {

/// Reads the offsets vector \p t (\p name for messages) of a batch of
/// \p rows packed rows: a host int32 or int64 vector of B + 1 entries,
/// 0 first, non-decreasing, \p rows last.
Status readOffsets(const TensorView *t, const char *name, int64_t rows,
                   std::vector<int64_t> &offsets);

/// The offsets of both sides (readOffsets of cuSeqlensQ over \p qRows and
/// of cuSeqlensKv over \p kvRows), the same count B + 1 on each.
Status readBatchOffsets(const VarlenBatch &batch, int64_t qRows,
                        int64_t kvRows, std::vector<int64_t> &cuQ,
                        std::vector<int64_t> &cuKv);

/// \p t validated as a packed tensor of \p storage: rank 3, as \p layout
/// says ("name [dims]", e.g. "q [total_q, HQ, D]").
Status checkPacked3(const TensorView &t, const char *layout, DType storage);

/// That the packed \p t has as many rows as \p like (their names \p name
/// and \p likeName), so that no sequence's view of it reaches past its end.
Status checkSameRows(const TensorView &t, const char *name,
                     const TensorView &like, const char *likeName);

/// What no varlen call may have: a sequence window, or an input with a
/// dimension LQ or LK (which differ between the sequences).
Status checkWholeSequences(const KernelInfo &kernel,
                           const SequenceWindow &window);

/// Rows [start, start + len) of the packed [T, H, X] view \p t as the 4-D
/// [1, H, len, X] view of one call.
TensorView rowsOf(const TensorView &t, int64_t start, int64_t len);

/// Columns [start, start + len) of the packed lse [HQ, T] as [1, HQ, len].
TensorView lseRowsOf(const TensorView &t, int64_t start, int64_t len);

} // namespace attnc::runtime::varlen

#endif // ATTNC_RUNTIME_LIB_CPUVARLENVIEWS_H
