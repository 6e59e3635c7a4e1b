//===- FlashBuilder.h - Helpers of the attn-lower-cpu emitters -*- C++ -*-===//
//
// Internal to passes/lib: the builder shorthand of attn-lower-cpu
// (LowerCpu*.cpp, the kernel; TileIdsPrepass.cpp, the ids pre-pass), the
// meta-array slots of the kernel ABI, and the kernel signature.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_PASSES_LIB_FLASHBUILDER_H
#define ATTNC_PASSES_LIB_FLASHBUILDER_H

#include "attnc/Passes/GridSchedule.h"
#include "attnc/Passes/RegionEmitter.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <functional>
#include <array>
#include <utility>

namespace mlir::attn::flash {

// Slots of the meta array (KernelABI.h; passes/ does not include the runtime).
enum MetaSlot : int64_t {
  kMetaSizes = 0, kMetaQStrides = 7, kMetaKStrides = 11, kMetaVStrides = 15,
  kMetaOutStrides = 19, kMetaLseStrides = 23, kMetaHasLse = 26,
  kMetaHasTrace = 27, kMetaQPos = 28, kMetaKvPos = 29, kMetaLQTotal = 30,
  kMetaLKTotal = 31, kMetaRowHeads = 32, kMetaPageSize = 33,
  kMetaPageTable = 34, kMetaPageTableStride = 35, kMetaDropout = 36,
  kMetaDropoutSeed = 37, kMetaDropoutOffset = 38, kMetaDropoutBatch = 39,
  kMetaInputs = 40
};

// Kernel arguments (KernelABI.h's buffer slots): the arena, then the
// inputs; after the n inputs come meta, status, task_begin, task_end.
enum KernelArg : int64_t { kArgArena = 7, kArgInputs = 8 };

struct FlashBuilder {
  OpBuilder &b;
  Location loc;
  SpecOp spec;
  Type storage;
  int64_t tileQ, tileK;
  Type f32, i64, idx;

  FlashBuilder(OpBuilder &b, Location loc, SpecOp spec, Type storage,
               int64_t tileQ, int64_t tileK)
      : b(b), loc(loc), spec(spec), storage(storage), tileQ(tileQ),
        tileK(tileK), f32(b.getF32Type()), i64(b.getI64Type()),
        idx(b.getIndexType()) {}

  // Scalars.
  Value ci(int64_t v) { return arith::ConstantIntOp::create(b, loc, i64, v); }
  Value cI8(int64_t v) { return arith::ConstantIntOp::create(b, loc, b.getI8Type(), v); }
  Value cx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value cf(double v) { return arith::ConstantOp::create(b, loc, FloatAttr::get(f32, v)); }
  Value toIdx(Value v) { return arith::IndexCastOp::create(b, loc, idx, v); }
  Value toI64(Value v) { return arith::IndexCastOp::create(b, loc, i64, v); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, loc, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, loc, x, y); }
  Value load(Value m, Value i) { return memref::LoadOp::create(b, loc, m, ValueRange{i}); }
  void store(Value v, Value m, Value i) { memref::StoreOp::create(b, loc, v, m, ValueRange{i}); }
  Value toF32(Value v) {
    return v.getType() == f32 ? v : Value(arith::ExtFOp::create(b, loc, f32, v));
  }
  Value toStorage(Value v) {
    return storage == f32 ? v : Value(arith::TruncFOp::create(b, loc, storage, v));
  }

