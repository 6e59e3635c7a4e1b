//===- SequenceInputs.h - One sequence's share of a call's inputs -*- C++ -*-===//
//
// The varlen and paged-cache tests compare each sequence with the float64
// reference of that sequence alone; its inputs are the call's with every
// dimension the spec declares B cut to the sequence's entry. Also the view
// of a batch's offsets.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TEST_COMMON_SEQUENCEINPUTS_H
#define ATTNC_TEST_COMMON_SEQUENCEINPUTS_H

#include "attnc/Compiler.h"

#include <string>
#include <utility>
#include <vector>

namespace attnc::test {

/// The inputs of sequence \p b: dims declared B sliced to entry b.
inline std::vector<std::pair<std::string, runtime::Tensor>>
sequenceInputs(const Kernel &kernel,
               const std::vector<std::pair<std::string, runtime::Tensor>> &inputs,
               int64_t b) {
  std::vector<std::pair<std::string, runtime::Tensor>> r;
  for (const auto &[name, t] : inputs) {
    const runtime::InputDecl *decl = nullptr;
    for (const auto &d : kernel.info().inputs)
      if (d.name == name)
        decl = &d;
    runtime::TensorView v = t.view();
    for (size_t dim = 0; dim < decl->dims.size(); ++dim)
      if (decl->dims[dim].isSize && decl->dims[dim].size == runtime::SizeName::B) {
        v.data = static_cast<char *>(v.data) +
                 b * v.strides[dim] * int64_t(runtime::dtypeSize(v.dtype));
        v.shape[dim] = 1;
      }
    // A contiguous copy of the slice.
    runtime::Tensor slice = runtime::convert(v, v.dtype).value();
    r.push_back({name, std::move(slice)});
  }
  return r;
}

/// The int32 offsets \p v (cu_seqlens) as a vector view, for a layout.
inline runtime::TensorView offsetsView(std::vector<int32_t> &v) {
  runtime::TensorView t;
  t.data = v.data();
  t.dtype = runtime::DType::I32;
  t.shape = {int64_t(v.size())};
  t.strides = {1};
  return t;
}

} // namespace attnc::test

#endif // ATTNC_TEST_COMMON_SEQUENCEINPUTS_H
