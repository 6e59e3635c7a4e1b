//===- SpecReference.h - The float64 reference of a spec's text -*- C++ -*-===//
//
// referenceOf runs the front end and the spec pipeline on the text of one
// attention block and evaluates it with ReferenceAttention on dense BHLD
// q, k, v (as doubles) and named input tensors: what the tests that compare
// a compiled kernel (CPU or CUDA) with the float64 oracle share.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TEST_COMMON_SPECREFERENCE_H
#define ATTNC_TEST_COMMON_SPECREFERENCE_H

#include "attnc/Driver.h"
#include "attnc/Reference/ReferenceAttention.h"
#include "attnc/Reference/TensorInputs.h"

#include "llvm/Support/raw_ostream.h"

#include <optional>
#include <string>
#include <vector>

namespace attnc::test {

/// The float64 out [B, HQ, LQ, DV] and lse [B, HQ, LQ] of the first block
/// of `text` (with `dropout`: a training call's mask of softmax(dropout =
/// p)); returns "" or why there is none (a spec error, prefixed
/// "spec: ", or the reference's own error, e.g. an out-of-range read).
inline std::string referenceOf(const std::string &text,
                               const mlir::attn::ProblemSizes &sizes,
                               const mlir::attn::NamedTensors &inputs,
                               const std::vector<double> &q,
                               const std::vector<double> &k,
                               const std::vector<double> &v,
                               std::vector<double> &out,
                               std::vector<double> &lse,
                               std::optional<mlir::attn::ReferenceProblem::Dropout>
                                   dropout = std::nullopt) {
  std::string errors;
  llvm::raw_string_ostream es(errors);
  Driver driver(es);
  auto module = driver.loadSpecText("reference.attn", text, {});
  if (!module || mlir::failed(driver.runSpecPipeline(*module)))
    return "spec: " + errors;
  auto specs = module->getOps<mlir::attn::SpecOp>();
  if (specs.empty())
    return "spec: no attention block";
  mlir::attn::ReferenceProblem p;
  p.sizes = sizes;
  p.q = q.data(), p.k = k.data(), p.v = v.data();
  p.inputs = mlir::attn::tensorInputReader(inputs);
  p.dropout = dropout;
  return mlir::attn::referenceAttention(*specs.begin(), p, out, lse);
}

} // namespace attnc::test

#endif // ATTNC_TEST_COMMON_SPECREFERENCE_H
