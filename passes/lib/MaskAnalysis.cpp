//===- MaskAnalysis.cpp - Mask region -> #attn.mask formula ---------------===//
//
// Math. An int value of the mask region is read as a Term: a tree of min/max
// over affine leaves in (q = d0, kv = d1) and the symbols of MaskAttr (an int
// input element read at b, h or hkv, such as kv_len[b], is one more symbol:
// a constant of each (b, h), loaded by the kernels; one read at q as well,
// such as len[q], is a symbol that varies with the row, which the schedule
// bounds per block of rows by the min and max of its reads). Every
// operation the language offers on ints pushes min/max outwards:
//   -min(a,b) = max(-a,-b),  min(a,b) + c = min(a+c, b+c),
//   c*min(a,b) = min(ca,cb) (c >= 0),  floor(min(a,b)/c) = min(a/c, b/c),
//   abs(x) = max(x, -x),  clamp(x,lo,hi) = min(max(x,lo),hi).
// A comparison l >= r becomes the Term e = l - r and `e >= 0`, and
//   min(a,b) >= 0  <=>  a >= 0 && b >= 0,   max(a,b) >= 0  <=>  a >= 0 || b >= 0,
// so only affine atoms e(q, kv) >= 0 remain. Each is solved for kv:
//   e = a*kv + R(q):          a > 0: kv >= ceil(-R / a);  a < 0: kv <= floor(R / -a)
//   e = c*(X floordiv w) + R: c > 0: X >= w * ceil(-R / c)
//                             c < 0: X <= w * floor(R / -c) + w - 1   (recurse on X)
//   e free of kv:             a test of q alone, T(q) >= 0.
// Negation is pushed to the atoms (NNF), so the formula has no `not`.
//
//===----------------------------------------------------------------------===//
#include "attnc/Passes/MaskAnalysis.h"
#include "MaskTerm.h"

#include "mlir/IR/AffineExpr.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallPtrSet.h"

#include <functional>
#include <vector>

using namespace mlir;
using namespace mlir::attn;

namespace {

using namespace mlir::attn::maskterm;

class Analyzer {
public:
  /// With `gridWidth`, the analyser reads the mask in the column view of a
  /// row-major grid of that many columns (see analyzeGridMask): d0 is
  /// q mod W, d1 is kv mod W, and any other use of q or kv is opaque.
  explicit Analyzer(SpecOp spec, std::optional<int64_t> gridWidth = std::nullopt,
                    SmallVector<OpaqueNote> *notes = nullptr)
      : spec(spec), ctx(spec.getContext()), gridWidth(gridWidth), notes(notes) {}

  /// The value of an int SSA value of the mask region when it is a constant
  /// (after binding params), else nothing.
  std::optional<int64_t> constantValue(Value v) { return constantOf(term(v, 0)); }

  MaskAttr run() {
    Value v = SpecOp::getYielded(spec.getMask());
    if (!v)
      return leaf(MaskKind::opaque);
    return formula(v, /*negate=*/false, 0);
  }

private:
  SpecOp spec;
  MLIRContext *ctx;
  std::optional<int64_t> gridWidth;
  SmallVector<OpaqueNote> *notes; // explainOpaqueMask's, or null
  llvm::SmallPtrSet<Operation *, 8> noted;
  DenseMap<Value, Term> terms;
  DenseMap<Value, MaskAttr> formulas[2]; // [negate]
  DenseMap<Attribute, uint64_t> sizes;
  /// The largest formula (as a tree) the analysis builds; real masks have
  /// tens of nodes.
  static constexpr uint64_t kMaxFormulaNodes = 2048;
  /// Int input elements read at b, h, hkv or q (a per-sequence length, a
  /// per-head window, a per-row length): symbol kNumSymbols + n stands for
  /// reads[n].
  SmallVector<Attribute> reads;
  static constexpr size_t kMaxReads = 8;

  MaskAttr leaf(MaskKind k) { return MaskAttr::getLeaf(ctx, k); }

  //===--------------------------------------------------------------------===//
  // Notes: why a part is opaque (explainOpaqueMask)
  //===--------------------------------------------------------------------===//

