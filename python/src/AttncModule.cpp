//===- AttncModule.cpp - attnc._attnc: the C++ API for Python (nanobind) --===//
//
// A thin layer over attnc::Compiler and attnc::Kernel; python/attnc/
// __init__.py is the API users see (it allocates the outputs as numpy
// arrays or torch tensors like the inputs). Tensors come in through
// nanobind's ndarray, i.e. DLPack or the buffer protocol: numpy arrays and
// torch tensors, with their strides, and no copy. Every error of the C++
// API (a spec error with its file:line:col and caret line, a bad tensor)
// is raised as ValueError with the runtime's message. The GIL is released
// while a kernel runs.
//
//===----------------------------------------------------------------------===//
#include "attnc/Compiler.h"
#include "attnc/Runtime/ForwardChecks.h"
#include "attnc/Runtime/Microkernels.h"

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <atomic>
#include <optional>
#include <tuple>
#include <string>
#include <vector>

namespace nb = nanobind;
using namespace nb::literals;
using attnc::runtime::DType;
using attnc::runtime::TensorView;

namespace {

/// Any ndarray: numpy or torch (DLPack), read-only allowed; the device and
/// dtype are checked here with messages that name the argument.
using Array = nb::ndarray<nb::ro>;

[[noreturn]] void fail(const std::string &message) {
  throw nb::value_error(message.c_str());
}

void check(const attnc::Status &s) {
  if (!s.ok())
    fail(s.message());
}

DType dtypeOf(const Array &a, const std::string &what) {
  nb::dlpack::dtype t = a.dtype();
  using Code = nb::dlpack::dtype_code;
  if (t.lanes == 1) {
    if (t.code == uint8_t(Code::Float) && t.bits == 32) return DType::F32;
    if (t.code == uint8_t(Code::Float) && t.bits == 16) return DType::F16;
    if (t.code == uint8_t(Code::Float) && t.bits == 64) return DType::F64;
    if (t.code == uint8_t(Code::Bfloat) && t.bits == 16) return DType::BF16;
    if (t.code == uint8_t(Code::Int) && t.bits == 32) return DType::I32;
    if (t.code == uint8_t(Code::Int) && t.bits == 64) return DType::I64;
    if (t.code == uint8_t(Code::Bool) && t.bits == 8) return DType::Bool;
  }
  fail(what + ": unsupported element type (code " + std::to_string(t.code) +
       ", " + std::to_string(t.bits) + " bits); attnc takes float32, "
       "float16, bfloat16, float64, int32, int64 and bool");
}

/// The view of `a` (no copy). CPU memory only: this module runs the CPU
/// kernels.
TensorView viewOf(const Array &a, const std::string &what) {
  if (a.device_type() != nb::device::cpu::value)
    fail(what + ": the tensor is not in CPU memory (device type " +
         std::to_string(a.device_type()) + "); attnc's Python module runs "
         "CPU kernels only");
  TensorView v;
  v.data = const_cast<void *>(a.data());
  v.dtype = dtypeOf(a, what);
  for (size_t i = 0; i < a.ndim(); ++i) {
    v.shape.push_back(int64_t(a.shape(i)));
    v.strides.push_back(a.stride(i));
  }
  return v;
}

std::vector<std::pair<std::string, TensorView>> viewsOf(const nb::dict &inputs) {
  std::vector<std::pair<std::string, TensorView>> views;
  for (auto [key, value] : inputs) {
    std::string name = nb::cast<std::string>(key);
    Array a;
    if (!nb::try_cast(value, a))
      fail("input '" + name + "': expected a numpy array or a torch tensor");
    views.push_back({name, viewOf(a, "input '" + name + "'")});
  }
  return views;
}

/// (q_offset, kv_offset, total_lq, total_lk): the call as a window of
/// longer sequences (runtime::SequenceWindow; -1 totals: the call's).
using Window = std::tuple<int64_t, int64_t, int64_t, int64_t>;
attnc::runtime::SequenceWindow windowOf(const Window &w) {
  return {std::get<0>(w), std::get<1>(w), std::get<2>(w), std::get<3>(w)};
}

/// None, or (seed, offset) of a training call of a spec with
/// softmax(dropout = p) (runtime::DropoutSeed; attnc.Kernel checks them).
std::optional<attnc::runtime::DropoutSeed> dropoutOf(const nb::object &d) {
  if (d.is_none())
    return std::nullopt;
  auto [seed, offset] = nb::cast<std::tuple<uint64_t, uint64_t>>(d);
  return attnc::runtime::DropoutSeed{seed, offset};
}

DType storageFromName(const std::string &name) {
  if (name == "f32" || name == "float32") return DType::F32;
  if (name == "f16" || name == "float16") return DType::F16;
  if (name == "bf16" || name == "bfloat16") return DType::BF16;
  fail("dtype must be one of f32, f16, bf16 (or float32, float16, "
       "bfloat16), not '" + name + "'");
}

/// One process-wide compiler (it serialises compiles and caches kernels).
attnc::Compiler &compiler() {
  static attnc::Compiler *c = new attnc::Compiler();
  return *c;
}
std::atomic<int64_t> compileCount{0};

/// A compiled kernel and what Python asks of it.

/// The view named \p name in \p parts (a layout's arrays), or null.
const TensorView *findView(const std::vector<std::pair<std::string, TensorView>> &parts,
                           const char *name) {
  for (const auto &[n, view] : parts)
    if (n == name)
      return &view;
  return nullptr;
}

struct PyKernel {
  attnc::Kernel kernel;

