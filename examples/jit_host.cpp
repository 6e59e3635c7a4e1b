// jit_host.cpp: JIT-compiles a sliding-window spec with the attnc C++ API, runs it with lse on
// random data, and exits 1 on an error, a non-finite output or a wrong row 0 (see below).
#include "attnc/Compiler.h"
#include <cmath>
#include <cstdio>
#include <random>
using attnc::runtime::Tensor;

int main() {
  const int64_t B = 1, H = 4, L = 200, D = 64;
  const char *spec = "attention local { param window: int = 128 mask = q >= kv && q - kv < window }";
  attnc::Compiler compiler;
  auto kernel = compiler.compile(spec, {.defines = {{"window", 64}}});
  Tensor q = Tensor::zeros(attnc::DType::F32, {B, H, L, D}).value(), k = q, v = q, out = q;
  Tensor lse = Tensor::zeros(attnc::DType::F32, {B, H, L}).value();
  std::mt19937 rng(1);
  for (Tensor *t : {&q, &k, &v}) // uniform in [-1, 1)
    for (int64_t i = 0; i < t->numel(); ++i) t->setFromDouble(i, rng() / 2147483648.0 - 1);
  attnc::TensorView lseView = lse.view();
  attnc::Status st = !kernel.ok() ? kernel.status()
      : kernel->forward(q.view(), k.view(), v.view(), out.view(), {.lse = &lseView});
  if (!st.ok()) return std::fprintf(stderr, "jit_host: %s\n", st.message().c_str()), 1;
  double dot = 0, err = 0; // query 0 keeps only key 0: out = v[0], lse = q[0].k[0] / sqrt(D)
  for (int64_t d = 0; d < D; ++d)
    dot += q.getAsDouble(d) * k.getAsDouble(d), err += std::abs(out.getAsDouble(d) - v.getAsDouble(d));
  bool ok = err < 1e-6 && std::abs(lse.getAsDouble(0) - dot / std::sqrt(D)) < 1e-5;
  for (int64_t i = 0; i < out.numel(); ++i) ok &= std::isfinite(out.getAsDouble(i));
  std::printf("out[0,0,1,0] = %.6f, checks %s\n", out.getAsDouble(D), ok ? "passed" : "FAILED");
  return ok ? 0 : 1;
}
