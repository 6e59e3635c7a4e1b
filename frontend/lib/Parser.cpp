//===- Parser.cpp - Recursive-descent parser for .attn specs --------------===//
//
// Grammar (clauses in any order, each at most once, params/inputs repeated):
//   file      := ('import' STRING)* (shared | block)*    (at least one block,
//                                    unless the file is imported)
//   shared    := a param, input, let or 'mask' NAME clause outside a block
//   block     := 'attention' NAME '{' clause* '}'
//   clause    := 'param' NAME ':' TYPE ('=' '-'? LITERAL)?
//              | 'input' NAME ':' TYPE '[' DIM (',' DIM)* ']'
//              | ('let' | 'mask') NAME '=' expr       (a named value / mask)
//              | ('scale' | 'score' | 'mask') '=' expr
//              | 'normalize' '=' ('softmax' ('(' sarg (',' sarg)* ')')?
//                                | 'sigmoid' ('(' 'bias' '=' expr ')')?)
//   sarg      := ('sink' | 'dropout') '=' expr    (each at most once)
//   expr      := or ('?' expr ':' expr)?          (right associative)
//   binary levels, low to high (C's): || , && , | , ^ , & , == != ,
//                                      < <= > >= , << >> , + - , * / %
//   unary     := ('-' | '!') unary | postfix
//   postfix   := NAME '(' args ')' | NAME '[' args ']' | primary
// Stops at the first error. Recursion and tree height are bounded.
//
//===----------------------------------------------------------------------===//
#include "attnc/Frontend/Parser.h"
#include "attnc/Frontend/Lexer.h"

#include "llvm/ADT/Twine.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstdint>

using namespace attnc;
using llvm::StringRef;
using llvm::Twine;

namespace {

using ast::Expr;
using ast::ExprPtr;

/// An expression under construction with its tree height.
struct PExpr {
  ExprPtr e;
  unsigned height = 0;
  explicit operator bool() const { return e != nullptr; }
};

const char *article(ast::Type t) {
  return t == ast::Type::Int ? "an" : "a";
}

bool isClauseKeyword(StringRef s) {
  return s == "param" || s == "input" || s == "let" || s == "scale" ||
         s == "score" || s == "mask" || s == "normalize";
}

class ParserImpl {
public:
  ParserImpl(llvm::SourceMgr &sm, unsigned bufferId, unsigned file,
             llvm::raw_ostream &errs)
      : sm(sm), errs(errs),
        lexer(sm.getMemoryBuffer(bufferId)->getBuffer(), file),
        fileName(sm.getMemoryBuffer(bufferId)->getBufferIdentifier().str()),
        bufferId(bufferId), file(file) {}

  std::optional<ast::Module> parseFile();

private:
  // --- Diagnostics ---------------------------------------------------------
  bool fail(llvm::SMLoc loc, const Twine &msg) {
    if (!failed)
      sm.PrintMessage(errs, loc, llvm::SourceMgr::DK_Error, msg);
    failed = true;
    return false;
  }
  /// Error at the current token; a lexer error token reports its own message.
  bool failAtTok(const Twine &msg) {
    if (tok.is(TokKind::Error))
      return fail(tok.loc, tok.message);
    return fail(tok.loc, msg);
  }
  std::string describe(const Token &t) const {
    switch (t.kind) {
    case TokKind::Ident:
      if (isClauseKeyword(t.text) || t.text == "attention")
        return ("keyword '" + t.text + "'").str();
      [[fallthrough]];
    case TokKind::Int:
    case TokKind::Float:
    case TokKind::Error:
      return ("'" + t.text + "'").str();
    default:
      return tokKindSpelling(t.kind);
    }
  }
  bool expected(const Twine &what) {
    return failAtTok("expected " + what + ", got " + describe(tok));
  }

  void advance() { tok = lexer.next(); }

