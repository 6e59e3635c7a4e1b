//===- RegionEmitter.h - Inline spec regions as scalar arith ----*- C++ -*-===//
//
// The element-wise part of the CPU loops (attn-lower-cpu): copies a spec
// region (scale, score, mask or bias) to a builder's insertion point as
// plain arith/math/scf/memref ops on scalars, for one (b, h, q, kv) element.
// The CUDA emitter prints the same regions as C++ instead
// (CudaRegionPrinter.h), with the same error semantics. What changes on the
// way:
//   attn.index / attn.dim  -> the values in RegionEnv (i64);
//   attn.score             -> RegionEnv::score (the scaled logit);
//   attn.read t[i..]       -> a load from t's flat buffer at sum(i_d * s_d),
//                             bounds-checked unless the index is a
//                             coordinate of the same extent (h in [HQ], ...);
//                             an out-of-range read records an error in the
//                             status buffer and yields 0;
//   floordivsi, floormod   -> guarded against 0 (an error) and -1 (no
//                             overflow trap): x86 faults on both;
//   fptosi                 -> saturating, NaN -> 0 (as SpecInterpreter).
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
  Value status;                    // memref<?xi64, strided<[1], offset: ?>>
  SmallVector<InputBinding> inputs; // in declaration order
};

/// Emits `region` (of `spec`) at the builder's insertion point and returns
/// the yielded scalar; fails with a diagnostic on an op it cannot emit.
FailureOr<Value> emitSpecRegion(OpBuilder &b, Location loc, SpecOp spec,
                                Region &region, const RegionEnv &env);

/// Stores `code` and the detail words in status[0..3] unless an earlier
/// error is already there (scf.if on status[0] == 0).
void emitRecordError(OpBuilder &b, Location loc, Value status,
                     KernelError code, ArrayRef<Value> details);

/// The type of the flat buffers of the tiled form: memref<?xT, strided<[1],
/// offset: ?>>, i.e. exactly the runtime's attnc_buffer.
MemRefType flatBufferType(Type elementType);

} // namespace mlir::attn

#endif // ATTNC_PASSES_REGIONEMITTER_H