  static bool hasOpaque(MaskAttr m) {
    if (m.getKind() == MaskKind::opaque)
      return true;
    if (m.getKind() == MaskKind::all_of || m.getKind() == MaskKind::any_of)
      for (Attribute t : m.getTerms())
        if (hasOpaque(cast<MaskAttr>(t)))
          return true;
    return false;
  }

  /// The innermost operation under `v` whose int value the analysis cannot
  /// bound although its int operands are bounded; null if `v` is bounded.
  Operation *culprit(Value v, unsigned depth = 0) {
    if (!term(v, 0).isOpaque())
      return nullptr;
    Operation *op = v.getDefiningOp();
    if (!op || depth > kMaxDepth)
      return op;
    for (Value operand : op->getOperands())
      if (operand.getType().isInteger(64))
        if (Operation *inner = culprit(operand, depth + 1))
          return inner;
    return op;
  }

  std::string describe(Operation *op) {
    auto name = [](StringRef n) { return "'" + n.str() + "'"; };
    if (auto read = dyn_cast<ReadOp>(op)) {
      if (!read.getType().isInteger(64))
        return "the value of input " + name(read.getInput()) + " (not an int)";
      return "int input " + name(read.getInput()) + " is read at an index the "
             "analysis cannot bound (it bounds reads at b, h, hkv or q on dimensions "
             "of their extent, and equalities X[q] == Y[kv])";
    }
    if (isa<FloorModOp>(op))
      return "'%' is decided per element (a grid view needs both q % W and kv % W)";
    if (isa<arith::MulIOp>(op))
      return "a product of two values that are not constants";
    if (isa<arith::FloorDivSIOp>(op))
      return "a division by a value that is not a constant";
    if (isa<arith::CmpFOp>(op))
      return "a float comparison";
    if (isa<arith::AndIOp, arith::OrIOp, arith::XOrIOp, arith::ShLIOp, arith::ShRSIOp>(op))
      return "a bitwise operator ('&', '|', '^', '<<' or '>>')";
    if (auto p = dyn_cast<ParamOp>(op))
      return "param " + name(p.getName()) + " has no value";
    return name(op->getName().getStringRef()) + " is not analysed";
  }

  void note(Operation *at, const std::string &reason) {
    if (notes && at && noted.insert(at).second)
      notes->push_back({at->getLoc(), reason});
  }

  /// A comparison whose formula has an opaque part: why.
  void noteComparison(Operation *cmp, Value l, Value r, MaskAttr result) {
    // Bool operands (a == b on conditions) are noted as formulas.
    if (!notes || !cmp || !hasOpaque(result) || !l.getType().isInteger(64))
      return;
    Operation *bad = culprit(l);
    if (!bad)
      bad = culprit(r);
    note(cmp, bad ? "this comparison is decided per element (its key tiles are "
                    "PARTIAL): " + describe(bad)
                  : "this comparison cannot be solved for kv (kv in a product, "
                    "or under a division or '%' with other terms)");
  }

  /// An atom with bound `e`, carrying the reads its symbols use and only
  /// those (renumbered r0, r1, ... in the order of `reads`), so that the
  /// kernels load, or scan, no read the bound does not name.
  MaskAttr atom(MaskKind kind, AffineExpr e) {
    SmallVector<bool> used(reads.size(), false);
    e.walk([&](AffineExpr sub) {
      if (auto sym = dyn_cast<AffineSymbolExpr>(sub))
        if (sym.getPosition() >= MaskAttr::kNumSymbols)
          used[sym.getPosition() - MaskAttr::kNumSymbols] = true;
    });
    SmallVector<AffineExpr> renumbered;
    for (unsigned i = 0; i < MaskAttr::kNumSymbols; ++i)
      renumbered.push_back(getAffineSymbolExpr(i, ctx));
    SmallVector<Attribute> atomReads;
    for (auto [i, read] : llvm::enumerate(reads)) {
      renumbered.push_back(getAffineSymbolExpr(
          MaskAttr::kNumSymbols + unsigned(atomReads.size()), ctx));
      if (used[i])
        atomReads.push_back(read);
    }
    return MaskAttr::getAtom(ctx, kind, e.replaceSymbols(renumbered), atomReads);
  }

