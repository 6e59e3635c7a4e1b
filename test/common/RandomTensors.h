//===- RandomTensors.h - Random operands and inputs for kernel tests -*- C++ -*-===//
//
// Fresh random q/k/v-like operands, rounded to their storage type and kept
// as doubles for the float64 reference, and random spec inputs for a
// kernel's declarations (ids over LQ / LK sorted, so document masks have
// several documents). Shared by the tests that compare compiled kernels
// with the reference.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TEST_COMMON_RANDOMTENSORS_H
#define ATTNC_TEST_COMMON_RANDOMTENSORS_H

#include "attnc/Runtime/CpuDispatch.h"
#include "attnc/Runtime/Tensor.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace attnc::test {

/// The seed of a randomised test: ATTNC_TEST_SEED when set (to replay a
/// failure, whose message prints the seed), else a fresh one, also printed
/// to stderr at once, so that a test that hangs or crashes can be
/// replayed from its log.
inline uint32_t testSeed() {
  if (const char *env = std::getenv("ATTNC_TEST_SEED"))
    return uint32_t(std::strtoul(env, nullptr, 10));
  const uint32_t seed = std::random_device{}();
  std::fprintf(stderr, "fresh seed: ATTNC_TEST_SEED=%u\n", unsigned(seed));
  return seed;
}

struct Shape {
  int64_t B, HQ, HKV, LQ, LK, D, DV;
};

/// A tensor and its elements as the reference sees them (after rounding).
struct Operand {
  runtime::Tensor tensor;
  std::vector<double> values;
};

inline Operand randomOperand(runtime::DType dtype, std::vector<int64_t> shape,
                             std::mt19937 &rng, double lo, double hi) {
  Operand o{runtime::Tensor::zeros(dtype, shape).value(), {}};
  std::uniform_real_distribution<double> u(lo, hi);
  o.values.resize(o.tensor.numel());
  for (int64_t i = 0; i < o.tensor.numel(); ++i) {
    o.tensor.setFromDouble(i, u(rng));
    o.values[i] = o.tensor.getAsDouble(i);
  }
  return o;
}

inline int64_t sizeOf(const runtime::InputDim &d, const Shape &s) {
  if (!d.isSize)
    return d.literal;
  const int64_t sizes[] = {s.B, s.HQ, s.HKV, s.LQ, s.LK, s.D, s.DV};
  return sizes[static_cast<int>(d.size)];
}

/// Inputs for a kernel: ids over LQ / LK are sorted small integers, other
/// ints in [0, 300), floats in [-1, 1], bools random.
inline std::vector<std::pair<std::string, runtime::Tensor>>
randomInputs(const runtime::KernelInfo &info, const Shape &s,
             std::mt19937 &rng) {
  std::vector<std::pair<std::string, runtime::Tensor>> out;
  for (const runtime::InputDecl &decl : info.inputs) {
    std::vector<int64_t> shape;
    for (const auto &d : decl.dims)
      shape.push_back(sizeOf(d, s));
    runtime::Tensor t = runtime::Tensor::zeros(decl.dtype, shape).value();
    bool ids = shape.size() == 1 && decl.dims[0].isSize &&
               (decl.dims[0].size == runtime::SizeName::LQ ||
                decl.dims[0].size == runtime::SizeName::LK);
    std::uniform_int_distribution<int> small(0, 3), big(0, 299), coin(0, 1);
    std::uniform_real_distribution<double> u(-1, 1);
    std::vector<double> vals(t.numel());
    for (double &v : vals)
      v = decl.dtype == runtime::DType::F32    ? u(rng)
          : decl.dtype == runtime::DType::Bool ? coin(rng)
          : ids                                ? small(rng)
                                               : big(rng);
    if (ids)
      std::sort(vals.begin(), vals.end());
    for (int64_t i = 0; i < t.numel(); ++i)
      t.setFromDouble(i, vals[i]);
    out.push_back({decl.name, std::move(t)});
  }
  return out;
}

/// ||got - want|| / ||want|| (0 when both are 0; infinite when only `want`
/// is 0 or `got` has a NaN).
inline double relativeError(const runtime::Tensor &got,
                            const std::vector<double> &want) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    double g = got.getAsDouble(i);
    if (g != g)
      return INFINITY;
    num += (g - want[i]) * (g - want[i]);
    den += want[i] * want[i];
  }
  if (den == 0)
    return num == 0 ? 0 : INFINITY;
  return std::sqrt(num / den);
}

/// \p d rounded to storage type \p t, as a kernel writing it would store it.
inline double roundToStorage(runtime::DType t, double d) {
  switch (t) {
  case runtime::DType::F16:
    return runtime::halfToFloat(runtime::doubleToHalf(d));
  case runtime::DType::BF16:
    return runtime::bfloat16ToFloat(runtime::doubleToBFloat16(d));
  default:
    return runtime::doubleToFloat(d);
  }
}

/// The error of a kernel's output beyond what storing the exact answer in
/// the output's type costs: (||got - want|| - 2 ||round(want) - want||) /
/// ||want||, at least 0 (0 when both are 0; infinite when only `want` is 0
/// or `got` has a NaN). Rounding is the floor no kernel can beat, and twice
/// it is what a kernel whose f32 result lands one step off before rounding
/// costs. It matters where outputs fall in f16's subnormals, whose steps
/// are far coarser than 2^-11 relative: sigmoid normalisation with a bias
/// of -10 gives outputs near 1e-5, where one f16 step is 0.6%.
inline double outputError(const runtime::Tensor &got,
                          const std::vector<double> &want) {
  double num = 0, den = 0, floor = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    double g = got.getAsDouble(i), w = want[size_t(i)];
    if (g != g)
      return INFINITY;
    double r = roundToStorage(got.dtype(), w) - w;
    num += (g - w) * (g - w);
    den += w * w;
    floor += r * r;
  }
  if (den == 0)
    return num == 0 ? 0 : INFINITY;
  return std::max(0.0, std::sqrt(num) - 2 * std::sqrt(floor)) / std::sqrt(den);
}

/// The error of a gradient that sums cancelling terms (dq, dk, input
/// gradients): ||got - want|| relative to ||want||, or to 1% of the size of
/// its terms (ReferenceGradients' magnitudes) where they cancel to less: a
/// sum that cancels to 0 cannot be computed to a relative 1e-4 in float32,
/// by this kernel or any other.
inline double gradientError(const runtime::Tensor &got,
                            const std::vector<double> &want,
                            const std::vector<double> &magnitude) {
  double num = 0, den = 0, mag = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    double g = got.getAsDouble(i);
    if (g != g)
      return INFINITY;
    num += (g - want[size_t(i)]) * (g - want[size_t(i)]);
    den += want[size_t(i)] * want[size_t(i)];
    mag += magnitude[size_t(i)] * magnitude[size_t(i)];
  }
  double scale = std::max(std::sqrt(den), 1e-2 * std::sqrt(mag));
  return scale == 0 ? (num == 0 ? 0 : INFINITY) : std::sqrt(num) / scale;
}

} // namespace attnc::test

#endif // ATTNC_TEST_COMMON_RANDOMTENSORS_H
