//===- Tensor.cpp - Strided tensor views and owning tensors ---------------===//
//
// Overflow is checked with the compiler's overflow builtins on int64 (GCC and
// Clang, the two compilers this project builds with). A view whose extent
// fits int64 bytes can then be walked with unchecked arithmetic: every
// offset of an in-range index is bounded by that extent.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/Tensor.h"

#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>

#include <unistd.h>

using namespace attnc::runtime;

namespace {
bool mulOverflows(int64_t a, int64_t b, int64_t &out) {
  return __builtin_mul_overflow(a, b, &out);
}
bool addOverflows(int64_t a, int64_t b, int64_t &out) {
  return __builtin_add_overflow(a, b, &out);
}

/// The lowest and highest element offsets a view reaches, relative to its
/// data pointer; false on overflow. Requires a non-empty view.
bool offsetRange(const TensorView &t, int64_t &lo, int64_t &hi) {
  lo = hi = 0;
  for (size_t i = 0; i < t.shape.size(); ++i) {
    int64_t reach;
    if (mulOverflows(t.strides[i], t.shape[i] - 1, reach))
      return false;
    if (addOverflows(reach < 0 ? lo : hi, reach, reach < 0 ? lo : hi))
      return false;
  }
  return true;
}

/// Calls fn(flatIndex, elementOffset) for every element of \p t in C order.
/// Requires a validated view.
template <class Fn> void forEachOffset(const TensorView &t, Fn fn) {
  visitOffsets(t, [&](int64_t flat, int64_t offset) {
    fn(flat, offset);
    return true;
  });
}

char *elementAddress(const TensorView &t, int64_t offset) {
  return static_cast<char *>(t.data) + offset * int64_t(dtypeSize(t.dtype));
}

template <class T> T loadRaw(const TensorView &t, int64_t offset) {
  T v;
  std::memcpy(&v, elementAddress(t, offset), sizeof(T));
  return v;
}
template <class T> void storeRaw(const TensorView &t, int64_t offset, T v) {
  std::memcpy(elementAddress(t, offset), &v, sizeof(T));
}

/// Truncates toward zero and saturates to [loInt, hiInt]; NaN becomes 0.
/// The bounds are -2^k and 2^k, exact in double, so the comparisons are
/// exact and the final cast is always in range (a C++ cast of an
/// out-of-range double is undefined behaviour).
int64_t saturatingToInt(double v, double lo, double hiExclusive, int64_t loInt,
                        int64_t hiInt) {
  if (std::isnan(v))
    return 0;
  if (v >= hiExclusive)
    return hiInt;
  if (v <= lo)
    return loInt;
  return int64_t(v);
}
} // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

int64_t TensorView::offsetOf(const std::vector<int64_t> &index) const {
  assert(index.size() == shape.size() && "index rank mismatch");
  int64_t off = 0;
  for (size_t i = 0; i < index.size() && i < strides.size(); ++i)
    off += index[i] * strides[i];
  return off;
}

bool TensorView::isContiguous() const {
  if (strides.size() != shape.size())
    return false;
  for (int64_t d : shape)
    if (d == 0)
      return true;
  int64_t expected = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] != 1 && strides[i] != expected)
      return false;
    expected *= shape[i];
  }
  return true;
}

std::vector<int64_t>
attnc::runtime::contiguousStrides(const std::vector<int64_t> &shape) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  std::vector<int64_t> strides(shape.size(), 1);
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    if (s != kMax && mulOverflows(s, shape[i] > 0 ? shape[i] : 1, s))
      s = kMax; // only shapes checkedNumel refuses get here
  }
  return strides;
}

std::string attnc::runtime::shapeToString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Expected<int64_t>
attnc::runtime::checkedNumel(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    if (d < 0)
      return Status::error("negative dimension in shape " +
                           shapeToString(shape));
  int64_t nonZero = 1; // the largest C-order stride of an empty shape
  for (int64_t d : shape)
    if (mulOverflows(n, d, n) || (d > 0 && mulOverflows(nonZero, d, nonZero)))
      return Status::error("the element count of shape " +
                           shapeToString(shape) + " overflows int64");
  return n;
}

int64_t attnc::runtime::physicalMemoryBytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long pageSize = ::sysconf(_SC_PAGESIZE);
  int64_t bytes;
  if (pages <= 0 || pageSize <= 0 ||
      mulOverflows(int64_t(pages), int64_t(pageSize), bytes))
    return std::numeric_limits<int64_t>::max();
  return bytes;
}

Status attnc::runtime::checkAllocationSize(int64_t bytes,
                                           std::string_view what) {
  if (bytes < 0)
    return Status::error("out of memory: " + std::string(what) +
                         " needs more bytes than int64 can count");
  const int64_t have = physicalMemoryBytes();
  if (bytes <= have)
    return Status::success();
  return Status::error("out of memory: " + std::string(what) + " needs " +
                       std::to_string(bytes) + " bytes, more than this "
                       "machine's " + std::to_string(have) + " bytes of memory");
}