  /// `X[c..]` of an int input indexed by b, h or hkv, each at a dimension
  /// of its extent (B, HQ, HKV: always in range), and at most once by q, at
  /// a dimension of LQ or LK: a symbol of the bound, one value per (b, h),
  /// or per row when read at q. The schedule bounds a read at q over a
  /// block of rows by a scan, which checks the rows against the dimension's
  /// extent (a block past it leaves the atom unknown: PARTIAL, where the
  /// mask reports the out-of-range read). Not in the grid view, whose rows
  /// are columns q mod W. Opaque otherwise.
  Term readSymbol(ReadOp read) {
    InputAttr decl = spec.lookupInput(read.getInput());
    if (!decl || read.getIndices().empty())
      return Term::opaque();
    static const char *extents[] = {"B", "HQ", "HKV"};
    SmallVector<Attribute> r = {StringAttr::get(ctx, read.getInput())};
    bool atQ = false;
    for (auto [i, idx] : llvm::enumerate(read.getIndices())) {
      auto coord = idx.getDefiningOp<IndexOp>();
      auto dim = dyn_cast<StringAttr>(decl.getShape()[i]);
      if (!coord || !dim || coord.getVar() == IndexVar::kv)
        return Term::opaque();
      if (coord.getVar() == IndexVar::q) {
        if (atQ || gridWidth ||
            (dim.getValue() != "LQ" && dim.getValue() != "LK"))
          return Term::opaque();
        atQ = true;
      } else if (dim.getValue() != extents[static_cast<int>(coord.getVar())]) {
        return Term::opaque();
      }
      r.push_back(StringAttr::get(ctx, stringifyIndexVar(coord.getVar())));
    }
    Attribute key = ArrayAttr::get(ctx, r);
    auto *it = llvm::find(reads, key);
    if (it == reads.end()) {
      if (reads.size() >= kMaxReads)
        return Term::opaque();
      reads.push_back(key);
      it = reads.end() - 1;
    }
    return Term::leaf(getAffineSymbolExpr(
        MaskAttr::kNumSymbols + unsigned(it - reads.begin()), ctx));
  }

  MaskAttr combination(MaskKind kind, ArrayRef<MaskAttr> in) {
    MaskKind absorbing = kind == MaskKind::all_of ? MaskKind::never
                                                  : MaskKind::always;
    MaskKind neutral = kind == MaskKind::all_of ? MaskKind::always
                                                : MaskKind::never;
    SmallVector<Attribute> flat;
    for (MaskAttr t : in) {
      if (t.getKind() == absorbing)
        return leaf(absorbing);
      if (t.getKind() == neutral)
        continue;
      auto push = [&](Attribute a) {
        if (!llvm::is_contained(flat, a))
          flat.push_back(a);
      };
      if (t.getKind() == kind)
        for (Attribute a : t.getTerms())
          push(a);
      else
        push(t);
    }
    if (flat.empty())
      return leaf(neutral);
    if (flat.size() == 1)
      return cast<MaskAttr>(flat.front());
    return MaskAttr::getCombination(ctx, kind, flat);
  }

  //===--------------------------------------------------------------------===//
  // Int values -> Terms
  //===--------------------------------------------------------------------===//

  Term term(Value v, unsigned depth) {
    auto it = terms.find(v);
    if (it != terms.end())
      return it->second;
    Term t = depth > kMaxDepth ? Term::opaque() : computeTerm(v, depth + 1);
    t = checked(t);
    terms[v] = t;
    return t;
  }

