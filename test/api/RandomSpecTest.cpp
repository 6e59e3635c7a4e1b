//===- RandomSpecTest.cpp - Random specs: kernels against the reference ---===//
//
// Differential testing of the whole CPU pipeline on specs nobody wrote by
// hand: each case generates a random attention block (int and float
// expressions over every coordinate and size, params, an input, floor
// division and modulo, abs/min/max/clamp, ternaries, && || !, conversions,
// continuous float functions), compiles it, runs it on a random odd shape
// and compares with the float64 reference. Float operations with jumps
// (floor, ceil, int()) are left out of float expressions so that float32
// and float64 evaluation cannot land on different sides of a jump, and int
// divisors are never 0. Every fifth case is a grid mask (2-D
// neighbourhood style, coordinates q / W, q % W, kv / W, kv % W for a W
// that attn-tile's grid tiling takes), on lengths that make patch tasks.
// The seed is fresh per run and printed on failure.
//
//===----------------------------------------------------------------------===//
#include "attnc/Compiler.h"
#include "attnc/Driver.h"
#include "attnc/Passes/MaskAnalysis.h"
#include "attnc/Reference/ReferenceAttention.h"

#include "llvm/Support/raw_ostream.h"
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <sstream>

using namespace attnc;
using runtime::Tensor;

namespace {

class SpecGen {
public:
  explicit SpecGen(uint32_t seed) : rng(seed) {}

  /// gridWidth > 0: a grid mask over that many columns.
  std::string spec(bool sigmoid, int gridWidth = 0) {
    grid = gridWidth;
    std::string mask = boolExpr(3);
    if (grid)
      mask = "(" + boolExpr(2) + " || " + boolExpr(1) + ") && abs(kv % " + std::to_string(grid) +
             " - q % " + std::to_string(grid) + ") <= " + std::to_string(pick(0, 5));
    std::ostringstream os;
    os << "attention rnd {\n"
       << "  param p: int = " << pick(1, 9) << "\n"
       << "  param f: float = " << pick(1, 4) << ".5\n"
       << "  input t: float[HQ]\n"
       << "  scale = " << (coin() ? "1 / sqrt(float(D))" : "0.5 / sqrt(float(D)) + 0.01") << "\n"
       << "  score = " << floatExpr(3, true) << "\n"
       << "  mask = " << mask << "\n";
    if (sigmoid)
      os << "  normalize = sigmoid(bias = " << floatExpr(2, false) << ")\n";
    os << "}\n";
    return os.str();
  }

private:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
  bool coin() { return pick(0, 1); }

  std::string intExpr(int depth) {
    static const char *leaves[] = {"q", "kv", "h", "b", "hkv", "p", "LQ", "LK", "HQ"};
    if (depth == 0 || pick(0, 3) == 0) {
      if (grid && pick(0, 2) != 0) {
        std::string w = std::to_string(grid);
        switch (pick(0, 3)) {
        case 0: return "(q / " + w + ")";
        case 1: return "(q % " + w + ")";
        case 2: return "(kv / " + w + ")";
        default: return "(kv % " + w + ")";
        }
      }
      return coin() ? leaves[pick(0, 8)] : std::to_string(pick(-5, 40));
    }
    std::string a = intExpr(depth - 1), b = intExpr(depth - 1);
    switch (pick(0, 9)) {
    case 0: return "(" + a + " + " + b + ")";
    case 1: return "(" + a + " - " + b + ")";
    case 2: return "(" + a + " * " + std::to_string(pick(-3, 3)) + ")";
    case 3: return "(" + a + " / " + std::to_string(pick(1, 7)) + ")";
    case 4: return "(" + a + " % " + std::to_string(pick(1, 9)) + ")";
    case 5: return "(" + a + " / (abs(" + b + ") + 1))";
    case 6: return "abs(" + a + ")";
    case 7: return (coin() ? "min(" : "max(") + a + ", " + b + ")";
    case 8: return "clamp(" + a + ", " + std::to_string(pick(-10, 0)) + ", " +
                   std::to_string(pick(1, 60)) + ")";
    default: return "(" + boolExpr(depth - 1) + " ? " + a + " : " + b + ")";
    }
  }

  std::string boolExpr(int depth) {
    static const char *cmps[] = {"<", "<=", ">", ">=", "==", "!="};
    if (depth == 0 || pick(0, 2) == 0)
      return "(" + intExpr(1) + " " + cmps[pick(0, 5)] + " " + intExpr(1) + ")";
    switch (pick(0, 2)) {
    case 0: return "(" + boolExpr(depth - 1) + " && " + boolExpr(depth - 1) + ")";
    case 1: return "(" + boolExpr(depth - 1) + " || " + boolExpr(depth - 1) + ")";
    default: return "!" + boolExpr(depth - 1);
    }
  }

  /// Bounded float expressions (no overflow, no jumps).
  std::string floatExpr(int depth, bool withScore) {
    if (depth == 0 || pick(0, 3) == 0) {
      switch (pick(0, 3)) {
      case 0: return withScore ? "score" : "f";
      case 1: return "float(" + intExpr(1) + ") / 50.0";
      case 2: return "t[h]";
      default: return std::to_string(pick(-20, 20)) + ".25";
      }
    }
    std::string a = floatExpr(depth - 1, withScore), b = floatExpr(depth - 1, withScore);
    switch (pick(0, 12)) {
    case 0: return "(" + a + " + " + b + ")";
    case 1: return "(" + a + " - " + b + ")";
    case 2: return "(" + a + " * 0.5)";
    case 3: return "tanh(" + a + ")";
    case 4: return "sigmoid(" + a + ")";
    case 5: return "sin(" + a + ")";
    case 6: return "cos(" + a + ")";
    case 7: return "sqrt(abs(" + a + ") + 1.0)";
    case 8: return "log(abs(" + a + ") + 1.0)";
    case 9: return "exp(-abs(" + a + "))";
    case 10: return "pow(abs(" + a + ") + 1.0, 0.5)";
    case 11: return (coin() ? "min(" : "max(") + a + ", " + b + ")";
    default: return "(" + boolExpr(1) + " ? " + a + " : " + b + ")";
    }
  }