  /// for (iv = lb; iv < ub; ++iv) body(iv), on index values.
  scf::ForOp forLoop(Value lb, Value ub, const std::function<void(Value)> &body) {
    auto loop = scf::ForOp::create(b, loc, lb, ub, cx(1));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(loop.getBody()->getTerminator());
    body(loop.getInductionVar());
    return loop;
  }
  /// A reduction loop: returns the final value of `init` after
  /// acc = body(iv, acc) for iv in [lb, ub).
  Value reduceLoop(Value lb, Value ub, Value init,
                   const std::function<Value(Value, Value)> &body) {
    auto loop = scf::ForOp::create(
        b, loc, lb, ub, cx(1), ValueRange{init},
        [&](OpBuilder &nb, Location l, Value iv, ValueRange args) {
          OpBuilder::InsertionGuard g(b);
          b.setInsertionPointToEnd(nb.getInsertionBlock());
          scf::YieldOp::create(b, l, body(iv, args[0]));
        });
    return loop.getResult(0);
  }
  scf::IfOp ifThen(Value cond, const std::function<void()> &body) {
    auto op = scf::IfOp::create(b, loc, cond, /*withElse=*/false);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(op.thenBlock()->getTerminator());
    body();
    return op;
  }
  /// The address of a (scratch) memref's first element as !llvm.ptr, for
  /// the microkernel calls.
  Value ptrOf(Value memref) {
    Value i = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, memref);
    return LLVM::IntToPtrOp::create(b, loc, LLVM::LLVMPointerType::get(b.getContext()),
                                    toI64(i));
  }
  /// The address of element `idx` (i64, in elements) of a flat buffer.
  Value elemPtr(Value memref, Value idx) {
    auto md = memref::ExtractStridedMetadataOp::create(b, loc, memref);
    Value off = add(toI64(md.getOffset()), idx);
    Type elem = cast<MemRefType>(memref.getType()).getElementType();
    return LLVM::GEPOp::create(b, loc, LLVM::LLVMPointerType::get(b.getContext()),
                               elem, ptrOf(memref), ValueRange{off});
  }
  /// if (cond) then() else otherwise(), each yielding (pointer, i64).
  std::pair<Value, Value>
  ifPtrLd(Value cond, const std::function<std::pair<Value, Value>()> &then,
          const std::function<std::pair<Value, Value>()> &otherwise) {
    Type ptr = LLVM::LLVMPointerType::get(b.getContext());
    auto op = scf::IfOp::create(b, loc, TypeRange{ptr, i64}, cond, /*withElse=*/true);
    OpBuilder::InsertionGuard g(b);
    for (auto [block, fn] : {std::pair{op.thenBlock(), &then}, std::pair{op.elseBlock(), &otherwise}}) {
      b.setInsertionPointToStart(block);
      auto [p, ld] = (*fn)();
      scf::YieldOp::create(b, loc, ValueRange{p, ld});
    }
    return {op.getResult(0), op.getResult(1)};
  }
  Value nullPtr() {
    return LLVM::ZeroOp::create(b, loc, LLVM::LLVMPointerType::get(b.getContext()));
  }
  /// Calls runtime microkernel `name` (Microkernels.h), declaring it in the
  /// module on first use.
  void callMicrokernel(StringRef name, ValueRange args) {
    auto module = spec->getParentOfType<ModuleOp>();
    if (!SymbolTable::lookupSymbolIn(module, name)) {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(module.getBody());
      auto decl = func::FuncOp::create(
          b, loc, name, FunctionType::get(b.getContext(), ValueRange(args).getTypes(), {}));
      decl.setPrivate();
    }
    func::CallOp::create(b, loc, name, TypeRange{}, args);
  }
  /// Names a structural op of the form (`attn.loop = "tasks"`, ...), so
  /// tests and the CUDA emitter can find the parts without pattern matching.
  static void mark(Operation *op, StringRef key, StringRef value) {
    op->setAttr(key, StringAttr::get(op->getContext(), value));
  }
};

/// Kernel signature: q, k, v, out, lse, trace, ids scratch, arena,
/// inputs..., meta, status, task_begin, task_end (the buffer order of
/// KernelABI.h).
SmallVector<Type> kernelArgTypes(OpBuilder &b, Type storageType,
                                 ArrayRef<InputAttr> decls);

/// Creates `func.func @attn_<name><suffix>` with the kernel signature, an
/// entry block and a return, and leaves `b` before the return.
func::FuncOp createKernelFunc(OpBuilder &b, SpecOp spec, Type storageType,
                              ArrayRef<InputAttr> decls, StringRef suffix);

/// The declared inputs of `spec`, in order.
SmallVector<InputAttr> inputDecls(SpecOp spec);

/// The call's extent and its place in the sequences (KernelABI.h's
/// sequence window): local lengths, the positions of local row and key 0.
struct CallWindow {
  Value lq, lk, qPos, kvPos; // i64
};
CallWindow loadCallWindow(FlashBuilder &f, ValueRange args,
                          ArrayRef<InputAttr> decls);

