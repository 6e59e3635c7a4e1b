//===- Sema.cpp - Name resolution and type checking of .attn specs --------===//
//
// Resolves every identifier of a parsed module (index, size, `score`, param,
// input, let), types every expression (SemaExpr.cpp), inserts explicit
// int->float Cast nodes, rejects ill-typed clauses, constant zero divisors
// and constant shift counts outside [0, 63], applies -D overrides and
// --name, and fills absent clauses with their default trees.
//
//===----------------------------------------------------------------------===//
#include "SemaImpl.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <functional>
#include <cerrno>
#include <cstdio>
#include <cmath>
#include <cstdlib>

using namespace attnc;
using ast::Expr;
using ast::ExprPtr;
using ast::Type;
using llvm::StringRef;
using llvm::Twine;

/// The enumerator of E (values 0..count-1) that `nameOf` spells as `name`.
template <typename E>
static std::optional<E> lookupEnum(StringRef name, unsigned count,
                                   const char *(*nameOf)(E)) {
  for (unsigned i = 0; i < count; ++i)
    if (name == nameOf(static_cast<E>(i)))
      return static_cast<E>(i);
  return std::nullopt;
}

std::optional<ast::IndexVar> attnc::lookupIndexVar(StringRef name) {
  return lookupEnum<ast::IndexVar>(name, 5, ast::indexVarName);
}

std::optional<ast::SizeVar> attnc::lookupSizeVar(StringRef name) {
  return lookupEnum<ast::SizeVar>(name, 7, ast::sizeVarName);
}

std::optional<ast::Builtin> attnc::lookupBuiltin(StringRef name) {
  return lookupEnum<ast::Builtin>(name, 20, ast::builtinName);
}

bool attnc::isKeyword(StringRef name) {
  static const char *const keywords[] = {
      "attention", "param", "input", "scale",   "score", "mask",
      "normalize", "softmax", "sigmoid", "int",   "float", "let",
      "bool",      "true",  "false"};
  return llvm::is_contained(keywords, name);
}


//===----------------------------------------------------------------------===//
// Strict parsing of -D values
//===----------------------------------------------------------------------===//

/// Returns an empty string on success, else the reason.
static std::string parseIntValue(StringRef s, int64_t &out) {
  StringRef digits = s;
  bool negative = false;
  if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) {
    negative = digits[0] == '-';
    digits = digits.drop_front();
  }
  if (digits.empty() ||
      !llvm::all_of(digits, [](char c) { return c >= '0' && c <= '9'; }))
    return "'" + s.str() + "' is not an int";
  const uint64_t limit = (uint64_t(1) << 63) - (negative ? 0 : 1);
  uint64_t value = 0;
  for (char c : digits) {
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (limit - digit) / 10)
      return "'" + s.str() + "' is out of range for int (64-bit)";
    value = value * 10 + digit;
  }
  if (negative)
    out = value == (uint64_t(1) << 63) ? INT64_MIN
                                       : -static_cast<int64_t>(value);
  else
    out = static_cast<int64_t>(value);
  return "";
}

static std::string parseFloatValue(StringRef s, double &out) {
  std::string text = s.str(); // no inf, nan, hex floats or spaces:
  if (s.find_first_not_of("0123456789.eE+-") != StringRef::npos ||
      s.find_first_of("0123456789") == StringRef::npos)
    return "'" + text + "' is not a float";
  char *endPtr = nullptr;
  errno = 0;
  double value = std::strtod(text.c_str(), &endPtr);
  if (endPtr != text.c_str() + text.size())
    return "'" + text + "' is not a float";
  errno = 0;
  float asFloat = std::strtof(text.c_str(), nullptr);
  if (!std::isfinite(value) || (errno == ERANGE && std::isinf(asFloat)))
    return "'" + text + "' is out of range for float (f32)";
  out = value;
  return "";
}

static std::string parseBoolValue(StringRef s, bool &out) {
  if (s != "true" && s != "1" && s != "false" && s != "0")
    return "'" + s.str() + "' is not a bool (use true, false, 1 or 0)";
  out = s == "true" || s == "1";
  return "";
}

std::string attnc::parseParamValue(StringRef text, ast::ParamDecl &param) {
  std::string why;
  if (param.type == Type::Int)
    why = parseIntValue(text, param.intValue);
  else if (param.type == Type::Float)
    why = parseFloatValue(text, param.floatValue);
  else
    why = parseBoolValue(text, param.boolValue);
  if (why.empty())
    param.hasValue = true;
  return why;
}

