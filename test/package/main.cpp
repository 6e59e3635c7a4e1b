// A user program of the installed attnc package: compiles a causal spec with
// attnc::Compiler, runs it on a small input whose answer is known in closed
// form and checks every output. Exits non-zero on any error or wrong value.
#include "attnc/Compiler.h"

#include <cmath>
#include <cstdio>

using attnc::runtime::Tensor;

int main() {
  attnc::Compiler compiler;
  auto kernel = compiler.compile("attention causal { mask = q >= kv }");
  if (!kernel.ok())
    return std::fprintf(stderr, "compile: %s\n", kernel.status().message().c_str()), 1;
  // q = 0: every kept key has score 0, so row i averages v[0..i].
  const int64_t L = 5, D = 4;
  Tensor q = Tensor::zeros(attnc::DType::F32, {1, 1, L, D}).value(), k = q, v = q, out = q;
  for (int64_t i = 0; i < L * D; ++i) {
    k.setFromDouble(i, 0.5 * double(i % 7));
    v.setFromDouble(i, double(i / D)); // v[kv, :] = kv
  }
  attnc::Status st = kernel->forward(q.view(), k.view(), v.view(), out.view());
  if (!st.ok())
    return std::fprintf(stderr, "forward: %s\n", st.message().c_str()), 1;
  for (int64_t i = 0; i < L * D; ++i) {
    double expected = double(i / D) / 2; // the mean of 0, 1, ..., row
    if (std::abs(out.getAsDouble(i) - expected) > 1e-6)
      return std::fprintf(stderr, "out element %lld = %g, expected %g\n", (long long)i,
                          out.getAsDouble(i), expected), 1;
  }
  std::printf("attnc package: causal kernel ok\n");
  return 0;
}
