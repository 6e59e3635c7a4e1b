//===- BackwardBench.cpp - attn-bench --backward: the timed backward ------===//
//
// See BackwardBench.h.
//
//===----------------------------------------------------------------------===//
#include "BackwardBench.h"
#include "Baselines.h"

#include <algorithm>
#include <chrono>
#include <random>

namespace attnc::bench {

using runtime::Tensor;

namespace {

/// The tensors one backward call reads and writes.
struct BackwardData {
  Tensor out, lse, dq, dk, dv;
  Operand dout;
  NamedTensors inputGrads;
};

/// A float32 copy of \p t (any storage type).
std::vector<float> floatsOf(const Tensor &t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i)
    out[size_t(i)] = float(t.getAsDouble(i));
  return out;
}

/// Allocates \p d and runs one forward for out and lse. Returns "" or an
/// error.
std::string prepare(const Flags &f, const BackwardProblem &p, bool softmax,
                    BackwardData &d) {
  const Shape &s = p.shape;
  std::mt19937 rng(f.seed + 1); // not the forward's q, k, v stream
  auto dout = randomOperand(p.dtype, {s.B, s.HQ, s.LQ, s.DV}, rng, -1, 1);
  auto out = Tensor::zeros(p.dtype, {s.B, s.HQ, s.LQ, s.DV});
  auto lse = Tensor::zeros(runtime::DType::F32,
                           softmax ? std::vector<int64_t>{s.B, s.HQ, s.LQ}
                                   : std::vector<int64_t>{0});
  auto dq = Tensor::zeros(p.dtype, {s.B, s.HQ, s.LQ, s.D});
  auto dk = Tensor::zeros(p.dtype, {s.B, s.HKV, s.LK, s.D});
  auto dv = Tensor::zeros(p.dtype, {s.B, s.HKV, s.LK, s.DV});
  for (const runtime::Status *st : {&dout.status(), &out.status(),
                                    &lse.status(), &dq.status(), &dk.status(),
                                    &dv.status()})
    if (!st->ok())
      return st->message();
  d.dout = std::move(*dout);
  d.out = std::move(*out);
  d.lse = std::move(*lse);
  d.dq = std::move(*dq);
  d.dk = std::move(*dk);
  d.dv = std::move(*dv);
  // A float32 gradient for every differentiable input, of its shape.
  for (const std::string &name : p.kernel->differentiableInputs()) {
    auto it = std::find_if(p.inputs->begin(), p.inputs->end(),
                           [&](const auto &in) { return in.first == name; });
    if (it == p.inputs->end())
      return "no tensor for the differentiable input '" + name + "'";
    auto g = Tensor::zeros(runtime::DType::F32, it->second.shape());
    if (!g.ok())
      return g.status().message();
    d.inputGrads.push_back({name, std::move(*g)});
  }
  ForwardOptions fwd;
  fwd.threads = p.threads;
  fwd.dropout = f.dropout();
  runtime::TensorView lseView = d.lse.view();
  if (softmax)
    fwd.lse = &lseView;
  for (const auto &[name, t] : *p.inputs)
    fwd.inputs.push_back({name, t.view()});
  runtime::Status st = p.kernel->forward(p.q->tensor.view(), p.k->tensor.view(),
                                         p.v->tensor.view(), d.out.view(), fwd);
  return st.ok() ? "" : "the forward before the backward: " + st.message();
}

/// Times Kernel::backward on \p d into \p r. Returns "" or an error.
std::string timeBackward(const Flags &f, const BackwardProblem &p,
                         bool softmax, BackwardData &d, BenchResult &r) {
  BackwardOptions bwd;
  bwd.threads = p.threads;
  bwd.dropout = f.dropout(); // the forward's mask
  for (const auto &[name, t] : *p.inputs)
    bwd.inputs.push_back({name, t.view()});
  for (const auto &[name, t] : d.inputGrads)
    bwd.inputGrads.push_back({name, t.view()});
  // An empty view (data null) is the sigmoid's "no lse".
  const runtime::TensorView lse = softmax ? d.lse.view() : runtime::TensorView{};
  std::vector<double> times;
  double timedMs = 0;
  for (int i = 0;
       i < f.warmup + f.runs || (timedMs < f.minTimeMs && i < 100000); ++i) {
    auto start = std::chrono::steady_clock::now();
    runtime::Status st = p.kernel->backward(
        p.q->tensor.view(), p.k->tensor.view(), p.v->tensor.view(),
        d.out.view(), lse, d.dout.tensor.view(), d.dq.view(), d.dk.view(),
        d.dv.view(), bwd);
    if (!st.ok())
      return "the backward: " + st.message();
    if (i >= f.warmup) {
      times.push_back(msSince(start));
      timedMs += times.back();
    }
  }
  r.backward = true;
  r.bwdRuns = int(times.size());
  r.bwdMsMin = *std::min_element(times.begin(), times.end());
  r.bwdMs = median(times);
  r.bwdGflops = gflopsOf(backwardFlops(p.shape), r.bwdMs);
  return "";
}

/// ||a - b|| / ||b|| over the three gradients together.
double gradientError(const std::vector<float> *mine[3],
                     const std::vector<float> *attnc[3]) {
  std::vector<float> a, b;
  for (int i = 0; i < 3; ++i) {
    a.insert(a.end(), mine[i]->begin(), mine[i]->end());
    b.insert(b.end(), attnc[i]->begin(), attnc[i]->end());
  }
  return relativeError(a, b);
}

/// The openblas baseline's unfused backward on float32 copies of \p d,
/// into \p b. Returns "" or an error.
std::string openblasBackward(const Flags &f, const BackwardProblem &p,
                             const BackwardData &d, BaselineOutcome &b) {
  if (!b.ran)
    return ""; // skipped, and its note says why
  auto toFloat = [](const std::vector<double> &v) {
    return std::vector<float>(v.begin(), v.end());
  };
  std::vector<float> qf = toFloat(p.q->values), kf = toFloat(p.k->values),
                     vf = toFloat(p.v->values), dof = toFloat(d.dout.values),
                     outf = floatsOf(d.out), lsef = floatsOf(d.lse);
  BaselineProblem bp{p.shape, qf.data(), kf.data(), vf.data(), p.spec, {},
                     p.threads};
  std::vector<float> dq, dk, dv;
  std::vector<double> times;
  for (int i = 0; i < f.warmup + f.runs; ++i) {
    auto start = std::chrono::steady_clock::now();
    if (std::string err = unfusedBackward(bp, outf.data(), lsef.data(),
                                          dof.data(), dq, dk, dv);
        !err.empty())
      return "openblas backward: " + err;
    if (i >= f.warmup)
      times.push_back(msSince(start));
  }
  b.bwdMs = median(times);
  b.bwdGflops = gflopsOf(backwardFlops(p.shape), b.bwdMs);
  std::vector<float> adq = floatsOf(d.dq), adk = floatsOf(d.dk),
                     adv = floatsOf(d.dv);
  const std::vector<float> *mine[3] = {&dq, &dk, &dv};
  const std::vector<float> *attnc[3] = {&adq, &adk, &adv};
  b.bwdRelErr = gradientError(mine, attnc);
  b.bwdNote = "unfused: P, dP, dS materialised, five sgemm per 256 query rows";
  return "";
}

} // namespace

std::string benchBackward(const Flags &f, const BackwardProblem &p,
                          BenchResult &r) {
  const bool softmax = mlir::attn::SpecOp(p.spec).getNormalize() ==
                       mlir::attn::NormalizeKind::softmax;
  BackwardData d;
  if (std::string err = prepare(f, p, softmax, d); !err.empty())
    return err;
  if (std::string err = timeBackward(f, p, softmax, d, r); !err.empty())
    return err;
  for (BaselineOutcome &b : r.baselines)
    if (b.name == "openblas")
      if (std::string err = openblasBackward(f, p, d, b); !err.empty())
        return err;
  return "";
}

} // namespace attnc::bench
