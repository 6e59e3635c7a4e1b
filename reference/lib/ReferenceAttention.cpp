//===- ReferenceAttention.cpp - Float64 reference of a spec ---------------===//
//
// For each (b, h, q), with hkv = h / (HQ / HKV) and K = {kv : mask(q, kv)}:
//   s(kv)  = score(scale(q, kv) * dot(q_row, k_row(kv)))
//   softmax: m = max_K s, l = sum_K exp(s - m), out = sum_K exp(s - m) v / l,
//            lse = m + log l; K empty (or every s = -inf): out = 0, lse = -inf;
//            some s NaN or +inf: out = NaN, lse = NaN
//            with softmax(sink = ...): the sink is one more logit in m and l
//            with no value row (an empty row: out = 0, lse = the sink)
//            with softmax(dropout = p) and a seed: out = sum_K exp(s - m)
//            f(kv) v / l, f = dropoutFactor (0, or 1 / (1 - p) on kept pairs)
//   sigmoid: out = sum_K sigmoid(s + bias(q, kv)) v, lse = NaN
//
//===----------------------------------------------------------------------===//
#include "attnc/Reference/ReferenceAttention.h"
#include "attnc/Runtime/Dropout.h"

#include <algorithm>
#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::attn;

double mlir::attn::dropoutFactor(SpecOp spec, const ReferenceProblem &problem,
                                  int64_t b, int64_t h, int64_t q, int64_t kv) {
  std::optional<APFloat> p = spec.getDropout();
  if (!problem.dropout || !p)
    return 1.0;
  double prob = p->convertToDouble();
  const ReferenceProblem::Dropout &d = *problem.dropout;
  uint64_t bh = uint64_t(d.batch + b) * uint64_t(problem.sizes.HQ) + uint64_t(h);
  bool keep = attnc_dropout_keep(d.seed, d.offset, bh, uint64_t(q), uint64_t(kv),
                                 attnc_dropout_threshold(prob));
  return keep ? 1.0 / (1.0 - prob) : 0.0;
}

std::string mlir::attn::referenceAttention(SpecOp spec,
                                           const ReferenceProblem &problem,
                                           std::vector<double> &out,
                                           std::vector<double> &lse) {
  ProblemSizes s = problem.sizes;
  if (s.B < 0 || s.HQ <= 0 || s.HKV <= 0 || s.HQ % s.HKV != 0 || s.LQ < 0 ||
      s.LK < 0 || s.D <= 0 || s.DV <= 0)
    return "invalid sizes (HQ must be a positive multiple of HKV)";
  const bool sigmoid = spec.getNormalize() == NormalizeKind::sigmoid;
  const double inf = std::numeric_limits<double>::infinity();
  out.assign(size_t(s.B * s.HQ * s.LQ * s.DV), 0.0);
  lse.assign(size_t(s.B * s.HQ * s.LQ), sigmoid ? NAN : -inf);
  SpecInterpreter interp(spec, s, problem.inputs);
  std::vector<double> scores(size_t(s.LK));
  std::vector<char> kept(size_t(s.LK));
  int64_t keptPairs = 0;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.HQ; ++h) {
      ProblemSizes at = s;
      at.b = b;
      at.h = h;
      interp.setSizes(at);
      int64_t hkv = at.hkv();
      for (int64_t q = 0; q < s.LQ; ++q) {
        if (problem.rows && !problem.rows(b, h, q)) {
          int64_t row = (b * s.HQ + h) * s.LQ + q;
          std::fill_n(out.begin() + row * s.DV, s.DV, NAN);
          lse[row] = NAN;
          continue;
        }
        const double *qRow = problem.q + ((b * s.HQ + h) * s.LQ + q) * s.D;
        double rowMax = -inf;
        bool nanRow = false; // a kept score is NaN or +inf
        for (int64_t kv = 0; kv < s.LK; ++kv) {
          SpecInterpreter::Element e{q, kv};
          std::optional<bool> m = interp.mask(e);
          if (!m)
            return interp.error();
          kept[kv] = *m;
          if (!*m)
            continue;
          ++keptPairs;
          const double *kRow =
              problem.k + ((b * s.HKV + hkv) * s.LK + kv) * s.D;
          double dot = 0;
          for (int64_t d = 0; d < s.D; ++d)
            dot += qRow[d] * kRow[d];
          std::optional<double> scale = interp.scale(e);
          if (!scale)
            return interp.error();
          std::optional<double> score = interp.score(e, *scale * dot);
          if (!score)
            return interp.error();
          if (sigmoid) {
            std::optional<double> bias = interp.bias(e);
            if (!bias)
              return interp.error();
            scores[kv] = 1.0 / (1.0 + std::exp(-(*score + *bias)));
          } else {
            scores[kv] = *score;
            rowMax = std::max(rowMax, *score);
            nanRow = nanRow || std::isnan(*score) || *score == inf;
          }
        }
        double sinkLogit = -inf;
        if (!sigmoid && interp.hasSink()) {
          std::optional<double> sink = interp.sink({q, 0});
          if (!sink)
            return interp.error();
          sinkLogit = *sink;
          rowMax = std::max(rowMax, sinkLogit);
          nanRow = nanRow || std::isnan(sinkLogit) || sinkLogit == inf;
        }
        double *o = out.data() + ((b * s.HQ + h) * s.LQ + q) * s.DV;
        if (nanRow) {
          std::fill_n(o, s.DV, NAN);
          lse[(b * s.HQ + h) * s.LQ + q] = NAN;
          continue;
        }
        double sum = rowMax == -inf ? 0 : std::exp(sinkLogit - rowMax);
        for (int64_t kv = 0; kv < s.LK; ++kv) {
          if (!kept[kv])
            continue;
          double p = scores[kv];
          if (!sigmoid) {
            if (rowMax == -inf)
              break; // nothing kept, or every score is -inf: the row is 0
            p = std::exp(p - rowMax);
            sum += p;
          }
          const double *vRow =
              problem.v + ((b * s.HKV + hkv) * s.LK + kv) * s.DV;
          if (!sigmoid)
            p *= dropoutFactor(spec, problem, b, h, q, kv);
          for (int64_t d = 0; d < s.DV; ++d)
            o[d] += p * vRow[d];
        }
        if (!sigmoid && rowMax != -inf) {
          for (int64_t d = 0; d < s.DV; ++d)
            o[d] /= sum;
          lse[(b * s.HQ + h) * s.LQ + q] = rowMax + std::log(sum);
        }
      }
    }
  if (problem.keptPairs)
    *problem.keptPairs = keptPairs;
  return "";
}
