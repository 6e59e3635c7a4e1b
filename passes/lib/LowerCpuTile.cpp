//===- LowerCpuTile.cpp - attn-lower-cpu: one key tile of one task --------===//
//
// emitKeyTile, in the order of its steps:
//   1. K and V operands: copies into Ks / Vs (f32, or bf16 pair layouts), or,
//      with microkernels, the buffers in place when their rows are
//      contiguous and of a type the microkernels read (bf16 V is then
//      packed into pairs by the P V microkernel, unless the rows are few);
//   2. with microkernels, S^T = scale * Ks Qs^T in attnc_uk_qk_*;
//   3. the element step: S[i, j] = score(scale * Qs[i] . Ks[j]) (the dot
//      in scalar loops without microkernels), on PARTIAL tiles -inf where
//      the mask region drops (q, kv), sigmoid: P = sigmoid(S + bias). The
//      mask comes first and guards the other regions (RegionEnv::guard):
//      the score, scale and bias regions' reads and divisions report
//      errors only on kept pairs, the language's evaluation rule;
//   4. the update: online softmax (m, l, alpha); with dropout in a call
//      that drops, P *= 0 or 1 / (1 - p) per pair (after l took P); then
//      acc += P V.
// With microkernels S is kept transposed (element (i, j) at j * TQ + i).
//
//===----------------------------------------------------------------------===//
#include "LowerCpu.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::flash;

static arith::FastMathFlagsAttr reassocContract(OpBuilder &b) {
  return arith::FastMathFlagsAttr::get(
      b.getContext(), arith::FastMathFlags::reassoc | arith::FastMathFlags::contract);
}

void CpuFlashLowering::emitKeyTile(TaskState &ts, Value k0, Value tk, Value kind,
                                   bool gathered) {
  Value tkx = f.toIdx(tk);
  IndexFn kvOf = [this, k0, gathered](Value j) -> Value {
    return gathered ? f.load(kvIdx, j) : f.add(k0, f.toI64(j));
  };
  KVOperands kv;
  if (microkernels && gathered) {
    kv = loadGatheredOperands(ts, tk, tkx, kvOf);
  } else if (microkernels) {
    kv = loadContiguousOperands(ts, k0, tk, tkx, kvOf);
  } else {
    loadTile(kBuf, ts.kBase, kS, Dx, Ks, /*isV=*/false, tkx, kvOf);
    loadTile(vBuf, ts.vBase, vS, DVx, Vs, /*isV=*/true, tkx, kvOf);
  }
  if (microkernels)
    scoresWithMicrokernels(ts, kv, tk);
  elementStep(ts, kind, tkx, kvOf);
  // Dropout draws per 4 consecutive keys where the tile's keys are.
  Value firstKey = gathered ? Value() : f.add(kvPos, k0);
  if (microkernels)
    updateWithMicrokernels(ts, kv, tk, tkx, kvOf, firstKey);
  else
    updateWithLoops(ts, tkx, kvOf, firstKey);
}

/// tile = buf[b, hkv, keys, :dim] (row j at j * dim; bf16 tiles: K rows of
/// Dp elements, V in pairs of keys).
void CpuFlashLowering::loadTile(Value buf, Value base, ArrayRef<Value> st, Value dim,
                                Value tile, bool isV, Value tkx, const IndexFn &kvOf) {
  f.forLoop(f.cx(0), tkx, [&](Value j) {
    Value row = f.add(base, f.mul(kvOf(j), st[2]));
    f.forLoop(f.cx(0), dim, [&](Value d) {
      Value x = f.load(buf, f.toIdx(f.add(row, f.mul(f.toI64(d), st[3]))));
      Value at = !bf16Tiles ? arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, j, dim), d)
                 : isV      ? pairAt(j, d, DVx)
                            : arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, j, Dpx), d);
      f.store(bf16Tiles ? x : f.toF32(x), tile, at);
    });
  });
}

