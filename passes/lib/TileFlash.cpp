//===- TileFlash.cpp - attn-tile: spec -> tiled online-attention loops ----===//
//
// Rewrites every attn.spec into the mid-level flash form: one func.func
// @attn_<name> over a range of tasks (b, h, query tile) with the C ABI of
// runtime/include/attnc/Runtime/KernelABI.h (flat buffers, a meta array of
// sizes and strides, a status buffer). Per task:
//
//   Qs = Q[b, h, q0:q0+tq, :]                      (to f32)
//   m = -inf, l = 0, acc = 0
//   rows = schedule(q0, q1)                        (ScheduleEmitter)
//   for kt in [hullLo / TK, hullHi / TK]:
//     kind = classify(rows, k0, k1)
//     if kind != EMPTY:
//       Ks, Vs = K[b, hkv, k0:k0+tk, :], V[...]    (to f32)
//       S[i, j] = score(scale * Qs[i] . Ks[j], q0+i, k0+j)
//       if kind == PARTIAL: S[i, j] = -inf where !mask(q0+i, k0+j)
//       softmax:  m' = max(m, max_j S);  mz = (m' == -inf ? 0 : m')
//                 alpha = exp(m - mz);   P = exp(S - mz)
//                 l = alpha l + sum_j P;  acc = alpha acc + P Vs;  m = m'
//       sigmoid:  P = sigmoid(S + bias(q, kv))      (sigmoid(-inf) = 0)
//                 acc += P Vs
//   softmax: out = l > 0 ? acc / l : 0;  lse = l > 0 ? m + log l : -inf
//   sigmoid: out = acc
//
// A row whose keys are all masked keeps m = -inf, l = 0: out 0, lse -inf,
// never NaN. FULL tiles contain no mask code; a mask that is `always`
// produces no PARTIAL branch at all. The element code (score, mask, bias,
// input reads) comes from RegionEmitter, the schedule from
// ScheduleEmitter, both shared with the CUDA back end.
//
//===----------------------------------------------------------------------===//
#include "attnc/Passes/Passes.h"
#include "attnc/Passes/RegionEmitter.h"
#include "attnc/Passes/ScheduleEmitter.h"
#include "FlashBuilder.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <functional>
#include <limits>

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNTILE
#include "attnc/Passes/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::flash;

namespace {
struct SpecTiles {
  int64_t q, k;
};

struct AttnTilePass : public mlir::attn::impl::AttnTileBase<AttnTilePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    Type storageType = parseStorage(module.getContext());
    if (!storageType) {
      module.emitError("attn-tile: storage must be f32, f16 or bf16, got '")
          << storage << "'";
      return signalPassFailure();
    }
    if (tileQ <= 0 || tileK <= 0) {
      module.emitError("attn-tile: tile sizes must be positive");
      return signalPassFailure();
    }
    SmallVector<SpecOp> specs(module.getOps<SpecOp>());
    for (SpecOp spec : specs) {
      FailureOr<SpecTiles> tiles = tilesOf(spec);
      if (failed(tiles) || failed(tileSpec(spec, storageType, *tiles)))
        return signalPassFailure();
      emitIdsPrepass(spec, storageType, tiles->q, tiles->k);
      spec.erase();
    }
  }

  /// A spec's own tile sizes (`attn.tiles = array<i64: Q, K>`, which the
  /// back end's tile choice sets per spec, see CpuTiles.cpp), else the pass
  /// options.
  FailureOr<SpecTiles> tilesOf(SpecOp spec) {
    Attribute a = spec->getAttr(kTilesAttrName);
    if (!a)
      return SpecTiles{tileQ, tileK};
    auto arr = dyn_cast<DenseI64ArrayAttr>(a);
    if (!arr || arr.size() != 2 || arr[0] <= 0 || arr[1] <= 0)
      return spec.emitError("attn-tile: ")
             << kTilesAttrName << " must be array<i64: Q, K> with positive "
             << "sizes, got " << a;
    return SpecTiles{arr[0], arr[1]};
  }

  Type parseStorage(MLIRContext *ctx) {
    if (storage == "f32") return Float32Type::get(ctx);
    if (storage == "f16") return Float16Type::get(ctx);
    if (storage == "bf16") return BFloat16Type::get(ctx);
    return {};
  }

  LogicalResult tileSpec(SpecOp spec, Type storageType, SpecTiles tiles);
};