  // --- Clauses -------------------------------------------------------------
  bool parseAttention(ast::Module &m);
  bool parseImport(ast::Module &m, bool declSeen);
  bool parseSharedDecl(ast::Module &m);
  bool parseParam(ast::AttentionDecl &decl);
  bool parseInput(ast::AttentionDecl &decl);
  bool parseType(ast::Type &type, const Twine &context);
  bool parseLet(ast::AttentionDecl &decl, const Token &keyword, bool isMask);
  bool parseMaskClause(ast::AttentionDecl &decl, const Token &keyword);
  bool parseExprClause(StringRef keyword, ExprPtr &slot,
                       std::optional<ast::Loc> &clauseLoc,
                       const std::string &blockName);
  bool parseNormalize(ast::AttentionDecl &decl);

  // --- Expressions ---------------------------------------------------------
  PExpr parseExpr();
  PExpr parseBinary(int level);
  PExpr parseUnary();
  PExpr parsePostfix();
  PExpr parsePrimary();
  bool parseArgs(TokKind close, StringRef calleeName, bool isCall, Expr &node,
                 unsigned &height);
  bool checkHeight(unsigned height, llvm::SMLoc loc) {
    if (height > kMaxExprDepth)
      return fail(loc, "expression is nested too deeply");
    return true;
  }

  struct DepthGuard {
    unsigned &d;
    explicit DepthGuard(unsigned &d) : d(d) { ++d; }
    ~DepthGuard() { --d; }
  };

  llvm::SourceMgr &sm;
  llvm::raw_ostream &errs;
  Lexer lexer;
  std::string fileName;
  unsigned bufferId, file;
  Token tok;
  bool failed = false;
  unsigned depth = 0;
};

} // namespace

std::optional<ast::Module> ParserImpl::parseFile() {
  ast::Module m;
  m.fileName = fileName;
  if (file == 0)
    m.files.push_back({fileName, bufferId, 0});
  advance();
  bool declSeen = false; // an import after this is out of place
  while (!tok.is(TokKind::Eof)) {
    bool ok;
    if (tok.isIdent("attention")) {
      ok = parseAttention(m);
      declSeen = true;
    } else if (tok.isIdent("import")) {
      ok = parseImport(m, declSeen);
    } else if (tok.isIdent("param") || tok.isIdent("input") ||
               tok.isIdent("let") || tok.isIdent("mask")) {
      ok = parseSharedDecl(m);
      declSeen = true;
    } else if (tok.is(TokKind::Ident) && isClauseKeyword(tok.text)) {
      ok = failAtTok("'" + tok.text +
                     "' belongs inside an attention block; only param, "
                     "input, let and named masks may be shared by a file");
    } else {
      ok = expected("'attention', 'import' or a shared declaration");
    }
    if (!ok)
      return std::nullopt;
  }
  // An imported file may hold only shared declarations, or nothing.
  if (file == 0 && m.attentions.empty() && !failed)
    fail(tok.loc, m.shared.params.empty() && m.shared.inputs.empty() &&
                          m.shared.lets.empty()
                      ? "no attention block in the file"
                      : "no attention block in the file (a file of shared "
                        "declarations is used through 'import')");
  if (failed)
    return std::nullopt;
  return m;
}

/// 'import' STRING, before the file's declarations and blocks.
bool ParserImpl::parseImport(ast::Module &m, bool declSeen) {
  if (declSeen)
    return failAtTok("'import' must come before the file's declarations and "
                     "attention blocks");
  advance();
  if (!tok.is(TokKind::String))
    return expected("a quoted file name after 'import'");
  StringRef path = tok.text.drop_front().drop_back();
  if (path.empty())
    return failAtTok("the file name after 'import' is empty");
  m.imports.push_back({path.str(), tok.pos});
  advance();
  return true;
}

/// A param, input, let or named mask outside a block, shared by the file's
/// blocks and by the files that import this one.
bool ParserImpl::parseSharedDecl(ast::Module &m) {
  ast::AttentionDecl &shared = m.shared;
  if (tok.isIdent("param"))
    return parseParam(shared);
  if (tok.isIdent("input"))
    return parseInput(shared);
  Token keyword = tok;
  advance();
  if (keyword.text == "mask" && !tok.is(TokKind::Ident))
    return fail(keyword.loc, "a mask outside an attention block needs a name "
                             "('mask NAME = EXPR'); the 'mask = EXPR' clause "
                             "belongs inside a block");
  return parseLet(shared, keyword, keyword.text == "mask");
}