Status attnc::runtime::validate(const TensorView &t, std::string_view name,
                                std::optional<DType> dtype,
                                const std::vector<int64_t> *shape) {
  std::string who(name);
  size_t es = dtypeSize(t.dtype);
  if (es == 0)
    return Status::error(who + ": invalid dtype");
  if (t.strides.size() != t.shape.size())
    return Status::error(who + ": " + std::to_string(t.strides.size()) +
                         " strides for a rank-" +
                         std::to_string(t.shape.size()) + " shape");
  Expected<int64_t> n = checkedNumel(t.shape);
  if (!n.ok())
    return n.status().withContext(who);
  if (*n > 0) {
    int64_t lo, hi, bytes;
    if (!offsetRange(t, lo, hi) || __builtin_sub_overflow(hi, lo, &bytes) ||
        addOverflows(bytes, 1, bytes) ||
        mulOverflows(bytes, int64_t(es), bytes) ||
        mulOverflows(lo, int64_t(es), lo) || mulOverflows(hi, int64_t(es), hi))
      return Status::error(who + ": shape " + shapeToString(t.shape) +
                           " with strides " + shapeToString(t.strides) +
                           " spans more bytes than int64 can count");
    if (!t.data)
      return Status::error(who + ": null data for a non-empty tensor");
  }
  if (dtype && *dtype != t.dtype)
    return Status::error(who + ": expected dtype " + dtypeName(*dtype) +
                         ", got " + dtypeName(t.dtype));
  if (shape) {
    bool match = shape->size() == t.shape.size();
    for (size_t i = 0; match && i < shape->size(); ++i)
      match = (*shape)[i] == -1 || (*shape)[i] == t.shape[i];
    if (!match)
      return Status::error(who + ": expected shape " + shapeToString(*shape) +
                           ", got " + shapeToString(t.shape));
  }
  return Status::success();
}

Status attnc::runtime::checkBounds(const TensorView &t, const void *buffer,
                                   size_t bytes) {
  Status s = validate(t, "tensor");
  if (!s.ok())
    return s;
  if (t.numel() == 0)
    return Status::success();
  int64_t lo, hi;
  // validate() proved that these cannot overflow.
  offsetRange(t, lo, hi);
  const __int128 es = __int128(dtypeSize(t.dtype));
  const __int128 rel = __int128(reinterpret_cast<uintptr_t>(t.data)) -
                       __int128(reinterpret_cast<uintptr_t>(buffer));
  const __int128 first = rel + __int128(lo) * es;
  const __int128 end = rel + (__int128(hi) + 1) * es;
  if (first < 0 || end > __int128(bytes))
    return Status::error("tensor: shape " + shapeToString(t.shape) +
                         " with strides " + shapeToString(t.strides) +
                         " reaches outside its buffer of " +
                         std::to_string(bytes) + " bytes (byte range [" +
                         std::to_string(int64_t(first)) + ", " +
                         std::to_string(int64_t(end)) + "))");
  return Status::success();
}

Expected<TensorView> attnc::runtime::viewBHLDFromBLHD(const TensorView &blhd) {
  Status s = validate(blhd, "BLHD tensor");
  if (!s.ok())
    return s;
  if (blhd.rank() != 4)
    return Status::error("BLHD tensor: expected rank 4 [B, L, H, D], got " +
                         shapeToString(blhd.shape));
  TensorView v = blhd;
  std::swap(v.shape[1], v.shape[2]);
  std::swap(v.strides[1], v.strides[2]);
  return v;
}

Tensor::Tensor(DType dtype, std::vector<int64_t> shape)
    : type(dtype), dims(std::move(shape)) {
  count = checkedNumel(dims).value();
  storage.resize(size_t(count) * dtypeSize(type));
}

Expected<Tensor> Tensor::zeros(DType dtype, std::vector<int64_t> shape) {
  Expected<int64_t> n = checkedNumel(shape);
  if (!n.ok())
    return n.status();
  int64_t bytes;
  size_t es = dtypeSize(dtype);
  if (es == 0)
    return Status::error("invalid dtype");
  if (mulOverflows(*n, int64_t(es), bytes))
    return Status::error("a " + std::string(dtypeName(dtype)) +
                         " tensor of shape " + shapeToString(shape) +
                         " needs more bytes than int64 can count");
  if (Status s = checkAllocationSize(
          bytes, "a " + std::string(dtypeName(dtype)) + " tensor of shape " +
                     shapeToString(shape));
      !s.ok())
    return s;
  try {
    return Tensor(dtype, std::move(shape));
  } catch (const std::bad_alloc &) {
  } catch (const std::length_error &) {
  }
  return Status::error("out of memory allocating " + std::to_string(bytes) +
                       " bytes");
}

