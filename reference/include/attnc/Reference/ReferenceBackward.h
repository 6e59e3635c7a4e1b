//===- ReferenceBackward.h - Float64 reference of the backward --*- C++ -*-===//
//
// The oracle of every backward numerical test: the gradients of a spec's
// attention with respect to q, k, v and its float inputs, in double
// precision, element by element. The score, scale and bias regions are
// differentiated with the SpecInterpreter's forward-mode dual numbers, a
// method independent of the compiler's symbolic reverse mode
// (attn-derive-backward). Quadratic and slow on purpose.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_REFERENCE_REFERENCEBACKWARD_H
#define ATTNC_REFERENCE_REFERENCEBACKWARD_H

#include "attnc/Reference/ReferenceAttention.h"

#include <map>
#include <string>
#include <vector>

namespace mlir::attn {

/// dq [B, HQ, LQ, D], dk [B, HKV, LK, D], dv [B, HKV, LK, DV], and for each
/// float input that the scale, score, bias or sink region reads (masks carry no
/// gradient; int and bool inputs have none) a dense row-major array of the
/// input's declared shape.
struct ReferenceGradients {
  std::vector<double> dq, dk, dv;
  std::map<std::string, std::vector<double>> dinputs;
  /// Per element of dq, dk and dinputs, the size of the terms it sums: the
  /// element with dZ = P (dP - delta) replaced by P (|dP| + |delta|) (sigmoid:
  /// |dZ|) and every product by its absolute value. These gradients are sums
  /// over many pairs whose terms cancel (for softmax, sum_kv dZ = 0 on every
  /// row; a row with one kept key has dZ = 0 exactly), so their
  /// floating-point error scales with this size, not with the gradient.
  std::vector<double> dqMagnitude, dkMagnitude;
  std::map<std::string, std::vector<double>> dinputMagnitudes;
  /// Per row [B, HQ, LQ], the smallest Partials::branchMargin of the scale,
  /// score and bias regions over its kept pairs (+inf when none comes near a
  /// branch). A row where it is at rounding level has two valid gradients
  /// (a min, max, abs or comparison flips within the kernel's rounding);
  /// tests give such rows dout = 0 (removeAmbiguousRows, test/common).
  std::vector<double> rowBranchMargin;
};

/// The gradients of L given dL/dout = dout [B, HQ, LQ, DV], for the forward
/// of referenceAttention (problem.rows and problem.keptPairs are ignored):
///   softmax: P = exp(z - lse) on kept pairs, dP = dout_row . v_kv,
///            delta = sum_kv P dP, dZ = P (dP - delta); with a sink (lse
///            includes it), each float input the sink reads gets
///            -P_sink delta d(sink)/d(input), P_sink = exp(sink - lse);
///            with problem.dropout, the forward's factors F
///            (dropoutFactor): delta = sum_kv P F dP, dZ = P (dP F -
///            delta), and P F in place of P in dv;
///   sigmoid: P = sigmoid(z + bias), dZ = dP P (1 - P), and each float
///            input the bias reads gets dZ d(bias)/d(input);
/// then with s = scale * dot(q_row, k_row) and z = score(s):
///   dS = dZ dz/ds, dq += dS scale k, dk += dS scale q, dv += P dout_row,
///   score inputs += dZ dz/d(input), scale inputs += dS dot dscale/d(input).
/// dk and dv sum over the query heads of a GQA group. A row with no kept
/// pair (or, for softmax, every kept score -inf) contributes nothing; a
/// softmax row whose forward is NaN (a NaN or +inf kept score) makes the
/// gradients it contributes to NaN.
/// Returns "" or the reason the spec could not be evaluated, as
/// referenceAttention.
std::string referenceBackward(SpecOp spec, const ReferenceProblem &problem,
                              const double *dout, ReferenceGradients &grads);

} // namespace mlir::attn

#endif // ATTNC_REFERENCE_REFERENCEBACKWARD_H
