//===- ReferenceModule.cpp - attnc._attnc._reference: the float64 oracle ===//
//
// In the build tree's module only (not in `pip install`'s, as the C++
// reference library is not installed): the SpecInterpreter-based
// referenceAttention, so that test/python checks every shared spec against
// a float64 reference computed from the spec itself. Part of _attnc, not a
// module of its own: two extensions that each link the attnc libraries
// would register the MLIR dialects twice in one process.
//
//===----------------------------------------------------------------------===//
#include "attnc/Driver.h"
#include "attnc/Reference/ReferenceAttention.h"

#include "llvm/Support/raw_ostream.h"

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

#include <map>
#include <string>
#include <vector>

namespace nb = nanobind;
using namespace nb::literals;

void addReference(nb::module_ &m);

namespace {

using Doubles = nb::ndarray<const double, nb::c_contig, nb::device::cpu>;
using AnyArray = nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu>;

/// A float64 numpy array that owns `values`.
nb::ndarray<nb::numpy, double> toNumpy(std::vector<double> values,
                                       std::vector<size_t> shape) {
  auto *owned = new std::vector<double>(std::move(values));
  nb::capsule owner(owned, [](void *p) noexcept {
    delete static_cast<std::vector<double> *>(p);
  });
  return nb::ndarray<nb::numpy, double>(owned->data(), shape.size(),
                                        shape.data(), owner);
}

std::pair<nb::object, nb::object>
reference(const std::string &text, const nb::dict &params, const Doubles &q,
          const Doubles &k, const Doubles &v, const nb::dict &inputs) {
  std::string errors;
  llvm::raw_string_ostream es(errors);
  attnc::Driver driver(es);
  attnc::FrontendOptions fo;
  for (auto [name, value] : params)
    fo.defines.push_back({nb::cast<std::string>(name), nb::cast<std::string>(nb::str(value))});
  auto module = driver.loadSpecText("ref.attn", text, fo);
  if (!module || failed(driver.runSpecPipeline(*module)))
    throw nb::value_error(errors.c_str());
  auto spec = *module->getOps<mlir::attn::SpecOp>().begin();
  std::map<std::string, AnyArray> arrays;
  for (auto [name, value] : inputs)
    arrays[nb::cast<std::string>(name)] = nb::cast<AnyArray>(value);
  mlir::attn::ReferenceProblem p;
  auto &s = p.sizes;
  s.B = q.shape(0), s.HQ = q.shape(1), s.LQ = q.shape(2), s.D = q.shape(3);
  s.HKV = k.shape(1), s.LK = k.shape(2), s.DV = v.shape(3);
  p.q = q.data(), p.k = k.data(), p.v = v.data();
  p.inputs = [&](llvm::StringRef name, llvm::ArrayRef<int64_t> idx)
      -> std::optional<mlir::attn::Scalar> {
    auto it = arrays.find(name.str());
    if (it == arrays.end() || idx.size() != it->second.ndim())
      return std::nullopt;
    const AnyArray &a = it->second;
    int64_t offset = 0;
    for (size_t d = 0; d < idx.size(); ++d) {
      if (idx[d] < 0 || idx[d] >= int64_t(a.shape(d)))
        return std::nullopt;
      offset += idx[d] * a.stride(d);
    }
    const char *base = static_cast<const char *>(a.data());
    nb::dlpack::dtype t = a.dtype();
    if (t == nb::dtype<double>())
      return mlir::attn::Scalar::ofFloat(reinterpret_cast<const double *>(base)[offset]);
    if (t == nb::dtype<float>())
      return mlir::attn::Scalar::ofFloat(reinterpret_cast<const float *>(base)[offset]);
    if (t == nb::dtype<int64_t>())
      return mlir::attn::Scalar::ofInt(reinterpret_cast<const int64_t *>(base)[offset]);
    if (t == nb::dtype<int32_t>())
      return mlir::attn::Scalar::ofInt(reinterpret_cast<const int32_t *>(base)[offset]);
    if (t == nb::dtype<bool>())
      return mlir::attn::Scalar::ofBool(reinterpret_cast<const bool *>(base)[offset]);
    return std::nullopt;
  };
  std::vector<double> out, lse;
  std::string error = mlir::attn::referenceAttention(spec, p, out, lse);
  if (!error.empty())
    throw nb::value_error(error.c_str());
  size_t B = s.B, HQ = s.HQ, LQ = s.LQ, DV = s.DV;
  nb::object o = nb::cast(toNumpy(std::move(out), {B, HQ, LQ, DV}));
  nb::object l = spec.getNormalize() == mlir::attn::NormalizeKind::sigmoid
                     ? nb::none()
                     : nb::cast(toNumpy(std::move(lse), {B, HQ, LQ}));
  return {o, l};
}

} // namespace

void addReference(nb::module_ &m) {
  m.def("_reference", &reference, "spec_text"_a, "params"_a, "q"_a, "k"_a,
        "v"_a, "inputs"_a,
        "(out, lse) in float64 from the spec's interpreter (lse None for "
        "sigmoid); q, k, v float64 C-contiguous, inputs by name");
}
