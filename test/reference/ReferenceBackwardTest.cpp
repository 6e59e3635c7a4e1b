//===- ReferenceBackwardTest.cpp - Backward oracle vs differences -------===//
//
// referenceBackward (forward-mode dual numbers through the SpecInterpreter)
// is checked against central differences of the float64 forward
// (referenceAttention) of L = sum(dout * out), on small random problems:
// dq, dk, dv and every float input's gradient. And the dual interpreter's
// rules where central differences cannot see them: ties, pow at 0, the
// evaluation rule, repeated reads.
//
//===----------------------------------------------------------------------===//
#include "attnc/Driver.h"
#include "attnc/Reference/ReferenceBackward.h"

#include "mlir/Parser/Parser.h"
#include "llvm/Support/raw_ostream.h"
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>

using namespace mlir;
using namespace mlir::attn;

namespace {

struct Spec {
  std::string errors;
  llvm::raw_string_ostream errorStream{errors};
  attnc::Driver driver{errorStream};
  OwningOpRef<ModuleOp> module;
  SpecOp op() { return *module->getOps<SpecOp>().begin(); }
};

std::unique_ptr<Spec> load(const std::string &text) {
  auto s = std::make_unique<Spec>();
  s->module = s->driver.loadSpecText("test.attn", text, {});
  EXPECT_TRUE(s->module) << s->errors;
  if (s->module)
    EXPECT_TRUE(succeeded(s->driver.runSpecPipeline(*s->module)));
  return s;
}

/// `text` loaded, printed, with op `from` renamed `to`, and parsed again:
/// IR the language does not produce (float `%`).
std::unique_ptr<Spec> loadRenamed(const std::string &text,
                                  const std::string &from,
                                  const std::string &to) {
  auto s = load(text);
  std::string ir;
  llvm::raw_string_ostream os(ir);
  s->module->print(os);
  size_t at = ir.find(from);
  EXPECT_NE(at, std::string::npos) << ir;
  if (at != std::string::npos)
    ir.replace(at, from.size(), to);
  s->module = parseSourceString<ModuleOp>(ir, &s->driver.context());
  EXPECT_TRUE(s->module) << s->errors << ir;
  return s;
}

/// A dense input: shape, data, and whether it is an int or bool tensor.
struct Input {
  std::vector<int64_t> shape;
  std::vector<double> data;
  bool isInt = false, isBool = false;
};

struct Problem {
  ProblemSizes sizes;
  std::vector<double> q, k, v, dout;
  std::map<std::string, Input> inputs;
  std::mt19937 rng;

