//===- CudaElementCode.cpp - Spec regions and schedule as CUDA C++ --------===//
//
// See CudaElementCode.h. The regions are printed by CudaRegionPrinter.cpp
// (exact and fast forms); the prelude has the helpers both use. The
// schedule printer follows ScheduleEmitter.cpp node for node. This code
// runs on the host in CudaElementCodeTest and on the GPU inside the
// kernel templates of codegen/cuda/attnc_sm80.cuh and attnc_sm90.cuh.
//
//===----------------------------------------------------------------------===//
#include "attnc/Codegen/CudaElementCode.h"
#include "CudaRegionPrinter.h"
#include "attnc/Passes/MaskSchedule.h"
#include "attnc/Passes/ScheduleEmitter.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::attn;
using attnc::runtime::Status;
using attnc::cudamod::RegionPrinter;

std::string attnc::cudaElementPrelude() {
  // CudaABI.h, Dropout.h and codegen/cuda/attnc_element.cuh, as text generated from
  // the files by codegen/CMakeLists.txt: attnc_input and attnc_cuda_args
  // come from there and nowhere else. ATTNC_CU_EMBEDDED tells the .cuh
  // files that what they would #include is pasted already.
  static const char *abi =
#include "attnc/Codegen/CudaABI.inc"
      ;
  static const char *dropout =
#include "attnc/Codegen/Dropout.inc"
      ;
  static const char *element =
#include "attnc/Codegen/attnc_element.inc"
      ;
  return std::string("// attnc element code: the spec regions and the tile schedule.\n"
                     "#ifndef ATTNC_CU_EMBEDDED\n#define ATTNC_CU_EMBEDDED 1\n#endif\n") +
         abi + "#ifdef __CUDACC__ // nvcc: no #177 for the Dropout.h functions a spec does not call\n"
               "#pragma nv_diag_suppress 177\n#endif\n" +
         dropout + "#ifdef __CUDACC__\n#pragma nv_diag_default 177\n#endif\n" + element;
}

namespace {

/// The schedule of a mask formula as C++ statements (ScheduleEmitter's
/// arithmetic, saturating where sums and products may overflow).
class SchedulePrinter {
public:
  SchedulePrinter(SpecOp spec, llvm::raw_ostream &os) : spec(spec), os(os) {}

  struct Bound {
    std::string lo, hi, known;
  };

  std::string tmp() { return "t" + std::to_string(counter++); }
  std::string let(const std::string &type, const std::string &expr) {
    std::string n = tmp();
    os << "  " << type << " " << n << " = " << expr << ";\n";
    return n;
  }

