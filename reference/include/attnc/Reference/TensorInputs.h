//===- TensorInputs.h - Tensors as the interpreter's inputs -----*- C++ -*-===//
//
// The view of named runtime tensors (dense, C order, as readNpy and
// Tensor::zeros make them) that the SpecInterpreter and ReferenceAttention
// read a spec's inputs through. attn-bench, attn-demo, attnc show and the
// tests that compare kernels with the float64 reference share it.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_REFERENCE_TENSORINPUTS_H
#define ATTNC_REFERENCE_TENSORINPUTS_H

#include "attnc/Reference/SpecInterpreter.h"
#include "attnc/Runtime/Tensor.h"

#include <string>
#include <utility>
#include <vector>

namespace mlir::attn {

using NamedTensors = std::vector<std::pair<std::string, attnc::runtime::Tensor>>;

/// Element `indices` of `t` as a Scalar of the language (F32 -> Float,
/// Bool -> Bool, any other dtype -> Int); std::nullopt when the number of
/// indices is not t's rank or an index is out of range.
std::optional<Scalar> readTensorElement(const attnc::runtime::Tensor &t,
                                        llvm::ArrayRef<int64_t> indices);

/// Reads input `name` from the first tensor of that name in `inputs`
/// (std::nullopt for an unknown name or an index out of range). The
/// tensors must outlive the reader.
InputReader tensorInputReader(const NamedTensors &inputs);

} // namespace mlir::attn

#endif // ATTNC_REFERENCE_TENSORINPUTS_H
