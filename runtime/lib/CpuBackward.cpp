//===- CpuBackward.cpp - The runtime driver of the CPU backward pass ------===//
//
// backwardCpu works in three phases, and only the last touches memory that
// the caller owns:
//   1. check: the kernel's description, the forward's tensors (shared with
//      forwardCpu, ForwardChecks.h), dout, dq, dk, dv, lse and the input
//      gradients; nothing is allocated before they all pass;
//   2. prepare: converted copies of inputs the kernel reads in another type,
//      the descriptors and the meta array of KernelABI.h (plus the offsets
//      of the input-gradient partials), delta = rowsum(dout * out) for
//      softmax, the per-chunk dq partials and the per-task input-gradient
//      partials, all float32;
//   3. run (CpuBackwardTasks.cpp): the tasks (b, hkv, chunk of key tiles)
//      on the thread pool, then the fixed-order reductions of dq and the
//      input gradients into the caller's tensors.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/CpuBackward.h"
#include "attnc/Runtime/CpuIsa.h"

#include "CpuBackwardImpl.h"

#include <algorithm>
#include <new>
#include <optional>
#include <stdexcept>

using namespace attnc::runtime;
using namespace attnc::runtime::backward_impl;

namespace {
/// The largest backward tile (as the forward's, CpuDispatch.cpp).
constexpr int64_t kMaxTile = 65536;

std::string quoted(const std::string &name) { return "'" + name + "'"; }

/// Checks what only the backward helpers have.
Status checkBackwardKernel(const BackwardKernelInfo &k) {
  if (!k.forward)
    return Status::error("backward kernel: no forward kernel (forward is null)");
  const std::string who = kernelLabel(k.forward->name);
  if (!k.kinds || !k.tile)
    return Status::error(who + ": no backward entry points (" +
                         std::string(!k.kinds ? "kinds" : "tile") +
                         " is null)");
  if (k.tileQ <= 0 || k.tileK <= 0 || k.tileQ > kMaxTile || k.tileK > kMaxTile)
    return Status::error(who + ": backward tile sizes must be in 1.." +
                         std::to_string(kMaxTile) + ", got tileQ = " +
                         std::to_string(k.tileQ) +
                         ", tileK = " + std::to_string(k.tileK));
  const std::vector<InputDecl> &inputs = k.forward->inputs;
  for (size_t i = 0; i < k.differentiable.size(); ++i) {
    const int d = k.differentiable[i];
    if (d < 0 || size_t(d) >= inputs.size() ||
        (i > 0 && d <= k.differentiable[i - 1]))
      return Status::error(
          who + ": differentiable input indices must be increasing indices "
                "of declared inputs, got " +
          std::to_string(d) + " at position " + std::to_string(i));
    if (inputs[size_t(d)].dtype != DType::F32)
      return Status::error(who + ": input " + quoted(inputs[size_t(d)].name) +
                           " is not a float input, so it cannot be "
                           "differentiable");
  }
  return Status::success();
}

/// "(differentiable inputs: a, b)" or "(the kernel has no differentiable
/// inputs)".
std::string differentiableList(const BackwardKernelInfo &k) {
  if (k.differentiable.empty())
    return "(the kernel has no differentiable inputs)";
  std::string s = "(differentiable inputs: ";
  for (size_t i = 0; i < k.differentiable.size(); ++i)
    s += (i ? ", " : "") + k.forward->inputs[size_t(k.differentiable[i])].name;
  return s + ")";
}

/// Matches the input gradients to the differentiable inputs; fills
/// \p plan.grads. Requires the inputs to be checked (plan.inputs).
Status checkInputGrads(const BackwardKernelInfo &k, const CpuBackwardArgs &a,
                       Plan &plan) {
  const std::vector<InputDecl> &decls = k.forward->inputs;
  plan.grads.clear();
  for (const auto &[name, view] : a.inputGrads) {
    const std::string who = "input gradient " + quoted(name);
    size_t j = 0;
    while (j < decls.size() && decls[j].name != name)
      ++j;
    if (j == decls.size())
      return Status::error(who + ": the kernel declares no input " +
                           quoted(name) + " " + differentiableList(k));
    if (decls[j].dtype != DType::F32)
      return Status::error(who + ": input " + quoted(name) + " is " +
                           (decls[j].dtype == DType::I64 ? "an int" : "a bool") +
                           " input; only float inputs have a gradient " +
                           differentiableList(k));
    auto it = std::find(k.differentiable.begin(), k.differentiable.end(),
                        int(j));
    if (it == k.differentiable.end())
      return Status::error(who + ": the score does not depend on input " +
                           quoted(name) + ", so it has no gradient " +
                           differentiableList(k));
    const int64_t slot = it - k.differentiable.begin();
    for (const GradTarget &g : plan.grads)
      if (g.slot == slot)
        return Status::error(who + " is given twice");
    const std::vector<int64_t> &shape = plan.inputs[j].view.shape;
    if (Status s = validate(view, who, DType::F32, &shape); !s.ok())
      return s;
    if (Status s = checkNoInternalOverlap(view, who.c_str()); !s.ok())
      return s;
    plan.grads.push_back({slot, view, who});
  }
  return Status::success();
}

/// The bytes [lo, hi) a non-empty validated view spans.
struct ByteRange {
  std::string name;
  __int128 lo = 0, hi = 0;
};

std::optional<ByteRange> byteRange(const TensorView &t, std::string name) {
  if (t.numel() == 0)
    return std::nullopt;
  int64_t lo = 0, hi = 0;
  for (size_t d = 0; d < t.shape.size(); ++d) {
    const int64_t reach = (t.shape[d] - 1) * t.strides[d];
    (reach < 0 ? lo : hi) += reach;
  }
  const __int128 es = __int128(dtypeSize(t.dtype));
  const __int128 base = __int128(reinterpret_cast<uintptr_t>(t.data));
  return ByteRange{std::move(name), base + lo * es, base + (hi + 1) * es};
}

} // namespace

