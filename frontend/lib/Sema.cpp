//===- Sema.cpp - Name resolution and type checking of .attn specs --------===//
//
// Resolves every identifier of a parsed module (index, size, `score`, param,
// input), types every expression, inserts explicit int->float Cast nodes,
// rejects ill-typed clauses and constant zero divisors, applies -D overrides
// and --name, and fills absent clauses with their default trees.
//
//===----------------------------------------------------------------------===//
#include "attnc/Frontend/Sema.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cerrno>
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
  return lookupEnum<ast::Builtin>(name, 16, ast::builtinName);
}

bool attnc::isKeyword(StringRef name) {
  static const char *const keywords[] = {
      "attention", "param", "input", "scale",   "score", "mask",
      "normalize", "softmax", "sigmoid", "bias", "int",   "float",
      "bool",      "true",  "false"};
  return llvm::is_contained(keywords, name);
}

static unsigned builtinArity(ast::Builtin f) {
  using F = ast::Builtin;
  return f == F::Clamp ? 3 : f == F::Min || f == F::Max || f == F::Pow ? 2 : 1;
}

static bool isNumeric(Type t) { return t == Type::Int || t == Type::Float; }

static bool before(ast::Loc a, ast::Loc b) {
  return a.line < b.line || (a.line == b.line && a.col < b.col);
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

//===----------------------------------------------------------------------===//
// The checker
//===----------------------------------------------------------------------===//

namespace {

class SemaImpl {
public:
  SemaImpl(llvm::SourceMgr &sm, unsigned bufferId, llvm::raw_ostream &errs)
      : sm(sm), bufferId(bufferId), errs(errs) {}

  bool run(ast::Module &m, const FrontendOptions &options);

private:
  bool fail(ast::Loc loc, const Twine &msg) {
    llvm::SMLoc l = sm.FindLocForLineAndColumn(bufferId, loc.line, loc.col);
    sm.PrintMessage(errs, l, llvm::SourceMgr::DK_Error, msg);
    return false;
  }
  bool failNoLoc(const Twine &msg, StringRef prefix = "") {
    llvm::WithColor::error(errs, prefix) << msg << "\n";
    return false;
  }

  bool applyDefines(ast::Module &m, const FrontendOptions &options);
  bool checkBlock(ast::AttentionDecl &a);
  bool checkDeclNames();
  bool checkInputDims();
  bool checkClause(ExprPtr &slot, ast::Loc loc, StringRef what, bool isMask);
  void fillDefaults();

  bool checkExpr(ExprPtr &slot);
  bool checkName(Expr &e);
  bool checkRead(Expr &e);
  bool checkUnary(Expr &e);
  bool checkBinary(Expr &e);
  bool checkSelect(Expr &e);
  bool checkCall(ExprPtr &slot);

  ast::ParamDecl *findParam(StringRef name) {
    for (ast::ParamDecl &p : blk->params)
      if (p.name == name)
        return &p;
    return nullptr;
  }
  ast::InputDecl *findInput(StringRef name) {
    for (ast::InputDecl &in : blk->inputs)
      if (in.name == name)
        return &in;
    return nullptr;
  }
  bool isValueName(StringRef name) {
    return lookupIndexVar(name) || lookupSizeVar(name) || name == "score" ||
           findParam(name) || findInput(name);
  }
  bool requireValue(const ast::ParamDecl &p) {
    if (p.hasValue)
      return true;
    return fail(p.loc, "param '" + p.name +
                           "' has no value; give it a default or pass -D " +
                           p.name + "=VALUE");
  }
  ExprPtr makeNode(Expr::Kind kind, Type type) {
    auto e = std::make_unique<Expr>(kind, blk->loc);
    e->type = type;
    return e;
  }

  llvm::SourceMgr &sm;
  unsigned bufferId;
  llvm::raw_ostream &errs;
  ast::AttentionDecl *blk = nullptr;
  bool inScore = false;
};

/// Wraps an int expression in a Cast to float; leaves others alone.
void promote(ExprPtr &slot) {
  if (slot->type != Type::Int)
    return;
  auto cast = std::make_unique<Expr>(Expr::Kind::Cast, slot->loc);
  cast->type = Type::Float;
  cast->operands.push_back(std::move(slot));
  slot = std::move(cast);
}

} // namespace

bool SemaImpl::run(ast::Module &m, const FrontendOptions &options) {
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
  if (!checkDeclNames() || !checkInputDims())
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
  fillDefaults();
  return true;
}

bool SemaImpl::checkDeclNames() {
  struct DeclRef {
    ast::Loc loc;
    const std::string *name;
    bool isParam;
  };
  std::vector<DeclRef> decls;
  for (const ast::ParamDecl &p : blk->params)
    decls.push_back({p.loc, &p.name, true});
  for (const ast::InputDecl &in : blk->inputs)
    decls.push_back({in.loc, &in.name, false});
  std::stable_sort(decls.begin(), decls.end(),
                   [](const DeclRef &x, const DeclRef &y) {
                     return before(x.loc, y.loc);
                   });
  llvm::StringMap<bool> seen; // name -> declared as a param
  for (const DeclRef &d : decls) {
    const std::string &n = *d.name;
    const char *kind = d.isParam ? "param" : "input";
    const char *reserved = lookupIndexVar(n) || lookupSizeVar(n)
                               ? "a built-in name"
                           : lookupBuiltin(n) ? "a function name"
                           : isKeyword(n)     ? "a keyword"
                                              : nullptr;
    if (reserved)
      return fail(d.loc, "'" + n + "' is " + reserved + " and cannot name " +
                             (d.isParam ? "a param" : "an input"));
    auto [it, inserted] = seen.insert({n, d.isParam});
    if (!inserted) {
      if (it->second == d.isParam)
        return fail(d.loc, Twine("duplicate ") + kind + " '" + n + "'");
      return fail(d.loc, "'" + n + "' is already declared as " +
                             (it->second ? "a param" : "an input"));
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

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

bool SemaImpl::checkExpr(ExprPtr &slot) {
  Expr &e = *slot;
  switch (e.kind) {
  case Expr::Kind::IntLit:
  case Expr::Kind::Index:
  case Expr::Kind::Size:
    e.type = Type::Int;
    return true;
  case Expr::Kind::FloatLit:
  case Expr::Kind::Score:
    e.type = Type::Float;
    return true;
  case Expr::Kind::BoolLit:
    e.type = Type::Bool;
    return true;
  case Expr::Kind::Param:
    return checkName(e);
  case Expr::Kind::Read:
    return checkRead(e);
  case Expr::Kind::Unary:
    return checkUnary(e);
  case Expr::Kind::Binary:
    return checkBinary(e);
  case Expr::Kind::Select:
    return checkSelect(e);
  case Expr::Kind::Call:
    return checkCall(slot);
  case Expr::Kind::Cast:
    return !e.operands.empty() && checkExpr(e.operands[0]);
  }
  return fail(e.loc, "internal error: unknown expression kind");
}

bool SemaImpl::checkName(Expr &e) {
  if (auto v = lookupIndexVar(e.name)) {
    e.kind = Expr::Kind::Index;
    e.indexVar = *v;
    e.type = Type::Int;
    e.name.clear();
    return true;
  }
  if (auto v = lookupSizeVar(e.name)) {
    e.kind = Expr::Kind::Size;
    e.sizeVar = *v;
    e.type = Type::Int;
    e.name.clear();
    return true;
  }
  if (e.name == "score") {
    if (!inScore)
      return fail(e.loc, "'score' can only be used in the score clause");
    e.kind = Expr::Kind::Score;
    e.type = Type::Float;
    e.name.clear();
    return true;
  }
  if (ast::ParamDecl *p = findParam(e.name)) {
    if (!requireValue(*p))
      return false;
    e.type = p->type;
    return true;
  }
  if (findInput(e.name))
    return fail(e.loc, "input '" + e.name + "' must be indexed");
  if (lookupBuiltin(e.name))
    return fail(e.loc, "function '" + e.name + "' must be called");
  return fail(e.loc, "unknown name '" + e.name + "'");
}

bool SemaImpl::checkRead(Expr &e) {
  ast::InputDecl *in = findInput(e.name);
  if (!in) {
    if (isValueName(e.name) || lookupBuiltin(e.name))
      return fail(e.loc, "'" + e.name +
                             "' is not an input; only inputs can be indexed");
    return fail(e.loc, "unknown name '" + e.name + "'");
  }
  size_t rank = in->dims.size(), n = e.operands.size();
  if (rank != n)
    return fail(e.loc, "input '" + e.name + "' has rank " + Twine(rank) +
                           " but is indexed with " + Twine(n) +
                           (n == 1 ? " index" : " indices"));
  for (size_t i = 0; i < n; ++i) {
    if (!checkExpr(e.operands[i]))
      return false;
    if (e.operands[i]->type != Type::Int)
      return fail(e.operands[i]->loc,
                  "index " + Twine(i + 1) + " of '" + e.name +
                      "' must be int, got " +
                      ast::typeName(e.operands[i]->type));
  }
  e.type = in->elementType;
  return true;
}

bool SemaImpl::checkUnary(Expr &e) {
  if (!checkExpr(e.operands[0]))
    return false;
  Type t = e.operands[0]->type;
  if (e.unaryOp == ast::UnaryOp::Neg) {
    if (!isNumeric(t))
      return fail(e.loc, "operator '-' cannot take bool");
    e.type = t;
    return true;
  }
  if (t != Type::Bool)
    return fail(e.loc, Twine("operator '!' needs a bool operand, got ") +
                           ast::typeName(t));
  e.type = Type::Bool;
  return true;
}

bool SemaImpl::checkBinary(Expr &e) {
  if (!checkExpr(e.operands[0]) || !checkExpr(e.operands[1]))
    return false;
  using BO = ast::BinaryOp;
  Type l = e.operands[0]->type, r = e.operands[1]->type;
  std::string op = std::string("operator '") +
                   ast::binaryOpSpelling(e.binaryOp) + "'";
  switch (e.binaryOp) {
  case BO::And:
  case BO::Or:
    if (l != Type::Bool || r != Type::Bool)
      return fail(e.loc, op + " needs bool operands, got " +
                             ast::typeName(l != Type::Bool ? l : r));
    e.type = Type::Bool;
    return true;
  case BO::Eq:
  case BO::Ne:
    if (l == Type::Bool && r == Type::Bool) {
      e.type = Type::Bool;
      return true;
    }
    if (l == Type::Bool || r == Type::Bool)
      return fail(e.loc, op + " cannot compare " + ast::typeName(l) +
                             " with " + ast::typeName(r));
    break;
  case BO::Lt:
  case BO::Le:
  case BO::Gt:
  case BO::Ge:
  case BO::Add:
  case BO::Sub:
  case BO::Mul:
  case BO::Div:
  case BO::Mod:
    if (l == Type::Bool || r == Type::Bool)
      return fail(e.loc, op + " cannot take bool");
    break;
  }
  if (e.binaryOp == BO::Mod && (l == Type::Float || r == Type::Float))
    return fail(e.loc, "operator '%' needs int operands, got float");
  if (l != r) {
    promote(e.operands[0]);
    promote(e.operands[1]);
  }
  bool isInt = l == Type::Int && r == Type::Int;
  switch (e.binaryOp) {
  case BO::Add:
  case BO::Sub:
  case BO::Mul:
  case BO::Div:
  case BO::Mod:
    e.type = isInt ? Type::Int : Type::Float;
    break;
  default:
    e.type = Type::Bool;
    return true;
  }
  if (!isInt || (e.binaryOp != BO::Div && e.binaryOp != BO::Mod))
    return true;
  // A constant zero divisor: a literal 0 (possibly negated) or a param of
  // value 0.
  const Expr *d = e.operands[1].get();
  while (d->kind == Expr::Kind::Unary && d->unaryOp == ast::UnaryOp::Neg)
    d = d->operands[0].get();
  const char *what = e.binaryOp == BO::Div ? "division by zero"
                                           : "modulo by zero";
  if (d->kind == Expr::Kind::IntLit && d->intValue == 0)
    return fail(e.loc, what);
  if (d->kind == Expr::Kind::Param) {
    const ast::ParamDecl *p = findParam(d->name);
    if (p && p->type == Type::Int && p->hasValue && p->intValue == 0)
      return fail(e.loc, Twine(what) + " (param '" + p->name + "' is 0)");
  }
  return true;
}

bool SemaImpl::checkSelect(Expr &e) {
  for (ExprPtr &o : e.operands)
    if (!checkExpr(o))
      return false;
  Type c = e.operands[0]->type, t = e.operands[1]->type,
       f = e.operands[2]->type;
  if (c != Type::Bool)
    return fail(e.operands[0]->loc,
                Twine("the condition of '?:' must be bool, got ") +
                    ast::typeName(c));
  if (t == Type::Bool && f == Type::Bool) {
    e.type = Type::Bool;
    return true;
  }
  if (t == Type::Bool || f == Type::Bool)
    return fail(e.loc, Twine("the branches of '?:' must have the same type, "
                             "got ") +
                           ast::typeName(t) + " and " + ast::typeName(f));
  if (t != f) {
    promote(e.operands[1]);
    promote(e.operands[2]);
  }
  e.type = t == Type::Int && f == Type::Int ? Type::Int : Type::Float;
  return true;
}

bool SemaImpl::checkCall(ExprPtr &slot) {
  Expr &e = *slot;
  std::optional<ast::Builtin> fn = lookupBuiltin(e.name);
  if (!fn) {
    if (isValueName(e.name))
      return fail(e.loc, "'" + e.name + "' is not a function");
    return fail(e.loc, "unknown function '" + e.name + "'");
  }
  unsigned arity = builtinArity(*fn);
  size_t n = e.operands.size();
  if (n != arity)
    return fail(e.loc, "'" + e.name + "' expects " + Twine(arity) +
                           (arity == 1 ? " argument" : " arguments") +
                           ", got " + Twine(n));
  for (ExprPtr &o : e.operands)
    if (!checkExpr(o))
      return false;

  if (*fn == ast::Builtin::ToFloat || *fn == ast::Builtin::ToInt) {
    Type target = *fn == ast::Builtin::ToFloat ? Type::Float : Type::Int;
    ast::Loc loc = e.loc;
    ExprPtr arg = std::move(e.operands[0]);
    if (arg->type == target) { // identity conversion: no node
      slot = std::move(arg);
      return true;
    }
    auto cast = std::make_unique<Expr>(Expr::Kind::Cast, loc);
    cast->type = target;
    cast->operands.push_back(std::move(arg));
    slot = std::move(cast); // destroys the Call node `e`
    return true;
  }

  for (size_t i = 0; i < n; ++i)
    if (e.operands[i]->type == Type::Bool)
      return fail(e.operands[i]->loc, "argument " + Twine(i + 1) + " of '" +
                                          e.name +
                                          "' must be a number, got bool");
  e.builtin = *fn;
  bool allInt = llvm::all_of(
      e.operands, [](const ExprPtr &o) { return o->type == Type::Int; });
  switch (*fn) {
  case ast::Builtin::Abs:
    e.type = e.operands[0]->type;
    return true;
  case ast::Builtin::Min:
  case ast::Builtin::Max:
  case ast::Builtin::Clamp:
    if (allInt) {
      e.type = Type::Int;
      return true;
    }
    break;
  default:
    break;
  }
  for (ExprPtr &o : e.operands)
    promote(o);
  e.type = Type::Float;
  return true;
}

bool attnc::checkModule(ast::Module &module, const FrontendOptions &options,
                        llvm::SourceMgr &sm, unsigned bufferId,
                        llvm::raw_ostream &errs) {
  SemaImpl sema(sm, bufferId, errs);
  return sema.run(module, options);
}
