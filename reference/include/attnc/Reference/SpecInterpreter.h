//===- SpecInterpreter.h - Evaluate spec regions on the host ----*- C++ -*-===//
//
// A small interpreter of the spec-level regions for one element. It is the
// ground truth that tests compare the mask analysis and the generated
// kernels against (through ReferenceAttention.h), and what `attnc show
// --png` draws. Ints are int64 with the language's floor division/modulo;
// floats are evaluated in double. Regions are translated once, at
// construction, into flat register code. It follows the language's
// evaluation rule: only the chosen arm of `c ? a : b` and the deciding
// operands of `&&` / `||` can make a region fail.
//
// A second, dual mode (scaleDual, scoreDual, biasDual, sinkDual) evaluates the same
// code with forward-mode dual numbers: besides the value it returns the
// partial derivatives with respect to the scaled logit `score` and to every
// float input element the value depends on. It is the backward reference's
// (ReferenceBackward.h) way of differentiating a region, independent of the
// compiler's symbolic reverse mode. Only the primal regions (scale, score,
// mask, bias, sink) are read; the gradient regions a spec may carry are ignored.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_REFERENCE_SPECINTERPRETER_H
#define ATTNC_REFERENCE_SPECINTERPRETER_H

#include "attnc/Dialect/AttnDialect.h"
#include "attnc/Passes/MaskSchedule.h"

#include "llvm/ADT/SmallVector.h"

#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlir::attn {

/// A scalar of the language: i64, f32 (held as double) or i1.
struct Scalar {
  enum Kind { Int, Float, Bool } kind = Int;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  static Scalar ofInt(int64_t v) { return {Int, v, 0, false}; }
  static Scalar ofFloat(double v) { return {Float, 0, v, false}; }
  static Scalar ofBool(bool v) { return {Bool, 0, 0, v}; }
};

/// Reads element `indices` of input `name`; returns std::nullopt when the
/// index is out of range (the interpreter then reports an error).
using InputReader = std::function<std::optional<Scalar>(
    llvm::StringRef name, llvm::ArrayRef<int64_t> indices)>;

/// The partial derivatives of one dual evaluation (SpecInterpreter::
/// scoreDual and friends). Derivative rules: exp, log, sqrt, tanh, sin,
/// cos, `/` (quotient rule) and float `%` (fmod: 1 in a, -trunc(a/b) in b)
/// as in calculus; pow(x, y): y x^(y-1) in x and x^y ln x in y, except 0 in
/// y where x == 0 and y > 0; abs: sign(x), 0 at 0; min/max (and clamp,
/// which is min(max(x, lo), hi)): the selected operand's, the FIRST operand
/// on a tie; c ? a : b: the chosen arm's; floor, ceil, int and bool values
/// and conversions from them: 0 (sigmoid is 1 / (1 + exp(-x)) in the IR).
struct Partials {
  /// d(value) / d(score); 0 outside the score region.
  double dScore = 0;
  /// One float input element the value depends on, read once or more (the
  /// partials of repeated reads of the same element are summed). `input`
  /// names the region's read and lives as long as the interpreter.
  struct Read {
    llvm::StringRef input;
    llvm::SmallVector<int64_t, 4> indices;
    double d = 0;
  };
  std::vector<Read> reads;
  /// How close the evaluation came to a branch point that changes the
  /// derivative: the smallest gap |a - b| / max(1, |a|, |b|) of a min, max or
  /// float comparison, or min(|a|, 1) of an abs, whose operands depend on
  /// score or on an input element (+inf when there is none). Where it is at
  /// rounding level, a kernel computing in float32 may take the other branch
  /// and get the other, equally valid, derivative.
  double branchMargin = std::numeric_limits<double>::infinity();
};

class SpecInterpreter {
public:
  SpecInterpreter(SpecOp spec, ProblemSizes sizes, InputReader inputs = {});
  ~SpecInterpreter();
  /// Changes the sizes and the batch / head coordinates (cheap).
  void setSizes(const ProblemSizes &s) { sizes = s; }

  struct Element {
    int64_t q = 0, kv = 0;
  };
  /// Each returns std::nullopt and sets error() on a failure: an unbound
  /// param, an unreadable input, an out-of-range read, an int division by 0.
  std::optional<bool> mask(Element e);
  std::optional<double> scale(Element e);
  std::optional<double> score(Element e, double scaledLogit);
  std::optional<double> bias(Element e);
  /// softmax(sink = ...): the row's sink logit (e.kv unused); null program:
  /// the spec has none (hasSink()).
  std::optional<double> sink(Element e);
  bool hasSink() { return !spec.getSink().empty(); }
  /// The same in dual mode: the value, and its partials in `partials`
  /// (overwritten; valid only when a value is returned). Slower than the
  /// plain entry points, which do no derivative work.
  std::optional<double> scaleDual(Element e, Partials &partials);
  std::optional<double> scoreDual(Element e, double scaledLogit,
                                  Partials &partials);
  std::optional<double> biasDual(Element e, Partials &partials);
  std::optional<double> sinkDual(Element e, Partials &partials);
  const std::string &error() const { return errorMessage; }

private:
  struct Instr;
  struct Program;
  std::shared_ptr<const Program> compile(Region &region);
  /// Runs `program` once; with Dual, also the tangents (partials).
  template <bool Dual>
  std::optional<Scalar> run(const Program &program, Element e,
                            double scoreValue);
  std::optional<double> runDual(const Program &program, Element e,
                                double scoreValue, Partials &partials);
  /// Dual mode: the tangent of the instruction's result from its operands.
  void differentiate(const Instr &in, const Scalar &a, const Scalar &b,
                     const Scalar &result);
  /// Dual mode: the variable of element `indices` of `input` (one per
  /// element and evaluation).
  int readVariable(const std::string &input, llvm::ArrayRef<int64_t> indices);
  SpecOp spec;
  ProblemSizes sizes;
  InputReader inputs;
  std::string errorMessage;
  std::shared_ptr<const Program> programs[5]; // scale, score, mask, bias, sink
  std::vector<Scalar> registers;
  // Per register: 0, or 1 + the index in `failures` of the failure that
  // poisoned it (the evaluation rule, SpecInterpreter.cpp).
  std::vector<int> poison;
  std::vector<std::string> failures;
  // Dual mode. A tangent is a sparse list of (variable, partial); variable
  // 0 is `score`, variable i > 0 the float input element dualReads[i - 1].
  using Tangent = std::vector<std::pair<int, double>>;
  std::vector<Tangent> tangents; // per register
  struct DualRead {
    const std::string *input;
    llvm::SmallVector<int64_t, 4> indices;
  };
  std::vector<DualRead> dualReads;
  Tangent resultTangent; // the yielded value's
  double branchMargin;   // Partials::branchMargin of the current run
};

} // namespace mlir::attn

#endif // ATTNC_REFERENCE_SPECINTERPRETER_H