/// Requires the outputs (dq, dk, dv, the input gradients) not to share a
/// byte with each other or with any tensor the call reads.
Status backward_impl::checkOutputsApart(const CpuBackwardArgs &a,
                                        const Plan &plan) {
  std::vector<ByteRange> outputs, all;
  auto add = [&](const TensorView &t, const std::string &name, bool output) {
    if (std::optional<ByteRange> r = byteRange(t, name)) {
      if (output)
        outputs.push_back(*r);
      all.push_back(*r);
    }
  };
  add(a.dq, "dq", true);
  add(a.dk, "dk", true);
  add(a.dv, "dv", true);
  for (const GradTarget &g : plan.grads)
    add(g.view, g.who, true);
  add(a.q, "q", false);
  add(a.k, "k", false);
  add(a.v, "v", false);
  add(a.out, "out", false);
  add(a.dout, "dout", false);
  if (plan.hasLse)
    add(a.lse, "lse", false);
  for (const auto &[name, view] : a.inputs)
    add(view, "input " + quoted(name), false);
  for (size_t i = 0; i < outputs.size(); ++i)
    for (size_t j = i + 1; j < all.size(); ++j) {
      const ByteRange &o = outputs[i], &x = all[j];
      if (o.lo < x.hi && x.lo < o.hi)
        return Status::error(o.name + " overlaps " + x.name +
                             " in memory: a gradient must not share memory "
                             "with an input or with another gradient");
    }
  return Status::success();
}

