//===- AttnAttrs.cpp - Attributes of the attn dialect ---------------------===//
//
// Textual forms and verifiers of #attn.param, #attn.input and #attn.mask.
// The mask parser bounds a formula's depth, size and bound expressions
// (kMaxMask* in AttnDialect.h); printing and queries use explicit stacks.
// `#attn.mask<all_of(kv_le "q", kv_ge "q - 127")>` (kv <= q && kv >= q - 127): bounds are affine
// expressions printed with the names of their dim (q) and symbols, and read
// back through MLIR's affine-map parser, so the text stays readable in lit
// tests and round-trips exactly.
//
//===----------------------------------------------------------------------===//
#include "attnc/Dialect/AttnDialect.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::attn;

#define GET_ATTRDEF_CLASSES
#include "attnc/Dialect/AttnAttrs.cpp.inc"

void AttnDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "attnc/Dialect/AttnAttrs.cpp.inc"
      >();
}

static bool isScalarType(Type t) {
  return t.isInteger(64) || t.isF32() || t.isInteger(1);
}

//===----------------------------------------------------------------------===//
// ParamAttr: #attn.param<"name" : type [= value]>
//===----------------------------------------------------------------------===//

Attribute ParamAttr::parse(AsmParser &p, Type) {
  MLIRContext *ctx = p.getContext();
  llvm::SMLoc loc = p.getCurrentLocation();
  std::string name;
  Type type;
  TypedAttr value;
  if (p.parseLess() || p.parseString(&name) || p.parseColon() ||
      p.parseType(type))
    return {};
  if (succeeded(p.parseOptionalEqual())) {
    if (type.isInteger(1)) {
      if (succeeded(p.parseOptionalKeyword("true")))
        value = BoolAttr::get(ctx, true);
      else if (succeeded(p.parseOptionalKeyword("false")))
        value = BoolAttr::get(ctx, false);
      else
        return p.emitError(p.getCurrentLocation(), "expected true or false"),
               Attribute();
    } else if (type.isInteger(64)) {
      int64_t v;
      if (p.parseInteger(v))
        return {};
      value = IntegerAttr::get(type, v);
    } else if (type.isF32()) {
      double v;
      if (p.parseFloat(v))
        return {};
      value = FloatAttr::get(type, v);
    } else {
      return p.emitError(loc, "param type must be i64, f32 or i1"),
             Attribute();
    }
  }
  if (p.parseGreater())
    return {};
  return getChecked([&] { return p.emitError(loc); }, ctx,
                    StringAttr::get(ctx, name), type, value);
}

void ParamAttr::print(AsmPrinter &p) const {
  p << "<";
  p.printString(getName().getValue());
  p << " : " << getType();
  if (TypedAttr v = getValue()) {
    p << " = ";
    if (auto b = dyn_cast<BoolAttr>(v))
      p << (b.getValue() ? "true" : "false");
    else if (auto i = dyn_cast<IntegerAttr>(v))
      p << i.getValue().getSExtValue();
    else if (auto f = dyn_cast<FloatAttr>(v))
      p.printFloat(f.getValue());
  }
  p << ">";
}

LogicalResult ParamAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                StringAttr name, Type type, TypedAttr value) {
  if (!name || name.getValue().empty())
    return emitError() << "param needs a name";
  if (!isScalarType(type))
    return emitError() << "param '" << name.getValue()
                       << "' must have type i64, f32 or i1, got " << type;
  if (value && value.getType() != type)
    return emitError() << "param '" << name.getValue() << "' has type "
                       << type << " but its value is " << value;
  // As the front end's: an f32 value out of range (inf) has no printed form
  // that reads back.
  if (auto f = dyn_cast_or_null<FloatAttr>(value); f && !f.getValue().isFinite())
    return emitError() << "param '" << name.getValue()
                       << "' must be a finite f32";
  return success();
}

//===----------------------------------------------------------------------===//
// InputAttr: #attn.input<"name" : elementType [dim, ...]>
//===----------------------------------------------------------------------===//

