//===- ReferenceBackward.cpp - Float64 reference of the backward ----------===//
//
// For each (b, h, q) row, three passes over the keys (O(1) memory per row
// beyond the outputs), all through the SpecInterpreter:
//   1. softmax only: lse = log sum_K exp(z), K the kept keys (online max),
//      and the sink's exp if the spec has one;
//   2. softmax only: delta = sum_K P F dP (or rowsum(dout * forwardOut),
//      F the dropout factor of a training call, else 1); the
//      sink's inputs get P_sink (0 - delta), through its dual evaluation;
//   3. the dual evaluation of scale, score (and bias) on each kept pair,
//      and the chain rule into dq, dk, dv and the input gradients
//      (ReferenceBackward.h has the formulas); with dropout dZ = P (dP F -
//      delta) and dv += P F dO.
//
//===----------------------------------------------------------------------===//
#include "attnc/Reference/ReferenceBackward.h"

#include <algorithm>
#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::attn;

namespace {

/// The gradient of one float input: its declared shape and its array.
struct InputGrad {
  std::vector<int64_t> shape;
  std::vector<double> *grad = nullptr, *magnitude = nullptr;
};

struct Backward {
  SpecOp spec;
  const ReferenceProblem &p;
  ProblemSizes s;
  const double *dout;
  ReferenceGradients &g;
  SpecInterpreter interp;
  bool sigmoid;
  std::map<std::string, InputGrad> inputs;
  Partials scaleP, scoreP, biasP, sinkP;

  Backward(SpecOp spec, const ReferenceProblem &p, const double *dout,
           ReferenceGradients &g)
      : spec(spec), p(p), s(p.sizes), dout(dout), g(g),
        interp(spec, p.sizes, p.inputs),
        sigmoid(spec.getNormalize() == NormalizeKind::sigmoid) {}

  std::string declareInputs();
  /// grad += factor * partial and magnitude += |magnitude * partial| for
  /// each read of `partials`.
  std::string accumulate(const Partials &partials, double factor,
                         double magnitude);
  /// z of a pair: std::nullopt with interp.error() set on a failure; sets
  /// `kept` to the mask (z is 0 on a dropped pair).
  std::optional<double> logit(SpecInterpreter::Element e, const double *qRow,
                              const double *kRow, bool &kept);
  std::string row(int64_t b, int64_t h, int64_t q);