  Term computeTerm(Value v, unsigned depth) {
    Operation *op = v.getDefiningOp();
    if (!op || !v.getType().isInteger(64))
      return Term::opaque();
    APInt c;
    if (matchPattern(v, m_ConstantInt(&c)))
      return Term::leaf(getAffineConstantExpr(c.getSExtValue(), ctx));
    if (gridWidth) {
      // Column view: only `q mod W` and `kv mod W` are coordinates.
      if (auto mod = dyn_cast<FloorModOp>(op)) {
        auto idx = mod->getOperand(0).getDefiningOp<IndexOp>();
        if (idx && (idx.getVar() == IndexVar::q || idx.getVar() == IndexVar::kv) &&
            constantOf(term(mod->getOperand(1), depth)) == *gridWidth)
          return Term::leaf(getAffineDimExpr(idx.getVar() == IndexVar::q ? 0 : 1, ctx));
      }
      if (auto idx = dyn_cast<IndexOp>(op);
          idx && (idx.getVar() == IndexVar::q || idx.getVar() == IndexVar::kv))
        return Term::opaque();
    }
    if (auto idx = dyn_cast<IndexOp>(op)) {
      switch (idx.getVar()) {
      case IndexVar::q:
        return Term::leaf(getAffineDimExpr(0, ctx));
      case IndexVar::kv:
        return Term::leaf(getAffineDimExpr(1, ctx));
      default: // b, h, hkv are symbols 0..2
        return Term::leaf(
            getAffineSymbolExpr(static_cast<unsigned>(idx.getVar()), ctx));
      }
    }
    if (auto dim = dyn_cast<DimOp>(op))
      return Term::leaf(
          getAffineSymbolExpr(3 + static_cast<unsigned>(dim.getVar()), ctx));
    if (auto read = dyn_cast<ReadOp>(op))
      return readSymbol(read);
    if (auto p = dyn_cast<ParamOp>(op)) {
      if (ParamAttr decl = spec.lookupParam(p.getName()))
        if (auto value = dyn_cast_or_null<IntegerAttr>(decl.getValue()))
          return Term::leaf(getAffineConstantExpr(value.getInt(), ctx));
      return Term::opaque();
    }
    auto lhs = [&] { return term(op->getOperand(0), depth); };
    auto rhs = [&] { return term(op->getOperand(1), depth); };
    if (isa<arith::AddIOp>(op))
      return add(lhs(), rhs());
    if (isa<arith::SubIOp>(op))
      return add(lhs(), negate(rhs()));
    if (isa<arith::MulIOp>(op)) {
      Term a = lhs(), b = rhs();
      if (auto c = constantOf(b); c && *c <= kMaxConstant && *c >= -kMaxConstant)
        return scale(a, *c);
      if (auto c = constantOf(a); c && *c <= kMaxConstant && *c >= -kMaxConstant)
        return scale(b, *c);
      // A product with a symbolic factor is still affine (semi-affine in
      // MLIR's terms); the interval evaluator handles it.
      if (a.kind == Term::Leaf && b.kind == Term::Leaf &&
          (a.expr.isSymbolicOrConstant() || b.expr.isSymbolicOrConstant()))
        return Term::leaf(a.expr * b.expr);
      return Term::opaque();
    }
    if (isa<arith::FloorDivSIOp>(op)) {
      if (auto c = constantOf(rhs()); c && *c != 0)
        return floorDiv(lhs(), *c);
      return Term::opaque();
    }
    if (isa<FloorModOp>(op)) {
      Term a = lhs();
      if (auto c = constantOf(rhs()); c && *c > 0 && a.kind == Term::Leaf)
        return Term::leaf(a.expr % *c);
      return Term::opaque();
    }
    if (isa<arith::MinSIOp>(op))
      return combine(Term::Min, lhs(), rhs());
    if (isa<arith::MaxSIOp>(op))
      return combine(Term::Max, lhs(), rhs());
    if (isa<math::AbsIOp>(op)) {
      Term a = lhs();
      return combine(Term::Max, a, negate(a));
    }
    return Term::opaque();
  }

  //===--------------------------------------------------------------------===//
  // Comparisons -> atoms
  //===--------------------------------------------------------------------===//

  /// `t >= 0`.
  MaskAttr nonNegative(const Term &t) {
    switch (t.kind) {
    case Term::Opaque:
      return leaf(MaskKind::opaque);
    case Term::Leaf:
      return solve(t.expr, 0);
    default: {
      SmallVector<MaskAttr> parts;
      for (const Term &p : t.parts)
        parts.push_back(nonNegative(p));
      return combination(t.kind == Term::Min ? MaskKind::all_of
                                             : MaskKind::any_of,
                         parts);
    }
    }
  }