using namespace attnc::sema;

bool SemaImpl::run(ast::Module &m, const FrontendOptions &options) {
  module = &m;
  llvm::StringMap<bool> names;
  for (ast::AttentionDecl &a : m.attentions)
    if (!names.insert({a.name, true}).second)
      return fail(a.loc, "duplicate attention block '" + a.name + "'");

  if (!options.onlyName.empty()) {
    auto it = llvm::find_if(m.attentions, [&](const ast::AttentionDecl &a) {
      return a.name == options.onlyName;
    });
    if (it == m.attentions.end())
      return failNoLoc("no attention block named '" + options.onlyName + "'",
                       m.fileName);
    ast::AttentionDecl kept = std::move(*it);
    m.attentions.clear();
    m.attentions.push_back(std::move(kept));
  }

  if (!applyDefines(m, options))
    return false;
  for (ast::AttentionDecl &a : m.attentions)
    if (!checkBlock(a))
      return false;
  return true;
}

bool SemaImpl::applyDefines(ast::Module &m, const FrontendOptions &options) {
  llvm::StringMap<bool> given;
  for (const auto &[name, value] : options.defines) {
    std::string prefix = "-D " + name + "=" + value + ": ";
    if (!given.insert({name, true}).second)
      return failNoLoc(prefix + "param '" + name + "' is given more than once");
    bool found = false;
    for (ast::AttentionDecl &a : m.attentions) {
      for (ast::ParamDecl &p : a.params) {
        if (p.name != name)
          continue;
        found = true;
        std::string why = parseParamValue(value, p);
        if (!why.empty())
          return failNoLoc(prefix + why + " (param '" + name + "' is " +
                           ast::typeName(p.type) + ")");
      }
    }
    if (!found) {
      if (!options.onlyName.empty())
        return failNoLoc(prefix + "attention '" + options.onlyName +
                         "' has no param named '" + name + "'");
      return failNoLoc(prefix + "no attention block has a param named '" +
                       name + "'");
    }
  }
  return true;
}

bool SemaImpl::checkBlock(ast::AttentionDecl &a) {
  blk = &a;
  if (!checkDeclNames() || !checkInputDims() || !checkLets())
    return false;
  inScore = false;
  if (a.scale && !checkClause(a.scale, *a.scaleLoc, "scale", false))
    return false;
  inScore = true;
  if (a.score && !checkClause(a.score, *a.scoreLoc, "score", false))
    return false;
  inScore = false;
  if (a.mask && !checkClause(a.mask, *a.maskLoc, "mask", true))
    return false;
  if (a.normalize != ast::NormalizeKind::Sigmoid)
    a.sigmoidBias.reset();
  else if (a.sigmoidBias &&
           !checkClause(a.sigmoidBias, a.sigmoidBias->loc, "sigmoid bias",
                        false))
    return false;
  if (a.softmaxSink && !checkSink(a.softmaxSink))
    return false;
  if (a.softmaxDropout && !checkDropout())
    return false;
  fillDefaults();
  return true;
}

bool SemaImpl::checkDeclNames() {
  struct DeclRef {
    ast::Loc loc;
    const std::string *name;
    const char *kind; // "param", "input", "let" or "mask"
  };
  struct Seen {
    const char *kind;
    ast::Loc loc;
  };
  std::vector<DeclRef> decls;
  for (const ast::ParamDecl &p : blk->params)
    decls.push_back({p.loc, &p.name, "param"});
  for (const ast::InputDecl &in : blk->inputs)
    decls.push_back({in.loc, &in.name, "input"});
  for (const ast::LetDecl &l : blk->lets)
    decls.push_back({l.loc, &l.name, l.isMask ? "mask" : "let"});
  auto article = [](const char *kind) {
    return std::string(kind[0] == 'i' ? "an " : "a ") + kind;
  };
  std::stable_sort(decls.begin(), decls.end(),
                   [&](const DeclRef &x, const DeclRef &y) {
                     return before(x.loc, y.loc);
                   });
  llvm::StringMap<Seen> seen; // name -> its first declaration
  for (const DeclRef &d : decls) {
    const std::string &n = *d.name;
    const char *kind = d.kind;
    const char *reserved = lookupIndexVar(n) || lookupSizeVar(n)
                               ? "a built-in name"
                           : lookupBuiltin(n) ? "a function name"
                           : isKeyword(n)     ? "a keyword"
                                              : nullptr;
    if (reserved)
      return fail(d.loc, "'" + n + "' is " + reserved + " and cannot name " +
                             article(kind));
    auto [it, inserted] = seen.insert({n, Seen{kind, d.loc}});
    if (!inserted) {
      const Seen &first = it->second;
      std::string note = "'" + n + "' is first declared here";
      if (StringRef(first.kind) == kind)
        return failWithNote(d.loc, Twine("duplicate ") + kind + " '" + n + "'",
                            first.loc, note);
      return failWithNote(d.loc,
                          "'" + n + "' is already declared as " +
                              article(first.kind),
                          first.loc, note);
    }
  }
  return true;
}