  Bound bound(AffineExpr e) {
    static const char *syms[] = {"c.b", "c.h", "c.hkv", "c.B", "c.HQ",
                                 "c.HKV", "c.LQ", "c.LK", "c.D", "c.DV"};
    switch (e.getKind()) {
    case AffineExprKind::Constant: {
      std::string v = "INT64_C(" + std::to_string(cast<AffineConstantExpr>(e).getValue()) + ")";
      return {v, v, "true"};
    }
    case AffineExprKind::DimId:
      return {"q0", "q1", "true"};
    case AffineExprKind::SymbolId: {
      unsigned pos = cast<AffineSymbolExpr>(e).getPosition();
      if (pos >= 10 && pos - 10 < atomReads.size())
        return atomReads[pos - 10];
      std::string v = pos < 10 ? syms[pos] : "INT64_C(0)";
      return {v, v, "true"};
    }
    default:
      break;
    }
    auto b = cast<AffineBinaryOpExpr>(e);
    Bound l = bound(b.getLHS()), r = bound(b.getRHS());
    std::string known = let("bool", l.known + " && " + r.known);
    if (e.getKind() == AffineExprKind::Add)
      return {let("int64_t", "attnc_sadd62(" + l.lo + ", " + r.lo + ")"),
              let("int64_t", "attnc_sadd62(" + l.hi + ", " + r.hi + ")"), known};
    std::string p = r.lo;
    known = let("bool", known + " && " + r.lo + " == " + r.hi);
    std::string x, y;
    switch (e.getKind()) {
    case AffineExprKind::Mul:
      x = let("int64_t", "attnc_smul62(" + l.lo + ", " + p + ")");
      y = let("int64_t", "attnc_smul62(" + l.hi + ", " + p + ")");
      break;
    case AffineExprKind::FloorDiv:
    case AffineExprKind::CeilDiv: {
      std::string sp = let("int64_t", p + " != 0 ? " + p + " : 1");
      known = let("bool", known + " && " + p + " != 0");
      const char *fn = e.getKind() == AffineExprKind::FloorDiv ? "attnc_fdiv" : "attnc_cdiv";
      x = let("int64_t", std::string(fn) + "(" + l.lo + ", " + sp + ")");
      y = let("int64_t", std::string(fn) + "(" + l.hi + ", " + sp + ")");
      break;
    }
    case AffineExprKind::Mod: {
      std::string sp = let("int64_t", p + " > 0 ? " + p + " : 1");
      known = let("bool", known + " && " + p + " > 0");
      std::string dlo = let("int64_t", "attnc_fdiv(" + l.lo + ", " + sp + ")");
      std::string dhi = let("int64_t", "attnc_fdiv(" + l.hi + ", " + sp + ")");
      std::string nowrap = let("bool", dlo + " == " + dhi);
      return {let("int64_t", nowrap + " ? " + l.lo + " - " + dlo + " * " + sp + " : 0"),
              let("int64_t", nowrap + " ? " + l.hi + " - " + dhi + " * " + sp + " : " + sp + " - 1"),
              known};
    }
    default:
      return {"0", "0", "false"};
    }
    return {let("int64_t", x + " < " + y + " ? " + x + " : " + y),
            let("int64_t", x + " > " + y + " ? " + x + " : " + y), known};
  }

  /// min / max of an ids_eq read while its q or kv coordinate runs over
  /// [p0, p1]; everything ([INT64_MIN, INT64_MAX]: the tile stays PARTIAL)
  /// when p1 is past the input's extent there (emitIdsRange's rule).
  Bound idsRange(ArrayAttr read, const std::string &p0, const std::string &p1) {
    StringRef name = cast<StringAttr>(read[0]).getValue();
    int64_t number = attnc::cudamod::inputNumber(spec, name);
    std::string in = "c.inputs[" + std::to_string(number) + "]";
    std::string base = let("int64_t", "0"), stride = let("int64_t", "0");
    std::string extent = let("int64_t", "0");
    for (auto [d, cAttr] : llvm::enumerate(read.getValue().drop_front())) {
      StringRef coord = cast<StringAttr>(cAttr).getValue();
      std::string s = in + ".strides[" + std::to_string(d) + "]";
      if (coord == "q" || coord == "kv")
        os << "  " << stride << " = " << s << ";\n  " << extent << " = " << in
           << ".dims[" << d << "];\n";
      else
        os << "  " << base << " += c." << coord.str() << " * " << s << ";\n";
    }
    std::string lo = let("int64_t", "INT64_MAX"), hi = let("int64_t", "INT64_MIN");
    os << "  if (" << p1 << " >= " << extent << ") {\n"
       << "    " << lo << " = INT64_MIN;\n    " << hi << " = INT64_MAX;\n"
       << "  } else {\n"
       << "  for (int64_t p = " << p0 << "; p <= " << p1 << "; ++p) {\n"
       << "    int64_t id = ((const int64_t *)" << in << ".data)[" << base
       << " + p * " << stride << "];\n"
       << "    " << lo << " = id < " << lo << " ? id : " << lo << ";\n"
       << "    " << hi << " = id > " << hi << " ? id : " << hi << ";\n  }\n  }\n";
    return {lo, hi, "true"};
  }