Attribute InputAttr::parse(AsmParser &p, Type) {
  MLIRContext *ctx = p.getContext();
  llvm::SMLoc loc = p.getCurrentLocation();
  std::string name;
  Type elementType;
  SmallVector<Attribute> shape;
  auto parseDim = [&]() -> ParseResult {
    int64_t extent;
    OptionalParseResult intResult = p.parseOptionalInteger(extent);
    if (intResult.has_value()) {
      if (failed(*intResult))
        return failure();
      shape.push_back(IntegerAttr::get(IntegerType::get(ctx, 64), extent));
      return success();
    }
    StringRef symbol;
    if (p.parseKeyword(&symbol))
      return failure();
    shape.push_back(StringAttr::get(ctx, symbol));
    return success();
  };
  if (p.parseLess() || p.parseString(&name) || p.parseColon() ||
      p.parseType(elementType) ||
      p.parseCommaSeparatedList(AsmParser::Delimiter::Square, parseDim) ||
      p.parseGreater())
    return {};
  return getChecked([&] { return p.emitError(loc); }, ctx,
                    StringAttr::get(ctx, name), elementType,
                    ArrayAttr::get(ctx, shape));
}

void InputAttr::print(AsmPrinter &p) const {
  p << "<";
  p.printString(getName().getValue());
  p << " : " << getElementType() << " [";
  llvm::interleaveComma(getShape(), p, [&](Attribute dim) {
    if (auto s = dyn_cast<StringAttr>(dim))
      p << s.getValue();
    else
      p << cast<IntegerAttr>(dim).getInt();
  });
  p << "]>";
}

LogicalResult InputAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                StringAttr name, Type elementType,
                                ArrayAttr shape) {
  if (!name || name.getValue().empty())
    return emitError() << "input needs a name";
  if (!isScalarType(elementType))
    return emitError() << "input '" << name.getValue()
                       << "' must have element type i64, f32 or i1, got "
                       << elementType;
  if (!shape || shape.empty())
    return emitError() << "input '" << name.getValue()
                       << "' must have rank >= 1";
  for (Attribute dim : shape) {
    if (auto i = dyn_cast<IntegerAttr>(dim)) {
      if (i.getInt() <= 0)
        return emitError() << "input '" << name.getValue()
                           << "' has a non-positive extent " << i.getInt();
    } else if (!isa<StringAttr>(dim)) {
      return emitError() << "input '" << name.getValue()
                         << "' dimensions must be names or integers";
    }
  }
  return success();
}


ArrayRef<StringRef> mlir::attn::maskSymbolNames() {
  static const StringRef names[] = {"b",  "h",   "hkv", "B", "HQ",
                                    "HKV", "LQ", "LK",  "D", "DV"};
  return names;
}

/// MLIR prints d0 / s3; rename those identifiers to q / HQ.
std::string mlir::attn::printMaskBound(AffineExpr expr) {
  std::string raw;
  llvm::raw_string_ostream os(raw);
  expr.print(os);
  std::string out;
  for (size_t i = 0; i < raw.size();) {
    if (!llvm::isAlpha(raw[i])) {
      out += raw[i++];
      continue;
    }
    size_t j = i;
    while (j < raw.size() && (llvm::isAlnum(raw[j]) || raw[j] == '_'))
      ++j;
    StringRef word(raw.data() + i, j - i);
    unsigned n;
    if (word == "d0")
      out += "q";
    else if (word.size() > 1 && word[0] == 's' &&
             !word.drop_front().getAsInteger(10, n) &&
             n < maskSymbolNames().size())
      out += maskSymbolNames()[n].str();
    else if (word.size() > 1 && word[0] == 's' &&
             !word.drop_front().getAsInteger(10, n))
      out += "r" + std::to_string(n - maskSymbolNames().size()); // a read
    else
      out += word.str();
    i = j;
  }
  return out;
}

/// Operators and parentheses of a bound's text: each is a level of MLIR's
/// recursive affine-expression parser at worst.
static unsigned countBoundTerms(StringRef text) {
  unsigned n = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+' || c == '-' || c == '*' || c == '(') {
      ++n;
      continue;
    }
    if (!llvm::isAlpha(c))
      continue;
    size_t j = i;
    while (j < text.size() && (llvm::isAlnum(text[j]) || text[j] == '_'))
      ++j;
    StringRef word = text.slice(i, j);
    if (word == "floordiv" || word == "ceildiv" || word == "mod")
      ++n;
    i = j - 1;
  }
  return n;
}

