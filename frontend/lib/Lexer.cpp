//===- Lexer.cpp - Tokens of the .attn spec language ----------------------===//
//
// Hand-written lexer for .attn specs: identifiers, decimal int and float
// literals, one-line strings (import paths), punctuation, `#` comments. Never reads past the buffer end and
// never overflows: literals are range-checked here.
//
//===----------------------------------------------------------------------===//
#include "attnc/Frontend/Lexer.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace attnc;

const char *attnc::tokKindSpelling(TokKind kind) {
  switch (kind) {
  case TokKind::Eof: return "end of file";
  case TokKind::Error: return "invalid token";
  case TokKind::Ident: return "identifier";
  case TokKind::Int: return "integer literal";
  case TokKind::Float: return "float literal";
  case TokKind::String: return "string literal";
  case TokKind::LBrace: return "'{'";
  case TokKind::RBrace: return "'}'";
  case TokKind::LParen: return "'('";
  case TokKind::RParen: return "')'";
  case TokKind::LBracket: return "'['";
  case TokKind::RBracket: return "']'";
  case TokKind::Comma: return "','";
  case TokKind::Colon: return "':'";
  case TokKind::Question: return "'?'";
  case TokKind::Assign: return "'='";
  case TokKind::Plus: return "'+'";
  case TokKind::Minus: return "'-'";
  case TokKind::Star: return "'*'";
  case TokKind::Slash: return "'/'";
  case TokKind::Percent: return "'%'";
  case TokKind::Lt: return "'<'";
  case TokKind::Le: return "'<='";
  case TokKind::Gt: return "'>'";
  case TokKind::Ge: return "'>='";
  case TokKind::EqEq: return "'=='";
  case TokKind::NotEq: return "'!='";
  case TokKind::AndAnd: return "'&&'";
  case TokKind::OrOr: return "'||'";
  case TokKind::Bang: return "'!'";
  case TokKind::Amp: return "'&'";
  case TokKind::Pipe: return "'|'";
  case TokKind::Caret: return "'^'";
  case TokKind::Shl: return "'<<'";
  case TokKind::Shr: return "'>>'";
  }
  return "token";
}

static bool isDigit(char c) { return c >= '0' && c <= '9'; }
static bool isIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool isIdentChar(char c) { return isIdentStart(c) || isDigit(c); }

/// 'c' for printable ASCII, '\xNN' otherwise.
static std::string quoteChar(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  char buf[8];
  if (u >= 0x21 && u <= 0x7e)
    std::snprintf(buf, sizeof(buf), "'%c'", c);
  else
    std::snprintf(buf, sizeof(buf), "'\\x%02x'", u);
  return buf;
}

Lexer::Lexer(llvm::StringRef buffer, unsigned file)
    : cur(buffer.begin()), end(buffer.end()), lineStart(buffer.begin()),
      file(file) {}

Token Lexer::make(TokKind kind, const char *start) {
  Token t;
  t.kind = kind;
  t.text = llvm::StringRef(start, cur - start);
  t.loc = llvm::SMLoc::getFromPointer(start);
  t.pos.line = line;
  t.pos.col = static_cast<unsigned>(start - lineStart) + 1;
  t.pos.file = file;
  return t;
}

Token Lexer::makeError(const char *start, std::string message) {
  Token t = make(TokKind::Error, start);
  t.message = std::move(message);
  return t;
}

void Lexer::skipSpaceAndComments() {
  while (cur < end) {
    char c = *cur;
    if (c == '\n') {
      ++cur;
      ++line;
      lineStart = cur;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f') {
      ++cur;
    } else if (c == '#') {
      while (cur < end && *cur != '\n')
        ++cur;
    } else {
      return;
    }
  }
}