  /// An atom's read: one element, or read at q its range over [q0, q1].
  Bound boundRead(ArrayAttr read) {
    Bound r;
    if (llvm::is_contained(read.getValue().drop_front(),
                           StringAttr::get(read.getContext(), "q"))) {
      r = idsRange(read, "q0", "q1");
    } else {
      std::string in = "c.inputs[" +
                       std::to_string(attnc::cudamod::inputNumber(
                           spec, cast<StringAttr>(read[0]).getValue())) +
                       "]";
      std::string at = "0";
      for (auto [d, c] : llvm::enumerate(read.getValue().drop_front()))
        at += " + c." + cast<StringAttr>(c).getValue().str() + " * " + in +
              ".strides[" + std::to_string(d) + "]";
      r.lo = r.hi = let("int64_t", "((const int64_t *)" + in + ".data)[" + at + "]");
    }
    std::string limit = "INT64_C(" + std::to_string(kMaxBoundRead) + ")";
    r.known = let("bool", r.lo + " >= -" + limit + " && " + r.hi + " <= " + limit);
    return r;
  }

  struct Hull {
    std::string lo, hi;
  };

  /// Fills rows.lo/hi/known[atom] in pre-order; returns the hull.
  Hull hull(MaskAttr node, int &atom) {
    Hull all{"INT64_C(0)", "(c.LK - 1)"}, none{"INT64_C(0)", "INT64_C(-1)"};
    switch (node.getKind()) {
    case MaskKind::always:
    case MaskKind::opaque:
      return all;
    case MaskKind::never:
      return none;
    case MaskKind::ids_eq: {
      Bound r = idsRange(cast<ArrayAttr>(node.getTerms()[0]), "q0", "q1");
      store(atom++, r);
      return all;
    }
    case MaskKind::kv_ge:
    case MaskKind::kv_le:
    case MaskKind::q_pred: {
      // The bound's reads: int input elements at b, h, hkv (kv_len[b]), or
      // at q (len[q]) their min and max over the rows; unknown beyond
      // +-kMaxBoundRead (MaskSchedule.h), as on the host.
      atomReads.clear();
      for (Attribute t : node.getTerms())
        atomReads.push_back(boundRead(cast<ArrayAttr>(t)));
      Bound r = bound(node.getBoundExpr());
      store(atom++, r);
      Hull h;
      if (node.getKind() == MaskKind::kv_ge)
        h = {"(" + r.lo + " > 0 ? " + r.lo + " : 0)", all.hi};
      else if (node.getKind() == MaskKind::kv_le)
        h = {"INT64_C(0)", "(" + r.hi + " < c.LK - 1 ? " + r.hi + " : c.LK - 1)"};
      else
        h = {"INT64_C(0)", "(" + r.hi + " >= 0 ? c.LK - 1 : INT64_C(-1))"};
      return {let("int64_t", r.known + " ? " + h.lo + " : " + all.lo),
              let("int64_t", r.known + " ? " + h.hi + " : " + all.hi)};
    }
    case MaskKind::all_of:
    case MaskKind::any_of: {
      bool isAnd = node.getKind() == MaskKind::all_of;
      Hull acc{let("int64_t", isAnd ? all.lo : none.lo), let("int64_t", isAnd ? all.hi : none.hi)};
      for (Attribute t : node.getTerms()) {
        Hull h = hull(cast<MaskAttr>(t), atom);
        if (isAnd) {
          os << "  " << acc.lo << " = " << acc.lo << " > " << h.lo << " ? " << acc.lo << " : " << h.lo << ";\n"
             << "  " << acc.hi << " = " << acc.hi << " < " << h.hi << " ? " << acc.hi << " : " << h.hi << ";\n";
          continue;
        }
        os << "  if (" << h.lo << " <= " << h.hi << ") {\n"
           << "    if (" << acc.lo << " > " << acc.hi << ") { " << acc.lo << " = " << h.lo
           << "; " << acc.hi << " = " << h.hi << "; }\n"
           << "    else { " << acc.lo << " = " << acc.lo << " < " << h.lo << " ? " << acc.lo
           << " : " << h.lo << "; " << acc.hi << " = " << acc.hi << " > " << h.hi << " ? "
           << acc.hi << " : " << h.hi << "; }\n  }\n";
      }
      return acc;
    }
    }
    return all;
  }

