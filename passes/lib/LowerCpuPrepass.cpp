//===- LowerCpuPrepass.cpp - attn-lower-cpu: kernel signature, ids pre-pass ===//
//
// Part of attn-lower-cpu (LowerCpu.cpp has the kernel): the kernel signature
// shared by the kernel and its pre-pass, the min/max scan of an ids_eq read,
// and `@attn_<name>__prepass`, which stores per (b, h, key tile) the id range
// of the key-side input so the kernel classifies document-mask tiles with
// two loads.
//
//===----------------------------------------------------------------------===//
#include "FlashBuilder.h"
#include "attnc/Passes/ScheduleEmitter.h"

#include <limits>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::flash;

/// Kernel signature: q, k, v, out, lse, trace, ids scratch, arena,
/// inputs..., meta, status, task_begin, task_end (the buffer order of
/// KernelABI.h).
SmallVector<Type> mlir::attn::flash::kernelArgTypes(OpBuilder &b, Type storageType,
                                 ArrayRef<InputAttr> decls) {
  SmallVector<Type> types;
  for (int i = 0; i < 4; ++i)
    types.push_back(flatBufferType(storageType));
  types.push_back(flatBufferType(b.getF32Type()));
  types.push_back(flatBufferType(b.getI8Type()));
  types.push_back(flatBufferType(b.getI64Type()));
  types.push_back(flatBufferType(b.getI8Type())); // the arena
  for (InputAttr in : decls) {
    Type t = in.getElementType();
    // bool inputs are one byte per element, as numpy stores them.
    types.push_back(flatBufferType(t.isInteger(1) ? b.getI8Type() : t));
  }
  types.push_back(flatBufferType(b.getI64Type()));
  types.push_back(flatBufferType(b.getI64Type()));
  types.push_back(b.getIndexType());
  types.push_back(b.getIndexType());
  return types;
}

SmallVector<InputAttr> mlir::attn::flash::inputDecls(SpecOp spec) {
  SmallVector<InputAttr> decls;
  if (ArrayAttr inputs = spec.getInputsAttr())
    for (Attribute a : inputs)
      decls.push_back(cast<InputAttr>(a));
  return decls;
}

func::FuncOp mlir::attn::flash::createKernelFunc(OpBuilder &b, SpecOp spec,
                                                 Type storageType,
                                                 ArrayRef<InputAttr> decls,
                                                 StringRef suffix) {
  Location loc = spec.getLoc();
  auto func = func::FuncOp::create(
      b, loc, ("attn_" + spec.getSymName() + suffix).str(),
      FunctionType::get(b.getContext(), kernelArgTypes(b, storageType, decls), {}));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  auto ret = func::ReturnOp::create(b, loc);
  b.setInsertionPoint(ret);
  return func;
}

RegionEnv mlir::attn::flash::loadKernelEnv(FlashBuilder &f, ValueRange args,
                                           ArrayRef<InputAttr> decls) {
  size_t nIn = decls.size();
  Value meta = args[kArgInputs + nIn];
  auto metaAt = [&](int64_t slot) { return f.load(meta, f.cx(slot)); };
  RegionEnv env;
  for (int i = 0; i < 7; ++i)
    env.sizes[i] = metaAt(kMetaSizes + i);
  env.sizes[3] = metaAt(kMetaLQTotal);
  env.sizes[4] = metaAt(kMetaLKTotal);
  int64_t slot = kMetaInputs;
  for (auto [i, in] : llvm::enumerate(decls)) {
    InputBinding bind;
    bind.buffer = args[kArgInputs + i];
    bind.declDims.assign(in.getShape().begin(), in.getShape().end());
    int64_t rank = in.getRank();
    for (int64_t d = 0; d < rank; ++d)
      bind.dims.push_back(metaAt(slot + d));
    for (int64_t d = 0; d < rank; ++d)
      bind.strides.push_back(metaAt(slot + rank + d));
    slot += 2 * rank;
    env.inputs.push_back(bind);
  }
  env.status = args[kArgInputs + 1 + nIn];
  return env;
}

CallWindow mlir::attn::flash::loadCallWindow(FlashBuilder &f, ValueRange args,
                                             ArrayRef<InputAttr> decls) {
  Value meta = args[kArgInputs + decls.size()];
  auto metaAt = [&](int64_t slot) { return f.load(meta, f.cx(slot)); };
  return {metaAt(kMetaSizes + 3), metaAt(kMetaSizes + 4), metaAt(kMetaQPos),
          metaAt(kMetaKvPos)};
}

/// The binding of the input a read names (`read[0]`, verified to be a
/// declared input).
static const InputBinding &boundInput(FlashBuilder &f, const RegionEnv &env,
                                      ArrayAttr read) {
  StringRef name = cast<StringAttr>(read[0]).getValue();
  int64_t number = 0;
  for (auto [i, a] : llvm::enumerate(f.spec.getInputsAttr()))
    if (cast<InputAttr>(a).getName().getValue() == name)
      number = int64_t(i);
  return env.inputs[number];
}

Value mlir::attn::flash::emitBoundRead(FlashBuilder &f, const RegionEnv &env,
                                      ArrayAttr read) {
  const InputBinding &in = boundInput(f, env, read);
  Value at = f.ci(0);
  for (auto [d, c] : llvm::enumerate(read.getValue().drop_front())) {
    StringRef coord = cast<StringAttr>(c).getValue();
    Value v = coord == "b" ? env.b : coord == "h" ? env.h : env.hkv;
    at = f.add(at, f.mul(v, in.strides[d]));
  }
  return f.load(in.buffer, f.toIdx(at));
}