  Problem(int64_t B, int64_t HQ, int64_t HKV, int64_t LQ, int64_t LK,
          int64_t D, int64_t DV, uint32_t seed)
      : rng(seed) {
    sizes.B = B, sizes.HQ = HQ, sizes.HKV = HKV, sizes.LQ = LQ, sizes.LK = LK,
    sizes.D = D, sizes.DV = DV;
    std::normal_distribution<double> n(0.0, 1.0);
    q.resize(B * HQ * LQ * D);
    k.resize(B * HKV * LK * D);
    v.resize(B * HKV * LK * DV);
    dout.resize(B * HQ * LQ * DV);
    for (auto *t : {&q, &k, &v, &dout})
      for (double &x : *t)
        x = n(rng);
  }
  /// A float input of `shape` with values uniform in [lo, hi].
  void addFloat(const std::string &name, std::vector<int64_t> shape,
                double lo, double hi) {
    Input in{shape, {}, false};
    int64_t count = 1;
    for (int64_t e : shape)
      count *= e;
    std::uniform_real_distribution<double> u(lo, hi);
    for (int64_t i = 0; i < count; ++i)
      in.data.push_back(u(rng));
    inputs[name] = std::move(in);
  }
  ReferenceProblem problem() const {
    ReferenceProblem p;
    p.sizes = sizes;
    p.q = q.data(), p.k = k.data(), p.v = v.data();
    p.inputs = [this](llvm::StringRef name, llvm::ArrayRef<int64_t> idx)
        -> std::optional<Scalar> {
      auto it = inputs.find(name.str());
      if (it == inputs.end() || idx.size() != it->second.shape.size())
        return std::nullopt;
      int64_t flat = 0;
      for (size_t d = 0; d < idx.size(); ++d) {
        if (idx[d] < 0 || idx[d] >= it->second.shape[d])
          return std::nullopt;
        flat = flat * it->second.shape[d] + idx[d];
      }
      double x = it->second.data[flat];
      if (it->second.isBool)
        return Scalar::ofBool(x != 0);
      return it->second.isInt ? Scalar::ofInt(int64_t(x)) : Scalar::ofFloat(x);
    };
    return p;
  }
  /// L = sum(dout * out) by the float64 forward.
  double loss(SpecOp spec) const {
    std::vector<double> out, lse;
    std::string err = referenceAttention(spec, problem(), out, lse);
    EXPECT_EQ(err, "");
    double l = 0;
    for (size_t i = 0; i < out.size(); ++i)
      l += dout[i] * out[i];
    return l;
  }
};

/// Relative Frobenius error of `grad` against central differences of the
/// loss in each element of `x` (perturbed in place and restored).
void expectMatchesDifferences(const char *what, SpecOp spec, Problem &p,
                              std::vector<double> &x,
                              const std::vector<double> &grad) {
  ASSERT_EQ(grad.size(), x.size()) << what;
  const double h = 1e-5;
  double diff = 0, norm = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    double saved = x[i];
    x[i] = saved + h;
    double plus = p.loss(spec);
    x[i] = saved - h;
    double minus = p.loss(spec);
    x[i] = saved;
    double fd = (plus - minus) / (2 * h);
    diff += (grad[i] - fd) * (grad[i] - fd);
    norm += fd * fd;
  }
  EXPECT_GT(norm, 1e-12) << what << ": the test needs a non-zero gradient";
  EXPECT_LE(std::sqrt(diff / norm), 1e-6) << what;
}

/// Checks dq, dk, dv and the gradient of every float input (which must be
/// exactly the `floatInputs`) against central differences.
void checkGradients(SpecOp spec, Problem &p,
                    std::vector<std::string> floatInputs) {
  ReferenceGradients g;
  ASSERT_EQ(referenceBackward(spec, p.problem(), p.dout.data(), g), "");
  expectMatchesDifferences("dq", spec, p, p.q, g.dq);
  expectMatchesDifferences("dk", spec, p, p.k, g.dk);
  expectMatchesDifferences("dv", spec, p, p.v, g.dv);
  std::vector<std::string> names;
  for (const auto &[name, grad] : g.dinputs)
    names.push_back(name);
  std::sort(floatInputs.begin(), floatInputs.end());
  EXPECT_EQ(names, floatInputs);
  for (const auto &[name, grad] : g.dinputs)
    expectMatchesDifferences(name.c_str(), spec, p, p.inputs[name].data,
                             grad);
}
void checkGradients(const std::string &text, Problem &p,
                    std::vector<std::string> floatInputs = {}) {
  auto s = load(text);
  ASSERT_TRUE(s->module);
  checkGradients(s->op(), p, std::move(floatInputs));
}

TEST(ReferenceBackward, SoftmaxGqaCrossWithFullyMaskedRows) {
  // Bottom-right causal shifted by 3: rows 0 and 1 keep nothing.
  Problem p(2, 4, 2, 5, 6, 3, 4, 1);
  checkGradients("attention a { mask = q + (LK - LQ) - 3 >= kv }", p);
  auto s = load("attention a { mask = q + (LK - LQ) - 3 >= kv }");
  ReferenceGradients g;
  ASSERT_EQ(referenceBackward(s->op(), p.problem(), p.dout.data(), g), "");
  for (int64_t row = 0; row < 2 * 4; ++row)
    for (int64_t q = 0; q < 2; ++q)
      for (int64_t d = 0; d < 3; ++d)
        EXPECT_EQ(g.dq[(row * 5 + q) * 3 + d], 0.0);
}