  const double *qRow(int64_t b, int64_t h, int64_t q) const {
    return p.q + ((b * s.HQ + h) * s.LQ + q) * s.D;
  }
  int64_t kvRow(int64_t b, int64_t hkv, int64_t kv) const {
    return (b * s.HKV + hkv) * s.LK + kv;
  }
};

/// Creates a zero gradient for every float input the scale, score or bias
/// region reads, of the input's declared shape.
std::string Backward::declareInputs() {
  const int64_t sizes[] = {s.B, s.HQ, s.HKV, s.LQ, s.LK, s.D, s.DV};
  std::string error;
  auto declare = [&](ReadOp read) {
    std::string name = read.getInput().str();
    InputAttr decl = spec.lookupInput(name);
    if (!error.empty() || inputs.count(name) || !decl ||
        !decl.getElementType().isF32())
      return;
    InputGrad in;
    int64_t count = 1;
    for (Attribute dim : decl.getShape()) {
      int64_t extent = -1;
      if (auto i = dyn_cast<IntegerAttr>(dim)) {
        extent = i.getInt();
      } else if (auto size = symbolizeSizeVar(cast<StringAttr>(dim))) {
        extent = sizes[static_cast<int>(*size)];
      } else {
        ParamAttr param = spec.lookupParam(cast<StringAttr>(dim));
        auto v = param ? dyn_cast_or_null<IntegerAttr>(param.getValue())
                       : IntegerAttr();
        if (v)
          extent = v.getInt();
      }
      if (extent < 0) {
        error = "input '" + name + "' has a dimension without a value";
        return;
      }
      in.shape.push_back(extent);
      count *= extent;
    }
    std::vector<double> &grad = g.dinputs[name];
    grad.assign(size_t(count), 0.0);
    in.grad = &grad;
    std::vector<double> &magnitude = g.dinputMagnitudes[name];
    magnitude.assign(size_t(count), 0.0);
    in.magnitude = &magnitude;
    inputs.emplace(name, std::move(in));
  };
  spec.getScale().walk(declare);
  spec.getScore().walk(declare);
  if (sigmoid)
    spec.getBias().walk(declare);
  else
    spec.getSink().walk(declare);
  return error;
}

/// grad[input][indices] += factor * partial, for each read of `partials`.
std::string Backward::accumulate(const Partials &partials, double factor,
                                 double magnitude) {
  for (const Partials::Read &read : partials.reads) {
    auto it = inputs.find(read.input.str());
    if (it == inputs.end())
      continue; // not a float input (a reader that returned a float)
    const std::vector<int64_t> &shape = it->second.shape;
    int64_t flat = 0;
    bool inside = read.indices.size() == shape.size();
    for (size_t d = 0; inside && d < shape.size(); ++d) {
      inside = read.indices[d] >= 0 && read.indices[d] < shape[d];
      flat = flat * shape[d] + read.indices[d];
    }
    if (!inside) {
      std::string message = "input '" + read.input.str() + "' read at [";
      for (size_t d = 0; d < read.indices.size(); ++d)
        message += (d ? ", " : "") + std::to_string(read.indices[d]);
      return message + "] outside its declared shape";
    }
    (*it->second.grad)[size_t(flat)] += factor * read.d;
    (*it->second.magnitude)[size_t(flat)] += std::abs(magnitude * read.d);
  }
  return "";
}

std::optional<double> Backward::logit(SpecInterpreter::Element e,
                                      const double *qRow, const double *kRow,
                                      bool &kept) {
  std::optional<bool> m = interp.mask(e);
  if (!m)
    return std::nullopt;
  kept = *m;
  if (!kept)
    return 0.0;
  double dot = 0;
  for (int64_t d = 0; d < s.D; ++d)
    dot += qRow[d] * kRow[d];
  std::optional<double> scale = interp.scale(e);
  if (!scale)
    return std::nullopt;
  return interp.score(e, *scale * dot);
}

std::string Backward::row(int64_t b, int64_t h, int64_t q) {
  const double inf = std::numeric_limits<double>::infinity();
  const int64_t hkv = s.HQ / s.HKV > 0 ? h / (s.HQ / s.HKV) : 0;
  const double *qr = qRow(b, h, q);
  const double *dO = dout + ((b * s.HQ + h) * s.LQ + q) * s.DV;
  auto dotDoutV = [&](int64_t kv) {
    const double *vRow = p.v + kvRow(b, hkv, kv) * s.DV;
    double dP = 0;
    for (int64_t d = 0; d < s.DV; ++d)
      dP += dO[d] * vRow[d];
    return dP;
  };
  double lse = 0, delta = 0;
  std::optional<double> sink; // softmax(sink = ...): the row's sink logit
  if (!sigmoid && interp.hasSink()) {
    sink = interp.sinkDual({q, 0}, sinkP);
    if (!sink)
      return interp.error();
  }
  if (!sigmoid) {
    double rowMax = -inf, sum = 0;
    bool nanRow = false;
    if (sink && *sink != -inf) { // the sink joins as a key with no value
      nanRow = std::isnan(*sink) || *sink == inf;
      rowMax = *sink;
      sum = 1;
    }
    for (int64_t kv = 0; kv < s.LK; ++kv) {
      bool kept = false;
      std::optional<double> z =
          logit({q, kv}, qr, p.k + kvRow(b, hkv, kv) * s.D, kept);
      if (!z)
        return interp.error();
      if (!kept || *z == -inf)
        continue;
      nanRow = nanRow || std::isnan(*z) || *z == inf;
      if (*z > rowMax) { // online: sum is relative to the running max
        sum = sum * std::exp(rowMax - *z) + 1;
        rowMax = *z;
      } else {
        sum += std::exp(*z - rowMax);
      }
    }
    if (rowMax == -inf && !nanRow)
      return ""; // no kept pair, or every score -inf: no gradient
    lse = nanRow ? NAN : rowMax + std::log(sum);
    if (const double *o = p.forwardOut) {
      o += ((b * s.HQ + h) * s.LQ + q) * s.DV;
      for (int64_t d = 0; d < s.DV; ++d)
        delta += dO[d] * o[d];
    }
    for (int64_t kv = 0; kv < s.LK && !p.forwardOut; ++kv) {
      bool kept = false;
      std::optional<double> z =
          logit({q, kv}, qr, p.k + kvRow(b, hkv, kv) * s.D, kept);
      if (!z)
        return interp.error();
      if (kept) // dO . O with O's dropped P
        delta += std::exp(*z - lse) * dropoutFactor(spec, p, b, h, q, kv) * dotDoutV(kv);
    }
    if (sink) { // dZ of the sink: P_sink (0 - delta), it has no value row
      const double pSink = std::exp(*sink - lse);
      double &margin = g.rowBranchMargin[size_t((b * s.HQ + h) * s.LQ + q)];
      margin = std::min(margin, sinkP.branchMargin);
      if (std::string err = accumulate(sinkP, -pSink * delta,
                                       pSink * std::abs(delta));
          !err.empty())
        return err;
    }
  }
  double *dq = g.dq.data() + ((b * s.HQ + h) * s.LQ + q) * s.D;
  for (int64_t kv = 0; kv < s.LK; ++kv) {
    SpecInterpreter::Element e{q, kv};
    std::optional<bool> m = interp.mask(e);
    if (!m)
      return interp.error();
    if (!*m)
      continue;
    const double *kr = p.k + kvRow(b, hkv, kv) * s.D;
    double dot = 0;
    for (int64_t d = 0; d < s.D; ++d)
      dot += qr[d] * kr[d];
    std::optional<double> scale = interp.scaleDual(e, scaleP);
    if (!scale)
      return interp.error();
    std::optional<double> z = interp.scoreDual(e, *scale * dot, scoreP);
    if (!z)
      return interp.error();
    double &margin = g.rowBranchMargin[size_t((b * s.HQ + h) * s.LQ + q)];
    margin = std::min({margin, scaleP.branchMargin, scoreP.branchMargin});
    // dZSize: the size of dZ's terms (P dP and P delta cancel in dZ).
    double P = 0, dP = dotDoutV(kv), dZ = 0, dZSize = 0;
    if (sigmoid) {
      std::optional<double> bias = interp.biasDual(e, biasP);
      if (!bias)
        return interp.error();
      margin = std::min(margin, biasP.branchMargin);
      // 1 - P = sigmoid(-x) from its own exp: 1 - P in float64 keeps only
      // a few bits where P is within 1e-15 of 1 (x above about 34), less
      // than the float32 kernel's sigmoid(-x) gets right.
      const double x = *z + *bias;
      P = 1.0 / (1.0 + std::exp(-x));
      dZ = dP * P * (1.0 / (1.0 + std::exp(x)));
      dZSize = std::abs(dZ);
      if (std::string err = accumulate(biasP, dZ, dZSize); !err.empty())
        return err;
    } else {
      // Dropout: out took P F, so dL/dP = dP F, and dV gets P F.
      const double F = dropoutFactor(spec, p, b, h, q, kv);
      P = std::exp(*z - lse);
      dZ = P * (dP * F - delta);
      dZSize = P * (std::abs(dP * F) + std::abs(delta));
      P *= F;
    }
    double dS = dZ * scoreP.dScore;
    double dSSize = std::abs(dZSize * scoreP.dScore * *scale);
    double *dk = g.dk.data() + kvRow(b, hkv, kv) * s.D;
    double *dv = g.dv.data() + kvRow(b, hkv, kv) * s.DV;
    double *dqSize = g.dqMagnitude.data() + (dq - g.dq.data());
    double *dkSize = g.dkMagnitude.data() + (dk - g.dk.data());
    for (int64_t d = 0; d < s.D; ++d) {
      dq[d] += dS * *scale * kr[d];
      dk[d] += dS * *scale * qr[d];
      dqSize[d] += dSSize * std::abs(kr[d]);
      dkSize[d] += dSSize * std::abs(qr[d]);
    }
    for (int64_t d = 0; d < s.DV; ++d)
      dv[d] += P * dO[d];
    if (std::string err = accumulate(scoreP, dZ, dZSize); !err.empty())
      return err;
    if (std::string err = accumulate(scaleP, dS * dot,
                                     dZSize * scoreP.dScore * dot);
        !err.empty())
      return err;
  }
  return "";
}

} // namespace