static AffineMap parseMaskBound(AsmParser &p, StringRef text, size_t numReads) {
  std::string mapText = "affine_map<(q)[";
  mapText += llvm::join(maskSymbolNames(), ", ");
  for (size_t i = 0; i < numReads; ++i)
    mapText += ", r" + std::to_string(i);
  mapText += "] -> (" + text.str() + ")>";
  // Report errors at the bound's position in the outer text, not in the
  // synthesised map string.
  Attribute attr;
  {
    ScopedDiagnosticHandler silence(p.getContext(),
                                    [](Diagnostic &) { return success(); });
    attr = mlir::parseAttribute(mapText, p.getContext());
  }
  auto mapAttr = dyn_cast_or_null<AffineMapAttr>(attr);
  return mapAttr ? mapAttr.getValue() : AffineMap();
}

MaskAttr MaskAttr::getLeaf(MLIRContext *ctx, MaskKind kind) {
  return get(ctx, kind, {}, AffineMap());
}

MaskAttr MaskAttr::getAtom(MLIRContext *ctx, MaskKind kind,
                           AffineExpr bound, ArrayRef<Attribute> reads) {
  return get(ctx, kind, reads,
             AffineMap::get(kNumDims, kNumSymbols + reads.size(), bound));
}

MaskAttr MaskAttr::getCombination(MLIRContext *ctx, MaskKind kind,
                                  ArrayRef<Attribute> terms) {
  return get(ctx, kind, terms, AffineMap());
}

/// `"name"[c0, c1, ..]` for a read [name, coordinates...].
static void printRead(AsmPrinter &p, ArrayAttr read) {
  p.printString(cast<StringAttr>(read[0]).getValue());
  p << "[";
  llvm::interleaveComma(read.getValue().drop_front(), p, [&](Attribute c) {
    p << cast<StringAttr>(c).getValue();
  });
  p << "]";
}

/// Parses `"name"[c0, c1, ..]` into [name, coordinates...].
static ArrayAttr parseRead(AsmParser &p) {
  MLIRContext *ctx = p.getContext();
  std::string name;
  SmallVector<Attribute> read;
  if (p.parseString(&name))
    return {};
  read.push_back(StringAttr::get(ctx, name));
  if (p.parseCommaSeparatedList(AsmParser::Delimiter::Square, [&] {
        StringRef coord;
        if (p.parseKeyword(&coord))
          return failure();
        read.push_back(StringAttr::get(ctx, coord));
        return success();
      }))
    return {};
  return ArrayAttr::get(ctx, read);
}

/// Prints a node that has no sub-formula (everything but all_of/any_of).
static void printLeaf(AsmPrinter &p, MaskAttr node) {
  switch (node.getKind()) {
  case MaskKind::all_of:
  case MaskKind::any_of:
  case MaskKind::always:
  case MaskKind::never:
  case MaskKind::opaque:
    p << stringifyMaskKind(node.getKind());
    return;
  case MaskKind::kv_ge:
  case MaskKind::kv_le:
  case MaskKind::q_pred:
    p << stringifyMaskKind(node.getKind()) << " ";
    p.printString(printMaskBound(node.getBoundExpr()));
    if (!node.getTerms().empty()) {
      p << " reads(";
      llvm::interleaveComma(node.getTerms(), p, [&](Attribute r) {
        printRead(p, cast<ArrayAttr>(r));
      });
      p << ")";
    }
    return;
  case MaskKind::ids_eq:
    p << "ids_eq";
    for (Attribute t : node.getTerms()) {
      p << " ";
      printRead(p, cast<ArrayAttr>(t));
    }
    return;
  }
}

/// Prints a formula with an explicit stack, so that a formula built by a
/// pass (not bounded by the parser's limits) cannot exhaust the C++ stack.
static void printNode(AsmPrinter &p, MaskAttr root) {
  struct Frame {
    MaskAttr node;
    size_t next; // index of the next term to print
  };
  auto isCombination = [](MaskAttr n) {
    return n.getKind() == MaskKind::all_of || n.getKind() == MaskKind::any_of;
  };
  SmallVector<Frame> stack;
  auto open = [&](MaskAttr n) {
    if (!isCombination(n))
      return printLeaf(p, n);
    p << stringifyMaskKind(n.getKind()) << "(";
    stack.push_back({n, 0});
  };
  open(root);
  while (!stack.empty()) {
    Frame &f = stack.back();
    ArrayRef<Attribute> terms = f.node.getTerms();
    if (f.next == terms.size()) {
      p << ")";
      stack.pop_back();
      continue;
    }
    if (f.next > 0)
      p << ", ";
    MaskAttr child = cast<MaskAttr>(terms[f.next++]);
    open(child); // may push: `f` is not used after this
  }
}