TEST(ReferenceBackward, SigmoidDefaultBias) {
  Problem p(1, 4, 2, 4, 7, 3, 2, 2);
  checkGradients("attention s { mask = q + 2 >= kv\n normalize = sigmoid }",
                 p);
}

TEST(ReferenceBackward, Softcap) {
  Problem p(1, 2, 1, 5, 5, 4, 3, 3);
  for (double &x : p.q)
    x *= 2; // logits where tanh bends
  checkGradients("attention c { param cap: float = 1.5\n"
                 "  score = cap * tanh(score / cap)\n mask = q >= kv }",
                 p);
}

TEST(ReferenceBackward, Alibi) {
  Problem p(2, 4, 2, 4, 6, 3, 5, 4);
  p.addFloat("slopes", {4}, 0.1, 0.9);
  checkGradients("attention al { input slopes: float[HQ]\n"
                 "  score = score - slopes[h] * float(q - kv) }",
                 p, {"slopes"});
}

TEST(ReferenceBackward, RelativeBiasTableGuardedByTheWindow) {
  // t[q - kv + LK - 1] is out of range where q - kv >= 4 (rows 4.. of
  // LQ = 10 against LK = 4, at kv = 0); the window mask guards the read,
  // and rows 6.. keep nothing.
  Problem p(1, 2, 2, 10, 4, 3, 3, 5);
  p.addFloat("t", {7}, -1, 1);
  checkGradients("attention rb { input t: float[7]\n"
                 "  score = score + t[q - kv + LK - 1]\n"
                 "  mask = q - kv <= 2 && kv - q <= 2 }",
                 p, {"t"});
}

TEST(ReferenceBackward, PerHeadScaleInput) {
  Problem p(1, 4, 1, 3, 5, 2, 3, 6);
  p.addFloat("hs", {4}, 0.3, 1.2);
  checkGradients("attention ps { input hs: float[HQ]\n"
                 "  scale = hs[h] / sqrt(float(D))\n mask = q + 2 >= kv }",
                 p, {"hs"});
}

TEST(ReferenceBackward, SigmoidBiasReadingAnInput) {
  Problem p(2, 2, 1, 4, 5, 3, 4, 7);
  p.addFloat("hb", {2, 5}, -1, 1);
  checkGradients("attention sb { input hb: float[HQ, LK]\n"
                 "  mask = kv != q\n"
                 "  normalize = sigmoid(bias = hb[h, kv] - 1.0) }",
                 p, {"hb"});
}

TEST(ReferenceBackward, EveryFunction) {
  // Points away from kinks: abs and the min/max/clamp switches see inputs
  // bounded away from their thresholds or random logits (none of which
  // lands within h of one for this seed).
  Problem p(1, 2, 2, 4, 5, 3, 3, 8);
  p.addFloat("w", {2}, 0.5, 1.5);
  p.addFloat("c", {5}, 0.5, 1.5);
  checkGradients(
      "attention every { input w: float[HQ]\n input c: float[LK]\n"
      "  score = (q + kv) % 2 == 0\n"
      "    ? pow(abs(c[kv]) + sigmoid(score), w[h]) + sin(score) * cos(c[kv])\n"
      "    : clamp(score, -1.0, 1.0) + max(c[kv], score) * 0.5\n"
      "      + min(log(abs(score) + 2.0), c[kv] + 0.3)\n"
      "      + sqrt(exp(c[kv]) + 1.0) + score / (c[kv] + 1.0)\n"
      "      + floor(float(q) / 2.0) }",
      p, {"c", "w"});
}