  /// e as sum(coef_i * atom_i) + constant, where atoms are dims, symbols and
  /// the non-linear nodes (floordiv, ceildiv, mod, products of non-constants)
  /// with their operands normalised in turn. MLIR's operators do not
  /// distribute constants over sums, so `-(q - kv)` needs this.
  struct LinearForm {
    SmallVector<std::pair<AffineExpr, int64_t>> terms;
    int64_t constant = 0;
    void add(AffineExpr atom, int64_t coef) {
      for (auto &t : terms)
        if (t.first == atom) {
          t.second += coef;
          return;
        }
      terms.push_back({atom, coef});
    }
  };

  static AffineExpr rebuild(const LinearForm &f, MLIRContext *ctx) {
    AffineExpr e = getAffineConstantExpr(f.constant, ctx);
    for (auto [atom, coef] : f.terms)
      if (coef != 0)
        e = e + atom * coef;
    return e;
  }

  static AffineExpr normalize(AffineExpr e) {
    LinearForm f;
    linearize(e, 1, f);
    return rebuild(f, e.getContext());
  }

  static void linearize(AffineExpr e, int64_t scale, LinearForm &out) {
    if (auto c = dyn_cast<AffineConstantExpr>(e)) {
      out.constant += scale * c.getValue();
      return;
    }
    if (auto bin = dyn_cast<AffineBinaryOpExpr>(e)) {
      AffineExpr l = bin.getLHS(), r = bin.getRHS();
      if (e.getKind() == AffineExprKind::Add) {
        linearize(l, scale, out);
        linearize(r, scale, out);
        return;
      }
      if (e.getKind() == AffineExprKind::Mul) {
        if (auto c = dyn_cast<AffineConstantExpr>(r))
          return linearize(l, scale * c.getValue(), out);
        if (auto c = dyn_cast<AffineConstantExpr>(l))
          return linearize(r, scale * c.getValue(), out);
      }
      AffineExpr atom = getAffineBinaryOpExpr(e.getKind(), normalize(l),
                                              normalize(r));
      out.add(atom, scale);
      return;
    }
    out.add(e, scale);
  }

  /// The atom `e(q, kv) >= 0`.
  MaskAttr solve(AffineExpr e, unsigned depth) {
    if (depth > 8 || constantTooLarge(e))
      return leaf(MaskKind::opaque);
    if (auto c = dyn_cast<AffineConstantExpr>(e))
      return leaf(c.getValue() >= 0 ? MaskKind::always : MaskKind::never);
    if (!e.isFunctionOfDim(1))
      return atom(MaskKind::q_pred, normalize(e));
    LinearForm form;
    linearize(e, 1, form);
    LinearForm restForm;
    restForm.constant = form.constant;
    AffineExpr kv = getAffineDimExpr(1, ctx);
    int64_t a = 0;
    SmallVector<std::pair<AffineExpr, int64_t>> kvParts;
    for (auto [atom, coef] : form.terms) {
      if (coef == 0)
        continue;
      if (atom == kv)
        a += coef;
      else if (atom.isFunctionOfDim(1))
        kvParts.push_back({atom, coef});
      else
        restForm.add(atom, coef);
    }
    AffineExpr rest = rebuild(restForm, ctx);
    // Linear in kv: e = a * kv + rest.
    if (kvParts.empty()) {
      if (a == 0)
        return solve(rest, depth + 1);
      if (a > 0)
        return atom(MaskKind::kv_ge, normalize(normalize(-rest).ceilDiv(a)));
      return atom(MaskKind::kv_le, normalize(rest.floorDiv(-a)));
    }
    // One floor division of an expression of kv: c * (X floordiv w) + rest.
    if (a == 0 && kvParts.size() == 1 &&
        kvParts[0].first.getKind() == AffineExprKind::FloorDiv) {
      auto div = cast<AffineBinaryOpExpr>(kvParts[0].first);
      int64_t c = kvParts[0].second;
      auto w = dyn_cast<AffineConstantExpr>(div.getRHS());
      if (w && w.getValue() > 0 && c != 0) {
        AffineExpr x = div.getLHS();
        int64_t wv = w.getValue();
        if (c > 0)
          return solve(x - (-rest).ceilDiv(c) * wv, depth + 1);
        return solve(rest.floorDiv(-c) * wv + (wv - 1) - x, depth + 1);
      }
    }
    return leaf(MaskKind::opaque);
  }

