//===- TensorInputs.cpp - Runtime tensors as the interpreter's inputs -----===//
//
// readTensorElement and tensorInputReader (TensorInputs.h).
//
//===----------------------------------------------------------------------===//
#include "attnc/Reference/TensorInputs.h"

namespace mlir::attn {

std::optional<Scalar> readTensorElement(const attnc::runtime::Tensor &t,
                                        llvm::ArrayRef<int64_t> indices) {
  if (indices.size() != t.shape().size())
    return std::nullopt;
  int64_t flat = 0;
  for (size_t d = 0; d < indices.size(); ++d) {
    if (indices[d] < 0 || indices[d] >= t.shape()[d])
      return std::nullopt;
    flat = flat * t.shape()[d] + indices[d];
  }
  double x = t.getAsDouble(flat);
  if (t.dtype() == attnc::runtime::DType::F32)
    return Scalar::ofFloat(x);
  if (t.dtype() == attnc::runtime::DType::Bool)
    return Scalar::ofBool(x != 0);
  return Scalar::ofInt(int64_t(x));
}

InputReader tensorInputReader(const NamedTensors &inputs) {
  return [&inputs](llvm::StringRef name,
                   llvm::ArrayRef<int64_t> indices) -> std::optional<Scalar> {
    for (const auto &[n, t] : inputs)
      if (n == name)
        return readTensorElement(t, indices);
    return std::nullopt;
  };
}

} // namespace mlir::attn