TEST(ReferenceBackward, IntAndMaskOnlyInputsGetNoGradient) {
  Problem p(1, 2, 1, 3, 4, 2, 2, 9);
  p.addFloat("w", {4}, -1, 1);
  p.inputs["pos"] = {{4}, {3, 1, 0, 2}, true};
  p.addFloat("thr", {3}, -1, 1);
  checkGradients("attention ints { input pos: int[LK]\n input w: float[LK]\n"
                 "  input thr: float[LQ]\n"
                 "  score = score + w[kv] * float(pos[kv])\n"
                 "  mask = thr[q] < 0.9 || kv == 0 }",
                 p, {"w"});
}

/// rowBranchMargin: the gap to the nearest tie of a branch on differentiated
/// values (here max(score, w)), relative to max(1, operands); +inf without
/// such a branch.
TEST(ReferenceBackward, RowBranchMargin) {
  Problem p(1, 1, 1, 2, 2, 1, 1, 3);
  p.q = {1, 2}, p.k = {0.5, 3};          // scores (scale 1): {0.5, 3}, {1, 6}
  p.inputs["w"] = {{2}, {0.5 + 1e-9, 10}};
  auto s = load("attention kinks { input w: float[LK]\n"
                "  score = max(score, w[kv]) }");
  ASSERT_TRUE(s);
  ReferenceGradients g;
  ASSERT_EQ(referenceBackward(s->op(), p.problem(), p.dout.data(), g), "");
  ASSERT_EQ(g.rowBranchMargin.size(), 2u);
  EXPECT_NEAR(g.rowBranchMargin[0], 1e-9, 1e-12);
  EXPECT_NEAR(g.rowBranchMargin[1], 0.4, 1e-12); // |6 - 10| / 10
  auto smooth = load("attention smooth { score = score * 2.0 }");
  ASSERT_TRUE(smooth);
  ASSERT_EQ(referenceBackward(smooth->op(), p.problem(), p.dout.data(), g), "");
  EXPECT_TRUE(std::isinf(g.rowBranchMargin[0]) && std::isinf(g.rowBranchMargin[1]));
}

/// Random inputs of `spec`'s declared shapes (ints small and sorted, as
/// document ids and windows) into `p`; the float ones' names in `floats`.
void addSpecInputs(SpecOp spec, const int64_t *sizes, Problem &p,
                   std::vector<std::string> &floats) {
  ArrayAttr decls = spec.getInputsAttr();
  for (Attribute a : decls ? decls.getValue() : ArrayRef<Attribute>()) {
    auto decl = cast<InputAttr>(a);
    Input in;
    int64_t count = 1;
    for (Attribute dim : decl.getShape()) {
      if (auto literal = dyn_cast<IntegerAttr>(dim)) { // float[HQ, 32]
        in.shape.push_back(literal.getInt());
        count *= in.shape.back();
        continue;
      }
      auto name = dyn_cast<StringAttr>(dim);
      auto size = name ? symbolizeSizeVar(name.getValue()) : std::nullopt;
      ASSERT_TRUE(size) << "a dimension that is not a size name or a number";
      in.shape.push_back(sizes[static_cast<int>(*size)]);
      count *= in.shape.back();
    }
    std::uniform_real_distribution<double> u(-1, 1);
    std::uniform_int_distribution<int> small(0, 3);
    in.isInt = decl.getElementType().isInteger(64);
    in.isBool = decl.getElementType().isInteger(1);
    for (int64_t i = 0; i < count; ++i)
      in.data.push_back(in.isInt    ? small(p.rng)
                        : in.isBool ? small(p.rng) % 2
                                    : u(p.rng));
    if (decl.getElementType().isInteger(64))
      std::sort(in.data.begin(), in.data.end());
    if (decl.getElementType().isF32())
      floats.push_back(decl.getName().str());
    p.inputs[decl.getName().str()] = std::move(in);
  }
}

