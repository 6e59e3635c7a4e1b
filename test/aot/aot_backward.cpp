//===- aot_backward.cpp - The backward pass of an ahead-of-time kernel ----===//
//
// The build compiles the shared ALiBi + soft-capping spec with `attnc
// compile --backward --emit=obj` and `--emit=header` (-D window=20 -D
// cap=5), then links that object and the runtime into this program. It runs
// local_softcap_alibi_forward (with lse) and local_softcap_alibi_backward on
// random data (GQA, LQ != LK, D != DV, sizes that are not tile multiples,
// rows past the window that see no key) and checks dq, dk, dv and the
// slopes' gradient against a direct float64 computation (relative
// Frobenius error <= 1e-4), whose slopes gradient is itself checked against
// central differences of the float64 forward. Also: the results do not
// depend on the thread count (bitwise), and a bad call is an error value
// that names the tensor.
//
//===----------------------------------------------------------------------===//
#include "alibi_backward_kernel.h"

#include "attnc/Runtime/Tensor.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

using namespace attnc::runtime;

namespace {
const int64_t B = 2, HQ = 4, HKV = 2, LQ = 90, LK = 61, D = 33, DV = 20;
const int64_t kWindow = 20; // -D window=20 in test/CMakeLists.txt
const double kCap = 5.0;    // -D cap=5

/// The float64 forward and backward of local_softcap_alibi.
struct Reference {
  std::vector<double> out, dq, dk, dv, dslopes;
};

double at(const Tensor &t, int64_t i) { return t.getAsDouble(i); }

/// Forward (and, with `backward`, the gradients of sum(out * dout)) in
/// float64 from the float32 tensors, with `slopes` as given.
Reference reference(const Tensor &q, const Tensor &k, const Tensor &v,
                    const Tensor &dout, const std::vector<double> &slopes,
                    bool backward) {
  Reference r;
  r.out.assign(B * HQ * LQ * DV, 0);
  r.dq.assign(B * HQ * LQ * D, 0);
  r.dk.assign(B * HKV * LK * D, 0);
  r.dv.assign(B * HKV * LK * DV, 0);
  r.dslopes.assign(HQ, 0);
  const double scale = 1.0 / std::sqrt(double(D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < HQ; ++h) {
      const int64_t hk = h / (HQ / HKV);
      for (int64_t i = 0; i < LQ; ++i) {
        std::vector<double> s(LK), p(LK, 0);
        std::vector<bool> kept(LK);
        double m = -INFINITY;
        for (int64_t j = 0; j < LK; ++j) {
          kept[j] = i >= j && i - j < kWindow;
          if (!kept[j])
            continue;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += at(q, ((b * HQ + h) * LQ + i) * D + d) *
                   at(k, ((b * HKV + hk) * LK + j) * D + d);
          s[j] = dot * scale;
          p[j] = kCap * std::tanh(s[j] / kCap) - slopes[h] * double(i - j);
          m = std::max(m, p[j]);
        }
        double l = 0;
        for (int64_t j = 0; j < LK; ++j)
          l += (p[j] = kept[j] ? std::exp(p[j] - m) : 0);
        if (l == 0)
          continue; // a row with no kept pair: out 0, no gradient
        for (double &x : p)
          x /= l;
        const int64_t row = (b * HQ + h) * LQ + i;
        for (int64_t e = 0; e < DV; ++e)
          for (int64_t j = 0; j < LK; ++j)
            r.out[row * DV + e] +=
                p[j] * at(v, ((b * HKV + hk) * LK + j) * DV + e);
        if (!backward)
          continue;
        double delta = 0;
        for (int64_t e = 0; e < DV; ++e)
          delta += at(dout, row * DV + e) * r.out[row * DV + e];
        for (int64_t j = 0; j < LK; ++j) {
          if (!kept[j])
            continue;
          const int64_t key = (b * HKV + hk) * LK + j;
          double dp = 0;
          for (int64_t e = 0; e < DV; ++e) {
            dp += at(dout, row * DV + e) * at(v, key * DV + e);
            r.dv[key * DV + e] += p[j] * at(dout, row * DV + e);
          }
          const double dz = p[j] * (dp - delta);
          const double t = std::tanh(s[j] / kCap);
          const double ds = dz * (1 - t * t) * scale;
          r.dslopes[h] -= dz * double(i - j);
          for (int64_t d = 0; d < D; ++d) {
            r.dq[row * D + d] += ds * at(k, key * D + d);
            r.dk[key * D + d] += ds * at(q, row * D + d);
          }
        }
      }
    }
  return r;
}

/// Relative Frobenius error of `got` against `ref` (NaN never passes).
double relError(const Tensor &got, const std::vector<double> &ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    double g = got.getAsDouble(int64_t(i));
    num += (g - ref[i]) * (g - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / (den > 0 ? den : 1));
}

bool sameBytes(const Tensor &a, const Tensor &b) {
  for (int64_t i = 0; i < a.numel(); ++i) {
    double x = a.getAsDouble(i), y = b.getAsDouble(i);
    if (std::memcmp(&x, &y, sizeof x) != 0)
      return false;
  }
  return true;
}

struct Grads {
  Tensor dq, dk, dv, dslopes;
};

Grads zeroGrads() {
  return {Tensor::zeros(DType::F32, {B, HQ, LQ, D}).value(),
          Tensor::zeros(DType::F32, {B, HKV, LK, D}).value(),
          Tensor::zeros(DType::F32, {B, HKV, LK, DV}).value(),
          Tensor::zeros(DType::F32, {HQ}).value()};
}
} // namespace

int main() {
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> u(-1, 1);
  auto make = [&](std::vector<int64_t> shape) {
    Tensor t = Tensor::zeros(DType::F32, shape).value();
    for (int64_t i = 0; i < t.numel(); ++i)
      t.setFromDouble(i, u(rng));
    return t;
  };
  Tensor q = make({B, HQ, LQ, D}), k = make({B, HKV, LK, D}),
         v = make({B, HKV, LK, DV}), dout = make({B, HQ, LQ, DV}),
         out = make({B, HQ, LQ, DV}), lse = make({B, HQ, LQ});
  Tensor slopes = Tensor::zeros(DType::F32, {HQ}).value();
  std::vector<double> slopeValues(HQ);
  for (int64_t h = 0; h < HQ; ++h) {
    slopes.setFromDouble(h, 0.5 * u(rng));
    slopeValues[h] = slopes.getAsDouble(h);
  }
  std::vector<std::string> names =
      attnc_generated::local_softcap_alibi_differentiable_inputs();
  if (names != std::vector<std::string>{"slopes"}) {
    std::fprintf(stderr, "differentiable inputs: expected {slopes}\n");
    return 1;
  }

  CpuForwardArgs fwd;
  fwd.q = q.view(), fwd.k = k.view(), fwd.v = v.view(), fwd.out = out.view();
  TensorView lseView = lse.view();
  fwd.lse = &lseView;
  fwd.inputs = {{"slopes", slopes.view()}};
  if (Status st = attnc_generated::local_softcap_alibi_forward(fwd); !st.ok()) {
    std::fprintf(stderr, "forward failed: %s\n", st.message().c_str());
    return 1;
  }
  auto runBackward = [&](Grads &g, int threads, const TensorView &doutView) {
    CpuBackwardArgs args;
    args.q = q.view(), args.k = k.view(), args.v = v.view();
    args.out = out.view(), args.lse = lse.view(), args.dout = doutView;
    args.dq = g.dq.view(), args.dk = g.dk.view(), args.dv = g.dv.view();
    args.inputs = {{"slopes", slopes.view()}};
    args.inputGrads = {{"slopes", g.dslopes.view()}};
    args.threads = threads;
    return attnc_generated::local_softcap_alibi_backward(args);
  };
  Grads g = zeroGrads();
  if (Status st = runBackward(g, 3, dout.view()); !st.ok()) {
    std::fprintf(stderr, "backward failed: %s\n", st.message().c_str());
    return 1;
  }

  Reference ref = reference(q, k, v, dout, slopeValues, true);
  // The reference's slopes gradient against central differences of its
  // own forward: sum(out * dout) at slopes +- eps.
  double cdNum = 0, cdDen = 0;
  for (int64_t h = 0; h < HQ; ++h) {
    double loss[2];
    for (int side = 0; side < 2; ++side) {
      std::vector<double> shifted = slopeValues;
      shifted[h] += side ? -1e-5 : 1e-5;
      Reference r = reference(q, k, v, dout, shifted, false);
      loss[side] = 0;
      for (size_t i = 0; i < r.out.size(); ++i)
        loss[side] += r.out[i] * dout.getAsDouble(int64_t(i));
    }
    double cd = (loss[0] - loss[1]) / 2e-5;
    cdNum += (cd - ref.dslopes[h]) * (cd - ref.dslopes[h]);
    cdDen += cd * cd;
  }
  double cdRel = std::sqrt(cdNum / cdDen);
  double errs[] = {relError(out, ref.out), relError(g.dq, ref.dq),
                   relError(g.dk, ref.dk), relError(g.dv, ref.dv),
                   relError(g.dslopes, ref.dslopes)};
  std::printf("AOT backward: relative errors out %.3g dq %.3g dk %.3g dv %.3g "
              "dslopes %.3g (reference vs central differences %.3g)\n",
              errs[0], errs[1], errs[2], errs[3], errs[4], cdRel);
  if (!(cdRel < 1e-6) || !(errs[0] < 1e-5))
    return 1;
  for (int i = 1; i < 5; ++i)
    if (!(errs[i] < 1e-4))
      return 1;

  // One thread gives the same bits.
  Grads g1 = zeroGrads();
  if (Status st = runBackward(g1, 1, dout.view()); !st.ok() ||
      !sameBytes(g.dq, g1.dq) || !sameBytes(g.dk, g1.dk) ||
      !sameBytes(g.dv, g1.dv) || !sameBytes(g.dslopes, g1.dslopes)) {
    std::fprintf(stderr, "the backward depends on the thread count\n");
    return 1;
  }

  // dout of the wrong shape is an error value naming it; nothing written.
  Tensor bad = make({B, HQ, LQ, DV + 1});
  Grads g2 = zeroGrads();
  Status st = runBackward(g2, 1, bad.view());
  if (st.ok() || st.message().find("dout") == std::string::npos) {
    std::fprintf(stderr, "expected an error naming dout, got '%s'\n",
                 st.message().c_str());
    return 1;
  }
  for (int64_t i = 0; i < g2.dq.numel(); ++i)
    if (g2.dq.getAsDouble(i) != 0) {
      std::fprintf(stderr, "a refused call wrote dq\n");
      return 1;
    }
  std::printf("bad dout reported: %s\n", st.message().c_str());
  return 0;
}
