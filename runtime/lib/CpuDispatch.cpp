//===- CpuDispatch.cpp - Check the arguments, run a CPU kernel ------------===//
//
// forwardCpu works in three phases, and only the last touches memory that
// the caller owns:
//   1. check: the kernel's description, q/k/v/out, lse, the inputs and the
//      trace request, each failure an error that names the tensor;
//   2. prepare: converted copies of inputs the kernel reads in another type,
//      the buffer descriptors and the meta array of KernelABI.h;
//   3. run: the task space in chunks on the thread pool, each chunk a kernel
//      call with its own status words.
//
// Reported errors do not depend on the thread count: chunks are claimed in
// increasing order, a chunk above a known failure is skipped, and a kernel
// stops at the first failing task of its range, so the lowest failing chunk
// always holds the lowest failing task of the whole space.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/CpuDispatch.h"

#include "attnc/Runtime/ThreadPool.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <new>
#include <optional>
#include <stdexcept>

using namespace attnc::runtime;

namespace {
constexpr const char *kSizeNames[] = {"B", "HQ", "HKV", "LQ", "LK", "D", "DV"};
constexpr int kNumSizes = 7;
/// Chunks per participating thread: enough for uneven tasks (masked rows,
/// ragged ends) to balance, few enough that call overhead is nothing.
constexpr int64_t kChunksPerThread = 32;

/// Where the descriptor of an empty tensor (or an absent lse or trace)
/// points, so that no descriptor carries a null pointer. Kernels never
/// read or write it: its size is 0.
alignas(64) char emptyStorage[64];

std::string quoted(const std::string &name) { return "'" + name + "'"; }

std::string kernelLabel(const KernelInfo &k) {
  return k.name.empty() ? "kernel" : "kernel " + quoted(k.name);
}

/// "(declared inputs: a, b)" or "(the kernel declares no inputs)".
std::string declaredList(const KernelInfo &k) {
  if (k.inputs.empty())
    return "(the kernel declares no inputs)";
  std::string s = "(declared inputs: ";
  for (size_t i = 0; i < k.inputs.size(); ++i)
    s += (i ? ", " : "") + k.inputs[i].name;
  return s + ")";
}

/// "[LQ, 4]" for a declared input's dimensions.
std::string declaredDims(const InputDecl &d) {
  std::string s = "[";
  for (size_t i = 0; i < d.dims.size(); ++i) {
    s += i ? ", " : "";
    s += d.dims[i].isSize ? kSizeNames[int(d.dims[i].size)]
                          : std::to_string(d.dims[i].literal);
  }
  return s + "]";
}

int64_t ceilDiv(int64_t n, int64_t d) {
  if (n <= 0 || d <= 0)
    return 0;
  return n / d + (n % d != 0);
}

/// Checks the kernel's own description: what a compiler bug or a hand-built
/// KernelInfo could get wrong.
Status checkKernel(const KernelInfo &k) {
  const std::string who = kernelLabel(k);
  if (!k.fn)
    return Status::error(who + ": no entry point (fn is null)");
  if (k.tileQ <= 0 || k.tileK <= 0)
    return Status::error(who + ": tile sizes must be positive, got tileQ = " +
                         std::to_string(k.tileQ) +
                         ", tileK = " + std::to_string(k.tileK));
  if (k.storage != DType::F32 && k.storage != DType::F16 &&
      k.storage != DType::BF16)
    return Status::error(who +
                         ": storage type must be float32, float16 or "
                         "bfloat16, got " +
                         dtypeName(k.storage));
  for (size_t i = 0; i < k.inputs.size(); ++i) {
    const InputDecl &d = k.inputs[i];
    const std::string in = who + ": input " + quoted(d.name);
    if (d.name.empty())
      return Status::error(who + ": input " + std::to_string(i) +
                           " has an empty name");
    for (size_t j = 0; j < i; ++j)
      if (k.inputs[j].name == d.name)
        return Status::error(in + " is declared twice");
    if (d.dtype != DType::I64 && d.dtype != DType::F32 &&
        d.dtype != DType::Bool)
      return Status::error(in + " is declared as " + dtypeName(d.dtype) +
                           "; kernels read int64, float32 or bool");
    for (size_t j = 0; j < d.dims.size(); ++j) {
      const InputDim &dim = d.dims[j];
      if (dim.isSize && (int(dim.size) < 0 || int(dim.size) >= kNumSizes))
        return Status::error(in + ": dimension " + std::to_string(j) +
                             " names an invalid size");
      if (!dim.isSize && dim.literal < 0)
        return Status::error(in + ": dimension " + std::to_string(j) +
                             " has a negative extent " +
                             std::to_string(dim.literal));
    }
  }
  return Status::success();
}

/// Validates \p t (well formed, \p dtype) and requires rank \p rank.
Status checkTensor(const TensorView &t, const char *name, DType dtype,
                   int64_t rank, const char *layout) {
  Status s = validate(t, name, dtype);
  if (!s.ok())
    return s;
  if (t.rank() != rank)
    return Status::error(std::string(name) + ": expected rank " +
                         std::to_string(rank) + " " + layout + ", got shape " +
                         shapeToString(t.shape));
  return Status::success();
}

/// One dimension that \p t shares with another tensor.
struct SharedDim {
  int dim;          // in t
  SizeName size;    // its name
  int64_t expected; // the other tensor's extent
};

/// Requires \p t to agree with tensor \p other on \p dims; the message lists
/// all of them and says which one differs.
Status matchDims(const TensorView &t, const char *name, const char *other,
                 std::initializer_list<SharedDim> dims) {
  for (const SharedDim &d : dims) {
    if (t.shape[d.dim] == d.expected)
      continue;
    std::string names = "[";
    std::vector<int64_t> values;
    for (const SharedDim &e : dims) {
      names +=
          (values.empty() ? "" : ", ") + std::string(kSizeNames[int(e.size)]);
      values.push_back(e.expected);
    }
    return Status::error(
        std::string(name) + ": shape " + shapeToString(t.shape) +
        " does not match " + other + "'s " + names +
        "] = " + shapeToString(values) + ": dimension " +
        std::to_string(d.dim) + " (" + kSizeNames[int(d.size)] + ") is " +
        std::to_string(t.shape[d.dim]) + ", not " + std::to_string(d.expected));
  }
  return Status::success();
}

/// Requires a size taken from \p t's dimension \p dim to be at least 1.
Status requirePositive(const TensorView &t, const char *name, int dim,
                       SizeName size) {
  if (t.shape[dim] >= 1)
    return Status::success();
  return Status::error(
      std::string(name) + ": " + kSizeNames[int(size)] + " (dimension " +
      std::to_string(dim) + ") must be at least 1, got " +
      std::to_string(t.shape[dim]) + " in shape " + shapeToString(t.shape));
}

/// True if some byte of a non-empty bool view is neither 0 nor 1. Requires
/// a validated view.
bool hasNonCanonicalBool(const TensorView &t) {
  const int64_t n = t.numel();
  if (n == 0)
    return false;
  const size_t rank = t.shape.size();
  std::vector<int64_t> index(rank, 0);
  const unsigned char *base = static_cast<const unsigned char *>(t.data);
  int64_t offset = 0;
  for (int64_t flat = 0; flat < n; ++flat) {
    if (base[offset] > 1)
      return true;
    for (size_t d = rank; d-- > 0;) {
      if (++index[d] < t.shape[d]) {
        offset += t.strides[d];
        break;
      }
      offset -= t.strides[d] * (t.shape[d] - 1);
      index[d] = 0;
    }
  }
  return false;
}

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

/// An input as the kernel will read it.
struct PreparedInput {
  TensorView view;             // the caller's, or a view of `owned`
  std::optional<DType> target; // set when the kernel needs a converted copy
  std::optional<Tensor> owned;
};

/// Matches the given inputs to the declarations and checks each one;
/// fills \p prepared in declaration order.
Status checkInputs(const KernelInfo &k, const CpuForwardArgs &args,
                   const int64_t (&sizes)[kNumSizes],
                   std::vector<PreparedInput> &prepared) {
  const size_t n = k.inputs.size();
  std::vector<int64_t> givenFor(n, -1);
  for (size_t i = 0; i < args.inputs.size(); ++i) {
    const std::string &name = args.inputs[i].first;
    size_t j = 0;
    while (j < n && k.inputs[j].name != name)
      ++j;
    if (j == n)
      return Status::error("unknown input " + quoted(name) + " " +
                           declaredList(k));
    if (givenFor[j] >= 0)
      return Status::error("input " + quoted(name) + " is given twice " +
                           declaredList(k));
    givenFor[j] = int64_t(i);
  }
  for (size_t j = 0; j < n; ++j)
    if (givenFor[j] < 0)
      return Status::error("missing input " + quoted(k.inputs[j].name) + " " +
                           declaredList(k));

  prepared.assign(n, PreparedInput());
  for (size_t j = 0; j < n; ++j) {
    const InputDecl &decl = k.inputs[j];
    const TensorView &t = args.inputs[size_t(givenFor[j])].second;
    const std::string who = "input " + quoted(decl.name);
    Status s = validate(t, who);
    if (!s.ok())
      return s;
    std::vector<int64_t> expected;
    for (const InputDim &d : decl.dims)
      expected.push_back(d.isSize ? sizes[int(d.size)] : d.literal);
    if (t.rank() != int64_t(expected.size()))
      return Status::error(
          who + ": expected rank " + std::to_string(expected.size()) + " " +
          declaredDims(decl) + ", got shape " + shapeToString(t.shape));
    if (t.shape != expected)
      return Status::error(who + ": shape " + shapeToString(t.shape) +
                           " does not match the declared " +
                           declaredDims(decl) + " = " +
                           shapeToString(expected));
    PreparedInput &p = prepared[j];
    p.view = t;
    switch (decl.dtype) {
    case DType::I64:
      if (!isIntDType(t.dtype))
        return Status::error(who + ": expected int32 or int64, got " +
                             dtypeName(t.dtype));
      if (t.dtype != DType::I64)
        p.target = DType::I64;
      break;
    case DType::F32:
      if (!isFloatDType(t.dtype))
        return Status::error(who +
                             ": expected float32, float16, bfloat16 "
                             "or float64, got " +
                             dtypeName(t.dtype));
      if (t.dtype != DType::F32)
        p.target = DType::F32;
      break;
    default: // Bool; checkKernel admits nothing else
      if (t.dtype != DType::Bool)
        return Status::error(who + ": expected bool, got " +
                             dtypeName(t.dtype));
      // The ABI promises 0 or 1; a raw view may hold other bytes.
      if (hasNonCanonicalBool(t))
        p.target = DType::Bool;
      break;
    }
  }
  return Status::success();
}

/// The Status for a kernel-reported error in \p status.
/// Runs tasks [0, numTasks) of `fn` in chunks on the pool (or inline for
/// one thread), each chunk with its own status words. Returns the status of
/// the lowest failing chunk, or an empty vector on success.
std::vector<int64_t> runTasks(attnc_cpu_kernel_fn fn, const attnc_buffer *bufs,
                              const int64_t *metaPtr, int64_t numTasks,
                              int requested) {
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

  std::vector<std::array<int64_t, ATTNC_STATUS_WORDS>> failures(
      static_cast<size_t>(numChunks));
  std::atomic<int64_t> nextChunk{0};
  std::atomic<int64_t> firstFailed{numChunks};
  auto drain = [&] {
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
    drain(); // on the calling thread
  } else {
    // One pool index per participant: at most `threads` run at once, and
    // each drains chunks until none are left.
    pool->parallelFor(
        threads,
        [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i)
            drain();
        },
        1);
  }
  // parallelFor's completion orders every chunk's writes before this read.
  const int64_t failed = firstFailed.load(std::memory_order_relaxed);
  if (failed < numChunks)
    return std::vector<int64_t>(failures[size_t(failed)].begin(),
                                failures[size_t(failed)].end());
  return {};
}