Token Lexer::lexNumber(const char *start) {
  bool isFloat = false;
  while (cur < end && isDigit(*cur))
    ++cur;
  if (cur < end && *cur == '.') {
    isFloat = true;
    ++cur;
    while (cur < end && isDigit(*cur))
      ++cur;
  }
  if (cur < end && (*cur == 'e' || *cur == 'E')) {
    const char *p = cur + 1;
    if (p < end && (*p == '+' || *p == '-'))
      ++p;
    if (p < end && isDigit(*p)) {
      isFloat = true;
      cur = p;
      while (cur < end && isDigit(*cur))
        ++cur;
    }
  }
  if (cur < end && (isIdentChar(*cur) || *cur == '.')) {
    while (cur < end && (isIdentChar(*cur) || *cur == '.'))
      ++cur;
    return makeError(start, "invalid number '" +
                                std::string(start, cur - start) + "'");
  }
  std::string text(start, cur - start);
  if (!isFloat) {
    // Magnitude up to 2^63 (the parser allows 2^63 only after a '-').
    const uint64_t limit = uint64_t(1) << 63;
    uint64_t value = 0;
    for (char c : text) {
      uint64_t digit = static_cast<uint64_t>(c - '0');
      if (value > (limit - digit) / 10)
        return makeError(start, "integer literal is too large");
      value = value * 10 + digit;
    }
    Token t = make(TokKind::Int, start);
    t.intValue = value;
    return t;
  }
  errno = 0;
  float asFloat = std::strtof(text.c_str(), nullptr);
  if (errno == ERANGE && std::isinf(asFloat))
    return makeError(start, "float literal '" + text +
                                "' is too large for float (f32)");
  errno = 0;
  double value = std::strtod(text.c_str(), nullptr);
  if (!std::isfinite(value))
    return makeError(start, "float literal '" + text +
                                "' is too large for float (f32)");
  Token t = make(TokKind::Float, start);
  t.floatValue = value;
  return t;
}

/// A string literal: '"', then printable characters other than '"' and '\\'
/// up to the closing '"' on the same line. Paths need nothing more, and a
/// string with no escapes reads the same in every tool.
Token Lexer::lexString(const char *start) {
  while (cur < end && *cur != '"' && *cur != '\n') {
    unsigned char u = static_cast<unsigned char>(*cur);
    if (*cur == '\\' || u < 0x20 || u == 0x7f)
      return makeError(cur, "character " + quoteChar(*cur) +
                                " is not allowed in a string");
    ++cur;
  }
  if (cur >= end || *cur != '"')
    return makeError(start, "unterminated string; it must end on its line");
  ++cur;
  return make(TokKind::String, start);
}

Token Lexer::next() {
  skipSpaceAndComments();
  const char *start = cur;
  if (cur >= end)
    return make(TokKind::Eof, start);
  char c = *cur;
  if (isIdentStart(c)) {
    while (cur < end && isIdentChar(*cur))
      ++cur;
    return make(TokKind::Ident, start);
  }
  if (isDigit(c) || (c == '.' && cur + 1 < end && isDigit(cur[1])))
    return lexNumber(start);

  ++cur;
  auto followedBy = [&](char n) {
    if (cur < end && *cur == n) {
      ++cur;
      return true;
    }
    return false;
  };
  switch (c) {
  case '{': return make(TokKind::LBrace, start);
  case '}': return make(TokKind::RBrace, start);
  case '(': return make(TokKind::LParen, start);
  case ')': return make(TokKind::RParen, start);
  case '[': return make(TokKind::LBracket, start);
  case ']': return make(TokKind::RBracket, start);
  case ',': return make(TokKind::Comma, start);
  case ':': return make(TokKind::Colon, start);
  case '?': return make(TokKind::Question, start);
  case '+': return make(TokKind::Plus, start);
  case '-': return make(TokKind::Minus, start);
  case '*': return make(TokKind::Star, start);
  case '/': return make(TokKind::Slash, start);
  case '%': return make(TokKind::Percent, start);
  case '=':
    return make(followedBy('=') ? TokKind::EqEq : TokKind::Assign, start);
  case '!':
    return make(followedBy('=') ? TokKind::NotEq : TokKind::Bang, start);
  case '<':
    if (followedBy('<'))
      return make(TokKind::Shl, start);
    return make(followedBy('=') ? TokKind::Le : TokKind::Lt, start);
  case '>':
    if (followedBy('>'))
      return make(TokKind::Shr, start);
    return make(followedBy('=') ? TokKind::Ge : TokKind::Gt, start);
  case '&':
    return make(followedBy('&') ? TokKind::AndAnd : TokKind::Amp, start);
  case '|':
    return make(followedBy('|') ? TokKind::OrOr : TokKind::Pipe, start);
  case '^':
    return make(TokKind::Caret, start);
  case '"':
    return lexString(start);
  default:
    return makeError(start, "unexpected character " + quoteChar(c));
  }
}