  /// A read X[c0, c1, ..] of an int input whose indices are coordinates,
  /// as [name, coordinate names...]; `side` is 0 if q is an index, 1 if kv
  /// is. b, h and hkv must index dimensions of their extent (B, HQ, HKV),
  /// so they are in range; the position may index a dimension of LQ or LK
  /// (one id tensor for both sides, `doc[q] == doc[kv]`), which may be
  /// shorter than the other sequence: whoever scans the ids of a tile
  /// checks its positions against the input's extent (emitIdsRange, the
  /// CUDA element code, idsRange) and leaves a tile that reaches past it
  /// PARTIAL, where the mask reports the out-of-range read. Null if `v` is
  /// not such a read.
  ArrayAttr coordinateRead(Value v, int &side) {
    auto read = v.getDefiningOp<ReadOp>();
    if (!read || !read.getType().isInteger(64))
      return {};
    InputAttr decl = spec.lookupInput(read.getInput());
    if (!decl)
      return {};
    static const char *extents[] = {"B", "HQ", "HKV", "LQ", "LK"};
    SmallVector<Attribute> out = {StringAttr::get(ctx, read.getInput())};
    int qs = 0, kvs = 0;
    for (auto [i, idx] : llvm::enumerate(read.getIndices())) {
      auto coord = idx.getDefiningOp<IndexOp>();
      auto dim = dyn_cast<StringAttr>(decl.getShape()[i]);
      if (!coord || !dim)
        return {};
      bool position = coord.getVar() == IndexVar::q || coord.getVar() == IndexVar::kv;
      bool fits = position ? dim.getValue() == "LQ" || dim.getValue() == "LK"
                           : dim.getValue() == extents[static_cast<int>(coord.getVar())];
      if (!fits)
        return {};
      qs += coord.getVar() == IndexVar::q;
      kvs += coord.getVar() == IndexVar::kv;
      out.push_back(StringAttr::get(ctx, stringifyIndexVar(coord.getVar())));
    }
    if (qs + kvs != 1)
      return {};
    side = kvs;
    return ArrayAttr::get(ctx, out);
  }

  /// X[.., q, ..] == Y[.., kv, ..] (either order): an ids_eq atom.
  MaskAttr idsEqual(Value l, Value r) {
    int sl = -1, sr = -1;
    ArrayAttr a = coordinateRead(l, sl), b = coordinateRead(r, sr);
    if (!a || !b || sl == sr)
      return {};
    if (sl == 1)
      std::swap(a, b);
    return MaskAttr::get(ctx, MaskKind::ids_eq, {a, b}, AffineMap());
  }

  MaskAttr compare(arith::CmpIPredicate pred, Value l, Value r,
                   unsigned depth) {
    using P = arith::CmpIPredicate;
    if (l.getType().isInteger(1)) {
      // Bool equality: (l && r) || (!l && !r).
      if (pred != P::eq && pred != P::ne)
        return leaf(MaskKind::opaque);
      bool equal = pred == P::eq;
      MaskAttr both = combination(
          MaskKind::all_of,
          {formula(l, false, depth), formula(r, !equal, depth)});
      MaskAttr neither = combination(
          MaskKind::all_of,
          {formula(l, true, depth), formula(r, equal, depth)});
      return combination(MaskKind::any_of, {both, neither});
    }
    if (pred == P::eq && !gridWidth)
      if (MaskAttr ids = idsEqual(l, r))
        return ids;
    Term lt = term(l, depth), rt = term(r, depth);
    Term e = checked(add(lt, negate(rt)));
    Term one = Term::leaf(getAffineConstantExpr(1, ctx));
    Term minusOne = Term::leaf(getAffineConstantExpr(-1, ctx));
    switch (pred) {
    case P::sge:
      return nonNegative(e);
    case P::sgt:
      return nonNegative(add(e, minusOne));
    case P::sle:
      return nonNegative(negate(e));
    case P::slt:
      return nonNegative(add(negate(e), minusOne));
    case P::eq:
      return combination(MaskKind::all_of,
                         {nonNegative(e), nonNegative(negate(e))});
    case P::ne:
      return combination(MaskKind::any_of,
                         {nonNegative(add(e, minusOne)),
                          nonNegative(add(negate(e), minusOne))});
    default:
      (void)one;
      return leaf(MaskKind::opaque);
    }
  }