  std::string name() const { return kernel.info().name; }
  std::string storage() const { return attnc::runtime::dtypeName(kernel.info().storage); }
  bool sigmoid() const { return kernel.info().sigmoid; }
  /// (name, dtype, dims) per declared input, in declaration order; a dim
  /// is a size's name ("LQ", "HQ", ...) or an int.
  std::vector<std::tuple<std::string, std::string, nb::list>> inputs() const {
    std::vector<std::tuple<std::string, std::string, nb::list>> r;
    for (const auto &in : kernel.info().inputs) {
      nb::list dims;
      for (const auto &d : in.dims)
        dims.append(d.isSize ? nb::object(nb::str(attnc::runtime::sizeName(d.size)))
                             : nb::object(nb::int_(d.literal)));
      r.emplace_back(in.name, attnc::runtime::dtypeName(in.dtype), dims);
    }
    return r;
  }
  std::vector<std::string> differentiable() const { return kernel.differentiableInputs(); }

  /// layout: {} or {"cu_seqlens_q", "cu_seqlens_kv"} (a varlen batch) or
  /// {"page_table", "kv_lens"} (a paged KV cache), arrays.
  void forward(const Array &q, const Array &k, const Array &v, const Array &out,
               nb::object lse, const nb::dict &inputs, int threads,
               const Window &window, const nb::dict &layout,
               const nb::object &dropout) const {
    TensorView qv = viewOf(q, "q"), kv = viewOf(k, "k"), vv = viewOf(v, "v"),
               ov = viewOf(out, "out");
    attnc::ForwardOptions fo;
    fo.dropout = dropoutOf(dropout);
    fo.inputs = viewsOf(inputs);
    fo.threads = threads;
    fo.window = windowOf(window);
    std::vector<std::pair<std::string, TensorView>> parts = viewsOf(layout);
    auto part = [&](const char *name) { return findView(parts, name); };
    fo.varlen = {part("cu_seqlens_q"), part("cu_seqlens_kv")};
    fo.paged = {part("page_table"), part("kv_lens"), 0, 0};
    TensorView lv;
    if (!lse.is_none()) {
      lv = viewOf(nb::cast<Array>(lse), "lse");
      fo.lse = &lv;
    }
    attnc::Status s;
    {
      nb::gil_scoped_release release;
      s = kernel.forward(qv, kv, vv, ov, fo);
    }
    check(s);
  }

