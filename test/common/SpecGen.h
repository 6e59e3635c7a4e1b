//===- SpecGen.h - Random well-formed .attn specs for tests -----*- C++ -*-===//
//
// Generates attention blocks that always compile: int and float expressions
// over every coordinate and size, params, float inputs read at in-range
// indices (t[h], u[kv]), floor division and modulo, abs/min/max/clamp/sign,
// bitwise & | ^ and shifts by constants,
// ternaries, && || !, conversions and continuous float functions. Float
// operations with jumps (floor, ceil, round, sign, int()) are left out of float
// expressions so that float32 and float64 evaluation cannot land on
// different sides of a jump, and int divisors are never 0. Lets and named
// masks (used by the later expressions, the masks composed with && || !),
// a softmax sink (no kv, no score) and dropout are drawn too. A grid mask
// (2-D neighbourhood style, coordinates q / W, q % W, kv / W, kv % W) is
// generated for a width W > 0.
//
// Every choice is one call of a Pick function, so the same generator serves
// the random differential test (test/api/RandomSpecTest.cpp, a seeded
// std::mt19937) and the structure-aware fuzzer (test/fuzz/SpecFuzzer.cpp,
// choices read from the fuzzer's bytes).
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TEST_COMMON_SPECGEN_H
#define ATTNC_TEST_COMMON_SPECGEN_H

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <utility>

namespace attnc::testgen {

class SpecGen {
public:
  /// Returns a value in [lo, hi] (lo <= hi).
  using Pick = std::function<int(int lo, int hi)>;

  /// What the block contains besides params, a scale and a mask.
  struct Options {
    bool sigmoid = false; // normalize = sigmoid(bias = ...), else softmax
    int gridWidth = 0;    // > 0: a grid mask over that many columns
    bool score = true;    // a `score = ...` clause
    bool inputT = true;   // `input t: float[HQ]`, read as t[h]
    bool inputU = false;  // `input u: float[LK]`, read as u[kv]
    bool sink = false;    // softmax: a `softmax(sink = ...)` half the time
    bool lets = false;    // lets l0 (int), l1 (float) and masks m0, m1,
                          // used by the other expressions and composed
    bool dropout = false; // softmax: `dropout = 0.N` a quarter of the time
  };

  /// Choices from a std::mt19937 seeded with `seed`.
  explicit SpecGen(uint32_t seed) {
    auto rng = std::make_shared<std::mt19937>(seed);
    pickFn = [rng](int lo, int hi) {
      return std::uniform_int_distribution<int>(lo, hi)(*rng);
    };
  }
  /// Choices from `pick`.
  explicit SpecGen(Pick pick) : pickFn(std::move(pick)) {}

  /// gridWidth > 0: a grid mask over that many columns.
  std::string spec(bool sigmoid, int gridWidth = 0) {
    Options o;
    o.sigmoid = sigmoid;
    o.gridWidth = gridWidth;
    o.sink = !sigmoid;
    o.dropout = !sigmoid;
    o.lets = gridWidth == 0; // a grid mask keeps its written-out form
    return spec(o);
  }