/// Parses one node; `nodes` counts the nodes parsed so far in the formula.
static MaskAttr parseNode(AsmParser &p, unsigned depth, unsigned &nodes) {
  MLIRContext *ctx = p.getContext();
  llvm::SMLoc loc = p.getCurrentLocation();
  if (depth > kMaxMaskDepth)
    return p.emitError(loc, "mask formula is nested too deeply (more than ")
               << kMaxMaskDepth << " levels)",
           MaskAttr();
  if (++nodes > kMaxMaskTerms)
    return p.emitError(loc, "mask formula has more than ")
               << kMaxMaskTerms << " terms",
           MaskAttr();
  // `"EXPR"` then, when EXPR names reads r0, r1, .., `reads("X"[b], ..)`.
  auto parseBound = [&](AffineExpr &expr, SmallVector<Attribute> &reads) -> ParseResult {
    llvm::SMLoc at = p.getCurrentLocation();
    std::string text;
    if (p.parseString(&text))
      return failure();
    if (countBoundTerms(text) > kMaxMaskBoundTerms)
      return p.emitError(at, "mask bound has more than ")
             << kMaxMaskBoundTerms << " operators";
    if (succeeded(p.parseOptionalKeyword("reads")) &&
        p.parseCommaSeparatedList(AsmParser::Delimiter::Paren, [&] {
          ArrayAttr read = parseRead(p);
          if (!read)
            return failure();
          reads.push_back(read);
          return success();
        }))
      return failure();
    AffineMap map = parseMaskBound(p, text, reads.size());
    if (!map || map.getNumResults() != 1)
      return p.emitError(at, "invalid mask bound \"") << text << "\"";
    expr = map.getResult(0);
    return success();
  };
  StringRef word;
  if (p.parseKeyword(&word))
    return {};
  std::optional<MaskKind> kind = symbolizeMaskKind(word);
  if (!kind)
    return p.emitError(loc, "unknown mask formula node '") << word << "'",
           MaskAttr();
  if (*kind == MaskKind::kv_ge || *kind == MaskKind::kv_le ||
      *kind == MaskKind::q_pred) {
    AffineExpr expr;
    SmallVector<Attribute> reads;
    if (parseBound(expr, reads))
      return {};
    return MaskAttr::getChecked(
        [&] { return p.emitError(loc); }, ctx, *kind, reads,
        AffineMap::get(MaskAttr::kNumDims, MaskAttr::kNumSymbols + reads.size(), expr));
  }
  if (*kind == MaskKind::ids_eq) {
    SmallVector<Attribute> reads;
    for (int side = 0; side < 2; ++side) {
      ArrayAttr read = parseRead(p);
      if (!read)
        return {};
      reads.push_back(read);
    }
    return MaskAttr::getChecked([&] { return p.emitError(loc); }, ctx, *kind,
                                reads, AffineMap());
  }
  if (*kind != MaskKind::all_of && *kind != MaskKind::any_of)
    return MaskAttr::getLeaf(ctx, *kind);
  SmallVector<Attribute> terms;
  if (p.parseCommaSeparatedList(AsmParser::Delimiter::Paren, [&] {
        MaskAttr t = parseNode(p, depth + 1, nodes);
        if (!t)
          return failure();
        terms.push_back(t);
        return success();
      }))
    return {};
  return MaskAttr::getChecked([&] { return p.emitError(loc); }, ctx, *kind,
                              terms, AffineMap());
}

Attribute MaskAttr::parse(AsmParser &p, Type) {
  if (p.parseLess())
    return {};
  unsigned nodes = 0;
  MaskAttr node = parseNode(p, 0, nodes);
  if (!node || p.parseGreater())
    return {};
  return node;
}

void MaskAttr::print(AsmPrinter &p) const {
  p << "<";
  printNode(p, *this);
  p << ">";
}

