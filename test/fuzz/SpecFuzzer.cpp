//===- SpecFuzzer.cpp - Structure-aware fuzzing of whole kernels ----------===//
//
// The fuzzer's bytes choose a WELL-FORMED spec (test/common/SpecGen.h: mask
// formulas of comparisons over q, kv and the other coordinates with && || !,
// an optional score expression over the language's functions, softmax or
// sigmoid, optional float inputs read at in-range indices), a tiny problem
// (B <= 2, HQ in {1, 2, 4} with HKV dividing it, LQ and LK in 0..40, D and
// DV in 1..40), the storage dtype, the tile sizes and the data seed. The
// spec is compiled with the C++ API (tiling, code generation, the JIT), run
// on random inputs into a NaN-poisoned output, and compared with the
// float64 reference (reference/): a compile or run error, a NaN, or a
// relative Frobenius error above 1e-5 (f32; 1e-2 for bf16) aborts, as does
// an lse off the reference's for softmax. The kernels are cached in a
// private temporary directory unless ATTNC_CACHE_DIR is set;
// ATTNC_FUZZ_VERBOSE=1 prints each problem and spec.
//
//===----------------------------------------------------------------------===//
#include "attnc/Compiler.h"
#include "attnc/Driver.h"
#include "attnc/Reference/ReferenceAttention.h"

#include "../common/SpecGen.h"
#include "../common/TempDir.h"

#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>
#include <unistd.h>

using namespace attnc;
using runtime::Tensor;

