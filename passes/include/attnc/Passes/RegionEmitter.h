//===- RegionEmitter.h - Inline spec regions as scalar arith ----*- C++ -*-===//
//
// The element-wise part of the CPU loops (attn-lower-cpu): copies a spec
// region (scale, score, mask, bias or sink) to a builder's insertion point as
// plain arith/math/scf/memref ops on scalars, for one (b, h, q, kv) element.
// The CUDA emitter prints the same regions as C++ instead
// (CudaRegionPrinter.h), with the same error semantics. What changes on the
// way:
//   attn.index / attn.dim  -> the values in RegionEnv (i64);
//   attn.score             -> RegionEnv::score (the scaled logit);
//   attn.read t[i..]       -> a load from t's flat buffer at sum(i_d * s_d),
//                             bounds-checked unless the index is a
//                             coordinate of the same extent (h in [HQ], ...);
//                             out of range it yields 0 and may record an
//                             error (below);
//   floordivsi, floormod   -> guarded against 0 (yields 0, may record an
//                             error) and -1 (no overflow trap): x86 faults
//                             on both;
//   shli, shrsi            -> guarded: a count outside [0, 63] yields 0
//                             and may record an error (not LLVM's poison);
//   fptosi                 -> saturating, NaN -> 0 (as SpecInterpreter).
//
// The language's evaluation rule: a region is evaluated only where its
// value is needed (RegionEnv::guard: the pair is kept), `c ? a : b` needs
// only the chosen arm, `a && b` needs b only where a is true and `a || b`
// only where a is false. The emitted code computes every op (both arms,
// with reads clamped to 0 when out of range), but an out-of-range read or
// a division by zero is recorded only under the path condition that makes
// its value needed (planNeeds), so a read the mask or a `?:` guards never
// fails and the result never depends on the tile sizes.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_PASSES_REGIONEMITTER_H
#define ATTNC_PASSES_REGIONEMITTER_H

#include "attnc/Dialect/AttnDialect.h"
#include "mlir/IR/Builders.h"

#include <string>

namespace mlir::attn {

/// Status codes the generated code stores in status[0] (KernelABI.h).
enum class KernelError : int64_t {
  InputOutOfRange = 1, // status[1..3] = input number, dimension, index
  DivisionByZero = 2,
  ArenaTooSmall = 3, // status[1..2] = bytes needed, arena bytes
  ShiftOutOfRange = 4, // status[1] = the shift count (outside [0, 63])
};

/// One declared input as the kernel sees it.
struct InputBinding {
  Value buffer;                    // memref<?xT, strided<[1], offset: ?>>
  SmallVector<Value> dims, strides; // i64, one per dimension
  SmallVector<Attribute> declDims;  // the declaration's dims (names / ints)
};

/// The values a region may refer to. Unused ones may be null.
struct RegionEnv {
  Value b, h, hkv, q, kv;          // i64 coordinates
  Value sizes[7];                  // i64: B, HQ, HKV, LQ, LK, D, DV
  Value score;                     // f32, for the score region
  Value guard;                     // i1: the region's value is needed (the
                                   // pair is kept); null: always
  Value status;                    // memref<?xi64, strided<[1], offset: ?>>
  SmallVector<InputBinding> inputs; // in declaration order
  // Gradient regions (attn-derive-backward) only:
  Value adjoint;                   // f32: what attn.adjoint stands for
  Value gradBuffer;                // f32 flat buffer of input gradients
  SmallVector<Value> gradOffsets;  // i64 per input: where its dense
                                   // row-major gradient starts in
                                   // gradBuffer; null: no gradient
};

/// Emits `region` (of `spec`) at the builder's insertion point and returns
/// the yielded scalar (null for a gradient region that yields nothing);
/// fails with a diagnostic on an op it cannot emit. In a gradient region,
/// `attn.accumulate %r, %g` adds %g to gradBuffer at the dense index of
/// the element %r reads, where the pair is kept (guard) and the index is in
/// range; the derived regions make %g 0 on an arm of `?:` not taken, and the
/// primal region, emitted beside, reports out-of-range reads.
FailureOr<Value> emitSpecRegion(OpBuilder &b, Location loc, SpecOp spec,
                                Region &region, const RegionEnv &env);

/// The evaluation rule's path conditions in a region: need(op), the
/// condition under which op's value is needed, is the disjunction of one
/// term per use: need(user) [&& [!]cond]. A use as the true (false) arm of
/// arith.select has cond = the condition (negated); a use as the right
/// operand of an i1 arith.andi (arith.ori) has cond = the left operand
/// (negated); every other use, and the yield (user null, need = the
/// region's guard), has no cond. A use by attn.accumulate needs only the
/// element's address, not its value, and is no term.
struct NeedTerm {
  Operation *user; // null: the region's attn.yield
  Value cond;      // null: unconditional
  bool negated = false;
};
struct NeedNode {
  Operation *op;
  SmallVector<NeedTerm> terms; // none: the value is never needed
};
/// The nodes of every op in the forward slice of the ops `isTrap` selects
/// (those whose needs a trap's need depends on), users before their
/// operands (reverse program order), so an emitter can build each need
/// from the needs already built.
SmallVector<NeedNode> planNeeds(Region &region,
                                llvm::function_ref<bool(Operation *)> isTrap);

/// Stores `code` and the detail words in status[0..3] unless an earlier
/// error is already there (scf.if on status[0] == 0).
void emitRecordError(OpBuilder &b, Location loc, Value status,
                     KernelError code, ArrayRef<Value> details);

/// The type of the flat buffers of the tiled form: memref<?xT, strided<[1],
/// offset: ?>>, i.e. exactly the runtime's attnc_buffer.
MemRefType flatBufferType(Type elementType);

} // namespace mlir::attn

#endif // ATTNC_PASSES_REGIONEMITTER_H