  void store(int atom, const Bound &r) {
    os << "  r.lo[" << atom << "] = " << r.lo << "; r.hi[" << atom << "] = " << r.hi
       << "; r.known[" << atom << "] = " << r.known << ";\n";
  }

  struct Flags {
    std::string any, all;
  };

  Flags flags(MaskAttr node, int &atom) {
    switch (node.getKind()) {
    case MaskKind::always:
      return {"true", "true"};
    case MaskKind::never:
      return {"false", "false"};
    case MaskKind::opaque:
      return {"true", "false"};
    case MaskKind::ids_eq: {
      int a = atom++;
      // The key-side id range: from the pre-pass (`pre`, ATTNC_IDS_<n>
      // pairs per key tile) when there is one, else a scan of the tile.
      int j = idsAtom++;
      Bound y{tmp(), tmp(), "true"};
      os << "  int64_t " << y.lo << ", " << y.hi << ";\n"
         << "  if (pre) { " << y.lo << " = pre[" << 2 * j << "]; " << y.hi << " = pre["
         << 2 * j + 1 << "]; }\n"
         << "  else attnc_kvid_range_" << spec.getSymName().str() << "(c, " << j << ", k0, k1, &"
         << y.lo << ", &" << y.hi << ");\n";
      std::string x = "r.lo[" + std::to_string(a) + "]", xh = "r.hi[" + std::to_string(a) + "]";
      return {let("bool", "(" + x + " <= " + y.hi + " && " + y.lo + " <= " + xh + ")"),
              let("bool", "(" + x + " == " + xh + " && " + y.lo + " == " + y.hi + " && " +
                              x + " == " + y.lo + ")")};
    }
    case MaskKind::all_of:
    case MaskKind::any_of: {
      bool isAnd = node.getKind() == MaskKind::all_of;
      Flags acc{let("bool", isAnd ? "true" : "false"), let("bool", isAnd ? "true" : "false")};
      for (Attribute t : node.getTerms()) {
        Flags f = flags(cast<MaskAttr>(t), atom);
        const char *o = isAnd ? " && " : " || ";
        os << "  " << acc.any << " = " << acc.any << o << f.any << ";\n"
           << "  " << acc.all << " = " << acc.all << o << f.all << ";\n";
      }
      return acc;
    }
    default: {
      std::string a = std::to_string(atom++);
      std::string lo = "r.lo[" + a + "]", hi = "r.hi[" + a + "]", known = "r.known[" + a + "]";
      std::string any, allv;
      if (node.getKind() == MaskKind::kv_ge)
        any = "k1 >= " + lo, allv = "k0 >= " + hi;
      else if (node.getKind() == MaskKind::kv_le)
        any = "k0 <= " + hi, allv = "k1 <= " + lo;
      else
        any = hi + " >= 0", allv = lo + " >= 0";
      return {let("bool", "!" + known + " || (" + any + ")"),
              let("bool", known + " && (" + allv + ")")};
    }
    }
  }

