//===- aot_main.cpp - Links an ahead-of-time kernel into a program --------===//
//
// The build compiles the shared document spec with `attnc compile
// --emit=obj` and `--emit=header`, then links that object and the runtime
// into this program, which runs it on random data (document ids, odd sizes,
// GQA) and checks it against a direct float64 computation of
// document-causal attention. Also checks that a bad call comes back as an
// error, not a crash.
//
//===----------------------------------------------------------------------===//
#include "document_kernel.h"

#include "attnc/Runtime/Tensor.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

using namespace attnc::runtime;

int main() {
  const int64_t B = 2, HQ = 4, HKV = 2, LQ = 77, LK = 77, D = 33, DV = 20;
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> u(-1, 1);
  auto make = [&](std::vector<int64_t> shape) {
    Tensor t = Tensor::zeros(DType::F32, shape).value();
    for (int64_t i = 0; i < t.numel(); ++i)
      t.setFromDouble(i, u(rng));
    return t;
  };
  Tensor q = make({B, HQ, LQ, D}), k = make({B, HKV, LK, D}),
         v = make({B, HKV, LK, DV}), out = make({B, HQ, LQ, DV});
  Tensor docQ = Tensor::zeros(DType::I64, {LQ}).value();
  Tensor docK = Tensor::zeros(DType::I64, {LK}).value();
  std::uniform_int_distribution<int> ids(0, 3);
  std::vector<int> docs(LQ);
  for (int &d : docs)
    d = ids(rng);
  std::sort(docs.begin(), docs.end());
  for (int64_t i = 0; i < LQ; ++i) {
    docQ.setFromDouble(i, docs[i]);
    docK.setFromDouble(i, docs[i]);
  }
  CpuForwardArgs args;
  args.q = q.view(), args.k = k.view(), args.v = v.view(), args.out = out.view();
  args.inputs = {{"doc_q", docQ.view()}, {"doc_kv", docK.view()}};
  Status st = attnc_generated::document_forward(args);
  if (!st.ok()) {
    std::fprintf(stderr, "forward failed: %s\n", st.message().c_str());
    return 1;
  }
  // float64 reference: softmax over kv <= q in the same document.
  double num = 0, den = 0;
  const double scale = 1.0 / std::sqrt(double(D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < HQ; ++h) {
      int64_t hk = h / (HQ / HKV);
      for (int64_t i = 0; i < LQ; ++i) {
        std::vector<double> s(LK, -INFINITY);
        double m = -INFINITY;
        for (int64_t j = 0; j <= i && j < LK; ++j) {
          if (docs[i] != docs[j])
            continue;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += q.getAsDouble(((b * HQ + h) * LQ + i) * D + d) *
                   k.getAsDouble(((b * HKV + hk) * LK + j) * D + d);
          s[j] = dot * scale;
          m = std::max(m, s[j]);
        }
        double l = 0;
        for (double &x : s)
          l += (x = std::isinf(x) ? 0 : std::exp(x - m));
        for (int64_t d = 0; d < DV; ++d) {
          double o = 0;
          for (int64_t j = 0; j < LK; ++j)
            o += s[j] * v.getAsDouble(((b * HKV + hk) * LK + j) * DV + d);
          o /= l;
          double got = out.getAsDouble(((b * HQ + h) * LQ + i) * DV + d);
          num += (got - o) * (got - o);
          den += o * o;
        }
      }
    }
  double rel = std::sqrt(num / den);
  std::printf("AOT document kernel: relative error %.3g\n", rel);
  if (!(rel < 1e-5))
    return 1;
  // A missing input is an error value.
  args.inputs.pop_back();
  st = attnc_generated::document_forward(args);
  if (st.ok() || st.message().find("doc_kv") == std::string::npos) {
    std::fprintf(stderr, "expected a missing-input error, got '%s'\n",
                 st.message().c_str());
    return 1;
  }
  std::printf("missing input reported: %s\n", st.message().c_str());
  return 0;
}