/// Every example and shared spec, on random data. Random ids or windows
/// can leave every row at most one key (dq = 0 then, and the check is
/// void), so each block takes the first of a few seeds whose dq is not 0.
TEST(ReferenceBackward, EverySpecFile) {
  std::vector<std::string> files;
  for (const char *dir : {ATTNC_EXAMPLES_DIR, ATTNC_SHARED_SPECS_DIR}) {
    std::error_code ec;
    for (const auto &entry : std::filesystem::directory_iterator(dir, ec))
      if (entry.path().extension() == ".attn")
        files.push_back(entry.path().string());
  }
  ASSERT_GE(files.size(), 10u);
  std::sort(files.begin(), files.end());
  uint32_t seed = 100;
  for (const std::string &file : files) {
    SCOPED_TRACE(file);
    int64_t sizes[] = {1, 4, 2, 6, 7, 3, 2}; // B HQ HKV LQ LK D DV
    attnc::FrontendOptions options;
    if (llvm::StringRef(file).ends_with("/natten2d.attn")) {
      // A 3 x 3 grid, so that the 3 x 3 neighbourhoods keep some keys.
      options.defines = {{"width", "3"}, {"kernel", "3"}};
      sizes[3] = sizes[4] = 9;
    }
    Spec s;
    s.module = s.driver.loadSpecFile(file, options);
    ASSERT_TRUE(s.module) << s.errors;
    ASSERT_TRUE(succeeded(s.driver.runSpecPipeline(*s.module)));
    for (SpecOp spec : s.module->getOps<SpecOp>()) {
      for (int attempt = 0; attempt < 8; ++attempt) {
        Problem p(sizes[0], sizes[1], sizes[2], sizes[3], sizes[4], sizes[5],
                  sizes[6], ++seed);
        std::vector<std::string> floats;
        addSpecInputs(spec, sizes, p, floats);
        ReferenceGradients g;
        ASSERT_EQ(referenceBackward(spec, p.problem(), p.dout.data(), g), "");
        if (attempt < 7 &&
            llvm::all_of(g.dq, [](double x) { return std::abs(x) < 1e-9; }))
          continue;
        SCOPED_TRACE("seed " + std::to_string(seed));
        checkGradients(spec, p, floats);
        break;
      }
    }
  }
}

TEST(ReferenceBackward, NanRowsGiveNanGradients) {
  // Key 1's score is NaN: rows 1.. (which keep it) are NaN in the forward
  // and in dq; row 0 keeps key 0 alone, so its dq is exactly 0.
  auto s = load("attention n { score = kv == 1 ? log(score - 100.0) : score\n"
                "  mask = q >= kv }");
  Problem p(1, 1, 1, 3, 3, 2, 2, 12);
  ReferenceGradients g;
  ASSERT_EQ(referenceBackward(s->op(), p.problem(), p.dout.data(), g), "");
  for (int64_t q = 0; q < 3; ++q)
    for (int64_t d = 0; d < 2; ++d) {
      if (q == 0)
        EXPECT_EQ(g.dq[q * 2 + d], 0.0);
      else
        EXPECT_TRUE(std::isnan(g.dq[q * 2 + d])) << q;
    }
}

TEST(ReferenceBackward, InputShapedByAParam) {
  // t[kv % n]: each element is read by two keys; their partials add up.
  Problem p(1, 2, 1, 3, 7, 2, 2, 13);
  p.addFloat("t", {4}, -1, 1);
  checkGradients("attention pn { param n: int = 4\n input t: float[n]\n"
                 "  score = score * t[kv % n] }",
                 p, {"t"});
}

TEST(ReferenceBackward, UnboundDimensionIsAnError) {
  // (The front end refuses an unbound param; IR may have one.)
  auto s = loadRenamed("attention ub { param n: int = 4\n input t: float[n]\n"
                       "  score = score + t[0] }",
                       "i64 = 4", "i64");
  ASSERT_TRUE(s->module);
  Problem p(1, 1, 1, 2, 2, 2, 2, 14);
  ReferenceGradients g;
  EXPECT_EQ(referenceBackward(s->op(), p.problem(), p.dout.data(), g),
            "input 't' has a dimension without a value");
}