bool SemaImpl::checkInputDims() {
  for (const ast::InputDecl &in : blk->inputs) {
    for (const ast::InputDim &dim : in.dims) {
      if (dim.symbol.empty()) {
        if (dim.extent <= 0)
          return fail(dim.loc, "dimension of input '" + in.name +
                                   "' must be positive, got " +
                                   Twine(dim.extent));
        continue;
      }
      if (lookupSizeVar(dim.symbol))
        continue;
      ast::ParamDecl *p = findParam(dim.symbol);
      if (p && p->type != Type::Int)
        return fail(dim.loc, "dimension '" + dim.symbol + "' of input '" +
                                 in.name + "' must be an int param, but '" +
                                 dim.symbol + "' is " +
                                 ast::typeName(p->type));
      if (p && !before(p->loc, dim.loc))
        return fail(dim.loc, "param '" + dim.symbol +
                                 "' must be declared before input '" +
                                 in.name + "' to size it");
      if (!p)
        return fail(dim.loc, "dimension '" + dim.symbol + "' of input '" +
                                 in.name +
                                 "' must be a size name (B, HQ, HKV, LQ, LK, "
                                 "D, DV), an int param declared before it, "
                                 "or a positive integer");
      if (!requireValue(*p))
        return false;
      if (p->intValue <= 0)
        return fail(dim.loc, "dimension '" + dim.symbol + "' of input '" +
                                 in.name + "' must be positive, but param '" +
                                 p->name + "' is " + Twine(p->intValue));
    }
  }
  return true;
}

bool SemaImpl::checkClause(ExprPtr &slot, ast::Loc loc, StringRef what,
                           bool isMask) {
  if (!checkExpr(slot))
    return false;
  if (isMask) {
    if (slot->type != Type::Bool)
      return fail(loc, what + " must be bool, got " + ast::typeName(slot->type));
    return true;
  }
  if (!isNumeric(slot->type))
    return fail(loc, what + " must be a number, got " +
                         ast::typeName(slot->type));
  promote(slot);
  return true;
}

/// softmax(sink = EXPR): a number, one per query row, so it reads no `kv`
/// (nor `score`, which checkExpr refuses outside the score clause).
bool SemaImpl::checkSink(ExprPtr &slot) {
  if (!checkClause(slot, slot->loc, "sink", false))
    return false;
  std::vector<char> seen(blk->lets.size(), 0); // lets form a DAG: visit once
  std::function<const Expr *(const Expr &)> kvUse = [&](const Expr &e) {
    if (e.kind == Expr::Kind::Index && e.indexVar == ast::IndexVar::KV)
      return &e;
    if (e.kind == Expr::Kind::Let && e.letIndex >= 0 &&
        !seen[size_t(e.letIndex)]) {
      seen[size_t(e.letIndex)] = 1;
      if (kvUse(*blk->lets[size_t(e.letIndex)].expr))
        return &e;
    }
    for (const ExprPtr &op : e.operands)
      if (const Expr *use = kvUse(*op))
        return use;
    return static_cast<const Expr *>(nullptr);
  };
  if (const Expr *use = kvUse(*slot))
    return fail(use->loc, use->kind == Expr::Kind::Let
                              ? "the sink is one logit per query row, but '" +
                                    use->name + "' reads 'kv'"
                              : Twine("the sink is one logit per query row: "
                                      "it cannot read 'kv'"));
  return true;
}