  /// layout: {} or {"cu_seqlens_q", "cu_seqlens_kv"} (a varlen batch).
  void backward(const Array &q, const Array &k, const Array &v, const Array &out,
                nb::object lse, const Array &dout, const Array &dq, const Array &dk,
                const Array &dv, const nb::dict &inputs, const nb::dict &grads,
                int threads, const Window &window, const nb::dict &layout,
                const nb::object &dropout) const {
    attnc::BackwardOptions bo;
    bo.dropout = dropoutOf(dropout);
    bo.inputs = viewsOf(inputs);
    bo.inputGrads = viewsOf(grads);
    bo.threads = threads;
    bo.window = windowOf(window);
    std::vector<std::pair<std::string, TensorView>> parts = viewsOf(layout);
    auto part = [&](const char *name) { return findView(parts, name); };
    bo.varlen = {part("cu_seqlens_q"), part("cu_seqlens_kv")};
    TensorView lv;
    if (!lse.is_none())
      lv = viewOf(nb::cast<Array>(lse), "lse");
    TensorView views[] = {viewOf(q, "q"),     viewOf(k, "k"),   viewOf(v, "v"),
                          viewOf(out, "out"), viewOf(dout, "dout"),
                          viewOf(dq, "dq"),   viewOf(dk, "dk"), viewOf(dv, "dv")};
    attnc::Status s;
    {
      nb::gil_scoped_release release;
      s = kernel.backward(views[0], views[1], views[2], views[3], lv, views[4],
                          views[5], views[6], views[7], bo);
    }
    check(s);
  }
};

PyKernel compileSpec(const std::string &text, const std::string &dtype,
                     const nb::dict &params, const std::string &name,
                     bool backward, const std::string &bufferName,
                     const std::vector<std::string> &importDirs) {
  attnc::CompileOptions opts;
  opts.importDirs = importDirs;
  opts.dtype = storageFromName(dtype);
  opts.name = name;
  opts.backward = backward;
  for (auto [key, value] : params) {
    std::string param = nb::cast<std::string>(key);
    if (nb::isinstance<nb::bool_>(value))
      opts.defines.emplace_back(param, nb::cast<bool>(value) ? "true" : "false");
    else if (nb::isinstance<nb::int_>(value))
      opts.defines.emplace_back(param, nb::cast<int64_t>(value));
    else if (nb::isinstance<nb::float_>(value))
      opts.defines.emplace_back(param, nb::cast<double>(value));
    else
      fail("param '" + param + "': expected an int, a float or a bool");
  }
  attnc::Expected<attnc::Kernel> kernel = [&] {
    nb::gil_scoped_release release;
    return compiler().compile(text, opts, bufferName);
  }();
  check(kernel.status());
  ++compileCount;
  return PyKernel{*kernel};
}

} // namespace

#ifdef ATTNC_PYTHON_REFERENCE
void addReference(nb::module_ &m); // ReferenceModule.cpp
#endif

NB_MODULE(_attnc, m) {
  m.doc() = "attnc's C++ API (see the attnc package for the Python API)";
  nb::class_<PyKernel>(m, "Kernel")
      .def_prop_ro("name", &PyKernel::name)
      .def_prop_ro("dtype", &PyKernel::storage)
      .def_prop_ro("sigmoid", &PyKernel::sigmoid)
      .def_prop_ro("inputs", &PyKernel::inputs)
      .def_prop_ro("differentiable_inputs", &PyKernel::differentiable)
      .def("forward", &PyKernel::forward, "q"_a, "k"_a, "v"_a, "out"_a,
           "lse"_a.none(), "inputs"_a, "threads"_a = 0,
           "window"_a = Window{0, 0, -1, -1}, "layout"_a = nb::dict(),
           "dropout"_a = nb::none())
      .def("backward", &PyKernel::backward, "q"_a, "k"_a, "v"_a, "out"_a,
           "lse"_a.none(), "dout"_a, "dq"_a, "dk"_a, "dv"_a, "inputs"_a,
           "grads"_a, "threads"_a = 0, "window"_a = Window{0, 0, -1, -1},
           "layout"_a = nb::dict(), "dropout"_a = nb::none());
  m.def("compile", &compileSpec, "text"_a, "dtype"_a, "params"_a, "name"_a,
        "backward"_a, "buffer_name"_a, "import_dirs"_a = std::vector<std::string>());
  m.def("compile_count", [] { return compileCount.load(); },
        "Successful compile calls so far (tests: one kernel for every length)");
  m.def("generic_microkernels", [] { return std::string(attnc_uk_generic_build()); });
#ifdef ATTNC_PYTHON_REFERENCE
  addReference(m);
#endif
}