bool ParserImpl::parseAttention(ast::Module &m) {
  advance(); // 'attention'
  if (!tok.is(TokKind::Ident))
    return expected("a name after 'attention'");
  ast::AttentionDecl decl;
  decl.name = tok.text.str();
  decl.loc = tok.pos;
  decl.normalizeLoc = tok.pos;
  advance();
  if (!tok.is(TokKind::LBrace))
    return expected("'{' after 'attention " + decl.name + "'");
  advance();

  bool normalizeSeen = false;
  std::string after; // what the last clause was, for "expected a clause"
  while (!tok.is(TokKind::RBrace)) {
    if (tok.is(TokKind::Eof))
      return failAtTok("expected '}' to close attention '" + decl.name +
                       "', got end of file");
    if (!tok.is(TokKind::Ident) || !isClauseKeyword(tok.text)) {
      if (after.empty())
        return expected("a clause (param, input, let, scale, score, mask, "
                        "normalize) or '}'");
      return expected("a clause or '}' after " + after);
    }
    StringRef kw = tok.text;
    bool ok;
    if (kw == "param") {
      ok = parseParam(decl);
      after = "param '" + decl.params.back().name + "'";
    } else if (kw == "input") {
      ok = parseInput(decl);
      after = "input '" + decl.inputs.back().name + "'";
    } else if (kw == "scale") {
      ok = parseExprClause(kw, decl.scale, decl.scaleLoc, decl.name);
      after = "the expression";
    } else if (kw == "score") {
      ok = parseExprClause(kw, decl.score, decl.scoreLoc, decl.name);
      after = "the expression";
    } else if (kw == "let") {
      Token let = tok;
      advance();
      ok = parseLet(decl, let, false);
      after = ok ? "let '" + decl.lets.back().name + "'" : "";
    } else if (kw == "mask") {
      Token mask = tok;
      advance();
      if (tok.is(TokKind::Ident)) { // mask NAME = EXPR
        ok = parseLet(decl, mask, true);
        after = ok ? "mask '" + decl.lets.back().name + "'" : "";
      } else {
        ok = parseMaskClause(decl, mask);
        after = "the expression";
      }
    } else {
      if (normalizeSeen)
        return failAtTok("duplicate 'normalize' clause in attention '" +
                         decl.name + "'");
      normalizeSeen = true;
      ok = parseNormalize(decl);
      after = "the normalization";
    }
    if (!ok)
      return false;
  }
  advance(); // '}'
  m.attentions.push_back(std::move(decl));
  return true;
}

bool ParserImpl::parseType(ast::Type &type, const Twine &context) {
  if (!tok.is(TokKind::Ident))
    return expected("a type (int, float or bool) " + context);
  if (tok.text == "int")
    type = ast::Type::Int;
  else if (tok.text == "float")
    type = ast::Type::Float;
  else if (tok.text == "bool")
    type = ast::Type::Bool;
  else
    return failAtTok("unknown type '" + tok.text +
                     "'; expected int, float or bool");
  advance();
  return true;
}

