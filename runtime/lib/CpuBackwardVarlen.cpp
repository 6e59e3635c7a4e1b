//===- CpuBackwardVarlen.cpp - backwardCpu on a packed variable-length batch ===//
//
// The backward of a varlen batch (CpuBackward.h, backwardCpuVarlen) runs
// each sequence as a backward call of its own on views of the packed
// tensors (CpuVarlenViews.h), as the forward does (CpuVarlen.cpp), in three
// passes so that a bad call writes nothing:
//   1. the packed shapes, the offsets, the outputs apart, and every
//      sequence's call checked and sized (checkAndSize);
//   2. every sequence's lse checked against its forward
//      (prepareAndCheckLse), one sequence at a time, its buffers dropped;
//   3. the calls, in sequence order. Sequence i's dq rows, dk and dv rows
//      are its own. The gradient of an input with a B dimension is sliced
//      per sequence like the input; a shared input's (no B dimension) is
//      the sum of the sequences' gradients, each computed into a buffer
//      and added in sequence order, so the result does not depend on the
//      thread count.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/CpuBackward.h"

#include "CpuBackwardImpl.h"
#include "CpuVarlenViews.h"

#include <algorithm>
#include <string>
#include <vector>

using namespace attnc::runtime;
using namespace attnc::runtime::backward_impl;
using namespace attnc::runtime::varlen;

namespace {

/// The packed tensors' ranks and shapes: q, out, dout, dq [total_q, H,
/// X], k, v, dk, dv [total_kv, HKV, X], with each gradient shaped as its
/// tensor; lse [HQ, total_q] (absent for a sigmoid); no sequence window and
/// no input over LQ or LK.
Status checkPacked(const KernelInfo &f, const CpuBackwardArgs &a, bool hasLse) {
  const std::pair<const TensorView *, const char *> packed[] = {
      {&a.q, "q [total_q, HQ, D]"},     {&a.k, "k [total_kv, HKV, D]"},
      {&a.v, "v [total_kv, HKV, DV]"},  {&a.out, "out [total_q, HQ, DV]"},
      {&a.dout, "dout [total_q, HQ, DV]"}};
  for (auto [t, layout] : packed)
    if (Status s = checkPacked3(*t, layout, f.storage); !s.ok())
      return s;
  if (Status s = checkSameRows(a.out, "out", a.q, "q"); !s.ok())
    return s;
  if (Status s = checkSameRows(a.dout, "dout", a.q, "q"); !s.ok())
    return s;
  if (Status s = checkSameRows(a.v, "v", a.k, "k"); !s.ok())
    return s;
  const std::pair<const TensorView *, const TensorView *> grads[] = {
      {&a.dq, &a.q}, {&a.dk, &a.k}, {&a.dv, &a.v}};
  const char *gradNames[] = {"dq", "dk", "dv"};
  for (size_t i = 0; i < 3; ++i)
    if (Status s = validate(*grads[i].first, gradNames[i], f.storage,
                            &grads[i].second->shape);
        !s.ok())
      return s;
  if (hasLse) {
    if (Status s = validate(a.lse, "lse", DType::F32); !s.ok())
      return s;
    if (a.lse.rank() != 2 || a.lse.shape[1] != a.q.shape[0])
      return Status::error("lse: a varlen batch expects [HQ, total_q] with "
                           "total_q = " + std::to_string(a.q.shape[0]) +
                           ", got shape " + shapeToString(a.lse.shape));
  }
  return checkWholeSequences(f, a.window);
}

/// Whether inputsOfSequence slices the view \p v given for input \p name
/// (a B dimension of \p numSeqs entries).
bool slicedPerSequence(const KernelInfo &f, const std::string &name,
                       const TensorView &v, int64_t numSeqs) {
  for (const InputDecl &d : f.inputs)
    if (d.name == name && v.rank() == int64_t(d.dims.size()))
      for (size_t dim = 0; dim < d.dims.size(); ++dim)
        if (d.dims[dim].isSize && d.dims[dim].size == SizeName::B &&
            v.shape[dim] == numSeqs && numSeqs > 0)
          return true;
  return false;
}

/// A shared input's gradient: the caller's view, and the float32 buffer a
/// sequence's call writes before it is added.
struct SharedGrad {
  size_t slot; // its index in args.inputGrads (and each call's)
  TensorView caller;
  Tensor buffer;
};

/// Calls \p fn(i, at) for the elements of \p t in row-major order: i
/// counts them, at is the element's offset (strides honoured).
template <typename Fn> void forEachElement(const TensorView &t, Fn fn) {
  std::vector<int64_t> index(t.shape.size(), 0);
  for (int64_t i = 0; i < t.numel(); ++i) {
    int64_t at = 0;
    for (size_t d = 0; d < index.size(); ++d)
      at += index[d] * t.strides[d];
    fn(i, at);
    for (size_t d = index.size(); d-- > 0;) {
      if (++index[d] < t.shape[d])
        break;
      index[d] = 0;
    }
  }
}

/// Adds \p from (dense float32, the shape of \p to) into \p to.
void addInto(const TensorView &to, const Tensor &from) {
  const float *src = static_cast<const float *>(from.view().data);
  forEachElement(to, [&](int64_t i, int64_t at) {
    static_cast<float *>(to.data)[at] += src[i];
  });
}

/// Sets every element of the float32 view \p t to 0.
void zeroFill(const TensorView &t) {
  forEachElement(t, [&](int64_t, int64_t at) {
    static_cast<float *>(t.data)[at] = 0;
  });
}

} // namespace