/// Gathered keys are always copied: by row-gather microkernels when rows are
/// contiguous and the storage is what the microkernels read, else element
/// by element (bf16 V into key pairs, the pair of an odd last key zeroed).
KVOperands CpuFlashLowering::loadGatheredOperands(TaskState &ts, Value tk, Value tkx,
                                                  const IndexFn &kvOf) {
  Value kBase = ts.kBase, vBase = ts.vBase;
  bool direct = storageType.isF32() || bf16Tiles;
  auto unit = [&](Value stride) {
    return arith::AndIOp::create(
               b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, stride, f.ci(1)),
               arith::ConstantIntOp::create(b, loc, b.getI1Type(), direct))
        .getResult();
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
        loadTile(kBuf, kBase, kS, Dx, Ks, /*isV=*/false, tkx, kvOf);
        return std::pair{f.ptrOf(Ks), Dq};
      });
  f.ifPtrLd(
      unit(vS[3]),
      [&] {
        if (bf16Tiles)
          f.callMicrokernel("attnc_uk_pack_pairs_gather_bf16",
                            {f.elemPtr(vBuf, vBase), vS[2], f.ptrOf(kvIdx), tk, DV, f.ptrOf(Vs)});
        else
          f.callMicrokernel("attnc_uk_gather_rows_f32", {f.elemPtr(vBuf, vBase), vS[2],
                                                         f.ptrOf(kvIdx), tk, DV, f.ptrOf(Vs), DV});
        return std::pair{f.ptrOf(Vs), DV};
      },
      [&] {
        loadTile(vBuf, vBase, vS, DVx, Vs, /*isV=*/true, tkx, kvOf);
        if (bf16Tiles) {
          Value odd = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne,
                                            arith::RemSIOp::create(b, loc, tk, f.ci(2)), f.ci(0));
          f.ifThen(odd, [&] {
            Value zero = arith::ConstantOp::create(b, loc, FloatAttr::get(storageType, 0.0));
            f.forLoop(f.cx(0), DVx, [&](Value d) { f.store(zero, Vs, pairAt(tkx, d, DVx)); });
          });
        }
        return std::pair{f.ptrOf(Vs), DV};
      });
  return {f.ptrOf(Ks), Dq, f.ptrOf(Vs), bf16Tiles ? f.mul(DV, f.ci(2)) : DV};
}

/// The microkernels read K and V in place when their rows are contiguous
/// (as with any [.., L, D] layout) and the storage is what they read (f32,
/// or bf16 tiles; f16 is converted to f32 in a copy); bf16 V goes to the
/// P V microkernel as stored, which packs it into key pairs in Vs unless
/// the rows are few (attnc_uk_pv_t_bf16_unpacked: a decode step reads V
/// once, in place).
KVOperands CpuFlashLowering::loadContiguousOperands(TaskState &ts, Value k0, Value tk,
                                                    Value tkx, const IndexFn &kvOf) {
  Value kBase = ts.kBase, vBase = ts.vBase;
  bool direct = storageType.isF32() || bf16Tiles;
  auto unitStride = [&](Value stride) -> Value {
    return arith::AndIOp::create(
        b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, stride, f.ci(1)),
        arith::ConstantIntOp::create(b, loc, b.getI1Type(), direct));
  };
  KVOperands kv;
  Value unitK = unitStride(kS[3]);
  if (bf16Tiles)
    unitK = arith::AndIOp::create(b, loc, unitK,
                                  arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, D, Dp));
  std::tie(kv.kPtr, kv.kLd) = f.ifPtrLd(
      unitK, [&] { return std::pair{f.elemPtr(kBuf, f.add(kBase, f.mul(k0, kS[2]))), kS[2]}; },
      [&] {
        loadTile(kBuf, kBase, kS, Dx, Ks, /*isV=*/false, tkx, kvOf);
        return std::pair{f.ptrOf(Ks), Dq};
      });
  if (bf16Tiles) {
    kv.vPtr = f.elemPtr(vBuf, f.add(vBase, f.mul(k0, vS[2])));
    kv.vLd = vS[2];
    kv.vColLd = vS[3];
    return kv;
  }
  std::tie(kv.vPtr, kv.vLd) = f.ifPtrLd(
      unitStride(vS[3]),
      [&] { return std::pair{f.elemPtr(vBuf, f.add(vBase, f.mul(k0, vS[2]))), vS[2]}; },
      [&] {
        loadTile(vBuf, vBase, vS, DVx, Vs, /*isV=*/true, tkx, kvOf);
        return std::pair{f.ptrOf(Vs), DV};
      });
  return kv;
}

/// S^T = scale * Ks Qs^T in the register-tiled microkernel (the element
/// step applies the score region).
void CpuFlashLowering::scoresWithMicrokernels(TaskState &ts, const KVOperands &kv, Value tk) {
  Value scaleArg = callScale ? callScale : f.cf(1.0);
  if (bf16Tiles)
    f.callMicrokernel("attnc_uk_qk_bf16",
                      {kv.kPtr, kv.kLd, f.ptrOf(Qs), f.mul(TQ, f.ci(2)), f.ptrOf(S), TQ, tk,
                       ts.tq, arith::DivSIOp::create(b, loc, Dp, f.ci(2)), scaleArg});
  else
    f.callMicrokernel("attnc_uk_qk_f32", {kv.kPtr, kv.kLd, f.ptrOf(Qs), TQ, f.ptrOf(S), TQ, tk,
                                          ts.tq, D, scaleArg});
}