  //===--------------------------------------------------------------------===//
  // Bool values -> formulas (negation pushed to the atoms)
  //===--------------------------------------------------------------------===//

  /// formula() remembered per (value, negation), and bounded in size: lets
  /// and named masks make the region a DAG whose formula, written out as a
  /// tree, can grow exponentially (each level using the one below twice).
  /// Past kMaxFormulaNodes the value is opaque (sound: PARTIAL tiles), so
  /// neither this walk nor the schedule code built from the formula grows.
  MaskAttr formula(Value v, bool negate, unsigned depth) {
    DenseMap<Value, MaskAttr> &known = formulas[negate];
    if (auto it = known.find(v); it != known.end())
      return it->second;
    MaskAttr m = computeFormula(v, negate, depth);
    if (treeSize(m) > kMaxFormulaNodes) {
      note(v.getDefiningOp(),
           "this value is decided per element (its key tiles are PARTIAL): its "
           "formula, with every named part written out, has more than " +
               std::to_string(kMaxFormulaNodes) + " terms");
      m = leaf(MaskKind::opaque);
    }
    formulas[negate][v] = m; // `known` may have moved: the walk inserts
    return m;
  }

  /// The number of nodes of `m` as a tree (shared terms counted at each
  /// use), saturating just past kMaxFormulaNodes.
  uint64_t treeSize(MaskAttr m) {
    if (auto it = sizes.find(m); it != sizes.end())
      return it->second;
    uint64_t n = 1;
    if (m.getKind() == MaskKind::all_of || m.getKind() == MaskKind::any_of)
      for (Attribute t : m.getTerms())
        n = std::min<uint64_t>(n + treeSize(cast<MaskAttr>(t)), kMaxFormulaNodes + 1);
    sizes[m] = n;
    return n;
  }

