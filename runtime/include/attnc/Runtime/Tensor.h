//===- Tensor.h - Strided tensor views and owning tensors -------*- C++ -*-===//
//
// A TensorView describes memory that someone else owns: a base pointer, an
// element type, a shape and per-dimension strides in elements (numpy's
// strides divided by the element size; negative and zero strides are
// allowed). Kernels take views, so a caller can pass a [B, L, H, D] buffer
// as [B, H, L, D] without a copy (viewBHLDFromBLHD). Every view that
// crosses an API boundary is checked by validate() and, where the buffer
// size is known, checkBounds(); both use checked arithmetic, so no shape or
// stride, however hostile, can make the runtime address outside a buffer.
//
// A Tensor owns contiguous (C order) storage and hands out views of it; it
// is what .npy reading and dtype conversion return.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_RUNTIME_TENSOR_H
#define ATTNC_RUNTIME_TENSOR_H

#include "attnc/Runtime/DType.h"
#include "attnc/Runtime/Status.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace attnc::runtime {

/// A non-owning strided view of memory.
struct TensorView {
  void *data = nullptr;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides; // in elements, one per dimension

  /// The number of dimensions.
  int64_t rank() const { return int64_t(shape.size()); }
  /// The number of elements. Precondition: validate() succeeded.
  int64_t numel() const;
  /// The element offset of \p index (one entry per dimension, each in
  /// range). Precondition: validate() succeeded.
  int64_t offsetOf(const std::vector<int64_t> &index) const;
  /// True if the strides are the C-order strides of the shape (dimensions
  /// of size 1 may have any stride, as in numpy).
  bool isContiguous() const;
};

/// Calls fn(flatIndex, elementOffset) for the elements of \p t in C order
/// (an odometer over the strides) while fn returns true; false if fn
/// stopped the walk. Requires a validated view.
template <class Fn> bool visitOffsets(const TensorView &t, Fn fn) {
  const int64_t n = t.numel();
  const size_t rank = t.shape.size();
  std::vector<int64_t> index(rank, 0);
  int64_t offset = 0;
  for (int64_t flat = 0; flat < n; ++flat) {
    if (!fn(flat, offset))
      return false;
    // Bump the last dimension, carrying leftwards.
    for (size_t d = rank; d-- > 0;) {
      if (++index[d] < t.shape[d]) {
        offset += t.strides[d];
        break;
      }
      offset -= t.strides[d] * (t.shape[d] - 1);
      index[d] = 0;
    }
  }
  return true;
}

/// The C-order strides, in elements, of \p shape (a dimension of size 0
/// counts as 1, as in numpy). Defined for every shape: a stride that int64
/// cannot hold, which only a shape checkedNumel refuses has, is INT64_MAX.
std::vector<int64_t> contiguousStrides(const std::vector<int64_t> &shape);

/// The product of \p shape; an error if a dimension is negative, the
/// product overflows int64, or the product of the non-zero dimensions does
/// (so the strides of an empty tensor fit int64 too, as numpy requires).
Expected<int64_t> checkedNumel(const std::vector<int64_t> &shape);

/// The physical memory of this machine in bytes (INT64_MAX if unknown).
int64_t physicalMemoryBytes();

/// An error if \p bytes (negative: more than int64 can count) exceeds the
/// machine's physical memory: checked before an allocation whose size a
/// caller chose, so that the answer is an error, never an abort or the
/// OOM killer. \p what names the allocation in the message.
Status checkAllocationSize(int64_t bytes, std::string_view what);

/// Checks that \p t is well formed: as many strides as dimensions, no
/// negative dimension, no overflow in the element count or the byte extent,
/// and data non-null unless the view is empty. Where \p dtype or \p shape
/// are given, \p t must match them (-1 in \p shape matches any size).
/// Messages start with \p name.
Status validate(const TensorView &t, std::string_view name,
                std::optional<DType> dtype = std::nullopt,
                const std::vector<int64_t> *shape = nullptr);

/// Checks that every element of \p t lies inside [buffer, buffer + bytes).
/// Empty views are always inside. Also validates \p t.
Status checkBounds(const TensorView &t, const void *buffer, size_t bytes);

/// Reinterprets a rank-4 [B, L, H, D] view as [B, H, L, D] by swapping
/// dimensions 1 and 2 and their strides; no data moves.
Expected<TensorView> viewBHLDFromBLHD(const TensorView &blhd);

/// Owning, contiguous (C order) storage with a dtype and a shape.
class Tensor {
public:
  /// An empty float32 tensor of shape [0].
  Tensor() : Tensor(DType::F32, {0}) {}

  /// A zero-filled tensor; an error on a negative dimension, a size that
  /// overflows or exceeds the machine's memory, or a failed allocation.
  static Expected<Tensor> zeros(DType dtype, std::vector<int64_t> shape);

  /// The element type.
  DType dtype() const { return type; }
  /// The shape.
  const std::vector<int64_t> &shape() const { return dims; }
  /// The number of elements.
  int64_t numel() const { return count; }
  /// The size of the data in bytes.
  size_t nbytes() const { return storage.size(); }
  /// The first byte of the data (may be null when empty).
  void *data() { return storage.data(); }
  /// The first byte of the data (may be null when empty).
  const void *data() const { return storage.data(); }
  /// A contiguous view of the whole tensor; valid while the tensor lives
  /// and is not moved from or assigned to.
  TensorView view() const;

  /// Element \p flatIndex (C order) converted to double. Returns NaN if the
  /// index is out of range.
  double getAsDouble(int64_t flatIndex) const;
  /// Stores \p value at \p flatIndex (C order), rounding to nearest even for
  /// float types, truncating toward zero and saturating for ints (NaN
  /// becomes 0), and storing value != 0 for bool. Ignored if the index is
  /// out of range.
  void setFromDouble(int64_t flatIndex, double value);

private:
  Tensor(DType dtype, std::vector<int64_t> shape);

  DType type;
  std::vector<int64_t> dims;
  int64_t count = 0;
  std::vector<std::byte> storage;
};

/// Reads the element at element offset \p offset of \p t as double.
/// Precondition: the offset lies inside the memory the view describes.
double loadAsDouble(const TensorView &t, int64_t offset);
/// Stores \p value at element offset \p offset of \p t, converted as by
/// Tensor::setFromDouble. Same precondition as loadAsDouble.
void storeFromDouble(const TensorView &t, int64_t offset, double value);

/// Copies \p src into a new contiguous tensor of \p dtype: any float type to
/// any float type (rounded once, to nearest even), int32/int64 to
/// int32/int64 (an error if a value does not fit), bool to bool. Other
/// pairs are an error.
Expected<Tensor> convert(const TensorView &src, DType dtype);

/// A contiguous copy of \p src with the same dtype.
Expected<Tensor> makeContiguous(const TensorView &src);

/// Renders a shape as "[2, 3, 4]" for messages.
std::string shapeToString(const std::vector<int64_t> &shape);

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_TENSOR_H