  int counter = 0, idsAtom = 0;
  std::vector<Bound> atomReads; // the ranges of the current atom's reads
  SpecOp spec;
  llvm::raw_ostream &os;
};

int countAtoms(MaskAttr node) {
  if (node.getKind() == MaskKind::all_of || node.getKind() == MaskKind::any_of) {
    int n = 0;
    for (Attribute t : node.getTerms())
      n += countAtoms(cast<MaskAttr>(t));
    return n;
  }
  return node.getKind() == MaskKind::kv_ge || node.getKind() == MaskKind::kv_le ||
                 node.getKind() == MaskKind::q_pred || node.getKind() == MaskKind::ids_eq
             ? 1
             : 0;
}

/// The key side of the ids_eq atoms (collectIdsAtoms order, the order of
/// the CPU pre-pass): ATTNC_IDS_<n> atoms, attnc_kvid_<n>(c, j, p) reads
/// atom j's key-side id at key p, attnc_kvid_range_<n> is its min/max over
/// [k0, k1] and attnc_ids_tile_<n> fills the 2 * ATTNC_IDS_<n> words a key
/// tile's pre-pass entry holds (what attnc_tile_kind_<n> reads as `pre`).
/// The analysis forms ids_eq only from reads whose b, h and hkv are in
/// range; a key past the input's extent makes the tile's range everything
/// (emitIdsRange's rule, LowerCpuPrepass.cpp).
void emitKeyIds(SpecOp spec, llvm::raw_ostream &os) {
  std::string n = spec.getSymName().str();
  SmallVector<MaskAttr> atoms = collectIdsAtoms(spec.getMaskScheduleAttr());
  os << "\n// ---- " << n << ": key-side ids of the ids_eq atoms (the pre-pass) ----\n"
     << "#define ATTNC_IDS_" << n << " " << atoms.size() << "\n"
     << "ATTNC_HD inline int64_t attnc_kvid_" << n
     << "(const attnc_ctx &c, int j, int64_t p) {\n  (void)c; (void)p;\n  switch (j) {\n";
  for (auto [j, atom] : llvm::enumerate(atoms)) {
    auto read = cast<ArrayAttr>(atom.getTerms()[1]);
    StringRef name = cast<StringAttr>(read[0]).getValue();
    int64_t number = attnc::cudamod::inputNumber(spec, name);
    std::string in = "c.inputs[" + std::to_string(number) + "]";
    os << "  case " << j << ": return ((const int64_t *)" << in << ".data)[0";
    for (auto [d, cAttr] : llvm::enumerate(read.getValue().drop_front())) {
      StringRef coord = cast<StringAttr>(cAttr).getValue();
      std::string v = coord == "q" || coord == "kv" ? "p" : "c." + coord.str();
      os << " + " << v << " * " << in << ".strides[" << d << "]";
    }
    os << "];\n";
  }
  os << "  }\n  return 0;\n}\n"
     << "ATTNC_HD inline int64_t attnc_kvid_extent_" << n
     << "(const attnc_ctx &c, int j) {\n  (void)c;\n  switch (j) {\n";
  for (auto [j, atom] : llvm::enumerate(atoms)) {
    auto read = cast<ArrayAttr>(atom.getTerms()[1]);
    int64_t number = attnc::cudamod::inputNumber(
        spec, cast<StringAttr>(read[0]).getValue());
    for (auto [d, cAttr] : llvm::enumerate(read.getValue().drop_front())) {
      StringRef coord = cast<StringAttr>(cAttr).getValue();
      if (coord == "q" || coord == "kv")
        os << "  case " << j << ": return c.inputs[" << number << "].dims[" << d
           << "];\n";
    }
  }
  os << "  }\n  return 0;\n}\n"
     << "ATTNC_HD inline void attnc_kvid_range_" << n
     << "(const attnc_ctx &c, int j, int64_t k0, int64_t k1, int64_t *lo, int64_t *hi) {\n"
     << "  if (k1 >= attnc_kvid_extent_" << n << "(c, j)) {\n"
     << "    *lo = INT64_MIN; *hi = INT64_MAX; return;\n  }\n"
     << "  int64_t l = INT64_MAX, u = INT64_MIN;\n"
     << "  for (int64_t p = k0; p <= k1; ++p) {\n"
     << "    int64_t id = attnc_kvid_" << n << "(c, j, p);\n"
     << "    l = id < l ? id : l;\n    u = id > u ? id : u;\n  }\n"
     << "  *lo = l; *hi = u;\n}\n"
     << "ATTNC_HD inline void attnc_ids_tile_" << n
     << "(const attnc_ctx &c, int64_t k0, int64_t k1, int64_t *out) {\n"
     << "  for (int j = 0; j < ATTNC_IDS_" << n << "; ++j)\n"
     << "    attnc_kvid_range_" << n << "(c, j, k0, k1, &out[2 * j], &out[2 * j + 1]);\n}\n";
}

} // namespace

