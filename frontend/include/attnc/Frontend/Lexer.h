//===- Lexer.h - Tokens of the .attn spec language --------------*- C++ -*-===//
//
// Splits a spec buffer into tokens on demand. Words (keywords, names, type and
// function names) are all TokKind::Ident; the parser tells them apart by
// spelling. A malformed token (stray byte, overflowing literal, bad number)
// comes back as TokKind::Error with a message; the parser reports it when it
// reaches that token, so errors stay in source order.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_FRONTEND_LEXER_H
#define ATTNC_FRONTEND_LEXER_H

#include "attnc/Frontend/AST.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/SMLoc.h"

#include <cstdint>
#include <string>

namespace attnc {

enum class TokKind {
  Eof,
  Error,
  Ident,
  Int,   // decimal integer literal (magnitude only; '-' is an operator)
  Float, // floating-point literal
  String, // "..." on one line, no escapes (import paths); `text` keeps quotes
  LBrace, RBrace, LParen, RParen, LBracket, RBracket,
  Comma, Colon, Question, Assign,
  Plus, Minus, Star, Slash, Percent,
  Lt, Le, Gt, Ge, EqEq, NotEq, AndAnd, OrOr, Bang,
  Amp, Pipe, Caret, Shl, Shr, // & | ^ << >> (ints)
};

/// How a token kind reads in a message: "'{'", "'&&'", "end of file", ...
const char *tokKindSpelling(TokKind kind);

struct Token {
  TokKind kind = TokKind::Eof;
  llvm::StringRef text; // the spelling in the buffer (empty for Eof)
  llvm::SMLoc loc;      // for SourceMgr diagnostics
  ast::Loc pos;         // 1-based line and byte column
  /// Int: the magnitude, at most 2^63 (larger literals are Error tokens; the
  /// parser accepts 2^63 only as a negated param default).
  uint64_t intValue = 0;
  /// Float: the value as a double; it is known to fit in f32.
  double floatValue = 0;
  /// Error: what is wrong with the token.
  std::string message;

  bool is(TokKind k) const { return kind == k; }
  bool isIdent(llvm::StringRef s) const {
    return kind == TokKind::Ident && text == s;
  }
};

class Lexer {
public:
  /// `buffer` is the whole spec; the lexer reads exactly buffer.size() bytes
  /// (an embedded NUL is an unexpected character, not the end).
  /// Tokens are stamped with `file` (the Module::files index of the buffer).
  explicit Lexer(llvm::StringRef buffer, unsigned file = 0);

  /// The next token; Eof (repeatedly) at the end of the buffer.
  Token next();

private:
  Token make(TokKind kind, const char *start);
  Token makeError(const char *start, std::string message);
  void skipSpaceAndComments();
  Token lexNumber(const char *start);
  Token lexString(const char *start);

  const char *cur;
  const char *end;
  const char *lineStart;
  unsigned line = 1;
  unsigned file = 0;
};

} // namespace attnc

#endif // ATTNC_FRONTEND_LEXER_H