TEST(ReferenceBackward, OutOfRangeReadIsAnError) {
  auto s = load("attention bad { input t: float[3]\n score = score + t[kv] }");
  Problem p(1, 1, 1, 2, 5, 2, 2, 10);
  p.addFloat("t", {3}, -1, 1);
  ReferenceGradients g;
  EXPECT_EQ(referenceBackward(s->op(), p.problem(), p.dout.data(), g),
            "cannot read input 't' at index [3]");
}

//===----------------------------------------------------------------------===//
// The dual interpreter's rules on single elements.
//===----------------------------------------------------------------------===//

struct Dual {
  std::unique_ptr<Spec> spec;
  Problem p{1, 1, 1, 8, 8, 2, 2, 11};
  std::unique_ptr<SpecInterpreter> interp;
  explicit Dual(const std::string &text,
                std::map<std::string, Input> inputs = {}) {
    init(load(text), std::move(inputs));
  }
  explicit Dual(std::unique_ptr<Spec> s) { init(std::move(s), {}); }
  void init(std::unique_ptr<Spec> s, std::map<std::string, Input> inputs) {
    spec = std::move(s);
    p.inputs = std::move(inputs);
    interp = std::make_unique<SpecInterpreter>(spec->op(), p.sizes,
                                               p.problem().inputs);
  }
  /// dz/ds at score s (element q = 0, kv), checking that the dual value is
  /// the plain one.
  double dScore(double s, int64_t kv = 0, Partials *out = nullptr) {
    Partials partials;
    std::optional<double> z = interp->scoreDual({0, kv}, s, partials);
    EXPECT_TRUE(z) << interp->error();
    std::optional<double> plain = interp->score({0, kv}, s);
    if (z && plain)
      EXPECT_EQ(*z, *plain);
    if (out)
      *out = partials;
    return partials.dScore;
  }
};

TEST(SpecInterpreterDual, TiesGoToTheFirstOperand) {
  // (Of the IR op: canonicalisation moves a constant operand second.)
  EXPECT_EQ(Dual("attention m { score = min(score, 2.0 * score - 1.0) }")
                .dScore(1.0), 1);
  EXPECT_EQ(Dual("attention m { score = min(2.0 * score - 1.0, score) }")
                .dScore(1.0), 2);
  EXPECT_EQ(Dual("attention m { score = max(score, 2.0 * score - 1.0) }")
                .dScore(1.0), 1);
  EXPECT_EQ(Dual("attention m { score = max(2.0 * score - 1.0, score) }")
                .dScore(1.0), 2);
  EXPECT_EQ(Dual("attention m { score = max(score, 1.0) }").dScore(1.0), 1);
  // clamp(x, lo, hi) = min(max(x, lo), hi): x wins both ties.
  EXPECT_EQ(Dual("attention m { score = clamp(score, -1.0, 1.0) }")
                .dScore(-1.0), 1);
  EXPECT_EQ(Dual("attention m { score = clamp(score, -1.0, 1.0) }")
                .dScore(1.0), 1);
  EXPECT_EQ(Dual("attention m { score = clamp(score, -1.0, 1.0) }")
                .dScore(2.0), 0);
  EXPECT_EQ(Dual("attention m { score = abs(score) }").dScore(0.0), 0);
  EXPECT_EQ(Dual("attention m { score = abs(score) }").dScore(-2.0), -1);
}

