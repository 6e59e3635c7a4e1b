//===- LowerCpuGrid.cpp - attn-lower-cpu: 2-D query patches for grid masks ===//
//
// Masks over a row-major grid of W columns (2-D neighbourhood attention)
// keep, for a run of contiguous queries, keys in whole grid rows: a query
// tile of one grid row needs every key of the band of rows around it,
// however small the window. So for specs with a grid view (attn.grid, see
// MaskAnalysis.h) the query tiles become 2-D patches, and the keys of a
// patch are gathered from a rectangle of the grid.
//
// Math. Tasks keep their count, ceil(LQ / TQ) per (b, h): the queries are
// permuted. With patch columns PC = 8 and patch rows PR = TQ / PC, a band
// is PR grid rows (PR * W queries, a multiple of TQ since PC | W), and the
// first NB = floor(floor(LQ / W) / PR) bands are cut into W / PC patches:
//   n0 = qt * TQ < NB * PR * W:
//     band = n0 / (PR W),  pc = (n0 mod PR W) / TQ,  qr0 = band PR,  qc0 = pc PC
//     q(i) = (qr0 + i / PC) W + qc0 + i mod PC          (i < TQ)
//   otherwise q(i) = n0 + i (the tail, tiled as before).
// For a patch, the ordinary formula over q in [q(0), q(TQ-1)] bounds the
// keys to [hLo, hHi] (whole grid rows), and the column formula over
// qc in [qc0, qc0 + PC - 1] bounds kv mod W to [cLo, cHi]. Both are sound,
// so every kept key of the patch is in
//   { kv = r W + c : hLo <= kv <= hHi, cLo <= c <= cHi },
// which is gathered row segment by row segment into key tiles of at most
// TK keys (segments of several rows share a tile; the rows are spread
// evenly over the tiles). Gathered tiles are PARTIAL: the mask runs per
// element, so the result is exact.
//
//===----------------------------------------------------------------------===//
#include "attnc/Passes/ScheduleEmitter.h"
#include "FlashBuilder.h"

#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::flash;

PatchTask flash::emitPatchRows(FlashBuilder &f, const GridTiling &g, Value qt,
                               Value LQ, Value qIdx, Value enabled) {
  OpBuilder &b = f.b;
  Location loc = f.loc;
  auto divs = [&](Value x, Value y) { return arith::DivSIOp::create(b, loc, x, y).getResult(); };
  auto rems = [&](Value x, Value y) { return arith::RemSIOp::create(b, loc, x, y).getResult(); };
  int64_t band = g.patchRows * g.width, TQ = g.patchRows * g.patchCols;
  Value W = f.ci(g.width), PC = f.ci(g.patchCols);
  Value numBands = divs(divs(LQ, W), f.ci(g.patchRows));
  Value n0 = f.mul(qt, f.ci(TQ));
  PatchTask p;
  p.isPatch = arith::AndIOp::create(
      b, loc, enabled,
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, n0,
                            f.mul(numBands, f.ci(band))));
  Value qr0 = f.mul(divs(n0, f.ci(band)), f.ci(g.patchRows));
  p.qc0 = f.mul(divs(rems(n0, f.ci(band)), f.ci(TQ)), PC);
  p.qc1 = f.add(p.qc0, f.ci(g.patchCols - 1));
  p.qMin = f.add(f.mul(qr0, W), p.qc0);
  p.qMax = f.add(f.mul(f.add(qr0, f.ci(g.patchRows - 1)), W), p.qc1);
  f.forLoop(f.cx(0), f.cx(TQ), [&](Value ix) {
    Value i = f.toI64(ix);
    Value inPatch = f.add(f.mul(f.add(qr0, divs(i, PC)), W), f.add(p.qc0, rems(i, PC)));
    f.store(arith::SelectOp::create(b, loc, p.isPatch, inPatch, f.add(n0, i)), qIdx, ix);
  });
  return p;
}

