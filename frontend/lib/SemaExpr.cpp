//===- SemaExpr.cpp - Type checking of .attn expressions ------------------===//
//
// SemaImpl's expression half (SemaImpl.h): names, reads, operators, calls,
// with the int->float promotions and the constant checks (a zero divisor, a
// shift count outside [0, 63]).
//
//===----------------------------------------------------------------------===//
#include "SemaImpl.h"

using namespace attnc;
using namespace attnc::sema;

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
  case Expr::Kind::Let:
    return true; // checked already (a let node is only made by Sema)
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
    readsScore = true;
    if (!inScore && !inLet)
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
  if (int let = findLet(e.name); let >= 0)
    return checkLetUse(e, let);
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

/// The value of an int literal, possibly negated, or of an int param that
/// has one; nullopt for anything else.
std::optional<int64_t> SemaImpl::constantInt(const Expr &e) {
  bool negated = false;
  const Expr *d = &e;
  while (d->kind == Expr::Kind::Unary && d->unaryOp == ast::UnaryOp::Neg) {
    negated = !negated;
    d = d->operands[0].get();
  }
  int64_t v;
  if (d->kind == Expr::Kind::IntLit)
    v = int64_t(d->intValue);
  else if (const ast::ParamDecl *p =
               d->kind == Expr::Kind::Param ? findParam(d->name) : nullptr;
           p && p->type == Type::Int && p->hasValue)
    v = p->intValue;
  else
    return std::nullopt;
  if (negated && v == INT64_MIN)
    return std::nullopt;
  return negated ? -v : v;
}

/// & | ^ << >>: ints only (C's precedence puts `a & b == c` as `a & (b ==
/// c)`, hence the hint), and a constant shift count must be in [0, 63];
/// another count is checked when the kernel runs.
bool SemaImpl::checkBitwise(Expr &e, const std::string &op, Type l, Type r) {
  if (l != Type::Int || r != Type::Int) {
    std::string msg = op + " needs int operands, got " +
                      ast::typeName(l != Type::Int ? l : r);
    if (l == Type::Bool || r == Type::Bool)
      msg += " (it binds more loosely than comparisons, as in C: add "
             "parentheses, or use '&&' / '||' on bools)";
    return fail(e.loc, msg);
  }
  e.type = Type::Int;
  if (e.binaryOp != ast::BinaryOp::Shl && e.binaryOp != ast::BinaryOp::Shr)
    return true;
  std::optional<int64_t> count = constantInt(*e.operands[1]);
  if (count && (*count < 0 || *count > 63))
    return fail(e.operands[1]->loc, op + ": the shift count " +
                                        Twine(*count) +
                                        " is outside [0, 63]");
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
  case BO::BitAnd:
  case BO::BitOr:
  case BO::BitXor:
  case BO::Shl:
  case BO::Shr:
    return checkBitwise(e, op, l, r);
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
  case ast::Builtin::Sign:
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