/// softmax(dropout = EXPR): a probability known when the kernel is built
/// (a number or a param, after -D), in [0, 1); 0 keeps every pair.
bool SemaImpl::checkDropout() {
  const Expr &e = *blk->softmaxDropout;
  const Expr *d = &e;
  bool negated = false;
  for (; d->kind == Expr::Kind::Unary && d->unaryOp == ast::UnaryOp::Neg;
       d = d->operands[0].get())
    negated = !negated;
  std::optional<double> p;
  if (d->kind == Expr::Kind::FloatLit)
    p = d->floatValue;
  else if (d->kind == Expr::Kind::IntLit)
    p = double(d->intValue);
  else if (const ast::ParamDecl *param =
               d->kind == Expr::Kind::Param ? findParam(d->name) : nullptr;
           param && param->hasValue && param->type != Type::Bool)
    p = param->type == Type::Float ? param->floatValue
                                   : double(param->intValue);
  if (!p)
    return fail(e.loc, "the dropout probability must be a number or a "
                       "param with a value (it is fixed when the kernel "
                       "is built)");
  if (negated)
    p = -*p;
  if (!(*p >= 0 && *p < 1)) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", *p);
    return fail(e.loc, Twine("the dropout probability must be in [0, 1), "
                             "but it is ") + text);
  }
  blk->dropout = *p;
  return true;
}

/// Each let in source order: its type, and whether it reads score (then
/// only the score clause, or a let that is itself used there, may use it).
/// A named mask must be bool.
bool SemaImpl::checkLets() {
  for (auto [i, l] : llvm::enumerate(blk->lets)) {
    checkingLet = int(i);
    inLet = true;
    readsScore = false;
    bool ok = checkExpr(l.expr);
    inLet = false;
    if (!ok)
      return false;
    l.readsScore = readsScore;
    if (l.isMask && l.expr->type != Type::Bool)
      return fail(l.loc, "mask '" + l.name + "' must be bool, got " +
                             ast::typeName(l.expr->type));
  }
  return true;
}

/// A use of lets[index]: after its definition (a let cannot use itself or
/// a later one), and where score is available if it reads score.
bool SemaImpl::checkLetUse(Expr &e, int index) {
  const ast::LetDecl &l = blk->lets[size_t(index)];
  if (inLet && index == checkingLet)
    return fail(e.loc, "'" + e.name + "' is used in its own definition");
  if (!before(l.loc, e.loc) || (inLet && index > checkingLet)) {
    return fail(e.loc, "'" + e.name + "' is used before its definition (at " +
                           where(l.loc) + ")");
  }
  if (l.readsScore) {
    readsScore = true;
    if (!inScore && !inLet)
      return fail(e.loc, (l.isMask ? "mask '" : "let '") + e.name +
                             "' reads 'score', which only the score clause has");
  }
  e.kind = Expr::Kind::Let;
  e.letIndex = index;
  e.type = l.expr->type;
  return true;
}

void SemaImpl::fillDefaults() {
  ast::AttentionDecl &a = *blk;
  // float(SIZE) wrapped in the call `fn`: sqrt(float(D)), log(float(LK)).
  auto callOfSize = [&](ast::Builtin fn, ast::SizeVar size) {
    auto dim = makeNode(Expr::Kind::Size, Type::Int);
    dim->sizeVar = size;
    auto cast = makeNode(Expr::Kind::Cast, Type::Float);
    cast->operands.push_back(std::move(dim));
    auto call = makeNode(Expr::Kind::Call, Type::Float);
    call->builtin = fn;
    call->name = ast::builtinName(fn);
    call->operands.push_back(std::move(cast));
    return call;
  };
  if (!a.scale) { // 1 / sqrt(float(D))
    auto one = makeNode(Expr::Kind::FloatLit, Type::Float);
    one->floatValue = 1.0;
    a.scale = makeNode(Expr::Kind::Binary, Type::Float);
    a.scale->binaryOp = ast::BinaryOp::Div;
    a.scale->operands.push_back(std::move(one));
    a.scale->operands.push_back(callOfSize(ast::Builtin::Sqrt, ast::SizeVar::D));
  }
  if (!a.score)
    a.score = makeNode(Expr::Kind::Score, Type::Float);
  if (!a.mask) {
    a.mask = makeNode(Expr::Kind::BoolLit, Type::Bool);
    a.mask->boolValue = true;
  }
  if (a.normalize == ast::NormalizeKind::Sigmoid && !a.sigmoidBias) {
    // -(log(float(LK)))
    a.sigmoidBias = makeNode(Expr::Kind::Unary, Type::Float);
    a.sigmoidBias->unaryOp = ast::UnaryOp::Neg;
    a.sigmoidBias->operands.push_back(
        callOfSize(ast::Builtin::Log, ast::SizeVar::LK));
  }
}

bool attnc::checkModule(ast::Module &module, const FrontendOptions &options,
                        llvm::SourceMgr &sm, unsigned bufferId,
                        llvm::raw_ostream &errs) {
  SemaImpl sema(sm, bufferId, errs);
  return sema.run(module, options);
}