/// Step 3 on every element of the tile: PARTIAL tiles (with
/// mask_on_partial) in the branch marked attn.tile = "partial", the others
/// without mask code. With microkernels, an identity score and a scale per
/// call, a softmax FULL tile has nothing to do.
void CpuFlashLowering::elementStep(TaskState &ts, Value kind, Value tkx, const IndexFn &kvOf) {
  auto loop = [&](bool partial) {
    forEachElement(ts, tkx, kvOf, [&](Value i, Value j, RegionEnv &el) {
      if (Value v = elementValue(i, j, el, partial))
        f.store(v, S, sAt(i, j));
    });
  };
  bool fullIsNoop = microkernels && scoreIsIdentity && callScale && !sigmoid;
  if (!flashOp.getMaskOnPartial()) {
    if (!fullIsNoop)
      loop(false);
    return;
  }
  Value partial = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, kind,
                                        f.ci(kTilePartial));
  auto partialIf = scf::IfOp::create(b, loc, partial, /*withElse=*/!fullIsNoop);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(partialIf.thenBlock()->getTerminator());
    loop(true);
    if (!fullIsNoop) {
      b.setInsertionPoint(partialIf.elseBlock()->getTerminator());
      loop(false);
    }
  }
  FlashBuilder::mark(partialIf, "attn.tile", "partial");
}

/// S[i, j] after step 3, or null after a region failed. `partial`: the
/// mask region first, its value the guard of the others, and -inf (sigmoid:
/// P = 0) where it drops the pair.
Value CpuFlashLowering::elementValue(Value i, Value j, RegionEnv &el, bool partial) {
  Value keep;
  if (partial) {
    keep = region(spec.getMask(), el);
    if (!keep)
      return {};
    el.guard = keep;
  }
  Value s;
  if (microkernels) {
    s = f.load(S, sAt(i, j));
  } else {
    auto fastmath = reassocContract(b);
    Value qRow = arith::MulIOp::create(b, loc, i, Dx);
    Value kRow = arith::MulIOp::create(b, loc, j, Dx);
    s = f.reduceLoop(f.cx(0), Dx, zeroF, [&](Value d, Value acc) {
      Value x = f.load(Qs, arith::AddIOp::create(b, loc, qRow, d));
      Value y = f.load(Ks, arith::AddIOp::create(b, loc, kRow, d));
      Value p = arith::MulFOp::create(b, loc, x, y, fastmath);
      return arith::AddFOp::create(b, loc, acc, p, fastmath).getResult();
    });
    if (callScale)
      s = arith::MulFOp::create(b, loc, s, callScale);
  }
  if (!callScale) {
    Value sc = region(spec.getScale(), el);
    if (!sc)
      return {};
    s = arith::MulFOp::create(b, loc, s, sc);
  }
  if (!scoreIsIdentity) {
    el.score = s;
    s = region(spec.getScore(), el);
    if (!s)
      return {};
  }
  if (sigmoid) {
    s = sigmoidOf(s, el);
    if (!s)
      return {};
  }
  if (!partial)
    return s;
  return arith::SelectOp::create(b, loc, keep, s, sigmoid ? zeroF : negInf);
}

/// p = 1 / (1 + exp(-(s + bias))).
Value CpuFlashLowering::sigmoidOf(Value s, const RegionEnv &el) {
  Value bias = region(spec.getBias(), el);
  if (!bias)
    return {};
  Value x = arith::AddFOp::create(b, loc, s, bias);
  Value e = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, x));
  return arith::DivFOp::create(b, loc, f.cf(1.0), arith::AddFOp::create(b, loc, f.cf(1.0), e));
}

