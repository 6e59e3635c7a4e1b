//===- CudaRegionPrinter.h - One spec region as CUDA C++ statements -*- C++ -*-===//
//
// Prints the ops of a spec region (scale, score, mask, bias, sink) as C++
// statements over `c` (attnc_ctx), `q`, `kv` and `score`, in two flavours:
//   exact: every int is int64_t with wrapping arithmetic, every input read
//     is bounds-checked (error 1 in ctx.error), float math is the precise
//     *f library; what CudaElementCodeTest compares with the interpreter.
//   fast: what the kernels call per score element (CudaModule.cpp):
//     - ints whose interval (q in [0, LQ), kv in [0, LK), LQ, LK < 2^31,
//       constants, params) fits 32 bits are `int`, so masks compile to
//       32-bit compares instead of 64-bit pairs;
//     - a read whose every index is the coordinate of its declared extent
//       (`slopes[h]` of `float[HQ]`, `doc[q]` of `int[LQ]`) cannot fail
//       (forward checks inputs against their declarations), so it loads
//       with no check and no error path; the error path's stores would
//       otherwise keep the compiler from reusing loads across elements;
//     - tanh, exp and log use the approximate PTX instructions, and a
//       division by a value that does not vary per element multiplies by
//       its reciprocal, unless the quotient reaches floor, ceil, int(), a
//       comparison or % (docs/cuda-backend.md gives the error bounds).
//   A region is `pure` when its fast form has no error path (no checked
//   read, no integer division by a non-constant): the kernels then
//   evaluate it on every pair of a tile and select, with no branch; the
//   others only on kept pairs.
// Both follow the language's evaluation rule as the CPU code does
// (RegionEmitter.h): every op is computed (an out-of-range read gives 0, a
// zero divisor 0), and the error of a read or a division is reported at
// the end of the region only where its value is needed (`c ? a : b` needs
// the chosen arm, `a && b` / `a || b` the right operand where the left one
// does not decide).
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_CODEGEN_LIB_CUDAREGIONPRINTER_H
#define ATTNC_CODEGEN_LIB_CUDAREGIONPRINTER_H

#include "attnc/Dialect/AttnDialect.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

namespace attnc::cudamod {

class RegionPrinter {
public:
  RegionPrinter(mlir::attn::SpecOp spec, llvm::raw_ostream &os, bool fast)
      : spec(spec), os(os), fast(fast) {}

  /// Prints the statements of `region` and returns the yielded value.
  mlir::FailureOr<std::string> print(mlir::Region &region);
  std::string error;

  /// Whether the fast form of `region` has no error path.
  static bool isPure(mlir::attn::SpecOp spec, mlir::Region &region);

private:
  struct Range {
    int64_t lo, hi;
  };
  std::string fresh(mlir::Value v);
  std::string at(mlir::Value v) { return names.lookup(v); }
  std::string typeOf(mlir::Value v);
  bool narrow(mlir::Value v);
  Range range(mlir::Value v);
  mlir::LogicalResult def(mlir::Operation *op, const std::string &expr);
  mlir::LogicalResult fail(mlir::Operation *op);
  mlir::LogicalResult printOp(mlir::Operation *op);
  Range intRange(mlir::Operation *op);
  mlir::LogicalResult printInt(mlir::Operation *op);
  mlir::LogicalResult printFloat(mlir::Operation *op);
  mlir::LogicalResult printCompare(mlir::Operation *op);
  mlir::LogicalResult printRead(mlir::attn::ReadOp x);
  void printTraps(mlir::Region &region);
  std::string fastDivide(mlir::arith::DivFOp x);

  mlir::attn::SpecOp spec;
  llvm::raw_ostream &os;
  bool fast;
  llvm::DenseMap<mlir::Value, std::string> names;
  llvm::DenseMap<mlir::Value, Range> ranges;
  int counter = 0;
  /// An op that may fail: the C++ condition that it did, and the
  /// statement that reports it.
  struct Trap {
    mlir::Operation *op;
    std::string failed, report;
  };
  std::vector<Trap> traps;
};

/// The number of `spec`'s input `name` (its position in the inputs list).
int64_t inputNumber(mlir::attn::SpecOp spec, llvm::StringRef name);

/// A float32 literal of `v` (hex float, or INFINITY / NAN).
std::string floatLiteral(double v);

} // namespace attnc::cudamod

#endif // ATTNC_CODEGEN_LIB_CUDAREGIONPRINTER_H