  MaskAttr computeFormula(Value v, bool negate, unsigned depth) {
    if (depth > kMaxDepth)
      return leaf(MaskKind::opaque);
    ++depth;
    Operation *op = v.getDefiningOp();
    if (!op)
      return leaf(MaskKind::opaque);
    APInt c;
    if (matchPattern(v, m_ConstantInt(&c)))
      return leaf((!c.isZero()) != negate ? MaskKind::always
                                          : MaskKind::never);
    if (auto p = dyn_cast<ParamOp>(op)) {
      if (ParamAttr decl = spec.lookupParam(p.getName()))
        if (auto b = dyn_cast_or_null<BoolAttr>(decl.getValue()))
          return leaf(b.getValue() != negate ? MaskKind::always
                                             : MaskKind::never);
      note(op, "this value is decided per element: " + describe(op));
      return leaf(MaskKind::opaque);
    }
    if (isa<arith::AndIOp, arith::OrIOp>(op)) {
      bool isAnd = isa<arith::AndIOp>(op);
      MaskKind kind = (isAnd != negate) ? MaskKind::all_of : MaskKind::any_of;
      return combination(kind, {formula(op->getOperand(0), negate, depth),
                                 formula(op->getOperand(1), negate, depth)});
    }
    if (auto x = dyn_cast<arith::XOrIOp>(op)) {
      APInt one;
      if (matchPattern(x.getRhs(), m_ConstantInt(&one)) && !one.isZero())
        return formula(x.getLhs(), !negate, depth);
      if (matchPattern(x.getLhs(), m_ConstantInt(&one)) && !one.isZero())
        return formula(x.getRhs(), !negate, depth);
      // a xor b == (a != b)
      MaskAttr m = compare(negate ? arith::CmpIPredicate::eq
                                  : arith::CmpIPredicate::ne,
                           x.getLhs(), x.getRhs(), depth);
      noteComparison(op, x.getLhs(), x.getRhs(), m);
      return m;
    }
    if (auto s = dyn_cast<arith::SelectOp>(op)) {
      // c ? x : y  ==  (c && x) || (!c && y)
      MaskAttr whenTrue = combination(
          MaskKind::all_of, {formula(s.getCondition(), false, depth),
                             formula(s.getTrueValue(), negate, depth)});
      MaskAttr whenFalse = combination(
          MaskKind::all_of, {formula(s.getCondition(), true, depth),
                             formula(s.getFalseValue(), negate, depth)});
      return combination(MaskKind::any_of, {whenTrue, whenFalse});
    }
    if (auto cmp = dyn_cast<arith::CmpIOp>(op)) {
      arith::CmpIPredicate pred = cmp.getPredicate();
      if (negate)
        pred = arith::invertPredicate(pred);
      MaskAttr m = compare(pred, cmp.getLhs(), cmp.getRhs(), depth);
      noteComparison(op, cmp.getLhs(), cmp.getRhs(), m);
      return m;
    }
    note(op, "this value is decided per element (its key tiles are PARTIAL): " +
                 describe(op));
    return leaf(MaskKind::opaque);
  }
};

} // namespace

MaskAttr mlir::attn::analyzeMask(SpecOp spec) { return Analyzer(spec).run(); }

SmallVector<OpaqueNote> mlir::attn::explainOpaqueMask(SpecOp spec) {
  SmallVector<OpaqueNote> notes;
  if (analyzeGridMask(spec))
    return notes;
  Analyzer(spec, std::nullopt, &notes).run();
  return notes;
}

std::optional<GridMask> mlir::attn::analyzeGridMask(SpecOp spec) {
  // The width: a constant W > 1 with both `q mod W` and `kv mod W` in the
  // mask region (the first such W in program order).
  Analyzer plain(spec);
  SmallVector<int64_t> qWidths, kvWidths;
  spec.getMask().walk([&](FloorModOp mod) {
    auto idx = mod->getOperand(0).getDefiningOp<IndexOp>();
    std::optional<int64_t> w = plain.constantValue(mod->getOperand(1));
    if (!idx || !w || *w <= 1)
      return;
    if (idx.getVar() == IndexVar::q)
      qWidths.push_back(*w);
    else if (idx.getVar() == IndexVar::kv)
      kvWidths.push_back(*w);
  });
  for (int64_t w : kvWidths) {
    if (!llvm::is_contained(qWidths, w))
      continue;
    MaskAttr columns = Analyzer(spec, w).run();
    // Worth a grid only if some atom bounds the key column.
    bool boundsKeys = false;
    std::function<void(MaskAttr)> scan = [&](MaskAttr m) {
      if (m.getKind() == MaskKind::kv_ge || m.getKind() == MaskKind::kv_le)
        boundsKeys = true;
      if (m.getKind() == MaskKind::all_of || m.getKind() == MaskKind::any_of)
        for (Attribute t : m.getTerms())
          scan(cast<MaskAttr>(t));
    };
    scan(columns);
    if (boundsKeys)
      return GridMask{w, columns};
  }
  return std::nullopt;
}

std::optional<GridMask> mlir::attn::getGridMask(SpecOp spec) {
  auto dict = spec->getAttrOfType<DictionaryAttr>(kGridAttrName);
  if (!dict)
    return std::nullopt;
  auto columns = dict.getAs<MaskAttr>("columns");
  auto width = dict.getAs<IntegerAttr>("width");
  if (!columns || !width || width.getInt() <= 1)
    return std::nullopt;
  return GridMask{width.getInt(), columns};
}
