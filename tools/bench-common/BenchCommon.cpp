//===- BenchCommon.cpp - Shared pieces of attn-demo and attn-bench --------===//
//
// See BenchCommon.h: shape parsing, random operands and inputs, timing
// helpers (the input reader is the reference library's, TensorInputs.h).
//
//===----------------------------------------------------------------------===//
#include "BenchCommon.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

namespace attnc::bench {

using runtime::DType;
using runtime::Expected;
using runtime::Tensor;

std::string Shape::str() const {
  std::string out;
  for (int64_t x : {B, HQ, HKV, LQ, LK, D, DV})
    out += (out.empty() ? "" : ",") + std::to_string(x);
  return out;
}

std::vector<std::string> splitCommas(const std::string &text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = std::min(text.find(',', pos), text.size());
    out.push_back(text.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

std::optional<std::vector<int64_t>>
parseSizes(const std::string &flag, const std::string &text, size_t count,
           const std::string &what, std::string &error) {
  std::vector<int64_t> v;
  for (const std::string &field : splitCommas(text)) {
    char *end = nullptr;
    errno = 0;
    long long x = std::strtoll(field.c_str(), &end, 10);
    if (field.empty() || *end != '\0' || errno != 0 || x < 1) {
      error = flag + " " + text + ": '" + field +
              "' is not a positive integer (expected " + what + ")";
      return std::nullopt;
    }
    v.push_back(x);
  }
  if (count && v.size() != count) {
    error = flag + " " + text + ": expected " + std::to_string(count) +
            " sizes " + what + ", got " + std::to_string(v.size());
    return std::nullopt;
  }
  return v;
}

std::optional<Shape> parseShape(const std::string &text, std::string &error) {
  auto v = parseSizes("--shape", text, 7, "B,HQ,HKV,LQ,LK,D,DV", error);
  if (!v)
    return std::nullopt;
  Shape s{(*v)[0], (*v)[1], (*v)[2], (*v)[3], (*v)[4], (*v)[5], (*v)[6]};
  if (s.HQ % s.HKV != 0) {
    error = "--shape " + text + ": HQ (" + std::to_string(s.HQ) +
            ") must be a multiple of HKV (" + std::to_string(s.HKV) + ")";
    return std::nullopt;
  }
  return s;
}

Expected<Operand> randomOperand(DType dtype, std::vector<int64_t> shape,
                                std::mt19937 &rng, double lo, double hi) {
  Expected<Tensor> t = Tensor::zeros(dtype, shape);
  if (!t.ok())
    return t.status();
  Operand o{std::move(*t), {}};
  std::uniform_real_distribution<double> u(lo, hi);
  o.values.resize(size_t(o.tensor.numel()));
  for (int64_t i = 0; i < o.tensor.numel(); ++i) {
    o.tensor.setFromDouble(i, u(rng));
    o.values[size_t(i)] = o.tensor.getAsDouble(i);
  }
  return o;
}

Expected<NamedTensors> randomInputs(const runtime::KernelInfo &info,
                                    const Shape &s, std::mt19937 &rng,
                                    const NamedTensors &given) {
  const int64_t sizes[] = {s.B, s.HQ, s.HKV, s.LQ, s.LK, s.D, s.DV};
  NamedTensors out;
  for (const runtime::InputDecl &decl : info.inputs) {
    if (std::any_of(given.begin(), given.end(),
                    [&](const auto &g) { return g.first == decl.name; }))
      continue;
    std::vector<int64_t> shape;
    for (const runtime::InputDim &d : decl.dims)
      shape.push_back(d.isSize ? sizes[int(d.size)] : d.literal);
    Expected<Tensor> t = Tensor::zeros(decl.dtype, shape);
    if (!t.ok())
      return t.status().withContext("input '" + decl.name + "'");
    bool ids = shape.size() == 1 && decl.dims[0].isSize &&
               (decl.dims[0].size == runtime::SizeName::LQ ||
                decl.dims[0].size == runtime::SizeName::LK);
    std::uniform_int_distribution<int> small(0, 3), big(0, 299), coin(0, 1);
    std::uniform_real_distribution<double> u(-1, 1);
    std::vector<double> vals(size_t(t->numel()));
    for (double &v : vals)
      v = decl.dtype == DType::F32    ? u(rng)
          : decl.dtype == DType::Bool ? coin(rng)
          : ids                       ? small(rng)
                                      : big(rng);
    if (ids)
      std::sort(vals.begin(), vals.end());
    for (int64_t i = 0; i < t->numel(); ++i)
      t->setFromDouble(i, vals[size_t(i)]);
    out.push_back({decl.name, std::move(*t)});
  }
  return out;
}

mlir::attn::ProblemSizes problemSizes(const Shape &s) {
  mlir::attn::ProblemSizes p;
  p.B = s.B, p.HQ = s.HQ, p.HKV = s.HKV, p.LQ = s.LQ, p.LK = s.LK, p.D = s.D,
  p.DV = s.DV;
  return p;
}

double median(std::vector<double> &times) {
  if (times.empty())
    return 0;
  std::sort(times.begin(), times.end());
  size_t n = times.size();
  return n % 2 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
}

} // namespace attnc::bench