Status kernelError(const KernelInfo &k,
                   const std::vector<PreparedInput> &inputs,
                   const int64_t *status) {
  const int64_t code = status[0];
  if (code == ATTNC_STATUS_INPUT_OUT_OF_RANGE) {
    const int64_t in = status[1], dim = status[2], index = status[3];
    if (in >= 0 && in < int64_t(inputs.size()) && dim >= 0 &&
        dim < inputs[size_t(in)].view.rank())
      return Status::error(
          "input " + quoted(k.inputs[size_t(in)].name) +
          " read out of range: index " + std::to_string(index) +
          " in dimension " + std::to_string(dim) + " of size " +
          std::to_string(inputs[size_t(in)].view.shape[size_t(dim)]));
    return Status::error(
        "kernel error code 1 (input read out of range) with invalid details: "
        "input " +
        std::to_string(in) + ", dimension " + std::to_string(dim) + ", index " +
        std::to_string(index));
  }
  if (code == ATTNC_STATUS_DIVISION_BY_ZERO)
    return Status::error(kernelLabel(k) + ": integer division or modulo by "
                         "zero in the spec's expressions");
  return Status::error("kernel error code " + std::to_string(code));
}

void appendStrides(std::vector<int64_t> &meta, const TensorView &t) {
  meta.insert(meta.end(), t.strides.begin(), t.strides.end());
}
} // namespace

