//===- RunBackward.cpp - attnc run --dout: the backward pass ---------------===//
//
// `attnc run SPEC --q Q --k K --v V [--input N=F]... --dout DO.npy
// --dq DQ.npy --dk DK.npy --dv DV.npy [--dinput NAME=FILE.npy]... -o OUT.npy
// [--lse LSE.npy]` runs the forward (Run.cpp) and then the backward through
// Kernel::backward (the kernel is compiled with CompileOptions::backward).
// dO is read like q (float32 or float16, converted to --dtype) and must
// have out's shape [B, HQ, LQ, DV]; dq, dk, dv come back in --dtype and
// every gradient file is float32. --dinput takes a float input that gets a
// gradient (Kernel::differentiableInputs(): read by the score, a
// per-element scale or a sigmoid bias); its file has the input's shape.
// The CPU only. The gradient files are committed with -o and --lse, all or
// none (Run.cpp's writeAll).
//
//===----------------------------------------------------------------------===//
#include "attnc/Run.h"

#include "attnc/Runtime/Npy.h"

#include <algorithm>

using namespace attnc;
using namespace attnc::run;
using runtime::Tensor;

int run::checkBackwardFlags(const RunFlags &f, bool cuda,
                            std::vector<NamedFile> &dinputFiles) {
  const std::pair<const std::string *, const char *> grads[] = {
      {&f.dq, "--dq DQ.npy"}, {&f.dk, "--dk DK.npy"}, {&f.dv, "--dv DV.npy"}};
  if (f.dout.empty()) {
    std::string given;
    for (auto [value, flag] : grads)
      if (!value->empty())
        given += std::string(given.empty() ? "" : ", ") + flag;
    if (!f.dinputs.empty())
      given += std::string(given.empty() ? "" : ", ") + "--dinput";
    if (!given.empty())
      return fail(given + ": only with --dout DO.npy (the backward pass)");
    return 0;
  }
  if (cuda)
    return fail("--dout: the backward pass runs on the CPU only (yet); "
                "drop --target=cuda");
  std::string missing;
  for (auto [value, flag] : grads)
    if (value->empty())
      missing += std::string(missing.empty() ? "" : ", ") + flag;
  if (!missing.empty())
    return fail("--dout needs " + missing +
                " (the gradients of q, k and v; see 'attnc run --help')");
  return parseNamedFiles("--dinput", f.dinputs, dinputFiles);
}

int run::checkGradientNames(const Kernel &kernel,
                            const std::vector<NamedFile> &dinputFiles) {
  const std::vector<std::string> &grads = kernel.differentiableInputs();
  std::string list;
  for (const std::string &g : grads)
    list += (list.empty() ? "" : ", ") + g;
  if (list.empty())
    list = "none";
  for (const NamedFile &file : dinputFiles) {
    if (std::find(grads.begin(), grads.end(), file.name) != grads.end())
      continue;
    const std::vector<runtime::InputDecl> &decls = kernel.info().inputs;
    auto decl = std::find_if(decls.begin(), decls.end(),
                             [&](const runtime::InputDecl &d) {
                               return d.name == file.name;
                             });
    std::string why =
        decl == decls.end() ? "the spec declares no input '" + file.name + "'"
        : decl->dtype != DType::F32
            ? "'" + file.name + "' is " +
                  (decl->dtype == DType::Bool ? "a bool" : "an int") +
                  " input, which gets no gradient"
            : "the float input '" + file.name +
                  "' is not read by the score, the scale or the bias, so it "
                  "gets no gradient";
    return fail("--dinput " + file.name + ": " + why +
                " (the spec's inputs with a gradient: " + list + ")");
  }
  return 0;
}

/// A zero tensor of \p dtype and \p shape, or std::nullopt after printing
/// the error (what: the tensor, for the message).
static std::optional<Tensor> zeros(const std::string &what, DType dtype,
                                   const std::vector<int64_t> &shape) {
  runtime::Expected<Tensor> t = Tensor::zeros(dtype, shape);
  if (!t.ok()) {
    fail(what + ": " + t.status().message());
    return std::nullopt;
  }
  return std::move(*t);
}

int run::runBackward(
    const Kernel &kernel, const RunFlags &f,
    const std::vector<NamedFile> &dinputFiles, const Tensor &q,
    const Tensor &k, const Tensor &v,
    const std::vector<std::pair<std::string, Tensor>> &inputs,
    const runtime::TensorView &out, const runtime::TensorView &lse,
    const Tensor &dout, Gradients &grads) {
  const DType storage = q.dtype();
  if (!(grads.dq = zeros("dq", storage, q.shape())) ||
      !(grads.dk = zeros("dk", storage, k.shape())) ||
      !(grads.dv = zeros("dv", storage, v.shape())))
    return 1;
  BackwardOptions options;
  options.dropout = f.dropout; // the forward's mask, regenerated
  options.threads = f.threads;
  for (const auto &[name, t] : inputs)
    options.inputs.emplace_back(name, t.view());
  for (const NamedFile &file : dinputFiles) {
    auto in = std::find_if(inputs.begin(), inputs.end(),
                           [&](const auto &i) { return i.first == file.name; });
    if (in == inputs.end())
      return fail("--dinput " + file.name + ": give the input itself too (" +
                  "--input " + file.name + "=FILE.npy)");
    std::optional<Tensor> g =
        zeros("--dinput " + file.name, DType::F32, in->second.shape());
    if (!g)
      return 1;
    grads.inputs.emplace_back(file, std::move(*g));
  }
  for (const auto &[file, t] : grads.inputs)
    options.inputGrads.emplace_back(file.name, t.view());
  Status st = kernel.backward(q.view(), k.view(), v.view(), out, lse,
                              dout.view(), grads.dq->view(), grads.dk->view(),
                              grads.dv->view(), options);
  if (!st.ok())
    return fail("backward: " + st.message());
  return 0;
}

int run::encodeGradients(const RunFlags &f, Gradients &grads,
                         std::vector<OutputFile> &files) {
  if (encodeFloat32(f.dq, std::move(*grads.dq), files) ||
      encodeFloat32(f.dk, std::move(*grads.dk), files) ||
      encodeFloat32(f.dv, std::move(*grads.dv), files))
    return 1;
  for (auto &[file, t] : grads.inputs)
    if (encodeFloat32(file.path, std::move(t), files))
      return 1;
  return 0;
}