void flash::emitGridKeyTiles(FlashBuilder &f, const GridTiling &g, MaskAttr mask,
                             ArrayRef<Value> syms, const PatchTask &p, Value LK,
                             Value kvIdx, const std::function<void(Value)> &tile) {
  OpBuilder &b = f.b;
  Location loc = f.loc;
  using P = arith::CmpIPredicate;
  auto divs = [&](Value x, Value y) { return arith::DivSIOp::create(b, loc, x, y).getResult(); };
  auto ceil = [&](Value x, Value y) { return arith::CeilDivSIOp::create(b, loc, x, y).getResult(); };
  auto mx = [&](Value x, Value y) { return arith::MaxSIOp::create(b, loc, x, y).getResult(); };
  auto mn = [&](Value x, Value y) { return arith::MinSIOp::create(b, loc, x, y).getResult(); };
  auto sel = [&](Value c, Value x, Value y) { return arith::SelectOp::create(b, loc, c, x, y).getResult(); };
  auto cmp = [&](P pred, Value x, Value y) { return arith::CmpIOp::create(b, loc, pred, x, y).getResult(); };
  Value W = f.ci(g.width), TK = f.ci(f.tileK), one = f.ci(1), zero = f.ci(0);

  EmittedRows rows = emitRowBlock(b, loc, mask, p.qMin, p.qMax, syms);
  EmittedRows cols = emitRowBlock(b, loc, g.columns, p.qc0, p.qc1, syms);
  Value hLo = mx(rows.hullLo, zero), hHi = mn(rows.hullHi, f.sub(LK, one));
  Value cLo = mx(cols.hullLo, zero), cHi = mn(cols.hullHi, f.sub(W, one));
  Value some = arith::AndIOp::create(b, loc, cmp(P::sle, hLo, hHi), cmp(P::sle, cLo, cHi));
  Value krLo = divs(hLo, W), krHi = divs(mx(hHi, zero), W);
  Value numRows = sel(some, f.add(f.sub(krHi, krLo), one), zero);
  // Segments of at most TK keys: short ones share tiles, with the rows
  // spread evenly (ceil(n / ceil(n / fit)) per tile); long ones are cut.
  Value segLen = mx(f.add(f.sub(cHi, cLo), one), one);
  Value isShort = cmp(P::sle, segLen, TK);
  Value fit = mx(divs(TK, segLen), one);
  Value rowsPerTile = sel(isShort, mx(ceil(numRows, mx(ceil(numRows, fit), one)), one), one);
  Value pieces = sel(isShort, one, ceil(segLen, TK));
  Value pieceLen = sel(isShort, segLen, TK);
  Value numTiles = f.mul(ceil(numRows, rowsPerTile), pieces);
  f.forLoop(f.cx(0), f.toIdx(numTiles), [&](Value tx) {
    Value t = f.toI64(tx);
    Value r0 = f.add(krLo, f.mul(divs(t, pieces), rowsPerTile));
    Value r1 = mn(krHi, f.sub(f.add(r0, rowsPerTile), one));
    Value c0 = f.add(cLo, f.mul(arith::RemSIOp::create(b, loc, t, pieces), pieceLen));
    Value c1 = mn(cHi, f.sub(f.add(c0, pieceLen), one));
    // At most rowsPerTile * pieceLen <= TK candidates, so kvIdx[n] is in
    // bounds even when the candidate is then dropped.
    Value n = f.reduceLoop(f.toIdx(r0), f.toIdx(f.add(r1, one)), zero, [&](Value rx, Value acc) {
      Value rowBase = f.mul(f.toI64(rx), W);
      return f.reduceLoop(f.toIdx(c0), f.toIdx(f.add(c1, one)), acc, [&](Value cx, Value k) {
        Value kv = f.add(rowBase, f.toI64(cx));
        f.store(kv, kvIdx, f.toIdx(k));
        Value keep = arith::AndIOp::create(b, loc, cmp(P::sge, kv, hLo), cmp(P::sle, kv, hHi));
        return sel(keep, f.add(k, one), k);
      });
    });
    f.ifThen(cmp(P::sgt, n, zero), [&] { tile(n); });
  });
}