  std::string spec(const Options &o) {
    grid = o.gridWidth;
    inputT = o.inputT;
    inputU = o.inputU;
    intLet = floatLet = false;
    std::string lets;
    if (o.lets) {
      lets += "  let l0 = " + intExpr(2) + "\n";
      intLet = true;
      lets += "  let l1 = " + floatExpr(2, false) + "\n";
      floatLet = true;
      lets += "  mask m0 = " + boolExpr(2) + "\n";
      lets += "  mask m1 = " + boolExpr(1) + "\n";
    }
    std::string mask = boolExpr(3);
    if (o.lets)
      switch (pick(0, 3)) { // compose the named masks
      case 0: mask = "m0 && " + boolExpr(2); break;
      case 1: mask = "(m0 || m1) && " + boolExpr(1); break;
      case 2: mask = "(" + boolExpr(2) + " || m1) && !m0"; break;
      default: break;
      }
    if (grid)
      mask = "(" + boolExpr(2) + " || " + boolExpr(1) + ") && abs(kv % " + std::to_string(grid) +
             " - q % " + std::to_string(grid) + ") <= " + std::to_string(pick(0, 5));
    std::ostringstream os;
    os << "attention rnd {\n"
       << "  param p: int = " << pick(1, 9) << "\n"
       << "  param f: float = " << pick(1, 4) << ".5\n";
    if (inputT)
      os << "  input t: float[HQ]\n";
    if (inputU)
      os << "  input u: float[LK]\n";
    os << lets;
    os << "  scale = " << (coin() ? "1 / sqrt(float(D))" : "0.5 / sqrt(float(D)) + 0.01") << "\n";
    if (o.score)
      os << "  score = " << floatExpr(3, true) << "\n";
    os << "  mask = " << mask << "\n";
    if (o.sigmoid)
      os << "  normalize = sigmoid(bias = " << floatExpr(2, false) << ")\n";
    else
      os << softmaxArguments(o);
    os << "}\n";
    return os.str();
  }

private:
  int pick(int lo, int hi) { return pickFn(lo, hi); }
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
      if (intLet && pick(0, 4) == 0)
        return "l0";
      return coin() ? leaves[pick(0, 8)] : std::to_string(pick(-5, 40));
    }
    std::string a = intExpr(depth - 1), b = intExpr(depth - 1);
    switch (pick(0, 11)) {
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
    case 9:
      switch (pick(0, 4)) {
      case 0: return "(" + a + " & " + b + ")";
      case 1: return "(" + a + " | " + std::to_string(pick(0, 15)) + ")";
      case 2: return "(" + a + " ^ " + b + ")";
      case 3: return "(" + a + " >> " + std::to_string(pick(0, 5)) + ")";
      default: return "(" + a + " << " + std::to_string(pick(0, 3)) + ")";
      }
    case 10: return "sign(" + a + ")";
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

  /// A float leaf: the score, a param, a scaled int, an input read or a
  /// constant.
  std::string floatLeaf(bool withScore) {
    if (floatLet && pick(0, 5) == 0)
      return "l1";
    switch (pick(0, 4)) {
    case 0: return withScore ? "score" : "f";
    case 1: return "float(" + intExpr(1) + ") / 50.0";
    case 2: return inputT ? "t[h]" : "f";
    case 3: return inputU ? "u[kv]" : "0.75";
    default: return std::to_string(pick(-20, 20)) + ".25";
    }
  }

  /// Bounded float expressions (no overflow, no jumps).
  std::string floatExpr(int depth, bool withScore) {
    if (depth == 0 || pick(0, 3) == 0)
      return floatLeaf(withScore);
    std::string a = floatExpr(depth - 1, withScore), b = floatExpr(depth - 1, withScore);
    switch (pick(0, 14)) {
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
    case 12: return "exp2(-abs(" + a + "))";
    case 13: return "log2(abs(" + a + ") + 1.0)";
    default: return "(" + boolExpr(1) + " ? " + a + " : " + b + ")";
    }
  }

  /// `normalize = softmax(...)` with a sink half the time (o.sink) and
  /// dropout a quarter of the time (o.dropout), or nothing.
  std::string softmaxArguments(const Options &o) {
    std::string args;
    if (o.sink && coin())
      args = "sink = " + sinkExpr(2);
    if (o.dropout && pick(0, 3) == 0)
      args += (args.empty() ? "" : ", ") + std::string("dropout = 0.") +
              std::to_string(pick(1, 6));
    return args.empty() ? "" : "  normalize = softmax(" + args + ")\n";
  }

  /// A sink: one float per row, so no kv and no score.
  std::string sinkExpr(int depth) {
    if (depth == 0 || pick(0, 2) == 0) {
      switch (pick(0, 4)) {
      case 0: return inputT ? "t[h]" : "f";
      case 1: return "f";
      case 2: return "float(h)";
      case 3: return "float(q % " + std::to_string(pick(2, 9)) + ")";
      default: return "0.25 * float(b + hkv)";
      }
    }
    std::string a = sinkExpr(depth - 1), b = sinkExpr(depth - 1);
    switch (pick(0, 3)) {
    case 0: return "(" + a + " + " + b + ")";
    case 1: return "(" + a + " * 0.5 - 1.0)";
    case 2: return "tanh(" + a + ")";
    default: return "(q % 3 == 0 ? " + a + " : " + b + ")";
    }
  }

  Pick pickFn;
  bool intLet = false, floatLet = false; // l0 / l1 are defined
  int grid = 0;
  bool inputT = true, inputU = false;
};

} // namespace attnc::testgen

#endif // ATTNC_TEST_COMMON_SPECGEN_H