namespace {

/// Phase 1: every check; fills the sizes, inputs and gradients of \p plan.
Status checkCall(const BackwardKernelInfo &k, const CpuBackwardArgs &a,
                 Plan &plan) {
  if (Status s = checkBackwardKernel(k); !s.ok())
    return s;
  if (a.threads < 0)
    return Status::error("threads must be 0 (the pool's size) or more, got " +
                         std::to_string(a.threads));
  const KernelInfo &f = *k.forward;
  plan.hasLse = !(a.lse.data == nullptr && a.lse.shape.empty());
  if (!f.sigmoid && !plan.hasLse)
    return Status::error("lse is required: the softmax backward of " +
                         kernelLabel(f.name) +
                         " recomputes P from the forward's log-sum-exp");
  const Signature sig = f.signature();
  CheckedCall checked;
  if (Status s = checkForwardCall(sig, {a.q, a.k, a.v, a.out,
                                        plan.hasLse ? &a.lse : nullptr,
                                        a.inputs, a.window},
                                  checked);
      !s.ok())
    return s;
  std::copy(checked.sizes, checked.sizes + 7, plan.sizes);
  plan.window = checked.window;
  plan.inputs = std::move(checked.inputs);
  const DType st = f.storage;
  struct Like {
    const TensorView &t;
    const char *name;
    const TensorView &like;
  } likes[] = {{a.dout, "dout", a.out}, {a.dq, "dq", a.q},
               {a.dk, "dk", a.k},       {a.dv, "dv", a.v}};
  for (const Like &l : likes)
    if (Status s = validate(l.t, l.name, st, &l.like.shape); !s.ok())
      return s;
  for (const Like &l : likes)
    if (&l.t != &a.dout) // the gradients are outputs
      if (Status s = checkNoInternalOverlap(l.t, l.name); !s.ok())
        return s;
  if (Status s = checkInputGrads(k, a, plan); !s.ok())
    return s;
  return checkOutputsApart(a, plan);
}

/// Sizes the task space, the partials and the trace; an error if a count
/// overflows or exceeds the machine's memory.
Status sizeCall(const BackwardKernelInfo &k, const CpuBackwardArgs &a,
                Plan &plan) {
  const int64_t B = plan.B(), HQ = plan.HQ(), HKV = plan.HKV(),
                LQ = plan.LQ(), LK = plan.LK();
  plan.tileQ = k.tileQ;
  plan.tileK = k.tileK;
  plan.nqt = ceilDiv(LQ, k.tileQ);
  plan.nkt = ceilDiv(LK, k.tileK);
  plan.group = HKV > 0 ? HQ / HKV : 0;
  plan.chunks = backwardChunks(B, HKV, plan.nkt);
  int64_t rows, dqWords, tasks, traceLen = 0;
  if (__builtin_mul_overflow(B, HQ, &rows) ||
      __builtin_mul_overflow(rows, LQ, &rows) ||
      __builtin_mul_overflow(rows, plan.D(), &dqWords) ||
      __builtin_mul_overflow(dqWords, plan.chunks, &dqWords) ||
      __builtin_mul_overflow(B, HKV, &tasks) ||
      __builtin_mul_overflow(tasks, plan.chunks, &tasks) ||
      (a.tileTrace &&
       (__builtin_mul_overflow(B * HQ, plan.nqt, &traceLen) ||
        __builtin_mul_overflow(traceLen, plan.nkt, &traceLen))))
    return Status::error("the backward's work space overflows int64");
  plan.numTasks = tasks;
  // The input-gradient partials: every differentiable input, dense.
  plan.partialOffsets.clear();
  int64_t words = 0;
  for (int d : k.differentiable) {
    plan.partialOffsets.push_back(words);
    if (__builtin_add_overflow(words, plan.inputs[size_t(d)].view.numel(),
                               &words))
      return Status::error("the input-gradient partials overflow int64");
  }
  plan.partialWords = words;
  int64_t partialBytes, dqBytes, deltaBytes = 0;
  if (__builtin_mul_overflow(words, std::max<int64_t>(tasks, 1), &partialBytes) ||
      __builtin_mul_overflow(partialBytes, int64_t(4), &partialBytes))
    partialBytes = -1;
  if (__builtin_mul_overflow(dqWords, int64_t(4), &dqBytes))
    dqBytes = -1;
  if (!k.forward->sigmoid && __builtin_mul_overflow(rows, int64_t(4), &deltaBytes))
    deltaBytes = -1;
  if (Status s = checkAllocationSize(dqBytes, "the dq partials"); !s.ok())
    return s;
  if (Status s = checkAllocationSize(partialBytes, "the input-gradient partials");
      !s.ok())
    return s;
  if (Status s = checkAllocationSize(deltaBytes, "delta = rowsum(dout * out)");
      !s.ok())
    return s;
  if (Status s = checkAllocationSize(traceLen, "the tile trace"); !s.ok())
    return s;
  plan.traceLen = traceLen;
  return Status::success();
}

/// Phase 2: converted inputs, descriptors, meta, and the zeroed work space.
Status prepare(const BackwardKernelInfo &k, const CpuBackwardArgs &a,
               Plan &plan) {
  for (size_t j = 0; j < plan.inputs.size(); ++j) {
    CheckedInput &p = plan.inputs[j];
    if (!p.target)
      continue;
    Expected<Tensor> c = convert(p.view, *p.target);
    if (!c.ok())
      return c.status().withContext("input " +
                                    quoted(k.forward->inputs[j].name));
    p.owned.emplace(std::move(*c));
    p.view = p.owned->view();
  }
  for (const CheckedInput &p : plan.inputs)
    plan.inputBuffers.push_back(describeView(p.view));

  std::vector<int64_t> &meta = plan.meta;
  meta.assign(plan.sizes, plan.sizes + 7);
  for (const TensorView *t : {&a.q, &a.k, &a.v, &a.out})
    meta.insert(meta.end(), t->strides.begin(), t->strides.end());
  if (plan.hasLse)
    meta.insert(meta.end(), a.lse.strides.begin(), a.lse.strides.end());
  else
    meta.insert(meta.end(), 3, 0);
  meta.push_back(plan.hasLse ? 1 : 0);
  meta.push_back(0); // the helpers record no trace; the driver does
  meta.insert(meta.end(), {plan.window.qOffset, plan.window.kvOffset,
                           plan.window.totalLQ, plan.window.totalLK});
  meta.push_back(1); // ATTNC_META_ROW_HEADS: the helpers read no task rows
  meta.insert(meta.end(), {0, 0, 0}); // no paged cache
  appendDropout(meta, a.dropout, a.dropoutBatch);
  for (const CheckedInput &p : plan.inputs) {
    meta.insert(meta.end(), p.view.shape.begin(), p.view.shape.end());
    meta.insert(meta.end(), p.view.strides.begin(), p.view.strides.end());
  }
  meta.insert(meta.end(), plan.partialOffsets.begin(), plan.partialOffsets.end());

  try {
    plan.dqPartial.assign(size_t(plan.chunks * plan.B() * plan.HQ() *
                                 plan.LQ() * plan.D()),
                          0.0f);
    // One partial per task, and one more for the rows' sinks.
    plan.gradPartial.assign(size_t(plan.partialWords * (plan.numTasks + 1)),
                            0.0f);
    if (plan.hasLse)
      plan.delta.assign(size_t(plan.B() * plan.HQ() * plan.LQ()), 0.0f);
    if (a.tileTrace)
      a.tileTrace->assign(size_t(plan.traceLen), int8_t(0));
  } catch (const std::bad_alloc &) {
    return Status::error("out of memory for the backward's work space");
  } catch (const std::length_error &) {
    return Status::error("out of memory for the backward's work space");
  }
  return Status::success();
}
} // namespace