std::string mlir::attn::referenceBackward(SpecOp spec,
                                          const ReferenceProblem &problem,
                                          const double *dout,
                                          ReferenceGradients &grads) {
  ProblemSizes s = problem.sizes;
  if (s.B < 0 || s.HQ <= 0 || s.HKV <= 0 || s.HQ % s.HKV != 0 || s.LQ < 0 ||
      s.LK < 0 || s.D <= 0 || s.DV <= 0)
    return "invalid sizes (HQ must be a positive multiple of HKV)";
  grads = ReferenceGradients();
  grads.dq.assign(size_t(s.B * s.HQ * s.LQ * s.D), 0.0);
  grads.dk.assign(size_t(s.B * s.HKV * s.LK * s.D), 0.0);
  grads.dqMagnitude.assign(grads.dq.size(), 0.0);
  grads.dkMagnitude.assign(grads.dk.size(), 0.0);
  grads.dv.assign(size_t(s.B * s.HKV * s.LK * s.DV), 0.0);
  grads.rowBranchMargin.assign(size_t(s.B * s.HQ * s.LQ),
                               std::numeric_limits<double>::infinity());
  Backward bw(spec, problem, dout, grads);
  if (std::string err = bw.declareInputs(); !err.empty())
    return err;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.HQ; ++h) {
      ProblemSizes at = s;
      at.b = b;
      at.h = h;
      bw.interp.setSizes(at);
      for (int64_t q = 0; q < s.LQ; ++q)
        if (std::string err = bw.row(b, h, q); !err.empty())
          return err;
    }
  return "";
}