Status attnc::runtime::backwardCpuVarlen(const BackwardKernelInfo &kernel,
                                         const CpuBackwardArgs &args) {
  if (!kernel.forward)
    return Status::error("backward kernel: no forward kernel (forward is null)");
  if (args.tileTrace)
    return Status::error("a tile trace is not recorded for a varlen batch");
  const KernelInfo &f = *kernel.forward;
  Plan whole;
  whole.hasLse = !(args.lse.data == nullptr && args.lse.shape.empty());
  if (!f.sigmoid && !whole.hasLse)
    return Status::error("lse is required: the softmax backward of " +
                         kernelLabel(f.name) +
                         " recomputes P from the forward's log-sum-exp");
  if (Status s = checkPacked(f, args, whole.hasLse); !s.ok())
    return s;
  std::vector<int64_t> cuQ, cuKv;
  if (Status s = readBatchOffsets(args.varlen, args.q.shape[0], args.k.shape[0],
                                  cuQ, cuKv);
      !s.ok())
    return s;
  const int64_t numSeqs = int64_t(cuQ.size()) - 1;
  for (const auto &[name, view] : args.inputGrads)
    whole.grads.push_back({0, view, "input gradient '" + name + "'"});
  if (Status s = checkOutputsApart(args, whole); !s.ok())
    return s;

  // Pass 1: every sequence's call, checked and sized.
  std::vector<CpuBackwardArgs> calls(static_cast<size_t>(numSeqs));
  std::vector<SharedGrad> shared;
  for (size_t g = 0; g < args.inputGrads.size(); ++g) {
    const auto &[name, view] = args.inputGrads[g];
    if (slicedPerSequence(f, name, view, numSeqs))
      continue;
    Expected<Tensor> t = Tensor::zeros(DType::F32, view.shape);
    if (!t.ok())
      return t.status().withContext("input gradient '" + name + "'");
    shared.push_back({g, view, std::move(t.value())});
  }
  for (int64_t i = 0; i < numSeqs; ++i) {
    const int64_t q0 = cuQ[size_t(i)], lq = cuQ[size_t(i) + 1] - q0;
    const int64_t k0 = cuKv[size_t(i)], lk = cuKv[size_t(i) + 1] - k0;
    CpuBackwardArgs &c = calls[size_t(i)];
    c.q = rowsOf(args.q, q0, lq), c.k = rowsOf(args.k, k0, lk);
    c.v = rowsOf(args.v, k0, lk), c.out = rowsOf(args.out, q0, lq);
    c.dout = rowsOf(args.dout, q0, lq), c.dq = rowsOf(args.dq, q0, lq);
    c.dk = rowsOf(args.dk, k0, lk), c.dv = rowsOf(args.dv, k0, lk);
    if (whole.hasLse)
      c.lse = lseRowsOf(args.lse, q0, lq);
    c.inputs = inputsOfSequence(f, args.inputs, i, numSeqs);
    c.inputGrads = inputsOfSequence(f, args.inputGrads, i, numSeqs);
    // inputsOfSequence keeps the order: shared gradients get their buffers.
    for (const SharedGrad &g : shared)
      c.inputGrads[g.slot].second = g.buffer.view();
    c.threads = args.threads;
    c.dropout = args.dropout;
    c.dropoutBatch = args.dropoutBatch + i;
    Plan plan;
    if (Status s = checkAndSize(kernel, c, plan); !s.ok())
      return s.withContext("sequence " + std::to_string(i) + " of the varlen batch");
  }
  // Pass 2: every sequence's lse, against its forward.
  for (int64_t i = 0; i < numSeqs; ++i) {
    Plan plan;
    if (Status s = checkAndSize(kernel, calls[size_t(i)], plan); !s.ok())
      return s;
    if (Status s = prepareAndCheckLse(kernel, calls[size_t(i)], plan); !s.ok())
      return s.withContext("sequence " + std::to_string(i) + " of the varlen batch");
  }
  // Pass 3: the calls; the shared gradients summed in sequence order.
  for (const SharedGrad &g : shared)
    zeroFill(g.caller);
  for (int64_t i = 0; i < numSeqs; ++i) {
    if (Status s = backwardCpu(kernel, calls[size_t(i)]); !s.ok())
      return s.withContext("sequence " + std::to_string(i) + " of the varlen batch");
    for (const SharedGrad &g : shared)
      addInto(g.caller, g.buffer);
  }
  return Status::success();
}