attnc::runtime::Expected<std::string> attnc::emitCudaElementCode(SpecOp spec) {
  std::string out;
  llvm::raw_string_ostream os(out);
  std::string n = spec.getSymName().str();
  struct RegionFn {
    const char *what, *ret, *params;
    Region *region;
  };
  std::vector<RegionFn> fns = {
      {"scale", "float", "", &spec.getScale()},
      {"score", "float", ", float score", &spec.getScore()},
      {"mask", "bool", "", &spec.getMask()},
  };
  if (spec.getNormalize() == NormalizeKind::sigmoid)
    fns.push_back({"bias", "float", "", &spec.getBias()});
  if (!spec.getSink().empty()) // per row: called with kv = 0
    fns.push_back({"sink", "float", "", &spec.getSink()});
  // Each region twice: exact (attnc_<what>_<n>, int64 positions, every
  // read checked) and fast (attnc_<what>_f_<n>, what the kernels call per
  // element; CudaRegionPrinter.h says what differs).
  os << "\n// ---- " << n << ": element code (from the spec regions) ----\n";
  for (bool fast : {false, true})
    for (const RegionFn &fn : fns) {
      os << "ATTNC_HD inline " << fn.ret << " attnc_" << fn.what << (fast ? "_f_" : "_") << n
         << "(const attnc_ctx &c" << fn.params
         << (fast ? ", int q, int kv) {\n" : ", int64_t q, int64_t kv) {\n")
         << "  (void)c; (void)q; (void)kv;\n";
      RegionPrinter p(spec, os, fast);
      FailureOr<std::string> r = p.print(*fn.region);
      if (failed(r))
        return Status::error(p.error.empty() ? "cannot print a region" : p.error);
      os << "  return " << *r << ";\n}\n";
    }

  MaskAttr mask = spec.getMaskScheduleAttr();
  if (!mask)
    return Status::error("the CUDA emitter needs the mask analysis");
  int atoms = countAtoms(mask);
  emitKeyIds(spec, os);
  os << "\n// ---- " << n << ": tile schedule of #attn.mask (MaskSchedule's math) ----\n"
     << "struct attnc_rowset_" << n << " {\n  int64_t lo[" << std::max(atoms, 1)
     << "], hi[" << std::max(atoms, 1) << "];\n  bool known[" << std::max(atoms, 1)
     << "];\n  int64_t hullLo, hullHi;\n};\n"
     << "ATTNC_HD inline attnc_rowset_" << n << " attnc_rows_" << n
     << "(const attnc_ctx &c, int64_t q0, int64_t q1) {\n  attnc_rowset_" << n << " r = {};\n";
  {
    SchedulePrinter sp(spec, os);
    int atom = 0;
    SchedulePrinter::Hull h = sp.hull(mask, atom);
    os << "  r.hullLo = " << h.lo << ";\n  r.hullHi = " << h.hi << ";\n  return r;\n}\n";
  }
  os << "// 0: EMPTY, 1: FULL, 2: PARTIAL.\nATTNC_HD inline int attnc_tile_kind_" << n
     << "(const attnc_ctx &c, const attnc_rowset_" << n
     << " &r, int64_t k0, int64_t k1, const int64_t *pre) {\n  (void)c; (void)pre;\n"
     << "  if (k1 < r.hullLo || k0 > r.hullHi) return 0;\n";
  {
    SchedulePrinter sp(spec, os);
    int atom = 0;
    SchedulePrinter::Flags f = sp.flags(mask, atom);
    os << "  if (!(" << f.any << ")) return 0;\n  return (" << f.all << ") ? 1 : 2;\n}\n";
  }
  return out;
}