/// The min and max of int input `read` ([name, coordinates...], from an
/// ids_eq atom) while its q or kv coordinate runs over [p0, p1]; b, h and
/// hkv come from `env`. The analysis forms ids_eq only from reads whose b,
/// h and hkv are in range; the position may run past the extent of its
/// dimension (an [LQ] id tensor read at kv): then the scan stops there and
/// the range is everything, [INT64_MIN, INT64_MAX], so the tile stays
/// PARTIAL and the mask reports the out-of-range read.
std::pair<Value, Value> mlir::attn::flash::emitIdsRange(FlashBuilder &f, const RegionEnv &env,
                                     ArrayAttr read, Value p0, Value p1) {
  OpBuilder &b = f.b;
  Location loc = f.loc;
  const InputBinding &in = boundInput(f, env, read);
  Value base = f.ci(0), stride = f.ci(0), extent = f.ci(0);
  for (auto [d, c] : llvm::enumerate(read.getValue().drop_front())) {
    StringRef coord = cast<StringAttr>(c).getValue();
    if (coord == "q" || coord == "kv") {
      stride = in.strides[d];
      extent = in.dims[d];
      continue;
    }
    Value v = coord == "b" ? env.b : coord == "h" ? env.h : env.hkv;
    base = f.add(base, f.mul(v, in.strides[d]));
  }
  Value lo0 = f.ci(std::numeric_limits<int64_t>::max());
  Value hi0 = f.ci(std::numeric_limits<int64_t>::min());
  Value inside = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, p1, extent);
  Value end = arith::MinSIOp::create(b, loc, f.add(p1, f.ci(1)), extent);
  auto loop = scf::ForOp::create(
      b, loc, f.toIdx(p0), f.toIdx(end), f.cx(1), ValueRange{lo0, hi0},
      [&](OpBuilder &nb, Location l, Value iv, ValueRange acc) {
        OpBuilder::InsertionGuard g(b);
        b.setInsertionPointToEnd(nb.getInsertionBlock());
        Value at = f.add(base, f.mul(f.toI64(iv), stride));
        Value id = f.load(in.buffer, f.toIdx(at));
        scf::YieldOp::create(
            b, l, ValueRange{arith::MinSIOp::create(b, l, acc[0], id),
                             arith::MaxSIOp::create(b, l, acc[1], id)});
      });
  return {arith::SelectOp::create(b, loc, inside, loop.getResult(0), hi0),
          arith::SelectOp::create(b, loc, inside, loop.getResult(1), lo0)};
}

/// The pre-pass of masks with ids_eq atoms (X[q] == Y[kv]), a second
/// function `@attn_<name>__prepass` with the kernel's signature over the
/// tasks (b, h): for each atom n and key tile kt it stores the min and max
/// of Y over the tile in the scratch buffer,
///   scratch[(((b * HQ + h) * numIds + n) * numKT + kt) * 2 + {0, 1}],
/// O(LK) per head, so the kernel classifies a key tile with two loads.
void mlir::attn::flash::emitIdsPrepass(FlashOp flash) {
  SpecOp spec = flash.getSpec();
  Type storageType = flash.getStorage();
  int64_t tileQ = flash.getTileQ(), tileK = flash.getTileK();
  MaskAttr mask = spec.getMaskScheduleAttr();
  SmallVector<MaskAttr> atoms = collectIdsAtoms(mask);
  if (atoms.empty())
    return;
  Location loc = spec.getLoc();
  OpBuilder b(flash);
  SmallVector<InputAttr> decls = inputDecls(spec);
  auto func = createKernelFunc(b, spec, storageType, decls, "__prepass");
  func->setAttr("attn.tile_k", b.getI64IntegerAttr(tileK));
  FlashBuilder f(b, loc, spec, storageType, tileQ, tileK);
  auto args = func.getArguments();
  size_t nIn = decls.size();
  Value scratch = args[6];
  RegionEnv env = loadKernelEnv(f, args, decls);
  CallWindow window = loadCallWindow(f, args, decls);
  Value HQ = env.sizes[1], HKV = env.sizes[2], LK = window.lk;
  Value TK = f.ci(tileK);
  Value numKT = arith::CeilDivSIOp::create(b, loc, LK, TK);
  Value group = arith::DivSIOp::create(b, loc, HQ, HKV);
  Value numIds = f.ci(int64_t(atoms.size()));
  Value begin = args[kArgInputs + 2 + nIn], end = args[kArgInputs + 3 + nIn];
  auto loop = f.forLoop(begin, end, [&](Value task) {
    Value t = f.toI64(task); // t = b * HQ + h
    env.b = arith::DivSIOp::create(b, loc, t, HQ);
    env.h = arith::RemSIOp::create(b, loc, t, HQ);
    env.hkv = arith::DivSIOp::create(b, loc, env.h, group);
    for (auto [n, atom] : llvm::enumerate(atoms)) {
      auto read = cast<ArrayAttr>(atom.getTerms()[1]);
      f.forLoop(f.cx(0), f.toIdx(numKT), [&](Value ktx) {
        Value kt = f.toI64(ktx);
        // The tile's keys, local k0 .. k1, are positions kvPos + k0 ..
        Value k0 = f.mul(kt, TK);
        Value k1 = f.sub(arith::MinSIOp::create(b, loc, f.add(k0, TK), LK), f.ci(1));
        auto [lo, hi] = emitIdsRange(f, env, read, f.add(window.kvPos, k0),
                                     f.add(window.kvPos, k1));
        Value at = f.mul(
            f.add(f.mul(f.add(f.mul(t, numIds), f.ci(int64_t(n))), numKT), kt), f.ci(2));
        f.store(lo, scratch, f.toIdx(at));
        f.store(hi, scratch, f.toIdx(f.add(at, f.ci(1))));
      });
    }
  });
  FlashBuilder::mark(loop, "attn.loop", "prepass_heads");
}