namespace {

/// Choices read from the fuzzer's bytes: one byte per choice of at most 256
/// values, two otherwise; lo once the bytes run out.
class ByteSource {
public:
  ByteSource(const uint8_t *data, size_t size) : data(data), size(size) {}
  int pick(int lo, int hi) {
    unsigned range = unsigned(hi - lo) + 1, v = 0;
    for (unsigned n = range > 256 ? 2 : 1; n > 0; --n)
      v = (v << 8) | (pos < size ? data[pos++] : 0);
    return lo + int(v % range);
  }

private:
  const uint8_t *data;
  size_t size, pos = 0;
};

struct Problem {
  int64_t B, HQ, HKV, LQ, LK, D, DV;
  DType dtype;
  int64_t tileQ, tileK;
  uint32_t seed;
};

[[noreturn]] void finding(const std::string &what, const std::string &spec,
                          const Problem &p) {
  std::fprintf(stderr,
               "spec fuzzer: %s\nB=%lld HQ=%lld HKV=%lld LQ=%lld LK=%lld "
               "D=%lld DV=%lld dtype=%s tiles=%lldx%lld seed=%u\n%s",
               what.c_str(), (long long)p.B, (long long)p.HQ, (long long)p.HKV,
               (long long)p.LQ, (long long)p.LK, (long long)p.D,
               (long long)p.DV, runtime::dtypeName(p.dtype),
               (long long)p.tileQ, (long long)p.tileK, p.seed, spec.c_str());
  std::abort();
}

Problem pickProblem(ByteSource &in) {
  static const int64_t kTiles[] = {0, 1, 3, 8, 16, 17, 32};
  Problem p;
  p.B = in.pick(1, 2);
  p.HQ = int64_t(1) << in.pick(0, 2);
  p.HKV = p.HQ >> in.pick(0, 2);
  if (p.HKV < 1)
    p.HKV = 1;
  p.LQ = in.pick(0, 40);
  p.LK = in.pick(0, 40);
  p.D = in.pick(1, 40);
  p.DV = in.pick(1, 40);
  p.dtype = in.pick(0, 3) == 3 ? DType::BF16 : DType::F32;
  p.tileQ = kTiles[in.pick(0, 6)];
  p.tileK = kTiles[in.pick(0, 6)];
  p.seed = uint32_t(in.pick(0, 65535));
  return p;
}

/// A tensor of `shape` with values uniform in [-1, 1] as stored in `dtype`;
/// `vals` gets them as doubles, for the reference.
Tensor randomTensor(DType dtype, std::vector<int64_t> shape, std::mt19937 &rng,
                    std::vector<double> &vals) {
  std::uniform_real_distribution<double> u(-1, 1);
  Tensor t = Tensor::zeros(dtype, std::move(shape)).value();
  vals.resize(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) {
    t.setFromDouble(i, u(rng));
    vals[size_t(i)] = t.getAsDouble(i);
  }
  return t;
}

Compiler &compiler() {
  static Compiler *c = [] {
    // A private cache, removed at exit, unless the caller chose one: the
    // fuzzer's kernels never land in the user's ~/.cache.
    if (!std::getenv("ATTNC_CACHE_DIR")) {
      static const attnc::test::TempDir dir("attnc-fuzz-spec");
      ::setenv("ATTNC_CACHE_DIR", dir.path.c_str(), 1);
    }
    return new Compiler();
  }();
  return *c;
}

/// Compares the kernel's out (and lse for softmax) with the reference's.
void compare(const Tensor &out, const Tensor &lse, bool softmax,
             const std::vector<double> &refOut,
             const std::vector<double> &refLse, const std::string &spec,
             const Problem &p) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < out.numel(); ++i) {
    double o = out.getAsDouble(i), r = refOut[size_t(i)];
    if (std::isnan(o))
      finding("NaN in out at element " + std::to_string(i), spec, p);
    num += (o - r) * (o - r);
    den += r * r;
  }
  double tol = p.dtype == DType::F32 ? 1e-5 : 1e-2;
  if (den == 0 ? num != 0 : std::sqrt(num / den) >= tol)
    finding("out differs from the reference: relative error " +
                std::to_string(den == 0 ? num : std::sqrt(num / den)),
            spec, p);
  if (!softmax)
    return;
  for (int64_t i = 0; i < lse.numel(); ++i) {
    double l = lse.getAsDouble(i), r = refLse[size_t(i)];
    bool ok = std::isinf(r) ? l == r
                            : std::fabs(l - r) <= 1e-4 * (1 + std::fabs(r));
    if (!ok)
      finding("lse differs from the reference at row " + std::to_string(i) +
                  ": " + std::to_string(l) + " vs " + std::to_string(r),
              spec, p);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ByteSource in(data, size);
  Problem p = pickProblem(in);
  testgen::SpecGen::Options o;
  o.sigmoid = in.pick(0, 1);
  o.score = in.pick(0, 3) != 0;
  o.inputT = in.pick(0, 1);
  o.inputU = in.pick(0, 1);
  testgen::SpecGen gen([&](int lo, int hi) { return in.pick(lo, hi); });
  std::string text = gen.spec(o);

  if (std::getenv("ATTNC_FUZZ_VERBOSE"))
    std::fprintf(stderr,
                 "B=%lld HQ=%lld HKV=%lld LQ=%lld LK=%lld D=%lld DV=%lld "
                 "dtype=%s tiles=%lldx%lld seed=%u\n%s",
                 (long long)p.B, (long long)p.HQ, (long long)p.HKV,
                 (long long)p.LQ, (long long)p.LK, (long long)p.D,
                 (long long)p.DV, runtime::dtypeName(p.dtype),
                 (long long)p.tileQ, (long long)p.tileK, p.seed, text.c_str());
  CompileOptions opts;
  opts.dtype = p.dtype;
  opts.tileQ = p.tileQ;
  opts.tileK = p.tileK;
  Expected<Kernel> kernel = compiler().compile(text, opts, "fuzz.attn");
  if (!kernel.ok())
    finding("a well-formed spec does not compile: " + kernel.status().message(),
            text, p);
  std::string errors;
  llvm::raw_string_ostream es(errors);
  Driver driver(es);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      driver.loadSpecText("fuzz.attn", text, {});
  if (!module || mlir::failed(driver.runSpecPipeline(*module)))
    finding("the reference cannot load the spec: " + errors, text, p);
  mlir::attn::SpecOp spec = *module->getOps<mlir::attn::SpecOp>().begin();

  std::mt19937 rng(p.seed);
  std::vector<double> qv, kv, vv, tv, uv;
  Tensor q = randomTensor(p.dtype, {p.B, p.HQ, p.LQ, p.D}, rng, qv);
  Tensor k = randomTensor(p.dtype, {p.B, p.HKV, p.LK, p.D}, rng, kv);
  Tensor v = randomTensor(p.dtype, {p.B, p.HKV, p.LK, p.DV}, rng, vv);
  Tensor t = randomTensor(DType::F32, {p.HQ}, rng, tv);
  Tensor u = randomTensor(DType::F32, {p.LK}, rng, uv);
  Tensor out = Tensor::zeros(p.dtype, {p.B, p.HQ, p.LQ, p.DV}).value();
  Tensor lse = Tensor::zeros(DType::F32, {p.B, p.HQ, p.LQ}).value();
  for (int64_t i = 0; i < out.numel(); ++i)
    out.setFromDouble(i, NAN);
  for (int64_t i = 0; i < lse.numel(); ++i)
    lse.setFromDouble(i, NAN);
  ForwardOptions fo;
  TensorView lseView = lse.view();
  if (!o.sigmoid)
    fo.lse = &lseView;
  if (o.inputT)
    fo.inputs.push_back({"t", t.view()});
  if (o.inputU)
    fo.inputs.push_back({"u", u.view()});
  Status st = kernel->forward(q.view(), k.view(), v.view(), out.view(), fo);
  if (!st.ok())
    finding("the kernel fails: " + st.message(), text, p);

  mlir::attn::ReferenceProblem ref;
  ref.sizes.B = p.B, ref.sizes.HQ = p.HQ, ref.sizes.HKV = p.HKV;
  ref.sizes.LQ = p.LQ, ref.sizes.LK = p.LK, ref.sizes.D = p.D, ref.sizes.DV = p.DV;
  ref.q = qv.data(), ref.k = kv.data(), ref.v = vv.data();
  ref.inputs = [&](llvm::StringRef name, llvm::ArrayRef<int64_t> idx)
      -> std::optional<mlir::attn::Scalar> {
    const std::vector<double> &vals = name == "t" ? tv : uv;
    if (idx.size() != 1 || idx[0] < 0 || idx[0] >= int64_t(vals.size()))
      return std::nullopt;
    return mlir::attn::Scalar::ofFloat(vals[size_t(idx[0])]);
  };
  std::vector<double> refOut, refLse;
  std::string why = mlir::attn::referenceAttention(spec, ref, refOut, refLse);
  if (!why.empty())
    finding("the reference fails: " + why, text, p);
  compare(out, lse, !o.sigmoid, refOut, refLse, text, p);
  return 0;
}
