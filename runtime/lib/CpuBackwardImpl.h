//===- CpuBackwardImpl.h - Shared state of the CPU backward driver -*- C++ -*-===//
//
// Private to CpuBackward.cpp (checks, preparation) and CpuBackwardTasks.cpp
// (the tiled loops and the reductions): the plan of one checked call.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_RUNTIME_LIB_CPUBACKWARDIMPL_H
#define ATTNC_RUNTIME_LIB_CPUBACKWARDIMPL_H

#include "attnc/Runtime/CpuBackward.h"

#include <cstdint>
#include <string>
#include <vector>

namespace attnc::runtime::backward_impl {

inline int64_t ceilDiv(int64_t n, int64_t d) {
  if (n <= 0 || d <= 0)
    return 0;
  return n / d + (n % d != 0);
}

/// A requested input gradient: which differentiable input (its position in
/// BackwardKernelInfo::differentiable) and the caller's float32 view.
struct GradTarget {
  int64_t slot = 0;
  TensorView view;
  std::string who; // for messages
};

/// Everything one checked call needs.
struct Plan {
  int64_t sizes[7] = {}; // B, HQ, HKV, LQ, LK, D, DV
  int64_t B() const { return sizes[0]; }
  int64_t HQ() const { return sizes[1]; }
  int64_t HKV() const { return sizes[2]; }
  int64_t LQ() const { return sizes[3]; }
  int64_t LK() const { return sizes[4]; }
  int64_t D() const { return sizes[5]; }
  int64_t DV() const { return sizes[6]; }

  SequenceWindow window; // totals resolved
  bool hasLse = false;
  std::vector<CheckedInput> inputs; // declaration order, converted
  std::vector<GradTarget> grads;

  int64_t tileQ = 0, tileK = 0, nqt = 0, nkt = 0, group = 0;
  int64_t chunks = 0;   // key-tile chunks per (b, hkv)
  int64_t numTasks = 0; // B * HKV * chunks
  int64_t traceLen = 0;

  std::vector<attnc_buffer> inputBuffers; // descriptors of `inputs`
  std::vector<int64_t> meta;              // KernelABI.h, plus the offsets
  std::vector<int64_t> partialOffsets;    // per differentiable input
  int64_t partialWords = 0;               // one task's partial, in floats

  std::vector<float> delta;       // [B, HQ, LQ], softmax only
  std::vector<float> dqPartial;   // [chunks, B, HQ, LQ, D]
  std::vector<float> gradPartial; // [numTasks + 1, partialWords]: the
                                  // tasks' partials, then the sinks' one
};

/// Phase 1 (CpuBackward.cpp): every check of the call, and the sizes of
/// its task space and partials; nothing is allocated or written.
Status checkAndSize(const BackwardKernelInfo &kernel, const CpuBackwardArgs &args,
                    Plan &plan);

/// Phase 2 (CpuBackward.cpp): the converted inputs, descriptors, delta and
/// partials, then checkLseSample; the caller's tensors are not written.
Status prepareAndCheckLse(const BackwardKernelInfo &kernel,
                          const CpuBackwardArgs &args, Plan &plan);

/// That the outputs (dq, dk, dv, plan.grads) share no byte with each other
/// or with a tensor the call reads (plan.hasLse says whether lse is one).
Status checkOutputsApart(const CpuBackwardArgs &args, const Plan &plan);

/// Before phase 3 (CpuBackwardLse.cpp): refuses an lse that is not the
/// forward's, from the probabilities of a sample of rows.
Status checkLseSample(const BackwardKernelInfo &kernel,
                      const CpuBackwardArgs &args, const Plan &plan);

/// Phase 3: delta, the tasks, the reductions into the caller's tensors.
Status runBackward(const BackwardKernelInfo &kernel, const CpuBackwardArgs &args,
                   Plan &plan);

} // namespace attnc::runtime::backward_impl

#endif // ATTNC_RUNTIME_LIB_CPUBACKWARDIMPL_H
