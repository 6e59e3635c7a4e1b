//===- BenchCommon.h - Shared pieces of attn-demo and attn-bench -*- C++ -*-===//
//
// What the tools that run a compiled kernel on made-up data share: the
// B,HQ,HKV,LQ,LK,D,DV shape flag, random q/k/v and random tensors for a
// spec's declared inputs (as the numerical tests make them), the view of
// those tensors that the SpecInterpreter / ReferenceAttention read (the
// reference library's tensorInputReader, attnc/Reference/TensorInputs.h),
// and small timing helpers.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TOOLS_BENCHCOMMON_H
#define ATTNC_TOOLS_BENCHCOMMON_H

#include "attnc/Reference/SpecInterpreter.h"
#include "attnc/Reference/TensorInputs.h"
#include "attnc/Runtime/CpuDispatch.h"
#include "attnc/Runtime/Status.h"
#include "attnc/Runtime/Tensor.h"

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace attnc::bench {

struct Shape {
  int64_t B = 1, HQ = 1, HKV = 1, LQ = 1, LK = 1, D = 1, DV = 1;
  /// 2 * B * HQ * LQ * LK * (D + DV): the FLOP of the full score matrix.
  double flops() const {
    return 2.0 * double(B) * double(HQ) * double(LQ) * double(LK) *
           double(D + DV);
  }
  std::string str() const; // "B,HQ,HKV,LQ,LK,D,DV"
};

/// Parses a comma-separated list of positive integers; on failure sets
/// `error` to "FLAG TEXT: ..." (expecting `what`, e.g. "B,HQ,HKV,D,DV").
std::optional<std::vector<int64_t>>
parseSizes(const std::string &flag, const std::string &text, size_t count,
           const std::string &what, std::string &error);

/// Parses "B,HQ,HKV,LQ,LK,D,DV" (positive integers, HQ a multiple of HKV).
std::optional<Shape> parseShape(const std::string &text, std::string &error);

/// Random data rounded to the storage type, also kept as double (for the
/// reference and the float32 baselines).
struct Operand {
  runtime::Tensor tensor;
  std::vector<double> values;
};
runtime::Expected<Operand> randomOperand(runtime::DType dtype,
                                         std::vector<int64_t> shape,
                                         std::mt19937 &rng, double lo,
                                         double hi);

using NamedTensors = mlir::attn::NamedTensors;

/// Random tensors for the declared inputs (as the numerical tests make
/// them): an int over LQ or LK holds sorted small ids (several documents),
/// other ints lie in [0, 300), floats in [-1, 1], bools are fair coins.
/// Inputs already present in `given` (by name) are left alone.
runtime::Expected<NamedTensors> randomInputs(const runtime::KernelInfo &info,
                                             const Shape &s, std::mt19937 &rng,
                                             const NamedTensors &given = {});

/// The interpreter's / reference's view of the input tensors (dense, C
/// order): mlir::attn::tensorInputReader. The tensors must outlive the
/// reader.
inline mlir::attn::InputReader inputReader(const NamedTensors &inputs) {
  return mlir::attn::tensorInputReader(inputs);
}

/// The sizes of `s` as the interpreter and the mask schedule take them.
mlir::attn::ProblemSizes problemSizes(const Shape &s);

inline double msSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - start)
      .count();
}

/// The median of `times` (sorted in place); 0 when empty.
double median(std::vector<double> &times);

/// Splits "a,b,c" at commas (empty fields kept).
std::vector<std::string> splitCommas(const std::string &text);

} // namespace attnc::bench

#endif // ATTNC_TOOLS_BENCHCOMMON_H