bool ParserImpl::parseParam(ast::AttentionDecl &decl) {
  advance(); // 'param'
  ast::ParamDecl p;
  if (!tok.is(TokKind::Ident)) {
    decl.params.push_back(p);
    return expected("a param name after 'param'");
  }
  p.name = tok.text.str();
  p.loc = tok.pos;
  decl.params.push_back(p);
  ast::ParamDecl &param = decl.params.back();
  advance();
  if (!tok.is(TokKind::Colon))
    return expected("':' after param '" + param.name + "'");
  advance();
  if (!parseType(param.type, "for param '" + param.name + "'"))
    return false;
  if (!tok.is(TokKind::Assign))
    return true;
  advance();

  bool negative = false;
  if (tok.is(TokKind::Minus)) {
    negative = true;
    advance();
  }
  const char *typeName = ast::typeName(param.type);
  auto mismatch = [&](ast::Type got) {
    return failAtTok("param '" + param.name + "' is " + typeName +
                     " but its default is " + article(got) + " " +
                     ast::typeName(got));
  };
  if (tok.is(TokKind::Int)) {
    const uint64_t limit = uint64_t(1) << 63;
    if (param.type == ast::Type::Bool)
      return mismatch(ast::Type::Int);
    if (tok.intValue == limit && !negative)
      return failAtTok("integer literal is too large");
    if (param.type == ast::Type::Int) {
      if (tok.intValue == limit)
        param.intValue = INT64_MIN;
      else
        param.intValue = negative ? -static_cast<int64_t>(tok.intValue)
                                  : static_cast<int64_t>(tok.intValue);
    } else {
      double v = static_cast<double>(tok.intValue);
      param.floatValue = negative ? -v : v;
    }
  } else if (tok.is(TokKind::Float)) {
    if (param.type != ast::Type::Float)
      return mismatch(ast::Type::Float);
    param.floatValue = negative ? -tok.floatValue : tok.floatValue;
  } else if (!negative && (tok.isIdent("true") || tok.isIdent("false"))) {
    if (param.type != ast::Type::Bool)
      return mismatch(ast::Type::Bool);
    param.boolValue = tok.text == "true";
  } else if (negative) {
    return expected("a number after '-' in the default of param '" +
                    param.name + "'");
  } else {
    return expected("a literal (number, true or false) as the default of "
                    "param '" +
                    param.name + "'");
  }
  param.hasValue = true;
  advance();
  return true;
}

bool ParserImpl::parseInput(ast::AttentionDecl &decl) {
  advance(); // 'input'
  ast::InputDecl in;
  if (!tok.is(TokKind::Ident)) {
    decl.inputs.push_back(in);
    return expected("an input name after 'input'");
  }
  in.name = tok.text.str();
  in.loc = tok.pos;
  decl.inputs.push_back(in);
  ast::InputDecl &input = decl.inputs.back();
  advance();
  if (!tok.is(TokKind::Colon))
    return expected("':' after input '" + input.name + "'");
  advance();
  if (!parseType(input.elementType, "for input '" + input.name + "'"))
    return false;
  if (!tok.is(TokKind::LBracket))
    return expected("'[' after the element type of input '" + input.name +
                    "'");
  advance();
  if (tok.is(TokKind::RBracket))
    return failAtTok("input '" + input.name +
                     "' needs at least one dimension");
  while (true) {
    ast::InputDim dim;
    dim.loc = tok.pos;
    if (tok.is(TokKind::Ident)) {
      dim.symbol = tok.text.str();
    } else if (tok.is(TokKind::Int)) {
      if (tok.intValue > static_cast<uint64_t>(INT64_MAX))
        return failAtTok("integer literal is too large");
      dim.extent = static_cast<int64_t>(tok.intValue);
    } else {
      return expected("a dimension of input '" + input.name +
                      "' (a size name, an int param or a positive integer)");
    }
    input.dims.push_back(dim);
    advance();
    if (tok.is(TokKind::RBracket))
      break;
    if (!tok.is(TokKind::Comma))
      return expected("',' or ']' in the dimensions of input '" +
                      input.name + "'");
    advance();
  }
  advance(); // ']'
  return true;
}

bool ParserImpl::parseExprClause(StringRef keyword, ExprPtr &slot,
                                 std::optional<ast::Loc> &clauseLoc,
                                 const std::string &blockName) {
  if (clauseLoc)
    return failAtTok("duplicate '" + keyword + "' clause in attention '" +
                     blockName + "'");
  clauseLoc = tok.pos;
  std::string kw = keyword.str();
  advance();
  if (!tok.is(TokKind::Assign))
    return expected("'=' after '" + kw + "'");
  advance();
  PExpr e = parseExpr();
  if (!e)
    return false;
  slot = std::move(e.e);
  return true;
}