/// softmax: the online update in a microkernel, then acc = alpha acc + P V;
/// sigmoid (P from the element step): acc += P V.
void CpuFlashLowering::updateWithMicrokernels(TaskState &ts, const KVOperands &kv, Value tk,
                                              Value tkx, const IndexFn &kvOf, Value firstKey) {
  Value alphaArg = f.nullPtr();
  if (!sigmoid) {
    f.callMicrokernel("attnc_uk_softmax_t_f32", {f.ptrOf(S), TQ, ts.tq, tk, f.ptrOf(mRow),
                                                 f.ptrOf(lRow), f.ptrOf(alphaRow)});
    alphaArg = f.ptrOf(alphaRow);
  }
  applyDropout(ts, tkx, kvOf, firstKey);
  if (kv.vColLd) { // bf16 V as stored; Vs is the pair-packing scratch
    f.callMicrokernel("attnc_uk_pv_t_bf16_unpacked",
                      {f.ptrOf(S), TQ, kv.vPtr, kv.vLd, kv.vColLd, f.ptrOf(acc), DV, ts.tq,
                       tk, DV, alphaArg, f.ptrOf(Vs)});
    return;
  }
  f.callMicrokernel(bf16Tiles ? "attnc_uk_pv_t_bf16" : "attnc_uk_pv_t_f32",
                    {f.ptrOf(S), TQ, kv.vPtr, kv.vLd, f.ptrOf(acc), DV, ts.tq, tk, DV, alphaArg});
}

/// The softmax update row by row, dropout, then O += P V (sigmoid: P from
/// the element step).
void CpuFlashLowering::updateWithLoops(TaskState &ts, Value tkx, const IndexFn &kvOf,
                                       Value firstKey) {
  auto fastmath = reassocContract(b);
  if (!sigmoid)
    f.forLoop(f.cx(0), ts.tqx, [&](Value i) {
      Value sRow = arith::MulIOp::create(b, loc, i, TKx);
      Value accRow = arith::MulIOp::create(b, loc, i, DVx);
      Value rowMax = f.reduceLoop(f.cx(0), tkx, negInf, [&](Value j, Value m) {
        Value s = f.load(S, arith::AddIOp::create(b, loc, sRow, j));
        return arith::MaximumFOp::create(b, loc, m, s).getResult();
      });
      Value mOld = f.load(mRow, i);
      Value mNew = arith::MaximumFOp::create(b, loc, mOld, rowMax);
      Value allMasked = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, mNew, negInf);
      Value mZ = arith::SelectOp::create(b, loc, allMasked, zeroF, mNew);
      Value alpha = math::ExpOp::create(b, loc, arith::SubFOp::create(b, loc, mOld, mZ));
      Value sum = f.reduceLoop(f.cx(0), tkx, zeroF, [&](Value j, Value l) {
        Value at = arith::AddIOp::create(b, loc, sRow, j);
        Value p = math::ExpOp::create(b, loc, arith::SubFOp::create(b, loc, f.load(S, at), mZ));
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
    });
  applyDropout(ts, tkx, kvOf, firstKey);
  f.forLoop(f.cx(0), ts.tqx, [&](Value i) {
    Value sRow = arith::MulIOp::create(b, loc, i, TKx);
    Value accRow = arith::MulIOp::create(b, loc, i, DVx);
    f.forLoop(f.cx(0), tkx, [&](Value j) {
      Value p = f.load(S, arith::AddIOp::create(b, loc, sRow, j));
      Value vRow = arith::MulIOp::create(b, loc, j, DVx);
      f.forLoop(f.cx(0), DVx, [&](Value d) {
        Value at = arith::AddIOp::create(b, loc, accRow, d);
        Value v = f.load(Vs, arith::AddIOp::create(b, loc, vRow, d));
        Value upd = arith::AddFOp::create(
            b, loc, f.load(acc, at), arith::MulFOp::create(b, loc, p, v, fastmath), fastmath);
        f.store(upd, acc, at);
      });
    });
  });
}

/// softmax(dropout = p), in a call that drops: P[i, j] *= 0 or 1 / (1 - p)
/// (LowerCpuDropout.cpp), after the row sums took the undropped P, so that
/// l, and the lse, are those of the undropped softmax. Contiguous keys
/// (firstKey, the tile's first key position, set) draw one Philox call per
/// row and 4 keys, for keys 4g .. 4g + 3 (g from firstKey / 4 to the last
/// key's): with microkernels and rows r0 + i, in attnc_uk_dropout_t_f32
/// (16 or 8 rows per vector); otherwise here, rows innermost, where a key
/// outside the tile is clamped into it and stores back what it loaded, so
/// the loop over rows has no branch. Gathered keys draw per pair.
void CpuFlashLowering::applyDropout(TaskState &ts, Value tkx, const IndexFn &kvOf,
                                    Value firstKey) {
  if (!dropout)
    return;
  auto onIf = f.ifThen(dropout.on, [&] {
    if (!firstKey) {
      forEachElement(ts, tkx, kvOf, [&](Value i, Value j, RegionEnv &el) {
        Value at = sAt(i, j);
        Value factor = emitDropoutFactor(f, dropout, HQ, el);
        f.store(arith::MulFOp::create(b, loc, f.load(S, at), factor), S, at);
      });
      return;
    }
    Value tk = f.toI64(tkx);
    if (microkernels && !grid) { // rows r0 + i of the task, S transposed
      Value bh0 = f.add(f.mul(f.add(dropout.batch, ts.b), HQ), ts.h);
      Value threshold = arith::ExtUIOp::create(b, loc, f.i64, dropout.threshold);
      f.callMicrokernel("attnc_uk_dropout_t_f32",
                        {f.ptrOf(S), TQ, ts.tq, tk, firstKey, ts.r0, LQ, qPos, bh0, dropout.seed,
                         dropout.offset64, threshold, dropout.scale});
      return;
    }
    Value g0 = arith::ShRUIOp::create(b, loc, firstKey, f.ci(2));
    Value g1 = arith::ShRUIOp::create(b, loc, f.sub(f.add(firstKey, tk), f.ci(1)), f.ci(2));
    Value lastJ = f.sub(tk, f.ci(1));
    f.forLoop(f.toIdx(g0), f.toIdx(f.add(g1, f.ci(1))), [&](Value gx) {
      Value g = f.toI64(gx);
      f.forLoop(f.cx(0), ts.tqx, [&](Value i) {
        RegionEnv el = ts.rowEnv;
        if (packsHeads)
          el.h = ts.headOf(i);
        Value q = f.add(qPos, ts.qOf(i));
        std::array<Value, 4> words =
            emitPhilox(f, dropout, g, q, dropoutCounterBh(f, dropout, HQ, el));
        for (int64_t w = 0; w < 4; ++w) {
          Value j = f.sub(f.add(f.mul(g, f.ci(4)), f.ci(w)), firstKey);
          Value inside = arith::AndIOp::create(
              b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sge, j, f.ci(0)),
              arith::CmpIOp::create(b, loc, arith::CmpIPredicate::sle, j, lastJ));
          Value jc = arith::MinSIOp::create(b, loc, arith::MaxSIOp::create(b, loc, j, f.ci(0)),
                                            lastJ);
          Value at = sAt(i, f.toIdx(jc));
          Value factor = arith::SelectOp::create(
              b, loc, inside, emitDropoutWordFactor(f, dropout, words[size_t(w)]), f.cf(1.0));
          f.store(arith::MulFOp::create(b, loc, f.load(S, at), factor), S, at);
        }
      });
    });
  });
  FlashBuilder::mark(onIf, "attn.step", "dropout");
}