TEST(SpecInterpreterDual, PowAndRemainder) {
  // d/dy x^y at x = 0, y >= 0 is 0 (as PyTorch, and attn-derive-backward);
  // elsewhere x^y ln x. d/dx x^y at y = 0 is 0 (not 0 * x^-1, NaN at 0).
  EXPECT_EQ(Dual("attention p { score = pow(0.0, score) }").dScore(0.5), 0);
  EXPECT_EQ(Dual("attention p { score = pow(0.0, score) }").dScore(0), 0);
  EXPECT_EQ(Dual("attention p { score = pow(score, 0.0) }").dScore(0), 0);
  EXPECT_DOUBLE_EQ(Dual("attention p { score = pow(2.0, score) }").dScore(3),
                   8 * std::log(2.0));
  EXPECT_DOUBLE_EQ(Dual("attention p { score = pow(score, 3.0) }").dScore(2),
                   12);
  EXPECT_EQ(Dual("attention p { score = pow(score, 2.0) }").dScore(0), 0);
  // Float remainder (arith.remf, not written by the language's front end):
  // fmod(5, s) = 5 - trunc(5 / s) s.
  EXPECT_EQ(Dual(loadRenamed("attention r { score = 5.0 - score }",
                             "arith.subf", "arith.remf"))
                .dScore(2.0), -2);
  EXPECT_EQ(Dual(loadRenamed("attention r { score = score - 0.7 }",
                             "arith.subf", "arith.remf"))
                .dScore(2.0), 1);
  EXPECT_EQ(Dual("attention f { score = floor(score) + ceil(score) }")
                .dScore(1.5), 0);
}

TEST(SpecInterpreterDual, EvaluationRuleAndRepeatedReads) {
  std::map<std::string, Input> in;
  in["t"] = {{3}, {3.0, 4.0, 5.0}, false};
  Dual guarded("attention g { input t: float[3]\n"
               "  score = kv < 3 ? t[kv] * score : score }",
               in);
  Partials partials;
  // kv = 5: the unchosen arm's out-of-range read neither fails nor counts.
  EXPECT_EQ(guarded.dScore(2.0, 5, &partials), 1);
  EXPECT_TRUE(partials.reads.empty());
  EXPECT_EQ(guarded.dScore(2.0, 1, &partials), 4);
  ASSERT_EQ(partials.reads.size(), 1u);
  EXPECT_EQ(partials.reads[0].input.str(), "t");
  EXPECT_EQ(std::vector<int64_t>(partials.reads[0].indices.begin(),
                                 partials.reads[0].indices.end()),
            std::vector<int64_t>({1}));
  EXPECT_EQ(partials.reads[0].d, 2.0);

  // The same element read three times: one entry, the partials summed.
  Dual twice("attention r { input t: float[3]\n"
             "  score = t[kv] * t[kv] + score * t[kv + 0] }",
             in);
  EXPECT_EQ(twice.dScore(7.0, 2, &partials), 5);
  ASSERT_EQ(partials.reads.size(), 1u);
  EXPECT_EQ(partials.reads[0].d, 2 * 5.0 + 7.0);

  // A failing read on the path still fails, as in plain mode.
  Partials unused;
  EXPECT_FALSE(twice.interp->scoreDual({0, 3}, 1.0, unused));
  EXPECT_EQ(twice.interp->error(), "cannot read input 't' at index [3]");
}

TEST(SpecInterpreterDual, ScaleAndBiasInputs) {
  std::map<std::string, Input> in;
  in["hs"] = {{1}, {0.25}, false};
  Dual d("attention sc { input hs: float[HQ]\n scale = hs[h] * hs[h]\n"
         "  normalize = sigmoid(bias = exp(hs[h])) }",
         in);
  Partials partials;
  std::optional<double> scale = d.interp->scaleDual({0, 0}, partials);
  ASSERT_TRUE(scale);
  EXPECT_EQ(*scale, 0.0625);
  EXPECT_EQ(partials.dScore, 0);
  ASSERT_EQ(partials.reads.size(), 1u);
  EXPECT_EQ(partials.reads[0].d, 0.5);
  std::optional<double> bias = d.interp->biasDual({0, 0}, partials);
  ASSERT_TRUE(bias);
  ASSERT_EQ(partials.reads.size(), 1u);
  EXPECT_DOUBLE_EQ(partials.reads[0].d, std::exp(0.25));
}

} // namespace