/// After `let` or `mask` (\p keyword): NAME '=' expr.
bool ParserImpl::parseLet(ast::AttentionDecl &decl, const Token &keyword,
                          bool isMask) {
  if (!tok.is(TokKind::Ident))
    return expected(Twine(isMask ? "a mask name" : "a name") + " after '" +
                    keyword.text + "'");
  if (isClauseKeyword(tok.text))
    return failAtTok("'" + tok.text + "' is a keyword and cannot name a " +
                     (isMask ? "mask" : "let"));
  ast::LetDecl let;
  let.name = tok.text.str();
  let.loc = tok.pos;
  let.isMask = isMask;
  Token name = tok;
  advance();
  // `mask q >= kv`: a missing '=' more likely than a mask named q.
  if (!tok.is(TokKind::Assign) && isMask)
    return fail(name.loc, "expected '=' after 'mask', got " + describe(name));
  if (!tok.is(TokKind::Assign))
    return expected("'=' after '" + keyword.text + " " + let.name + "'");
  advance();
  PExpr e = parseExpr();
  if (!e)
    return false;
  let.expr = std::move(e.e);
  decl.lets.push_back(std::move(let));
  return true;
}

/// After `mask` (\p keyword), when no name follows: '=' expr.
bool ParserImpl::parseMaskClause(ast::AttentionDecl &decl, const Token &keyword) {
  if (decl.maskLoc)
    return fail(keyword.loc, "duplicate 'mask' clause in attention '" +
                                 decl.name + "'");
  decl.maskLoc = keyword.pos;
  if (!tok.is(TokKind::Assign))
    return expected("'=' or a mask name after 'mask'");
  advance();
  PExpr e = parseExpr();
  if (!e)
    return false;
  decl.mask = std::move(e.e);
  return true;
}

bool ParserImpl::parseNormalize(ast::AttentionDecl &decl) {
  decl.normalizeLoc = tok.pos;
  advance(); // 'normalize'
  if (!tok.is(TokKind::Assign))
    return expected("'=' after 'normalize'");
  advance();
  if (!tok.is(TokKind::Ident))
    return expected("a normalization (softmax or sigmoid)");
  bool softmax = tok.text == "softmax";
  if (!softmax && tok.text != "sigmoid")
    return failAtTok("unknown normalization '" + tok.text +
                     "'; expected softmax or sigmoid");
  decl.normalize =
      softmax ? ast::NormalizeKind::Softmax : ast::NormalizeKind::Sigmoid;
  advance();
  if (!tok.is(TokKind::LParen))
    return true;
  // sigmoid(bias = EXPR), softmax(sink = EXPR, dropout = EXPR): any order.
  advance();
  const char *known = softmax ? "'sink = EXPR' or 'dropout = EXPR'" : "'bias = EXPR'";
  while (true) {
    if (!tok.is(TokKind::Ident))
      return expected(Twine(known) + " in '" + (softmax ? "softmax" : "sigmoid") + "(...)'");
    ExprPtr *slot = !softmax                 ? (tok.text == "bias" ? &decl.sigmoidBias : nullptr)
                    : tok.text == "sink"    ? &decl.softmaxSink
                    : tok.text == "dropout" ? &decl.softmaxDropout
                                            : nullptr;
    if (!slot)
      return failAtTok("unknown argument '" + tok.text + "' of " +
                       (softmax ? "softmax" : "sigmoid") + "; expected " + known);
    if (*slot)
      return failAtTok("'" + tok.text + "' is given twice");
    std::string arg = tok.text.str();
    advance();
    if (!tok.is(TokKind::Assign))
      return expected("'=' after '" + arg + "'");
    advance();
    PExpr e = parseExpr();
    if (!e)
      return false;
    *slot = std::move(e.e);
    if (tok.is(TokKind::RParen))
      break;
    if (!tok.is(TokKind::Comma))
      return expected("',' or ')' after the " + (arg == "bias" ? "sigmoid bias" : arg));
    advance();
  }
  advance();
  return true;
}

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