TensorView Tensor::view() const {
  return TensorView{const_cast<std::byte *>(storage.data()), type, dims,
                    contiguousStrides(dims)};
}

double attnc::runtime::loadAsDouble(const TensorView &t, int64_t offset) {
  switch (t.dtype) {
  case DType::F32:
    return loadRaw<float>(t, offset);
  case DType::F16:
    return halfToFloat(loadRaw<uint16_t>(t, offset));
  case DType::BF16:
    return bfloat16ToFloat(loadRaw<uint16_t>(t, offset));
  case DType::F64:
    return loadRaw<double>(t, offset);
  case DType::I32:
    return loadRaw<int32_t>(t, offset);
  case DType::I64:
    return double(loadRaw<int64_t>(t, offset));
  case DType::Bool:
    return loadRaw<uint8_t>(t, offset) != 0 ? 1.0 : 0.0;
  }
  return std::numeric_limits<double>::quiet_NaN();
}

void attnc::runtime::storeFromDouble(const TensorView &t, int64_t offset,
                                     double v) {
  switch (t.dtype) {
  case DType::F32:
    return storeRaw<float>(t, offset, doubleToFloat(v));
  case DType::F16:
    return storeRaw<uint16_t>(t, offset, doubleToHalf(v));
  case DType::BF16:
    return storeRaw<uint16_t>(t, offset, doubleToBFloat16(v));
  case DType::F64:
    return storeRaw<double>(t, offset, v);
  case DType::I32:
    return storeRaw<int32_t>(
        t, offset,
        int32_t(saturatingToInt(v, -2147483648.0, 2147483648.0,
                                std::numeric_limits<int32_t>::min(),
                                std::numeric_limits<int32_t>::max())));
  case DType::I64:
    return storeRaw<int64_t>(
        t, offset,
        saturatingToInt(v, -9223372036854775808.0, 9223372036854775808.0,
                        std::numeric_limits<int64_t>::min(),
                        std::numeric_limits<int64_t>::max()));
  case DType::Bool:
    return storeRaw<uint8_t>(t, offset, v != 0 ? 1 : 0);
  }
}

double Tensor::getAsDouble(int64_t flatIndex) const {
  if (flatIndex < 0 || flatIndex >= count)
    return std::numeric_limits<double>::quiet_NaN();
  return loadAsDouble(view(), flatIndex);
}

void Tensor::setFromDouble(int64_t flatIndex, double value) {
  if (flatIndex < 0 || flatIndex >= count)
    return;
  storeFromDouble(view(), flatIndex, value);
}

Expected<Tensor> attnc::runtime::convert(const TensorView &src, DType dtype) {
  Status s = validate(src, "source tensor");
  if (!s.ok())
    return s;
  const DType from = src.dtype;
  const bool floats = isFloatDType(from) && isFloatDType(dtype);
  const bool ints = isIntDType(from) && isIntDType(dtype);
  if (!floats && !ints && from != dtype)
    return Status::error(std::string("cannot convert ") + dtypeName(from) +
                         " to " + dtypeName(dtype));
  Expected<Tensor> out = Tensor::zeros(dtype, src.shape);
  if (!out.ok())
    return out;
  const TensorView dst = out->view();
  if (from == dtype && from != DType::Bool) {
    // Same type: copy bytes, so that even NaN payloads survive unchanged.
    if (src.isContiguous()) {
      if (out->nbytes())
        std::memcpy(dst.data, src.data, out->nbytes());
      return out;
    }
    const size_t es = dtypeSize(dtype);
    forEachOffset(src, [&](int64_t flat, int64_t off) {
      std::memcpy(elementAddress(dst, flat), elementAddress(src, off), es);
    });
    return out;
  }
  if (ints) {
    // Through int64, not double: int64 values above 2^53 must survive.
    Status err;
    forEachOffset(src, [&](int64_t flat, int64_t off) {
      int64_t v = from == DType::I32 ? loadRaw<int32_t>(src, off)
                                     : loadRaw<int64_t>(src, off);
      if (dtype == DType::I64)
        return storeRaw<int64_t>(dst, flat, v);
      if (v < std::numeric_limits<int32_t>::min() ||
          v > std::numeric_limits<int32_t>::max()) {
        if (err.ok())
          err = Status::error("element " + std::to_string(flat) + " (" +
                              std::to_string(v) + ") does not fit int32");
        return;
      }
      storeRaw<int32_t>(dst, flat, int32_t(v));
    });
    if (!err.ok())
      return err;
    return out;
  }
  // Every source float is exact in double, so going through double rounds
  // exactly once, in storeFromDouble. Bool copies normalise to 0/1.
  forEachOffset(src, [&](int64_t flat, int64_t off) {
    storeFromDouble(dst, flat, loadAsDouble(src, off));
  });
  return out;
}

Expected<Tensor> attnc::runtime::makeContiguous(const TensorView &src) {
  return convert(src, src.dtype);
}