  std::mt19937 rng;
  int grid = 0;
};

TEST(RandomSpecs, KernelsMatchReference) {
  uint32_t seed = std::random_device{}();
  std::mt19937 rng(seed);
  SpecGen gen(seed);
  Compiler compiler;
  const int kCases = 40;
  for (int c = 0; c < kCases; ++c) {
    bool sigmoid = c % 4 == 3;
    static const int kWidths[] = {16, 24, 32};
    int gridWidth = c % 5 == 4 ? kWidths[c % 3] : 0;
    std::string text = gen.spec(sigmoid, gridWidth);
    SCOPED_TRACE("seed " + std::to_string(seed) + ", case " + std::to_string(c) +
                 ":\n" + text);
    std::string errors;
    llvm::raw_string_ostream es(errors);
    Driver driver(es);
    auto module = driver.loadSpecText("rnd.attn", text, {});
    ASSERT_TRUE(module) << errors;
    ASSERT_TRUE(succeeded(driver.runSpecPipeline(*module))) << errors;
    auto spec = *module->getOps<mlir::attn::SpecOp>().begin();
    if (gridWidth && spec.getMaskScheduleAttr().getKind() != mlir::attn::MaskKind::never)
      ASSERT_TRUE(mlir::attn::getGridMask(spec).has_value()) << "no grid view";

    CompileOptions opts;
    opts.dtype = c % 3 == 2 ? runtime::DType::BF16 : runtime::DType::F32;
    auto kernel = compiler.compile(text, opts, "rnd.attn");
    ASSERT_TRUE(kernel.ok()) << kernel.status().message();

    // Grid cases need complete bands of 8 grid rows (TQ = 64) for patches.
    std::uniform_int_distribution<int> len(gridWidth ? 8 * gridWidth : 1,
                                           gridWidth ? 12 * gridWidth : 150),
        dim(1, 40);
    int64_t B = 1 + c % 2, HKV = 1 + c % 2, HQ = HKV * (1 + c % 3);
    int64_t LQ = len(rng), LK = len(rng), D = dim(rng), DV = dim(rng);
    std::uniform_real_distribution<double> u(-1, 1);
    auto make = [&](std::vector<int64_t> shape, std::vector<double> &vals) {
      Tensor t = Tensor::zeros(opts.dtype, shape).value();
      vals.resize(t.numel());
      for (int64_t i = 0; i < t.numel(); ++i) {
        t.setFromDouble(i, u(rng));
        vals[i] = t.getAsDouble(i);
      }
      return t;
    };
    std::vector<double> qv, kv, vv, tv(HQ);
    Tensor q = make({B, HQ, LQ, D}, qv), k = make({B, HKV, LK, D}, kv),
           v = make({B, HKV, LK, DV}, vv);
    Tensor tIn = Tensor::zeros(runtime::DType::F32, {HQ}).value();
    for (int64_t i = 0; i < HQ; ++i) {
      tIn.setFromDouble(i, u(rng));
      tv[i] = tIn.getAsDouble(i);
    }
    Tensor out = Tensor::zeros(opts.dtype, {B, HQ, LQ, DV}).value();
    for (int64_t i = 0; i < out.numel(); ++i)
      out.setFromDouble(i, NAN);
    ForwardOptions fo;
    fo.inputs = {{"t", tIn.view()}};
    Status st = kernel->forward(q.view(), k.view(), v.view(), out.view(), fo);
    ASSERT_TRUE(st.ok()) << st.message();

    mlir::attn::ReferenceProblem p;
    p.sizes.B = B, p.sizes.HQ = HQ, p.sizes.HKV = HKV, p.sizes.LQ = LQ,
    p.sizes.LK = LK, p.sizes.D = D, p.sizes.DV = DV;
    p.q = qv.data(), p.k = kv.data(), p.v = vv.data();
    p.inputs = [&](llvm::StringRef, llvm::ArrayRef<int64_t> idx)
        -> std::optional<mlir::attn::Scalar> {
      if (idx[0] < 0 || idx[0] >= HQ)
        return std::nullopt;
      return mlir::attn::Scalar::ofFloat(tv[idx[0]]);
    };
    std::vector<double> refOut, refLse;
    ASSERT_EQ(mlir::attn::referenceAttention(spec, p, refOut, refLse), "");
    double num = 0, den = 0;
    for (int64_t i = 0; i < out.numel(); ++i) {
      double o = out.getAsDouble(i);
      ASSERT_FALSE(std::isnan(o)) << "element " << i;
      num += (o - refOut[i]) * (o - refOut[i]);
      den += refOut[i] * refOut[i];
    }
    double tol = opts.dtype == runtime::DType::F32 ? 1e-5 : 1e-2;
    if (den == 0)
      EXPECT_EQ(num, 0);
    else
      EXPECT_LT(std::sqrt(num / den), tol);
  }
}

} // namespace