int64_t attnc::runtime::backwardChunks(int64_t B, int64_t HKV,
                                       int64_t numKTiles) {
  // Enough tasks for about 16-way parallelism, at most 8 dq partials.
  constexpr int64_t kTargetTasks = 16, kMaxChunks = 8;
  if (numKTiles <= 0 || B <= 0 || HKV <= 0)
    return 0;
  int64_t heads;
  if (__builtin_mul_overflow(B, HKV, &heads) || heads >= kTargetTasks)
    return 1;
  const int64_t want = ceilDiv(kTargetTasks, heads);
  return std::max<int64_t>(1, std::min({want, kMaxChunks, numKTiles}));
}

Status backward_impl::checkAndSize(const BackwardKernelInfo &kernel,
                                   const CpuBackwardArgs &args, Plan &plan) {
  if (Status s = checkCall(kernel, args, plan); !s.ok())
    return s;
  return sizeCall(kernel, args, plan);
}

Status backward_impl::prepareAndCheckLse(const BackwardKernelInfo &kernel,
                                         const CpuBackwardArgs &args,
                                         Plan &plan) {
  if (Status s = prepare(kernel, args, plan); !s.ok())
    return s;
  return checkLseSample(kernel, args, plan);
}

Status attnc::runtime::backwardCpu(const BackwardKernelInfo &kernel,
                                   const CpuBackwardArgs &args) {
  Plan plan;
  if (Status s = checkCpuIsaEnvironment(); !s.ok())
    return s;
  if (Status s = checkBackwardKernel(kernel); !s.ok())
    return s;
  if (Status s = checkDropoutSeed(kernel.forward->name, kernel.forward->dropout, args.dropout);
      !s.ok())
    return s;
  if (args.varlen.enabled())
    return backwardCpuVarlen(kernel, args);
  if (Status s = checkAndSize(kernel, args, plan); !s.ok())
    return s;
  if (Status s = prepareAndCheckLse(kernel, args, plan); !s.ok())
    return s;
  return runBackward(kernel, args, plan);
}