LogicalResult AttnTilePass::tileSpec(SpecOp spec, Type storageType,
                                     SpecTiles tiles) {
  const int64_t tileQ = tiles.q, tileK = tiles.k; // not the pass options
  MaskAttr mask = spec.getMaskScheduleAttr();
  if (!mask)
    return spec.emitError("attn-tile needs the mask analysis: run "
                          "attn-mask-analysis first");
  Location loc = spec.getLoc();
  OpBuilder b(spec);
  bool sigmoid = spec.getNormalize() == NormalizeKind::sigmoid;

  SmallVector<InputAttr> decls = inputDecls(spec);
  auto func = createKernelFunc(b, spec, storageType, decls, "");
  func->setAttr("attn.tile_q", b.getI64IntegerAttr(tileQ));
  func->setAttr("attn.tile_k", b.getI64IntegerAttr(tileK));
  func->setAttr("attn.normalize", spec.getNormalizeAttr());

  FlashBuilder f(b, loc, spec, storageType, tileQ, tileK);
  auto args = func.getArguments();
  Value qBuf = args[0], kBuf = args[1], vBuf = args[2], oBuf = args[3],
        lseBuf = args[4], traceBuf = args[5], idsScratch = args[6];
  size_t nIn = decls.size();
  Value meta = args[7 + nIn];
  Value taskBegin = args[9 + nIn], taskEnd = args[10 + nIn];

  auto metaAt = [&](int64_t slot) { return f.load(meta, f.cx(slot)); };
  RegionEnv env = loadKernelEnv(f, args, decls);
  Value HQ = env.sizes[1], HKV = env.sizes[2], LQ = env.sizes[3],
        LK = env.sizes[4], D = env.sizes[5], DV = env.sizes[6];
  auto strides = [&](int64_t slot, int n) {
    SmallVector<Value> s;
    for (int i = 0; i < n; ++i)
      s.push_back(metaAt(slot + i));
    return s;
  };
  SmallVector<Value> qS = strides(kMetaQStrides, 4), kS = strides(kMetaKStrides, 4),
                     vS = strides(kMetaVStrides, 4), oS = strides(kMetaOutStrides, 4),
                     lS = strides(kMetaLseStrides, 3);
  Value hasLse = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne,
                                       metaAt(kMetaHasLse), f.ci(0));
  Value hasTrace = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne,
                                         metaAt(kMetaHasTrace), f.ci(0));

  // Tile counts and scratch tiles (f32), allocated once per call.
  Value TQ = f.ci(tileQ), TK = f.ci(tileK);
  auto ceilDiv = [&](Value x, Value y) {
    return arith::CeilDivSIOp::create(b, loc, x, y).getResult();
  };
  Value numQT = ceilDiv(LQ, TQ), numKT = ceilDiv(LK, TK);
  Value group = arith::DivSIOp::create(b, loc, HQ, HKV);
  auto scratchOf = [&](Type t, Value n) {
    auto type = MemRefType::get({ShapedType::kDynamic}, t);
    return memref::AllocaOp::create(b, loc, type, ValueRange{f.toIdx(n)})
        .getResult();
  };
  auto scratch = [&](Value n) { return scratchOf(f.f32, n); };
  bool microkernels = this->microkernels;
  // bf16 storage with microkernels: the Q, K and V tiles stay bf16, in the
  // pair layouts of the bf16 dot-product microkernels (Q: (d / 2, i, d % 2),
  // K: rows of D rounded up to even, V: (j / 2, c, j % 2)); pads are zero.
  bool bf16Tiles = microkernels && storageType.isBF16();
  Type tileType = bf16Tiles ? storageType : f.f32;
  Value Dp = f.mul(ceilDiv(D, f.ci(2)), f.ci(2));
  Value Dq = bf16Tiles ? Dp : D;
  Value Qs = scratchOf(tileType, f.mul(TQ, Dq)),
        Ks = scratchOf(tileType, f.mul(TK, Dq)),
        Vs = scratchOf(tileType, f.mul(f.ci((tileK + 1) / 2 * 2), DV)),
        S = scratch(f.mul(TQ, TK)), mRow = scratch(TQ), lRow = scratch(TQ),
        acc = scratch(f.mul(TQ, DV)), alphaRow = scratch(TQ);
  if (bf16Tiles) {
    Value zero = arith::ConstantOp::create(b, loc, FloatAttr::get(tileType, 0.0));
    for (auto [tile, n] : {std::pair{Qs, f.mul(TQ, Dq)}, std::pair{Ks, f.mul(TK, Dq)},
                           std::pair{Vs, f.mul(f.ci((tileK + 1) / 2 * 2), DV)}})
      f.forLoop(f.cx(0), f.toIdx(n), [&](Value i) { f.store(zero, tile, i); });
  }
  Value Dx = f.toIdx(D), DVx = f.toIdx(DV), TKx = f.cx(tileK), TQx = f.cx(tileQ);
  Value Dpx = f.toIdx(Dp), c2 = f.cx(2);
  // Position (a / 2, b, a % 2) of a pair layout with `n` columns.
  auto pairAt = [&](Value a, Value bIdx, Value n) -> Value {
    Value pair = arith::DivUIOp::create(b, loc, a, c2);
    Value half = arith::RemUIOp::create(b, loc, a, c2);
    Value cell = arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, pair, n), bIdx);
    return arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, cell, c2), half);
  };
  // Visits the elements of a tile in the order of S's layout (i innermost
  // when S is transposed), so element code runs on contiguous memory and
  // LLVM can vectorise it; `body` gets (i, j, env with q and kv set).
  using IndexFn = std::function<Value(Value)>;
  auto forEachElement = [&](Value tqx, Value tkx, const RegionEnv &rowEnv,
                            const IndexFn &qAt, const IndexFn &kvAt,
                            const std::function<void(Value, Value, RegionEnv &)> &body) {
    Value outer = microkernels ? tkx : tqx, inner = microkernels ? tqx : tkx;
    f.forLoop(f.cx(0), outer, [&](Value o) {
      f.forLoop(f.cx(0), inner, [&](Value n) {
        Value i = microkernels ? n : o, j = microkernels ? o : n;
        RegionEnv el = rowEnv;
        el.q = qAt(i);
        el.kv = kvAt(j);
        body(i, j, el);
      });
    });
  };
  // Where S[i, j] lives: row-major, or transposed for the microkernels.
  auto sAt = [&](Value i, Value j) -> Value {
    if (microkernels)
      return arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, j, TQx), i);
    return arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, i, TKx), j);
  };
  bool scoreIsIdentity =
      isa_and_nonnull<ScoreOp>(SpecOp::getYielded(spec.getScore()).getDefiningOp());
  Value negInf = f.cf(-std::numeric_limits<double>::infinity());
  Value zeroF = f.cf(0.0);

  // The scale: once per call when it depends only on the sizes.
  bool scaleIsElementwise = false;
  spec.getScale().walk([&](Operation *op) {
    if (isa<IndexOp, ReadOp>(op))
      scaleIsElementwise = true;
  });
  Value callScale;
  if (!scaleIsElementwise) {
    FailureOr<Value> s = emitSpecRegion(b, loc, spec, spec.getScale(), env);
    if (failed(s))
      return failure();
    callScale = *s;
  }

  bool needsMaskCode = !maskNeedsNoElementCode(mask);
  int64_t numIds = int64_t(collectIdsAtoms(mask).size());
  LogicalResult result = success();
  // Grid masks: 2-D query patches with gathered keys (TileGrid.cpp); qIdx
  // and kvIdx hold the rows and keys of the current task and key tile.
  std::optional<GridTiling> grid = chooseGridTiling(spec, tileQ, tileK);
  Value qIdx, kvIdx;
  if (grid) {
    qIdx = scratchOf(f.i64, TQ);
    kvIdx = scratchOf(f.i64, TK);
    func->setAttr("attn.grid_patch",
                  b.getDenseI64ArrayAttr({grid->width, grid->patchRows, grid->patchCols}));
  }

  auto taskLoop = f.forLoop(taskBegin, taskEnd, [&](Value task) {
    Value t = f.toI64(task);
    Value qt = arith::RemSIOp::create(b, loc, t, numQT);
    Value bh = arith::DivSIOp::create(b, loc, t, numQT);
    Value h = arith::RemSIOp::create(b, loc, bh, HQ);
    Value bb = arith::DivSIOp::create(b, loc, bh, HQ);
    Value hkv = arith::DivSIOp::create(b, loc, h, group);
    Value q0 = f.mul(qt, TQ);
    Value tq = arith::MinSIOp::create(b, loc, TQ, f.sub(LQ, q0));
    Value q1 = f.sub(f.add(q0, tq), f.ci(1));
    Value tqx = f.toIdx(tq);
    PatchTask patch;
    if (grid)
      patch = emitPatchRows(f, *grid, qt, LQ, qIdx);
    // The query of tile row i.
    IndexFn qOf = [&](Value i) -> Value {
      return grid ? f.load(qIdx, i) : f.add(q0, f.toI64(i));
    };
    RegionEnv rowEnv = env;
    rowEnv.b = bb;
    rowEnv.h = h;
    rowEnv.hkv = hkv;

    // Qs = Q[b, h, q0 : q0 + tq, :] in f32.
    Value qBase = f.add(f.mul(bb, qS[0]), f.mul(h, qS[1]));
    f.forLoop(f.cx(0), tqx, [&](Value i) {
      Value row = f.add(qBase, f.mul(qOf(i), qS[2]));
      f.forLoop(f.cx(0), Dx, [&](Value d) {
        Value x = f.load(qBuf, f.toIdx(f.add(row, f.mul(f.toI64(d), qS[3]))));
        // With microkernels Qs is stored transposed (d * TQ + i): it is the
        // right operand of the S^T = K Q^T microkernel.
        Value at = bf16Tiles ? pairAt(d, i, TQx)
            : microkernels
            ? arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, d, TQx), i)
            : arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, i, Dx), d);
        f.store(bf16Tiles ? x : f.toF32(x), Qs, at);
      });
    });
    // m = -inf, l = 0, acc = 0.
    f.forLoop(f.cx(0), tqx, [&](Value i) {
      f.store(negInf, mRow, i);
      f.store(zeroF, lRow, i);
      Value base = arith::MulIOp::create(b, loc, i, DVx);
      f.forLoop(f.cx(0), DVx, [&](Value d) {
        f.store(zeroF, acc, arith::AddIOp::create(b, loc, base, d));
      });
    });

    // The key tiles the mask analysis keeps for these rows.
    SmallVector<Value> syms = {bb, h, hkv, env.sizes[0], HQ, HKV, LQ, LK, D, DV};
    // ids_eq atoms: the rows' ids are scanned here (O(TQ)); the keys' come
    // from the pre-pass, per key tile.
    IdsContext ids;
    ids.range = [&](ArrayAttr read, Value p0, Value p1) {
      return emitIdsRange(f, rowEnv, read, p0, p1);
    };
    ids.keyRange = [&](unsigned n, Value k0, Value) {
      Value kt = arith::DivSIOp::create(b, loc, k0, TK);
      Value head = f.add(f.mul(bb, HQ), h);
      Value at = f.mul(f.add(f.mul(f.add(f.mul(head, f.ci(numIds)), f.ci(n)), numKT), kt),
                       f.ci(2));
      Value lo = f.load(idsScratch, f.toIdx(at));
      Value hi = f.load(idsScratch, f.toIdx(f.add(at, f.ci(1))));
      return std::make_pair(lo, hi);
    };

    Value kBase = f.add(f.mul(bb, kS[0]), f.mul(hkv, kS[1]));
    Value vBase = f.add(f.mul(bb, vS[0]), f.mul(hkv, vS[1]));
    // One visited key tile: keys k0 + j (contiguous) or kvIdx[j]
    // (gathered), j < tk.
    auto tileBody = [&](Value k0, Value tk, Value kind, bool gathered) {
        Value tkx = f.toIdx(tk);
        IndexFn kvOf = [&](Value j) -> Value {
          return gathered ? f.load(kvIdx, j) : f.add(k0, f.toI64(j));
        };
        // Ks, Vs = K/V[b, hkv, k0 : k0 + tk, :] in f32 (row j at j * dim;
        // with `transposed`, element (j, d) at d * TK + j).
        // (bf16 tiles: K rows of Dp elements, V in pairs of keys.)
        auto loadTile = [&](Value buf, Value base, ArrayRef<Value> st,
                            Value dim, Value tile, bool isV) {
          f.forLoop(f.cx(0), tkx, [&](Value j) {
            Value row = f.add(base, f.mul(kvOf(j), st[2]));
            f.forLoop(f.cx(0), dim, [&](Value d) {
              Value x = f.load(buf, f.toIdx(f.add(row, f.mul(f.toI64(d), st[3]))));
              Value at =
                  !bf16Tiles ? arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, j, dim), d)
                  : isV ? pairAt(j, d, DVx)
                        : arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, j, Dpx), d);
              f.store(bf16Tiles ? x : f.toF32(x), tile, at);
            });
          });
        };
        // The microkernels read K and V in place when their rows are
        // contiguous (as with any [.., L, D] layout), else from a copy;
        // bf16 V is packed into key pairs by a microkernel.
        Value kPtr, kLd, vPtr, vLd;
        if (microkernels && gathered) {
          // Gathered keys are always copied: by row-gather microkernels
          // when rows are contiguous and the storage is what the
          // microkernels read, else element by element (bf16 V into key
          // pairs, the pair of an odd last key zeroed).
          bool direct = storageType.isF32() || bf16Tiles;
          auto unit = [&](Value stride) {
            return arith::AndIOp::create(
                b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, stride, f.ci(1)),
                arith::ConstantIntOp::create(b, loc, b.getI1Type(), direct)).getResult();
          };
          StringRef gatherK = bf16Tiles ? "attnc_uk_gather_rows_bf16" : "attnc_uk_gather_rows_f32";
          f.ifPtrLd(
              unit(kS[3]),
              [&] {
                f.callMicrokernel(gatherK, {f.elemPtr(kBuf, kBase), kS[2], f.ptrOf(kvIdx), tk, D,
                                            f.ptrOf(Ks), Dq});
                return std::pair{f.ptrOf(Ks), Dq};
              },
              [&] {
                loadTile(kBuf, kBase, kS, Dx, Ks, /*isV=*/false);
                return std::pair{f.ptrOf(Ks), Dq};
              });
          f.ifPtrLd(
              unit(vS[3]),
              [&] {
                if (bf16Tiles)
                  f.callMicrokernel("attnc_uk_pack_pairs_gather_bf16",
                                    {f.elemPtr(vBuf, vBase), vS[2], f.ptrOf(kvIdx), tk, DV,
                                     f.ptrOf(Vs)});
                else
                  f.callMicrokernel("attnc_uk_gather_rows_f32",
                                    {f.elemPtr(vBuf, vBase), vS[2], f.ptrOf(kvIdx), tk, DV,
                                     f.ptrOf(Vs), DV});
                return std::pair{f.ptrOf(Vs), DV};
              },
              [&] {
                loadTile(vBuf, vBase, vS, DVx, Vs, /*isV=*/true);
                if (bf16Tiles) {
                  Value odd = arith::CmpIOp::create(
                      b, loc, arith::CmpIPredicate::ne,
                      arith::RemSIOp::create(b, loc, tk, f.ci(2)), f.ci(0));
                  f.ifThen(odd, [&] {
                    Value zero = arith::ConstantOp::create(b, loc, FloatAttr::get(tileType, 0.0));
                    f.forLoop(f.cx(0), DVx, [&](Value d) { f.store(zero, Vs, pairAt(tkx, d, DVx)); });
                  });
                }
                return std::pair{f.ptrOf(Vs), DV};
              });
          kPtr = f.ptrOf(Ks);
          kLd = Dq;
          vPtr = f.ptrOf(Vs);
          vLd = bf16Tiles ? f.mul(DV, f.ci(2)) : DV;
        } else if (microkernels) {
          // (In place only when the microkernel reads the storage type: f32,
          // or bf16 tiles; f16 is converted to f32 in a copy.)
          bool direct = storageType.isF32() || bf16Tiles;
          Value unitK = arith::AndIOp::create(
              b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, kS[3], f.ci(1)),
              arith::ConstantIntOp::create(b, loc, b.getI1Type(), direct));
          if (bf16Tiles)
            unitK = arith::AndIOp::create(
                b, loc, unitK, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, D, Dp));
          std::tie(kPtr, kLd) = f.ifPtrLd(
              unitK, [&] { return std::pair{f.elemPtr(kBuf, f.add(kBase, f.mul(k0, kS[2]))), kS[2]}; },
              [&] {
                loadTile(kBuf, kBase, kS, Dx, Ks, /*isV=*/false);
                return std::pair{f.ptrOf(Ks), Dq};
              });
          if (bf16Tiles) {
            f.callMicrokernel("attnc_uk_pack_pairs_bf16",
                              {f.elemPtr(vBuf, f.add(vBase, f.mul(k0, vS[2]))), vS[2], vS[3],
                               tk, DV, f.ptrOf(Vs)});
            vPtr = f.ptrOf(Vs);
            vLd = f.mul(DV, f.ci(2));
          } else {
            Value unitV = arith::AndIOp::create(
                b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, vS[3], f.ci(1)),
                arith::ConstantIntOp::create(b, loc, b.getI1Type(), direct));
            std::tie(vPtr, vLd) = f.ifPtrLd(
                unitV, [&] { return std::pair{f.elemPtr(vBuf, f.add(vBase, f.mul(k0, vS[2]))), vS[2]}; },
                [&] {
                  loadTile(vBuf, vBase, vS, DVx, Vs, /*isV=*/true);
                  return std::pair{f.ptrOf(Vs), DV};
                });
          }
        } else {
          loadTile(kBuf, kBase, kS, Dx, Ks, /*isV=*/false);
          loadTile(vBuf, vBase, vS, DVx, Vs, /*isV=*/true);
        }

        auto fastmath = arith::FastMathFlagsAttr::get(
            b.getContext(), arith::FastMathFlags::reassoc | arith::FastMathFlags::contract);
        if (microkernels) {
          // S^T = scale * Ks Qs^T in the register-tiled microkernel (S is
          // kept transposed: element (i, j) at j * TQ + i), then the score
          // region element-wise unless it is the identity.
          Value scaleArg = callScale ? callScale : f.cf(1.0);
          if (bf16Tiles)
            f.callMicrokernel("attnc_uk_qk_bf16",
                              {kPtr, kLd, f.ptrOf(Qs), f.mul(TQ, f.ci(2)), f.ptrOf(S),
                               TQ, tk, tq, arith::DivSIOp::create(b, loc, Dp, f.ci(2)),
                               scaleArg});
          else
            f.callMicrokernel("attnc_uk_qk_f32",
                              {kPtr, kLd, f.ptrOf(Qs), TQ, f.ptrOf(S), TQ, tk, tq, D,
                               scaleArg});
          if (!scoreIsIdentity || !callScale) {
            forEachElement(tqx, tkx, rowEnv, qOf, kvOf, [&](Value i, Value j, RegionEnv &el) {
              Value at = sAt(i, j);
              el.score = f.load(S, at);
              if (!callScale) {
                FailureOr<Value> sc = emitSpecRegion(b, loc, spec, spec.getScale(), el);
                if (failed(sc)) { result = failure(); return; }
                el.score = arith::MulFOp::create(b, loc, el.score, *sc);
              }
              FailureOr<Value> s = emitSpecRegion(b, loc, spec, spec.getScore(), el);
              if (failed(s)) { result = failure(); return; }
              f.store(*s, S, at);
            });
          }
        }
        // S[i, j] = score(scale * Qs[i] . Ks[j]).
        if (!microkernels) f.forLoop(f.cx(0), tqx, [&](Value i) {
          RegionEnv el = rowEnv;
          el.q = qOf(i);
          Value qRow = arith::MulIOp::create(b, loc, i, Dx);
          f.forLoop(f.cx(0), tkx, [&](Value j) {
            el.kv = kvOf(j);
            Value kRow = arith::MulIOp::create(b, loc, j, Dx);
            Value dot = f.reduceLoop(f.cx(0), Dx, zeroF, [&](Value d, Value s) {
              Value x = f.load(Qs, arith::AddIOp::create(b, loc, qRow, d));
              Value y = f.load(Ks, arith::AddIOp::create(b, loc, kRow, d));
              Value p = arith::MulFOp::create(b, loc, x, y, fastmath);
              return arith::AddFOp::create(b, loc, s, p, fastmath).getResult();
            });
            Value scale = callScale;
            if (!scale) {
              FailureOr<Value> s = emitSpecRegion(b, loc, spec, spec.getScale(), el);
              if (failed(s)) { result = failure(); return; }
              scale = *s;
            }
            el.score = arith::MulFOp::create(b, loc, dot, scale);
            FailureOr<Value> s = emitSpecRegion(b, loc, spec, spec.getScore(), el);
            if (failed(s)) { result = failure(); return; }
            Value at = arith::AddIOp::create(
                b, loc, arith::MulIOp::create(b, loc, i, TKx), j);
            f.store(*s, S, at);
          });
        });

        // PARTIAL tiles only: S[i, j] = -inf where the mask drops (q, kv).
        if (needsMaskCode) {
          Value partial = arith::CmpIOp::create(
              b, loc, arith::CmpIPredicate::eq, kind, f.ci(kTilePartial));
          auto partialIf = f.ifThen(partial, [&] {
            forEachElement(tqx, tkx, rowEnv, qOf, kvOf, [&](Value i, Value j, RegionEnv &el) {
              FailureOr<Value> keep = emitSpecRegion(b, loc, spec, spec.getMask(), el);
              if (failed(keep)) { result = failure(); return; }
              Value at = sAt(i, j);
              Value s = f.load(S, at);
              f.store(arith::SelectOp::create(b, loc, *keep, s, negInf), S, at);
            });
          });
          FlashBuilder::mark(partialIf, "attn.tile", "partial");
        }

        if (microkernels) {
          // softmax: the online update, then acc = alpha acc + P V;
          // sigmoid: P element-wise, then acc += P V.
          Value alphaArg = f.nullPtr();
          if (!sigmoid) {
            f.callMicrokernel("attnc_uk_softmax_t_f32",
                              {f.ptrOf(S), TQ, tq, tk, f.ptrOf(mRow), f.ptrOf(lRow),
                               f.ptrOf(alphaRow)});
            alphaArg = f.ptrOf(alphaRow);
          } else {
            forEachElement(tqx, tkx, rowEnv, qOf, kvOf, [&](Value i, Value j, RegionEnv &el) {
              FailureOr<Value> bias = emitSpecRegion(b, loc, spec, spec.getBias(), el);
              if (failed(bias)) { result = failure(); return; }
              Value at = sAt(i, j);
              Value x = arith::AddFOp::create(b, loc, f.load(S, at), *bias);
              Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, x));
              f.store(arith::DivFOp::create(
                          b, loc, f.cf(1.0), arith::AddFOp::create(b, loc, f.cf(1.0), e)),
                      S, at);
            });
          }
          if (bf16Tiles)
            f.callMicrokernel("attnc_uk_pv_t_bf16",
                              {f.ptrOf(S), TQ, vPtr, vLd, f.ptrOf(acc), DV, tq, tk, DV,
                               alphaArg});
          else
            f.callMicrokernel("attnc_uk_pv_t_f32",
                              {f.ptrOf(S), TQ, vPtr, vLd, f.ptrOf(acc), DV, tq, tk, DV,
                               alphaArg});
          return;
        }
        // The normalisation update and O += P V, row by row.
        f.forLoop(f.cx(0), tqx, [&](Value i) {
          Value sRow = arith::MulIOp::create(b, loc, i, TKx);
          Value accRow = arith::MulIOp::create(b, loc, i, DVx);
          if (!sigmoid) {
            Value rowMax = f.reduceLoop(f.cx(0), tkx, negInf, [&](Value j, Value m) {
              Value s = f.load(S, arith::AddIOp::create(b, loc, sRow, j));
              return arith::MaximumFOp::create(b, loc, m, s).getResult();
            });
            Value mOld = f.load(mRow, i);
            Value mNew = arith::MaximumFOp::create(b, loc, mOld, rowMax);
            Value allMasked = arith::CmpFOp::create(
                b, loc, arith::CmpFPredicate::OEQ, mNew, negInf);
            Value mZ = arith::SelectOp::create(b, loc, allMasked, zeroF, mNew);
            Value alpha = math::ExpOp::create(b, loc, arith::SubFOp::create(b, loc, mOld, mZ));
            Value sum = f.reduceLoop(f.cx(0), tkx, zeroF, [&](Value j, Value l) {
              Value at = arith::AddIOp::create(b, loc, sRow, j);
              Value p = math::ExpOp::create(
                  b, loc, arith::SubFOp::create(b, loc, f.load(S, at), mZ));
              f.store(p, S, at);
              return arith::AddFOp::create(b, loc, l, p, fastmath).getResult();
            });
            Value lNew = arith::AddFOp::create(
                b, loc, arith::MulFOp::create(b, loc, alpha, f.load(lRow, i)), sum);
            f.store(lNew, lRow, i);
            f.store(mNew, mRow, i);
            f.forLoop(f.cx(0), DVx, [&](Value d) {
              Value at = arith::AddIOp::create(b, loc, accRow, d);
              f.store(arith::MulFOp::create(b, loc, f.load(acc, at), alpha), acc, at);
            });
          } else {
            RegionEnv el = rowEnv;
            el.q = qOf(i);
            f.forLoop(f.cx(0), tkx, [&](Value j) {
              el.kv = kvOf(j);
              FailureOr<Value> bias = emitSpecRegion(b, loc, spec, spec.getBias(), el);
              if (failed(bias)) { result = failure(); return; }
              Value at = arith::AddIOp::create(b, loc, sRow, j);
              // p = 1 / (1 + exp(-(s + bias))); a masked s = -inf gives 0.
              Value x = arith::AddFOp::create(b, loc, f.load(S, at), *bias);
              Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, x));
              Value p = arith::DivFOp::create(
                  b, loc, f.cf(1.0), arith::AddFOp::create(b, loc, f.cf(1.0), e));
              f.store(p, S, at);
            });
          }
          f.forLoop(f.cx(0), tkx, [&](Value j) {
            Value p = f.load(S, arith::AddIOp::create(b, loc, sRow, j));
            Value vRow = arith::MulIOp::create(b, loc, j, DVx);
            f.forLoop(f.cx(0), DVx, [&](Value d) {
              Value at = arith::AddIOp::create(b, loc, accRow, d);
              Value v = f.load(Vs, arith::AddIOp::create(b, loc, vRow, d));
              Value upd = arith::AddFOp::create(
                  b, loc, f.load(acc, at), arith::MulFOp::create(b, loc, p, v, fastmath),
                  fastmath);
              f.store(upd, acc, at);
            });
          });
        });
    };
    // The key tiles the schedule keeps for rows [q0, q1], in order.
    auto contiguousKeys = [&] {
    EmittedRows rows = emitRowBlock(b, loc, mask, q0, q1, syms, &ids);
    Value nonEmpty = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle,
                                           rows.hullLo, rows.hullHi);
    Value first = arith::SelectOp::create(
        b, loc, nonEmpty, arith::DivSIOp::create(b, loc, rows.hullLo, TK), f.ci(0));
    Value end = arith::SelectOp::create(
        b, loc, nonEmpty,
        f.add(arith::DivSIOp::create(b, loc, rows.hullHi, TK), f.ci(1)), f.ci(0));
    auto keyLoop = f.forLoop(f.toIdx(first), f.toIdx(end), [&](Value ktx) {
      Value kt = f.toI64(ktx);
      Value k0 = f.mul(kt, TK);
      Value tk = arith::MinSIOp::create(b, loc, TK, f.sub(LK, k0));
      Value k1 = f.sub(f.add(k0, tk), f.ci(1));
      Value kind = emitTileKind(b, loc, mask, rows, k0, k1, &ids);
      Value visit = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne,
                                          kind, f.ci(kTileEmpty));
      auto visitIf = f.ifThen(visit, [&] {
        f.ifThen(hasTrace, [&] {
          Value at = f.add(f.mul(t, numKT), kt);
          f.store(arith::TruncIOp::create(b, loc, b.getI8Type(), kind),
                  traceBuf, f.toIdx(at));
        });
        tileBody(k0, tk, kind, /*gathered=*/false);
      });
      FlashBuilder::mark(visitIf, "attn.tile", "visit");
    });
    FlashBuilder::mark(keyLoop, "attn.loop", "key_tiles");
    };
    if (grid) {
      auto split = scf::IfOp::create(b, loc, patch.isPatch, /*withElse=*/true);
      {
        OpBuilder::InsertionGuard g(b);
        b.setInsertionPoint(split.thenBlock()->getTerminator());
        emitGridKeyTiles(f, *grid, mask, syms, patch, LK, kvIdx, [&](Value n) {
          // The trace marks the (contiguous) key tiles the gathered keys
          // fall in as PARTIAL.
          f.ifThen(hasTrace, [&] {
            f.forLoop(f.cx(0), f.toIdx(n), [&](Value j) {
              Value kt = arith::DivSIOp::create(b, loc, f.load(kvIdx, j), TK);
              f.store(f.cI8(kTilePartial), traceBuf, f.toIdx(f.add(f.mul(t, numKT), kt)));
            });
          });
          tileBody(Value(), n, f.ci(kTilePartial), /*gathered=*/true);
        });
        b.setInsertionPoint(split.elseBlock()->getTerminator());
        contiguousKeys();
      }
      FlashBuilder::mark(split, "attn.tile", "grid_patch");
    } else {
      contiguousKeys();
    }

    // Finalise: out = acc / l (0 for an empty row), lse = m + log l.
    Value oBase = f.add(f.mul(bb, oS[0]), f.mul(h, oS[1]));
    Value lBase = f.add(f.mul(bb, lS[0]), f.mul(h, lS[1]));
    f.forLoop(f.cx(0), tqx, [&](Value i) {
      Value qi = qOf(i);
      Value inv = f.cf(1.0);
      Value l;
      if (!sigmoid) {
        l = f.load(lRow, i);
        Value kept = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, l, zeroF);
        inv = arith::SelectOp::create(
            b, loc, kept, arith::DivFOp::create(b, loc, f.cf(1.0), l), zeroF);
        f.ifThen(hasLse, [&] {
          Value lse = arith::AddFOp::create(b, loc, f.load(mRow, i),
                                            math::LogOp::create(b, loc, l));
          Value at = f.add(lBase, f.mul(qi, lS[2]));
          f.store(arith::SelectOp::create(b, loc, kept, lse, negInf), lseBuf, f.toIdx(at));
        });
      }
      Value row = f.add(oBase, f.mul(qi, oS[2]));
      Value accRow = arith::MulIOp::create(b, loc, i, DVx);
      f.forLoop(f.cx(0), DVx, [&](Value d) {
        Value a = f.load(acc, arith::AddIOp::create(b, loc, accRow, d));
        Value o = sigmoid ? a : Value(arith::MulFOp::create(b, loc, a, inv));
        f.store(f.toStorage(o), oBuf, f.toIdx(f.add(row, f.mul(f.toI64(d), oS[3]))));
      });
    });
  });
  FlashBuilder::mark(taskLoop, "attn.loop", "tasks");
  if (failed(result)) {
    func.erase();
    return failure();
  }
  return success();
}
} // namespace
