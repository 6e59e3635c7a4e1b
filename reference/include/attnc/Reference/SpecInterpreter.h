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
//===----------------------------------------------------------------------===//
#ifndef ATTNC_REFERENCE_SPECINTERPRETER_H
#define ATTNC_REFERENCE_SPECINTERPRETER_H

#include "attnc/Dialect/AttnDialect.h"
#include "attnc/Passes/MaskSchedule.h"

#include <functional>
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
  const std::string &error() const { return errorMessage; }

private:
  struct Instr;
  struct Program;
  std::shared_ptr<const Program> compile(Region &region);
  std::optional<Scalar> run(const Program &program, Element e,
                            double scoreValue);
  SpecOp spec;
  ProblemSizes sizes;
  InputReader inputs;
  std::string errorMessage;
  std::shared_ptr<const Program> programs[4]; // scale, score, mask, bias
  std::vector<Scalar> registers;
  // Per register: 0, or 1 + the index in `failures` of the failure that
  // poisoned it (the evaluation rule, SpecInterpreter.cpp).
  std::vector<int> poison;
  std::vector<std::string> failures;
};

} // namespace mlir::attn

#endif // ATTNC_REFERENCE_SPECINTERPRETER_H