/// Visits the elements of a tile in the order of S's layout (i innermost
/// when S is transposed), so element code runs on contiguous memory and
/// LLVM can vectorise it; `body` gets (i, j, env with q and kv set).
void CpuFlashLowering::forEachElement(
    TaskState &ts, Value tkx, const IndexFn &kvOf,
    const std::function<void(Value, Value, RegionEnv &)> &body) {
  Value outer = microkernels ? tkx : ts.tqx, inner = microkernels ? ts.tqx : tkx;
  f.forLoop(f.cx(0), outer, [&](Value o) {
    f.forLoop(f.cx(0), inner, [&](Value n) {
      Value i = microkernels ? n : o, j = microkernels ? o : n;
      RegionEnv el = ts.rowEnv;
      if (packsHeads) // the row's head, for a score, scale or bias reading h
        el.h = ts.headOf(i);
      el.q = f.add(qPos, ts.qOf(i));
      el.kv = f.add(kvPos, kvOf(j));
      body(i, j, el);
    });
  });
}

/// Where S[i, j] lives: row-major, or transposed for the microkernels.
Value CpuFlashLowering::sAt(Value i, Value j) {
  if (microkernels)
    return arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, j, TQx), i);
  return arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, i, TKx), j);
}

/// Position (a / 2, b, a % 2) of a pair layout with `n` columns.
Value CpuFlashLowering::pairAt(Value a, Value bIdx, Value n) {
  Value c2 = f.cx(2);
  Value pair = arith::DivUIOp::create(b, loc, a, c2);
  Value half = arith::RemUIOp::create(b, loc, a, c2);
  Value cell = arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, pair, n), bIdx);
  return arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, cell, c2), half);
}