PExpr ParserImpl::parseExpr() {
  DepthGuard guard(depth);
  if (depth > kMaxExprDepth) {
    failAtTok("expression is nested too deeply");
    return {};
  }
  PExpr cond = parseBinary(0);
  if (!cond || !tok.is(TokKind::Question))
    return cond;
  Token q = tok;
  advance();
  PExpr thenE = parseExpr();
  if (!thenE)
    return {};
  if (!tok.is(TokKind::Colon)) {
    expected("':' in the conditional expression");
    return {};
  }
  advance();
  PExpr elseE = parseExpr();
  if (!elseE)
    return {};
  PExpr r;
  r.e = std::make_unique<Expr>(Expr::Kind::Select, q.pos);
  r.height = 1 + std::max({cond.height, thenE.height, elseE.height});
  r.e->operands.push_back(std::move(cond.e));
  r.e->operands.push_back(std::move(thenE.e));
  r.e->operands.push_back(std::move(elseE.e));
  if (!checkHeight(r.height, q.loc))
    return {};
  return r;
}

/// The highest binary precedence level: * / %.
constexpr int kMulLevel = 9;

/// The binary operator of `kind` at precedence `level` (0 = lowest), if any.
static std::optional<ast::BinaryOp> binaryOpAt(TokKind kind, int level) {
  using ast::BinaryOp;
  switch (level) {
  case 0:
    if (kind == TokKind::OrOr) return BinaryOp::Or;
    break;
  case 1:
    if (kind == TokKind::AndAnd) return BinaryOp::And;
    break;
  case 2:
    if (kind == TokKind::Pipe) return BinaryOp::BitOr;
    break;
  case 3:
    if (kind == TokKind::Caret) return BinaryOp::BitXor;
    break;
  case 4:
    if (kind == TokKind::Amp) return BinaryOp::BitAnd;
    break;
  case 5:
    if (kind == TokKind::EqEq) return BinaryOp::Eq;
    if (kind == TokKind::NotEq) return BinaryOp::Ne;
    break;
  case 6:
    if (kind == TokKind::Lt) return BinaryOp::Lt;
    if (kind == TokKind::Le) return BinaryOp::Le;
    if (kind == TokKind::Gt) return BinaryOp::Gt;
    if (kind == TokKind::Ge) return BinaryOp::Ge;
    break;
  case 7:
    if (kind == TokKind::Shl) return BinaryOp::Shl;
    if (kind == TokKind::Shr) return BinaryOp::Shr;
    break;
  case 8:
    if (kind == TokKind::Plus) return BinaryOp::Add;
    if (kind == TokKind::Minus) return BinaryOp::Sub;
    break;
  case 9:
    if (kind == TokKind::Star) return BinaryOp::Mul;
    if (kind == TokKind::Slash) return BinaryOp::Div;
    if (kind == TokKind::Percent) return BinaryOp::Mod;
    break;
  default:
    break;
  }
  return std::nullopt;
}

PExpr ParserImpl::parseBinary(int level) {
  if (level > kMulLevel)
    return parseUnary();
  PExpr lhs = parseBinary(level + 1);
  if (!lhs)
    return {};
  bool isComparison = level == 5 || level == 6;
  bool chained = false;
  while (auto op = binaryOpAt(tok.kind, level)) {
    if (isComparison && chained) {
      failAtTok("comparisons cannot be chained; combine them with '&&'");
      return {};
    }
    Token opTok = tok;
    advance();
    PExpr rhs = parseBinary(level + 1);
    if (!rhs)
      return {};
    PExpr r;
    r.e = std::make_unique<Expr>(Expr::Kind::Binary, opTok.pos);
    r.e->binaryOp = *op;
    r.height = 1 + std::max(lhs.height, rhs.height);
    r.e->operands.push_back(std::move(lhs.e));
    r.e->operands.push_back(std::move(rhs.e));
    if (!checkHeight(r.height, opTok.loc))
      return {};
    lhs = std::move(r);
    chained = true;
  }
  return lhs;
}