LogicalResult MaskAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                               MaskKind kind, ArrayRef<Attribute> terms,
                               AffineMap bound) {
  bool isAtom = kind == MaskKind::kv_ge || kind == MaskKind::kv_le ||
                kind == MaskKind::q_pred;
  bool isCombination = kind == MaskKind::all_of || kind == MaskKind::any_of;
  if (isAtom) {
    if (!bound || bound.getNumDims() != kNumDims ||
        bound.getNumSymbols() != kNumSymbols + terms.size() ||
        bound.getNumResults() != 1)
      return emitError() << "mask atom needs a bound (q)[" << kNumSymbols
                         << " symbols and one per read] -> (expr)";
    // Reads [input, b | h | hkv | q...]: symbols 10..., a value per (b, h)
    // or, read at q (at most once), a range per block of rows.
    for (Attribute t : terms) {
      auto read = dyn_cast_or_null<ArrayAttr>(t);
      if (!read || read.size() < 2 ||
          !llvm::all_of(read, [](Attribute a) { return isa<StringAttr>(a); }))
        return emitError() << "mask atom reads are [input, coordinates...]";
      int atQ = 0;
      for (Attribute c : read.getValue().drop_front()) {
        std::optional<IndexVar> v = symbolizeIndexVar(cast<StringAttr>(c).getValue());
        if (!v || *v == IndexVar::kv)
          return emitError() << "mask atom reads are indexed by b, h, hkv or q, not '"
                             << cast<StringAttr>(c).getValue() << "'";
        atQ += *v == IndexVar::q;
      }
      if (atQ > 1)
        return emitError() << "a mask atom read is indexed by q at most once";
    }
    return success();
  } else if (bound) {
    return emitError() << "only mask atoms have a bound";
  }
  if (kind == MaskKind::ids_eq) {
    // Two reads: [input, coordinates...], the first at q, the second at kv.
    if (terms.size() != 2)
      return emitError() << "ids_eq needs two input reads";
    for (int side = 0; side < 2; ++side) {
      auto read = dyn_cast_or_null<ArrayAttr>(terms[side]);
      if (!read || read.size() < 2 ||
          !llvm::all_of(read, [](Attribute a) { return isa<StringAttr>(a); }))
        return emitError() << "ids_eq reads are [input, coordinates...]";
      int at = 0;
      for (Attribute c : read.getValue().drop_front()) {
        std::optional<IndexVar> v =
            symbolizeIndexVar(cast<StringAttr>(c).getValue());
        if (!v)
          return emitError() << "ids_eq index '"
                             << cast<StringAttr>(c).getValue()
                             << "' is not a coordinate";
        at += (*v == IndexVar::q) ? 1 : (*v == IndexVar::kv) ? 2 : 0;
        if ((side == 0 && *v == IndexVar::kv) ||
            (side == 1 && *v == IndexVar::q))
          return emitError() << "ids_eq reads its first input at q and its "
                                "second at kv";
      }
      if (at != (side == 0 ? 1 : 2))
        return emitError() << "ids_eq reads its first input at q and its "
                              "second at kv, once each";
    }
    return success();
  }
  if (isCombination) {
    if (terms.size() < 2)
      return emitError() << stringifyMaskKind(kind)
                         << " needs at least two terms";
    for (Attribute t : terms)
      if (!isa_and_nonnull<MaskAttr>(t))
        return emitError() << "terms of a mask formula must be #attn.mask";
  } else if (!terms.empty()) {
    return emitError() << "always, never and opaque have no terms";
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Queries on mask formulas and types
//===----------------------------------------------------------------------===//

SmallVector<MaskAttr> mlir::attn::collectIdsAtoms(MaskAttr mask) {
  // Depth-first, terms in order, with an explicit stack (no recursion).
  SmallVector<MaskAttr> out;
  SmallVector<MaskAttr> stack{mask};
  while (!stack.empty()) {
    MaskAttr node = stack.pop_back_val();
    if (node.getKind() == MaskKind::ids_eq)
      out.push_back(node);
    if (node.getKind() == MaskKind::all_of ||
        node.getKind() == MaskKind::any_of)
      for (Attribute t : llvm::reverse(node.getTerms()))
        stack.push_back(cast<MaskAttr>(t));
  }
  return out;
}

bool mlir::attn::maskNeedsNoElementCode(MaskAttr mask) {
  return mask.getKind() == MaskKind::always ||
         mask.getKind() == MaskKind::never;
}

bool mlir::attn::isStorageType(Type t) {
  return t.isF32() || t.isF16() || t.isBF16();
}