/// Loads the sizes and the input bindings (dims and strides from the meta
/// array) of a kernel function's arguments; sets the status buffer. The
/// sizes are the spec's: LQ and LK are the sequence window's totals.
RegionEnv loadKernelEnv(FlashBuilder &f, ValueRange args,
                        ArrayRef<InputAttr> decls);

/// The element (i64) of int input `read` ([name, b | h | hkv...], a read of
/// an atom's bound) at env's b, h, hkv; always in range (the analysis
/// takes only dimensions of those extents).
Value emitBoundRead(FlashBuilder &f, const RegionEnv &env, ArrayAttr read);

/// The min and max (i64) of int input `read` ([name, coordinates...], an
/// ids_eq term) while its q or kv coordinate runs over [p0, p1];
/// [INT64_MIN, INT64_MAX] when p1 is past the input's extent there.
std::pair<Value, Value> emitIdsRange(FlashBuilder &f, const RegionEnv &env,
                                     ArrayAttr read, Value p0, Value p1);

/// softmax(dropout = p) in one kernel call (KernelABI.h's dropout slots,
/// runtime/include/attnc/Runtime/Dropout.h): whether the call drops, and
/// Philox's key and counter words. Null `on` when the spec has no dropout
/// (or p = 0): then no dropout code is emitted at all.
struct DropoutCall {
  Value on;                     // i1: meta[ATTNC_META_DROPOUT] != 0
  Value seedLo, seedHi, offset; // i32
  Value seed, offset64;         // i64: the meta slots as they are
  Value batch;                  // i64: the global number of sequence b = 0
  Value threshold;              // i32: floor(p 2^32)
  Value scale;                  // f32: 1 / (1 - p)
  explicit operator bool() const { return bool(on); }
};
DropoutCall loadDropoutCall(FlashBuilder &f, Value meta);

/// The factor (f32) of pair (el.b, el.h, el.q, el.kv)'s P: d.scale where
/// Dropout.h's attnc_dropout_keep keeps it, else 0; `HQ` (i64) for the
/// counter's b * HQ + h. Ten Philox rounds as arith ops on i32 (LLVM
/// vectorises them across the keys of a tile row).
Value emitDropoutFactor(FlashBuilder &f, const DropoutCall &d, Value HQ,
                        const RegionEnv &el);
/// The four words (i32) of philox4x32_10 on the counter (group, q, bh,
/// d.offset) (group, q, bh: i64, their low 32 bits taken): the draws of
/// keys 4 group .. 4 group + 3 of row (bh, q).
std::array<Value, 4> emitPhilox(FlashBuilder &f, const DropoutCall &d, Value group,
                                Value q, Value bh);
/// d.scale where `word` keeps its pair, else 0 (f32).
Value emitDropoutWordFactor(FlashBuilder &f, const DropoutCall &d, Value word);
/// Counter word 2 of el's row: (d.batch + el.b) HQ + el.h (i64).
Value dropoutCounterBh(FlashBuilder &f, const DropoutCall &d, Value HQ,
                       const RegionEnv &el);

/// Adds `@attn_<name>__prepass` (before `flash`) when the flash op's
/// schedule has ids_eq atoms.
void emitIdsPrepass(FlashOp flash);

/// 2-D query patches for masks with a grid view (TileGrid.cpp; the
/// host model and the choice of the patch shape are in GridSchedule.h).
/// One task's rows: whether it is a patch, and its query bounds.
struct PatchTask {
  Value isPatch;    // i1
  Value qMin, qMax; // the patch's first and last query
  Value qc0, qc1;   // its columns
};
/// Stores q(i) of task `qt` for i < TQ into qIdx (i64 memref): a patch of
/// the grid, or the contiguous rows qt * TQ + i of the tail (and of every
/// task where `enabled`, an i1, is false).
PatchTask emitPatchRows(FlashBuilder &f, const GridTiling &g, Value qt, Value LQ,
                        Value qIdx, Value enabled);
/// Gathers the keys a patch may keep into kvIdx, at most TK at a time, and
/// calls tile(n) (n: i64 > 0) for each group.
void emitGridKeyTiles(FlashBuilder &f, const GridTiling &g, MaskAttr mask,
                      ArrayRef<Value> syms, const PatchTask &p, Value LK, Value kvIdx,
                      const std::function<void(Value)> &tile);

} // namespace mlir::attn::flash

#endif // ATTNC_PASSES_LIB_FLASHBUILDER_H