PExpr ParserImpl::parseUnary() {
  if (!tok.is(TokKind::Minus) && !tok.is(TokKind::Bang))
    return parsePostfix();
  DepthGuard guard(depth);
  if (depth > kMaxExprDepth) {
    failAtTok("expression is nested too deeply");
    return {};
  }
  Token opTok = tok;
  advance();
  PExpr operand = parseUnary();
  if (!operand)
    return {};
  PExpr r;
  r.e = std::make_unique<Expr>(Expr::Kind::Unary, opTok.pos);
  r.e->unaryOp =
      opTok.is(TokKind::Minus) ? ast::UnaryOp::Neg : ast::UnaryOp::Not;
  r.height = operand.height + 1;
  r.e->operands.push_back(std::move(operand.e));
  if (!checkHeight(r.height, opTok.loc))
    return {};
  return r;
}

PExpr ParserImpl::parsePostfix() {
  PExpr e = parsePrimary();
  if (!e)
    return {};
  if (tok.is(TokKind::LBracket)) {
    failAtTok("only an input name can be indexed");
    return {};
  }
  if (tok.is(TokKind::LParen)) {
    failAtTok("only a function name can be called");
    return {};
  }
  return e;
}

bool ParserImpl::parseArgs(TokKind close, StringRef calleeName, bool isCall,
                           Expr &node, unsigned &height) {
  std::string callee = calleeName.str();
  advance(); // '(' or '['
  if (isCall && tok.is(close)) {
    advance();
    return true;
  }
  while (true) {
    PExpr arg = parseExpr();
    if (!arg)
      return false;
    height = std::max(height, arg.height + 1);
    node.operands.push_back(std::move(arg.e));
    if (tok.is(close))
      break;
    if (!tok.is(TokKind::Comma))
      return expected(Twine("',' or ") + tokKindSpelling(close) +
                      (isCall ? " in the call to '" : " in the indices of '") +
                      callee + "'");
    advance();
  }
  advance(); // close
  return true;
}

PExpr ParserImpl::parsePrimary() {
  PExpr r;
  r.height = 1;
  switch (tok.kind) {
  case TokKind::Int:
    if (tok.intValue > static_cast<uint64_t>(INT64_MAX)) {
      failAtTok("integer literal is too large");
      return {};
    }
    r.e = std::make_unique<Expr>(Expr::Kind::IntLit, tok.pos);
    r.e->intValue = static_cast<int64_t>(tok.intValue);
    advance();
    return r;
  case TokKind::Float:
    r.e = std::make_unique<Expr>(Expr::Kind::FloatLit, tok.pos);
    r.e->floatValue = tok.floatValue;
    advance();
    return r;
  case TokKind::LParen: {
    advance();
    PExpr inner = parseExpr();
    if (!inner)
      return {};
    if (!tok.is(TokKind::RParen)) {
      expected("')'");
      return {};
    }
    advance();
    return inner;
  }
  case TokKind::Ident:
    break;
  default:
    expected("an expression");
    return {};
  }

  if (tok.text == "true" || tok.text == "false") {
    r.e = std::make_unique<Expr>(Expr::Kind::BoolLit, tok.pos);
    r.e->boolValue = tok.text == "true";
    advance();
    return r;
  }
  if ((isClauseKeyword(tok.text) && tok.text != "score") ||
      tok.text == "attention") {
    expected("an expression");
    return {};
  }
  Token name = tok;
  advance();
  if (tok.is(TokKind::LParen) || tok.is(TokKind::LBracket)) {
    bool isCall = tok.is(TokKind::LParen);
    r.e = std::make_unique<Expr>(isCall ? Expr::Kind::Call : Expr::Kind::Read,
                                 name.pos);
    r.e->name = name.text.str();
    if (!parseArgs(isCall ? TokKind::RParen : TokKind::RBracket, name.text,
                   isCall, *r.e, r.height))
      return {};
    if (!checkHeight(r.height, name.loc))
      return {};
    return r;
  }
  r.e = std::make_unique<Expr>(Expr::Kind::Param, name.pos);
  r.e->name = name.text.str();
  return r;
}

std::optional<ast::Module> attnc::parseModule(llvm::SourceMgr &sm,
                                              unsigned bufferId,
                                              llvm::raw_ostream &errs,
                                              unsigned file) {
  ParserImpl parser(sm, bufferId, file, errs);
  return parser.parseFile();
}