int64_t attnc::runtime::numQueryTiles(const KernelInfo &kernel, int64_t lq) {
  return ceilDiv(lq, kernel.tileQ);
}

int64_t attnc::runtime::numKeyTiles(const KernelInfo &kernel, int64_t lk) {
  return ceilDiv(lk, kernel.tileK);
}

Status attnc::runtime::forwardCpu(const KernelInfo &kernel,
                                  const CpuForwardArgs &args) {
  // --- 1. Check. -----------------------------------------------------------
  Status s = checkKernel(kernel);
  if (!s.ok())
    return s;
  if (args.threads < 0)
    return Status::error("threads must be 0 (the pool's size) or more, got " +
                         std::to_string(args.threads));
  const DType st = kernel.storage;
  if (!(s = checkTensor(args.q, "q", st, 4, "[B, HQ, LQ, D]")).ok() ||
      !(s = checkTensor(args.k, "k", st, 4, "[B, HKV, LK, D]")).ok() ||
      !(s = checkTensor(args.v, "v", st, 4, "[B, HKV, LK, DV]")).ok() ||
      !(s = checkTensor(args.out, "out", st, 4, "[B, HQ, LQ, DV]")).ok())
    return s;

  const TensorView &q = args.q, &k = args.k, &v = args.v, &out = args.out;
  const int64_t B = q.shape[0], HQ = q.shape[1], LQ = q.shape[2],
                D = q.shape[3];
  const int64_t HKV = k.shape[1], LK = k.shape[2], DV = v.shape[3];
  using S = SizeName;
  if (!(s = requirePositive(q, "q", 0, S::B)).ok() ||
      !(s = requirePositive(q, "q", 1, S::HQ)).ok() ||
      !(s = matchDims(k, "k", "q", {{0, S::B, B}, {3, S::D, D}})).ok() ||
      !(s = requirePositive(k, "k", 1, S::HKV)).ok())
    return s;
  if (HQ % HKV != 0)
    return Status::error("HQ (" + std::to_string(HQ) +
                         ") is not a multiple of HKV (" + std::to_string(HKV) +
                         "): q has shape " + shapeToString(q.shape) +
                         ", k has shape " + shapeToString(k.shape));
  if (!(s = matchDims(v, "v", "k",
                      {{0, S::B, B}, {1, S::HKV, HKV}, {2, S::LK, LK}}))
           .ok() ||
      !(s = matchDims(out, "out", "q",
                      {{0, S::B, B}, {1, S::HQ, HQ}, {2, S::LQ, LQ}}))
           .ok() ||
      !(s = matchDims(out, "out", "v", {{3, S::DV, DV}})).ok())
    return s;

  if (args.lse) {
    if (kernel.sigmoid)
      return Status::error("lse is not defined for sigmoid normalisation (" +
                           kernelLabel(kernel) + " uses sigmoid)");
    if (!(s = checkTensor(*args.lse, "lse", DType::F32, 3, "[B, HQ, LQ]"))
             .ok() ||
        !(s = matchDims(*args.lse, "lse", "q",
                        {{0, S::B, B}, {1, S::HQ, HQ}, {2, S::LQ, LQ}}))
             .ok())
      return s;
  }

  const int64_t sizes[kNumSizes] = {B, HQ, HKV, LQ, LK, D, DV};
  std::vector<PreparedInput> inputs;
  if (!(s = checkInputs(kernel, args, sizes, inputs)).ok())
    return s;

  if (args.tileTrace && !kernel.traced)
    return Status::error("a tile trace was requested, but " +
                         kernelLabel(kernel) + " was not built to record one");
  const int64_t nqt = numQueryTiles(kernel, LQ), nkt = numKeyTiles(kernel, LK);
  int64_t numTasks, traceLen;
  if (__builtin_mul_overflow(B, HQ, &numTasks) ||
      __builtin_mul_overflow(numTasks, nqt, &numTasks))
    return Status::error("the task count B * HQ * ceil(LQ / tileQ) = " +
                         std::to_string(B) + " * " + std::to_string(HQ) +
                         " * " + std::to_string(nqt) + " overflows int64");
  const bool trace = args.tileTrace != nullptr;
  if (trace && __builtin_mul_overflow(numTasks, nkt, &traceLen))
    return Status::error("the tile trace needs " + std::to_string(numTasks) +
                         " * " + std::to_string(nkt) +
                         " entries, which overflows int64");

  // --- 2. Prepare. ---------------------------------------------------------
  // Nothing below fails on the caller's arguments; only allocation can fail.
  if (trace) {
    try {
      args.tileTrace->assign(size_t(traceLen), int8_t(0));
    } catch (const std::bad_alloc &) {
      return Status::error("out of memory for a tile trace of " +
                           std::to_string(traceLen) + " entries");
    } catch (const std::length_error &) {
      return Status::error("out of memory for a tile trace of " +
                           std::to_string(traceLen) + " entries");
    }
  }
  if (numTasks == 0)
    return Status::success(); // LQ == 0: no query rows, nothing to write

  for (size_t j = 0; j < inputs.size(); ++j) {
    PreparedInput &p = inputs[j];
    if (!p.target)
      continue;
    Expected<Tensor> c = convert(p.view, *p.target);
    if (!c.ok())
      return c.status().withContext("input " + quoted(kernel.inputs[j].name));
    p.owned.emplace(std::move(*c));
    p.view = p.owned->view();
  }

  std::vector<attnc_buffer> buffers;
  buffers.reserve(ATTNC_BUF_INPUTS + inputs.size());
  buffers.push_back(describe(q));
  buffers.push_back(describe(k));
  buffers.push_back(describe(v));
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
  for (const PreparedInput &p : inputs)
    buffers.push_back(describe(p.view));

  std::vector<int64_t> meta(sizes, sizes + kNumSizes);
  appendStrides(meta, q);
  appendStrides(meta, k);
  appendStrides(meta, v);
  appendStrides(meta, out);
  if (args.lse)
    appendStrides(meta, *args.lse);
  else
    meta.insert(meta.end(), 3, 0);
  meta.push_back(args.lse ? 1 : 0);
  meta.push_back(trace ? 1 : 0);
  for (const PreparedInput &p : inputs) {
    meta.insert(meta.end(), p.view.shape.begin(), p.view.shape.end());
    appendStrides(meta, p.view);
  }

  // --- 3. Run: the ids pre-pass (over b * HQ + h), then the tasks. --------
  const attnc_buffer *bufs = buffers.data();
  const int64_t *metaPtr = meta.data();
  if (kernel.prepass) {
    std::vector<int64_t> status =
        runTasks(kernel.prepass, bufs, metaPtr, B * HQ, args.threads);
    if (!status.empty())
      return kernelError(kernel, inputs, status.data());
  }
  std::vector<int64_t> status =
      runTasks(kernel.fn, bufs, metaPtr, numTasks, args.threads);
  if (!status.empty())
    return kernelError(kernel, inputs, status.data());
  return Status::success();
}
  // parallelFor's completion orders every chunk's writes before this read.

