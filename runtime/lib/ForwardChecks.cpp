//===- ForwardChecks.cpp - The argument checks of every forward call ------===//
//
// What forwardCpu (CpuDispatch.cpp) and forwardCuda (cuda/CudaForward.cpp)
// check before they touch any memory the caller owns, and how both turn a
// kernel's status words into an error: one implementation, so that the
// same mistake gets the same message on every target.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/ForwardChecks.h"

#include "attnc/Runtime/KernelABI.h"

#include <algorithm>
#include <limits>
#include <cstdint>

using namespace attnc::runtime;

namespace {
constexpr const char *kSizeNames[] = {"B", "HQ", "HKV", "LQ", "LK", "D", "DV"};
constexpr int kNumSizes = 7;

std::string quoted(const std::string &name) { return "'" + name + "'"; }

/// "(declared inputs: a, b)" or "(the kernel declares no inputs)".
std::string declaredList(const Signature &k) {
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

/// Requires head dim \p size, dimension \p dim of \p t, to lie in the
/// supported range.
Status requireHeadDim(const TensorView &t, const char *name, int dim,
                      SizeName size) {
  const int64_t n = t.shape[dim];
  if (n >= kMinHeadDim && n <= kMaxHeadDim)
    return Status::success();
  return Status::error(
      std::string(name) + ": " + kSizeNames[int(size)] + " = " +
      std::to_string(n) + " (dimension " + std::to_string(dim) + " of shape " +
      shapeToString(t.shape) + ") is outside the supported head dims " +
      std::to_string(kMinHeadDim) + ".." + std::to_string(kMaxHeadDim));
}

/// The bytes [lo, hi) a non-empty validated view spans.
struct ByteRange {
  std::string name;
  __int128 lo = 0, hi = 0;
};

std::optional<ByteRange> byteRange(const TensorView &t, std::string name) {
  if (t.numel() == 0)
    return std::nullopt; // no memory
  // validate() proved that the reach and the byte offsets fit int64.
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

Status attnc::runtime::checkNoInternalOverlap(const TensorView &t,
                                              const char *name) {
  if (t.numel() == 0)
    return Status::success();
  std::vector<std::pair<int64_t, int64_t>> dims; // |stride|, extent
  for (size_t d = 0; d < t.shape.size(); ++d) {
    if (t.shape[d] <= 1)
      continue;
    if (t.strides[d] == 0)
      return Status::error(
          std::string(name) + ": dimension " + std::to_string(d) +
          " has extent " + std::to_string(t.shape[d]) +
          " and stride 0, so its elements would share memory (an output "
          "must not overlap itself)");
    // validate() bounds |stride| * (extent - 1), so the negation is safe.
    dims.push_back({t.strides[d] < 0 ? -t.strides[d] : t.strides[d],
                    t.shape[d]});
  }
  std::sort(dims.begin(), dims.end());
  int64_t reach = 0; // of the dimensions with smaller strides
  for (const auto &[stride, extent] : dims) {
    if (stride <= reach)
      return Status::error(
          std::string(name) + ": shape " + shapeToString(t.shape) +
          " with strides " + shapeToString(t.strides) +
          " may place two elements at the same address (an output must not "
          "overlap itself: sorted by size, each stride must exceed the reach "
          "of the smaller ones)");
    reach += stride * (extent - 1);
  }
  return Status::success();
}

/// Requires the outputs (out, lse) not to share a byte with each other or
/// with any input of the call (a byte-range test).
Status attnc::runtime::checkOutputsApart(const ForwardTensors &call) {
  std::vector<ByteRange> outputs, all;
  auto add = [&](const TensorView &t, const std::string &name, bool output) {
    if (std::optional<ByteRange> r = byteRange(t, name)) {
      if (output)
        outputs.push_back(*r);
      all.push_back(*r);
    }
  };
  add(call.out, "out", true);
  if (call.lse)
    add(*call.lse, "lse", true);
  add(call.q, "q", false);
  add(call.k, "k", false);
  add(call.v, "v", false);
  for (const auto &[name, view] : call.inputs)
    add(view, "input " + quoted(name), false);
  for (size_t i = 0; i < outputs.size(); ++i)
    for (size_t j = i + 1; j < all.size(); ++j) {
      const ByteRange &o = outputs[i], &x = all[j];
      if (o.lo < x.hi && x.lo < o.hi)
        return Status::error(
            o.name + " overlaps " + x.name +
            " in memory: an output must not share memory with an input or "
            "with the other output");
    }
  return Status::success();
}

namespace {

/// True if some byte of a non-empty bool view is neither 0 nor 1. Requires
/// a validated view.
bool hasNonCanonicalBool(const TensorView &t) {
  const unsigned char *base = static_cast<const unsigned char *>(t.data);
  return !visitOffsets(t, [&](int64_t, int64_t offset) { return base[offset] <= 1; });
}

/// Resolves the totals of \p w (-1: the call's length) and checks that the
/// call's rows and keys lie inside the sequences.
Status checkWindow(SequenceWindow &w, int64_t LQ, int64_t LK) {
  struct Side {
    int64_t &offset, &total;
    int64_t length;
    const char *what, *offsetName, *totalName, *len;
  } sides[] = {{w.qOffset, w.totalLQ, LQ, "query", "qOffset", "totalLQ", "LQ"},
               {w.kvOffset, w.totalLK, LK, "key", "kvOffset", "totalLK", "LK"}};
  for (Side &s : sides) {
    const bool fits = s.offset >= 0 &&
                      s.offset <= std::numeric_limits<int64_t>::max() - s.length;
    if (fits && s.total == -1)
      s.total = s.offset + s.length;
    if (!fits || s.total < s.offset + s.length)
      return Status::error(
          std::string("sequence window: the call's ") + s.what + " positions " +
          s.offsetName + " = " + std::to_string(s.offset) + " .. " +
          s.offsetName + " + " + s.len + " - 1 (" + s.len + " = " +
          std::to_string(s.length) + ") must lie in [0, " + s.totalName +
          " = " + std::to_string(s.total) + ")");
  }
  return Status::success();
}

/// Matches the given inputs to the declarations and checks each one;
/// fills \p prepared in declaration order.
Status checkInputs(const Signature &k,
                   const std::vector<std::pair<std::string, TensorView>> &given,
                   const int64_t (&sizes)[kNumSizes],
                   std::vector<CheckedInput> &prepared) {
  const size_t n = k.inputs.size();
  std::vector<int64_t> givenFor(n, -1);
  for (size_t i = 0; i < given.size(); ++i) {
    const std::string &name = given[i].first;
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

  prepared.assign(n, CheckedInput());
  for (size_t j = 0; j < n; ++j) {
    const InputDecl &decl = k.inputs[j];
    const TensorView &t = given[size_t(givenFor[j])].second;
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
    CheckedInput &p = prepared[j];
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
} // namespace

std::string attnc::runtime::kernelLabel(const std::string &name) {
  return name.empty() ? "kernel" : "kernel " + quoted(name);
}

const char *attnc::runtime::sizeName(SizeName s) { return kSizeNames[int(s)]; }

Status attnc::runtime::checkSignature(const Signature &k) {
  const std::string who = kernelLabel(k.name);
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

Status attnc::runtime::checkForwardCall(const Signature &sig,
                                        const ForwardTensors &call,
                                        CheckedCall &result) {
  Status s = checkSignature(sig);
  if (!s.ok())
    return s;
  const DType st = sig.storage;
  if (!(s = checkTensor(call.q, "q", st, 4, "[B, HQ, LQ, D]")).ok() ||
      !(s = checkTensor(call.k, "k", st, 4, "[B, HKV, LK, D]")).ok() ||
      !(s = checkTensor(call.v, "v", st, 4, "[B, HKV, LK, DV]")).ok() ||
      !(s = checkTensor(call.out, "out", st, 4, "[B, HQ, LQ, DV]")).ok())
    return s;

  const TensorView &q = call.q, &k = call.k, &v = call.v, &out = call.out;
  const int64_t B = q.shape[0], HQ = q.shape[1], LQ = q.shape[2],
                D = q.shape[3];
  const int64_t HKV = k.shape[1], LK = k.shape[2], DV = v.shape[3];
  using S = SizeName;
  if (!(s = matchDims(k, "k", "q", {{0, S::B, B}, {3, S::D, D}})).ok() ||
      !(s = requireHeadDim(q, "q", 3, S::D)).ok() ||
      !(s = requireHeadDim(v, "v", 3, S::DV)).ok())
    return s;
  // HKV = 0 only with HQ = 0 (an empty problem); then 0 % 0 is not asked.
  if (HKV == 0 ? HQ != 0 : HQ % HKV != 0)
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

  if (call.lse) {
    if (sig.sigmoid)
      return Status::error("lse is not defined for sigmoid normalisation (" +
                           kernelLabel(sig.name) + " uses sigmoid)");
    if (!(s = checkTensor(*call.lse, "lse", DType::F32, 3, "[B, HQ, LQ]"))
             .ok() ||
        !(s = matchDims(*call.lse, "lse", "q",
                        {{0, S::B, B}, {1, S::HQ, HQ}, {2, S::LQ, LQ}}))
             .ok())
      return s;
  }

  SequenceWindow window = call.window;
  if (!(s = checkWindow(window, LQ, LK)).ok())
    return s;
  const int64_t sizes[kNumSizes] = {B, HQ, HKV, LQ, LK, D, DV};
  // Input dims named LQ or LK are the sequences' lengths.
  int64_t spec[kNumSizes] = {B, HQ, HKV, window.totalLQ, window.totalLK, D, DV};
  if (!(s = checkInputs(sig, call.inputs, spec, result.inputs)).ok() ||
      !(s = checkNoInternalOverlap(out, "out")).ok() ||
      (call.lse && !(s = checkNoInternalOverlap(*call.lse, "lse")).ok()) ||
      !(s = checkOutputsApart(call)).ok())
    return s;
  std::copy(sizes, sizes + kNumSizes, result.sizes);
  result.window = window;
  return Status::success();
}

Status attnc::runtime::kernelStatusError(const Signature &k,
                                         const std::vector<CheckedInput> &inputs,
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
    return Status::error(kernelLabel(k.name) + ": integer division or modulo by "
                         "zero in the spec's expressions");
  if (code == ATTNC_STATUS_SHIFT_OUT_OF_RANGE)
    return Status::error(kernelLabel(k.name) + ": a shift ('<<' or '>>') in "
                         "the spec's expressions by " +
                         std::to_string(status[1]) + ", outside [0, 63]");
  if (code == ATTNC_STATUS_ARENA_TOO_SMALL)
    return Status::error(kernelLabel(k.name) + ": the scratch arena has " +
                         std::to_string(status[2]) + " bytes, the call needs " +
                         std::to_string(status[1]));
  return Status::error("kernel error code " + std::to_string(code));
}


Status attnc::runtime::checkDropoutSeed(const std::string &kernel, bool hasDropout,
                                        const std::optional<DropoutSeed> &seed) {
  if (!seed)
    return Status::success();
  if (!hasDropout)
    return Status::error("a dropout seed was given, but " + kernelLabel(kernel) +
                         " has no softmax(dropout = ...)");
  if (seed->offset > 0xffffffffull)
    return Status::error("the dropout offset " + std::to_string(seed->offset) +
                         " does not fit 32 bits (it is Philox's counter word 3)");
  return Status::success();
}
