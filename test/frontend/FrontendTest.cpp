//===- FrontendTest.cpp - Unit tests of the .attn front end ---------------===//
//
// Parses the shared reference specs, checks the typed trees (promotion casts,
// precedence, defaults, literals), the exact text of located errors, -D and
// --name handling, and that mutated and hostile inputs never crash.
//
//===----------------------------------------------------------------------===//
#include "attnc/Frontend/Frontend.h"
#include "attnc/Frontend/Parser.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

using namespace attnc;
using Kind = ast::Expr::Kind;

namespace {

struct Result {
  std::optional<ast::Module> module;
  std::string errors;
};

Result parse(const std::string &src, const FrontendOptions &options = {}) {
  llvm::SourceMgr sm;
  unsigned id = sm.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(src, "test.attn"), llvm::SMLoc());
  Result r;
  llvm::raw_string_ostream os(r.errors);
  r.module = parseSpec(sm, id, options, os);
  os.flush();
  return r;
}

/// One diagnostic: "...error: ..." then at most the source and caret lines
/// (the echoed source line may itself contain "error:").
/// One error (its line, the source line, the caret), perhaps followed by one
/// note in the same form (where an earlier declaration is).
bool isOneError(const std::string &s) {
  size_t lines = std::count(s.begin(), s.end(), '\n');
  size_t errors = 0;
  for (size_t at = s.find("error: "); at != std::string::npos;
       at = s.find("error: ", at + 1))
    ++errors;
  bool note = s.find(": note: ") != std::string::npos;
  return !s.empty() && s.back() == '\n' && errors == 1 &&
         lines <= (note ? 6u : 3u) &&
         s.substr(0, s.find('\n')).find("error: ") != std::string::npos;
}

/// Prefix form with types: "(- :float score (cast :float (- :int q kv)))".
std::string dump(const ast::Expr &e) {
  std::string s;
  switch (e.kind) {
  case Kind::IntLit: return std::to_string(e.intValue);
  case Kind::FloatLit: {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%gf", e.floatValue);
    return buf;
  }
  case Kind::BoolLit: return e.boolValue ? "true" : "false";
  case Kind::Index: return ast::indexVarName(e.indexVar);
  case Kind::Size: return ast::sizeVarName(e.sizeVar);
  case Kind::Score: return "score";
  case Kind::Param: return "$" + e.name;
  case Kind::Read: s = "(read " + e.name; break;
  case Kind::Unary: s = e.unaryOp == ast::UnaryOp::Neg ? "(neg" : "(not"; break;
  case Kind::Binary: s = std::string("(") + ast::binaryOpSpelling(e.binaryOp); break;
  case Kind::Select: s = "(?"; break;
  case Kind::Call: s = std::string("(") + ast::builtinName(e.builtin); break;
  case Kind::Cast: s = "(cast"; break;
  }
  s += std::string(" :") + ast::typeName(e.type);
  for (const ast::ExprPtr &o : e.operands)
    s += " " + dump(*o);
  return s + ")";
}

/// Every node typed, every operand present, arity consistent.
void expectWellTyped(const ast::Expr &e) {
  EXPECT_NE(e.type, ast::Type::Unknown) << dump(e);
  for (const ast::ExprPtr &o : e.operands) {
    ASSERT_TRUE(o);
    expectWellTyped(*o);
  }
  size_t arity = e.kind == Kind::Binary   ? 2
                 : e.kind == Kind::Select ? 3
                 : e.kind == Kind::Cast || e.kind == Kind::Unary ? 1
                 : e.kind == Kind::Read || e.kind == Kind::Call
                     ? e.operands.size()
                     : 0;
  EXPECT_EQ(e.operands.size(), arity) << dump(e);
  bool named = e.kind == Kind::Param || e.kind == Kind::Read ||
               e.kind == Kind::Call;
  EXPECT_EQ(named, !e.name.empty()) << dump(e);
}

void expectChecked(const ast::Module &m) {
  for (const ast::AttentionDecl &a : m.attentions) {
    ASSERT_TRUE(a.scale && a.score && a.mask) << a.name;
    EXPECT_EQ(a.scale->type, ast::Type::Float);
    EXPECT_EQ(a.score->type, ast::Type::Float);
    EXPECT_EQ(a.mask->type, ast::Type::Bool);
    expectWellTyped(*a.scale);
    expectWellTyped(*a.score);
    expectWellTyped(*a.mask);
    if (a.normalize == ast::NormalizeKind::Sigmoid) {
      ASSERT_TRUE(a.sigmoidBias);
      EXPECT_EQ(a.sigmoidBias->type, ast::Type::Float);
      expectWellTyped(*a.sigmoidBias);
    } else {
      EXPECT_FALSE(a.sigmoidBias);
    }
  }
}

/// The checked block of a one-block spec.
const ast::AttentionDecl &block(const Result &r) {
  static ast::AttentionDecl empty;
  if (!r.module || r.module->attentions.empty())
    return empty;
  return r.module->attentions.front();
}

std::string clause(const std::string &body, const std::string &which) {
  Result r = parse("attention t {\n" + body + "\n}\n");
  if (!r.module)
    return "ERROR " + r.errors;
  expectChecked(*r.module);
  const ast::AttentionDecl &a = block(r);
  const ast::Expr *e = which == "scale"  ? a.scale.get()
                       : which == "score" ? a.score.get()
                       : which == "mask"  ? a.mask.get()
                                          : a.sigmoidBias.get();
  return e ? dump(*e) : "null";
}

std::string readFile(const std::filesystem::path &p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> sharedSpecs() {
  std::vector<std::string> out;
#ifdef ATTNC_SHARED_SPECS_DIR
  std::error_code ec;
  std::filesystem::path dir(ATTNC_SHARED_SPECS_DIR);
  if (!std::filesystem::is_directory(dir, ec))
    return out;
  std::vector<std::filesystem::path> files;
  for (const auto &entry : std::filesystem::directory_iterator(dir, ec))
    if (entry.path().extension() == ".attn")
      files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  for (const auto &f : files)
    out.push_back(readFile(f));
#endif
  return out;
}

} // namespace

TEST(Frontend, SharedSpecsParse) {
#ifndef ATTNC_SHARED_SPECS_DIR
  GTEST_SKIP() << "ATTNC_SHARED_SPECS_DIR is not defined";
#else
  std::error_code ec;
  if (!std::filesystem::is_directory(ATTNC_SHARED_SPECS_DIR, ec))
    GTEST_SKIP() << ATTNC_SHARED_SPECS_DIR << " does not exist";
  std::vector<std::string> specs = sharedSpecs();
  ASSERT_FALSE(specs.empty());
  for (const std::string &src : specs) {
    Result r = parse(src);
    ASSERT_TRUE(r.module) << r.errors << "\n" << src;
    EXPECT_EQ(r.errors, "");
    ASSERT_EQ(r.module->attentions.size(), 1u);
    expectChecked(*r.module);
  }
#endif
}

TEST(Frontend, PromotionCasts) {
  EXPECT_EQ(clause("score = score - float(q - kv)", "score"),
            "(- :float score (cast :float (- :int q kv)))");
  EXPECT_EQ(clause("scale = 1 / sqrt(D)", "scale"),
            "(/ :float (cast :float 1) (sqrt :float (cast :float D)))");
  EXPECT_EQ(clause("score = score * 2", "score"),
            "(* :float score (cast :float 2))");
  EXPECT_EQ(clause("scale = 2", "scale"), "(cast :float 2)");
  EXPECT_EQ(clause("mask = q < 1.5", "mask"),
            "(< :bool (cast :float q) 1.5f)");
  EXPECT_EQ(clause("mask = (q < kv) == true", "mask"),
            "(== :bool (< :bool q kv) true)");
  EXPECT_EQ(clause("score = q < kv ? score : 0", "score"),
            "(? :float (< :bool q kv) score (cast :float 0))");
  EXPECT_EQ(clause("mask = min(q, kv) > 0", "mask"),
            "(> :bool (min :int q kv) 0)");
  EXPECT_EQ(clause("score = min(q, score)", "score"),
            "(min :float (cast :float q) score)");
  EXPECT_EQ(clause("mask = abs(q - kv) < 3", "mask"),
            "(< :bool (abs :int (- :int q kv)) 3)");
  EXPECT_EQ(clause("mask = clamp(q, 0, LK) == kv", "mask"),
            "(== :bool (clamp :int q 0 LK) kv)");
  EXPECT_EQ(clause("score = pow(2, score)", "score"),
            "(pow :float (cast :float 2) score)");
  EXPECT_EQ(clause("score = exp(q)", "score"), "(exp :float (cast :float q))");
  EXPECT_EQ(clause("mask = int(score) > 0", "mask"),
            "ERROR test.attn:2:12: error: 'score' can only be used in the "
            "score clause\nmask = int(score) > 0\n           ^\n");
  EXPECT_EQ(clause("score = float(int(score))", "score"),
            "(cast :float (cast :int score))");
  EXPECT_EQ(clause("score = float(1.5) + float(true)", "score"),
            "(+ :float 1.5f (cast :float true))");
  EXPECT_EQ(clause("mask = int(true) == 1", "mask"),
            "(== :bool (cast :int true) 1)");
  EXPECT_EQ(clause("mask = q / 2 * 2 % 3 == 0", "mask"),
            "(== :bool (% :int (* :int (/ :int q 2) 2) 3) 0)");
}

TEST(Frontend, Precedence) {
  EXPECT_EQ(clause("mask = q + 1 * 2 < kv || q == kv && b > 0", "mask"),
            "(|| :bool (< :bool (+ :int q (* :int 1 2)) kv) "
            "(&& :bool (== :bool q kv) (> :bool b 0)))");
  EXPECT_EQ(clause("mask = q - kv - 1 >= 0", "mask"),
            "(>= :bool (- :int (- :int q kv) 1) 0)");
  EXPECT_EQ(clause("mask = -q * 2 < -kv", "mask"),
            "(< :bool (* :int (neg :int q) 2) (neg :int kv))");
  EXPECT_EQ(clause("mask = !(q < kv) && !false || true", "mask"),
            "(|| :bool (&& :bool (not :bool (< :bool q kv)) (not :bool false)) "
            "true)");
  EXPECT_EQ(clause("score = q < kv ? 1.0 : q > kv ? 2.0 : 3.0", "score"),
            "(? :float (< :bool q kv) 1f (? :float (> :bool q kv) 2f 3f))");
  EXPECT_EQ(clause("mask = q < kv == kv < q", "mask"),
            "(== :bool (< :bool q kv) (< :bool kv q))");
  EXPECT_EQ(clause("mask = (q + 1) * 2 % 5 != hkv", "mask"),
            "(!= :bool (% :int (* :int (+ :int q 1) 2) 5) hkv)");
  // Newlines do not end an expression.
  EXPECT_EQ(clause("mask = q\n  >= kv\n  && true", "mask"),
            "(&& :bool (>= :bool q kv) true)");
}

TEST(Frontend, DefaultsAndClauses) {
  Result r = parse("attention a {\n}\nattention s { normalize = sigmoid }\n");
  ASSERT_TRUE(r.module) << r.errors;
  expectChecked(*r.module);
  const ast::AttentionDecl &a = r.module->attentions[0];
  EXPECT_EQ(dump(*a.scale),
            "(/ :float 1f (sqrt :float (cast :float D)))");
  EXPECT_EQ(dump(*a.score), "score");
  EXPECT_EQ(dump(*a.mask), "true");
  EXPECT_EQ(a.normalize, ast::NormalizeKind::Softmax);
  EXPECT_FALSE(a.scaleLoc || a.scoreLoc || a.maskLoc);
  EXPECT_EQ(a.scale->loc.line, 1u);
  EXPECT_EQ(a.scale->loc.col, 11u);
  const ast::AttentionDecl &s = r.module->attentions[1];
  EXPECT_EQ(s.normalize, ast::NormalizeKind::Sigmoid);
  EXPECT_EQ(dump(*s.sigmoidBias),
            "(neg :float (log :float (cast :float LK)))");
  EXPECT_EQ(s.normalizeLoc.line, 3u);
  EXPECT_EQ(s.normalizeLoc.col, 15u);

  EXPECT_EQ(clause("normalize = sigmoid(bias = -2)", "bias"),
            "(cast :float (neg :int 2))");
  EXPECT_EQ(clause("mask = q >= kv normalize = sigmoid(bias = 0.5)", "bias"),
            "0.5f");

  Result loc = parse("attention a {\n  mask = q >= kv\n}");
  ASSERT_TRUE(loc.module);
  EXPECT_EQ(block(loc).maskLoc->line, 2u);
  EXPECT_EQ(block(loc).maskLoc->col, 3u);
  EXPECT_EQ(block(loc).mask->loc.col, 12u); // the '>=' operator
  EXPECT_EQ(block(loc).mask->operands[1]->loc.col, 15u);
  EXPECT_EQ(loc.module->fileName, "test.attn");
}

TEST(Frontend, Literals) {
  Result r = parse("attention a {\n"
                   "  param i: int = -9223372036854775808\n"
                   "  param j: int = 9223372036854775807\n"
                   "  param f: float = .5  param g: float = 1e-3\n"
                   "  param h2: float = -2.5E+4  param k: float = 7\n"
                   "  param t: bool = true  param u: bool = false\n"
                   "  param n: int\n"
                   "  input x: bool[B, HQ, 4, j]\n"
                   "  score = score * 1.5e2 + .25\n"
                   "}\n");
  ASSERT_TRUE(r.module) << r.errors;
  const auto &p = block(r).params;
  ASSERT_EQ(p.size(), 9u);
  EXPECT_EQ(p[0].intValue, INT64_MIN);
  EXPECT_EQ(p[1].intValue, INT64_MAX);
  EXPECT_DOUBLE_EQ(p[2].floatValue, 0.5);
  EXPECT_DOUBLE_EQ(p[3].floatValue, 1e-3);
  EXPECT_DOUBLE_EQ(p[4].floatValue, -2.5e4);
  EXPECT_DOUBLE_EQ(p[5].floatValue, 7.0);
  EXPECT_EQ(p[5].type, ast::Type::Float);
  EXPECT_TRUE(p[6].boolValue && p[6].hasValue);
  EXPECT_FALSE(p[7].boolValue);
  EXPECT_FALSE(p[8].hasValue);
  const ast::InputDecl &x = block(r).inputs[0];
  EXPECT_EQ(x.elementType, ast::Type::Bool);
  ASSERT_EQ(x.dims.size(), 4u);
  EXPECT_EQ(x.dims[1].symbol, "HQ");
  EXPECT_EQ(x.dims[2].extent, 4);
  EXPECT_TRUE(x.dims[2].symbol.empty());
  EXPECT_EQ(x.dims[3].symbol, "j");
  EXPECT_EQ(x.dims[3].loc.col, 27u);
  EXPECT_EQ(dump(*block(r).score), "(+ :float (* :float score 150f) 0.25f)");
}

/// A source and the one error it gives: "LINE:COL: error: message".
struct ErrorCase {
  const char *src;
  const char *expected;
};

void expectErrors(llvm::ArrayRef<ErrorCase> cases) {
  for (const ErrorCase &c : cases) {
    Result r = parse(c.src);
    EXPECT_FALSE(r.module) << c.src;
    std::string want = std::string("test.attn:") + c.expected + "\n";
    EXPECT_EQ(r.errors.substr(0, want.size()), want) << "source: " << c.src;
    EXPECT_TRUE(isOneError(r.errors)) << r.errors;
  }
}

TEST(Frontend, Errors) {
  expectErrors({
      {"", "1:1: error: no attention block in the file"},
      {"  # only a comment\n", "2:1: error: no attention block in the file"},
      {"attention a { mask = foo < q }", "1:22: error: unknown name 'foo'"},
      {"attention a { score = bar(1) }", "1:23: error: unknown function 'bar'"},
      {"attention a { score = tanh(1, 2) }",
       "1:23: error: 'tanh' expects 1 argument, got 2"},
      {"attention a { score = pow(1) }",
       "1:23: error: 'pow' expects 2 arguments, got 1"},
      {"attention a { mask = true + 1 > 0 }",
       "1:27: error: operator '+' cannot take bool"},
      {"attention a { mask = q && kv }",
       "1:24: error: operator '&&' needs bool operands, got int"},
      {"attention a { mask = true || 1.5 }",
       "1:27: error: operator '||' needs bool operands, got float"},
      {"attention a {\n  mask = q\n}", "2:3: error: mask must be bool, got int"},
      {"attention a { score = q < kv }",
       "1:15: error: score must be a number, got bool"},
      {"attention a { normalize = sigmoid(bias = true) }",
       "1:42: error: sigmoid bias must be a number, got bool"},
      {"attention a { score = true ? 1 : false }",
       "1:28: error: the branches of '?:' must have the same type, got int "
       "and bool"},
      {"attention a { mask = q == true }",
       "1:24: error: operator '==' cannot compare int with bool"},
      {"attention a { mask = -true }", "1:22: error: operator '-' cannot take bool"},
      {"attention a mask = q }",
       "1:13: error: expected '{' after 'attention a', got keyword 'mask'"},
      {"attention { }", "1:11: error: expected a name after 'attention', got '{'"},
      {"attention a { mask = q >= kv",
       "1:29: error: expected '}' to close attention 'a', got end of file"},
      {"attention a { mask = q >= kv mask = true }",
       "1:30: error: duplicate 'mask' clause in attention 'a'"},
      {"attention a { score = score score = score }",
       "1:29: error: duplicate 'score' clause in attention 'a'"},
      {"attention a { input x: int[LQ] input x: int[LK] }",
       "1:38: error: duplicate input 'x'"},
      {"attention a { param p: int = 1 param p: int = 2 }",
       "1:38: error: duplicate param 'p'"},
      {"attention a { input x: int[LQ] param x: int = 2 }",
       "1:38: error: 'x' is already declared as an input"},
      {"attention a { param true: int = 1 }",
       "1:21: error: 'true' is a keyword and cannot name a param"},
      {"attention a { input LQ: int[LQ] }",
       "1:21: error: 'LQ' is a built-in name and cannot name an input"},
      {"attention a {}\nattention a {}",
       "2:11: error: duplicate attention block 'a'"},
      {"attention a { mask = score > 0.0 }",
       "1:22: error: 'score' can only be used in the score clause"},
      {"attention a { scale = score }",
       "1:23: error: 'score' can only be used in the score clause"},
      {"attention a { normalize = relu }",
       "1:27: error: unknown normalization 'relu'; expected softmax or sigmoid"},
      {"attention a { normalize = 3 }",
       "1:27: error: expected a normalization (softmax or sigmoid), got '3'"},
      {"attention a { normalize = sigmoid(bias = 1.0 }",
       "1:46: error: expected ',' or ')' after the sigmoid bias, got '}'"},
      {"attention a { param w: int = 1.5 }",
       "1:30: error: param 'w' is int but its default is a float"},
      {"attention a { param w: float = true }",
       "1:32: error: param 'w' is float but its default is a bool"},
      {"attention a { param w: int = -true }",
       "1:31: error: expected a number after '-' in the default of param 'w', "
       "got 'true'"},
      {"attention a { param w: int = q }",
       "1:30: error: expected a literal (number, true or false) as the default "
       "of param 'w', got 'q'"},
      {"attention a { param w: int = 1 + 2 }",
       "1:32: error: expected a clause or '}' after param 'w', got '+'"},
      {"attention a { param w: int = 9223372036854775808 }",
       "1:30: error: integer literal is too large"},
      {"attention a { param w: int = -9223372036854775809 }",
       "1:31: error: integer literal is too large"},
      {"attention a { mask = q < 9223372036854775808 }",
       "1:26: error: integer literal is too large"},
      {"attention a { mask = q % 0 == 0 }", "1:24: error: modulo by zero"},
      {"attention a { mask = q / -(0) == 0 }", "1:24: error: division by zero"},
      {"attention a { param z: int = 0 mask = q / z == 0 }",
       "1:41: error: division by zero (param 'z' is 0)"},
      {"attention a { score = score % 2 }",
       "1:29: error: operator '%' needs int operands, got float"},
  });
}

TEST(Frontend, MoreErrors) {
  expectErrors({
      {"attention a { mask = q >= }", "1:27: error: expected an expression, got '}'"},
      {"attention a { mask = q >= * kv }",
       "1:27: error: expected an expression, got '*'"},
      {"attention a { mask = }", "1:22: error: expected an expression, got '}'"},
      {"attention a { mask = normalize }",
       "1:22: error: expected an expression, got keyword 'normalize'"},
      {"attention a { mask = q \xff }", "1:24: error: unexpected character '\\xff'"},
      {"attention a { mask = q \x01 }", "1:24: error: unexpected character '\\x01'"},
      {"attention a { mask = q @ }", "1:24: error: unexpected character '@'"},
      {"attention a { score = score * 1e39 }",
       "1:31: error: float literal '1e39' is too large for float (f32)"},
      {"attention a { param f: float = 3.5e38 }",
       "1:32: error: float literal '3.5e38' is too large for float (f32)"},
      {"attention a { score = 1.5.2 }", "1:23: error: invalid number '1.5.2'"},
      {"attention a { score = 1e+ }", "1:23: error: invalid number '1e'"},
      {"attention a { input s: float[HQ] score = s[h, q] }",
       "1:42: error: input 's' has rank 1 but is indexed with 2 indices"},
      {"attention a { input s: float[HQ, LQ] score = s[h] }",
       "1:46: error: input 's' has rank 2 but is indexed with 1 index"},
      {"attention a { input s: float[HQ] score = s[score] }",
       "1:44: error: index 1 of 's' must be int, got float"},
      {"attention a { input s: float[HQ] score = s }",
       "1:42: error: input 's' must be indexed"},
      {"attention a { mask = kv[1] == 0 }",
       "1:22: error: 'kv' is not an input; only inputs can be indexed"},
      {"attention a { mask = zz[1] == 0 }", "1:22: error: unknown name 'zz'"},
      {"attention a { mask = (q)[1] == 0 }",
       "1:25: error: only an input name can be indexed"},
      {"attention a { input s: int[LQ] mask = s[q][0] == 0 }",
       "1:43: error: only an input name can be indexed"},
      {"attention a { mask = q(1) == 0 }", "1:22: error: 'q' is not a function"},
      {"attention a { mask = 3(1) == 0 }",
       "1:23: error: only a function name can be called"},
      {"attention a { mask = exp > 0.0 }", "1:22: error: function 'exp' must be called"},
      {"attention a { mask = q < kv < LK }",
       "1:29: error: comparisons cannot be chained; combine them with '&&'"},
      {"attention a { mask = true == true == true }",
       "1:35: error: comparisons cannot be chained; combine them with '&&'"},
      {"attention a { mask = q >= kv kv }",
       "1:30: error: expected a clause or '}' after the expression, got 'kv'"},
      {"attention a { foo }",
       "1:15: error: expected a clause (param, input, let, scale, score, mask, "
       "normalize) or '}', got 'foo'"},
      {"attention a { param w: int\n mask = q < w }",
       "1:21: error: param 'w' has no value; give it a default or pass -D "
       "w=VALUE"},
      {"attention a { input x: float[q] }",
       "1:30: error: dimension 'q' of input 'x' must be a size name (B, HQ, HKV, "
       "LQ, LK, D, DV), an int param declared before it, or a positive integer"},
      {"attention a { input x: float[n] param n: int = 3 }",
       "1:30: error: param 'n' must be declared before input 'x' to size it"},
      {"attention a { param n: int input x: float[n] }",
       "1:21: error: param 'n' has no value; give it a default or pass -D "
       "n=VALUE"},
      {"attention a { param n: int = -2 input x: float[n] }",
       "1:48: error: dimension 'n' of input 'x' must be positive, but param "
       "'n' is -2"},
      {"attention a { input x: float[] }",
       "1:30: error: input 'x' needs at least one dimension"},
      {"attention a { input x: float[-1] }",
       "1:30: error: expected a dimension of input 'x' (a size name, an int "
       "param or a positive integer), got '-'"},
      {"attention a { input x: float LQ }",
       "1:30: error: expected '[' after the element type of input 'x', got 'LQ'"},
      {"attention a { input x: tensor[LQ] }",
       "1:24: error: unknown type 'tensor'; expected int, float or bool"},
      {"attention a { normalize = softmax() }",
       "1:35: error: expected 'sink = EXPR' or 'dropout = EXPR' in 'softmax(...)', got ')'"},
      {"attention a { mask = q & kv }", "1:15: error: mask must be bool, got int"},
      {"attention a { mask = q >= kv | true }",
       "1:30: error: operator '|' needs int operands, got bool (it binds more "
       "loosely than comparisons, as in C: add parentheses, or use '&&' / '||' "
       "on bools)"},
      {"attention a { mask = (q >= kv }", "1:31: error: expected ')', got '}'"},
      {"attention a { score = q > 0 ? score }",
       "1:37: error: expected ':' in the conditional expression, got '}'"},
      {"attention a { score = min(score, }",
       "1:34: error: expected an expression, got '}'"},
      {"attention a { score = min(score 1) }",
       "1:33: error: expected ',' or ')' in the call to 'min', got '1'"},
      {"attention a { } }", "1:17: error: expected 'attention', 'import' or a shared declaration, got '}'"},
  });
}

TEST(Frontend, EmbeddedNul) {
  std::string src("attention a { mask = q >= kv }\0 more", 36);
  Result r = parse(src);
  EXPECT_FALSE(r.module);
  std::string want = "test.attn:1:31: error: unexpected character '\\x00'\n";
  EXPECT_EQ(r.errors.substr(0, want.size()), want);
}

TEST(Frontend, CaretLine) {
  Result r = parse("attention a {\n  mask = foo\n}\n");
  EXPECT_EQ(r.errors, "test.attn:2:10: error: unknown name 'foo'\n"
                      "  mask = foo\n"
                      "         ^\n");
}

TEST(Frontend, Defines) {
  const char *src = "attention a { param w: int = 4 param c: float\n"
                    "  param f: bool = false mask = q - kv < w && f\n"
                    "  score = score * c }\n"
                    "attention b { param w: int mask = q < w }\n";
  FrontendOptions o;
  o.defines = {{"w", "-1024"}, {"c", "2.5"}, {"f", "1"}};
  Result r = parse(src, o);
  ASSERT_TRUE(r.module) << r.errors;
  EXPECT_EQ(r.module->attentions[0].params[0].intValue, -1024);
  EXPECT_DOUBLE_EQ(r.module->attentions[0].params[1].floatValue, 2.5);
  EXPECT_TRUE(r.module->attentions[0].params[1].hasValue);
  EXPECT_TRUE(r.module->attentions[0].params[2].boolValue);
  EXPECT_EQ(r.module->attentions[1].params[0].intValue, -1024);

  // Without -D, param c of block a has no value.
  Result none = parse(src);
  EXPECT_EQ(none.errors.substr(0, 24), "test.attn:1:38: error: p");

  struct Bad {
    std::pair<std::string, std::string> define;
    const char *message;
  };
  const Bad bad[] = {
      {{"w", "abc"}, "error: -D w=abc: 'abc' is not an int (param 'w' is int)\n"},
      {{"w", ""}, "error: -D w=: '' is not an int (param 'w' is int)\n"},
      {{"w", "1.0"}, "error: -D w=1.0: '1.0' is not an int (param 'w' is int)\n"},
      {{"w", " 1"}, "error: -D w= 1: ' 1' is not an int (param 'w' is int)\n"},
      {{"w", "9223372036854775808"},
       "error: -D w=9223372036854775808: '9223372036854775808' is out of "
       "range for int (64-bit) (param 'w' is int)\n"},
      {{"c", "1e39"},
       "error: -D c=1e39: '1e39' is out of range for float (f32) (param 'c' "
       "is float)\n"},
      {{"c", "nan"}, "error: -D c=nan: 'nan' is not a float (param 'c' is float)\n"},
      {{"c", "1.5x"},
       "error: -D c=1.5x: '1.5x' is not a float (param 'c' is float)\n"},
      {{"f", "yes"},
       "error: -D f=yes: 'yes' is not a bool (use true, false, 1 or 0) "
       "(param 'f' is bool)\n"},
      {{"nope", "1"},
       "error: -D nope=1: no attention block has a param named 'nope'\n"},
  };
  for (const Bad &b : bad) {
    FrontendOptions ob;
    // c needs a value; a bad c must not be its second -D (see below).
    ob.defines = {b.define.first == "c" ? std::pair<std::string, std::string>(
                                              "w", "1")
                                        : std::pair<std::string, std::string>(
                                              "c", "1.0"),
                  b.define};
    Result e = parse(src, ob);
    EXPECT_FALSE(e.module);
    EXPECT_EQ(e.errors, b.message);
  }
  // A name given twice is an error, whichever value comes last.
  FrontendOptions twice;
  twice.defines = {{"c", "1.0"}, {"w", "1"}, {"c", "2.0"}};
  Result t = parse(src, twice);
  EXPECT_FALSE(t.module);
  EXPECT_EQ(t.errors, "error: -D c=2.0: param 'c' is given more than once\n");
  FrontendOptions ok;
  ok.defines = {{"w", "-9223372036854775808"}, {"c", "+3"}, {"f", "true"}};
  Result edge = parse(src, ok);
  ASSERT_TRUE(edge.module) << edge.errors;
  EXPECT_EQ(edge.module->attentions[1].params[0].intValue, INT64_MIN);
}

TEST(Frontend, OnlyName) {
  const char *src = "attention a { param w: int = 1 }\n"
                    "attention b { param v: int mask = q < v }\n";
  FrontendOptions o;
  o.onlyName = "a";
  Result r = parse(src, o);
  ASSERT_TRUE(r.module) << r.errors;
  ASSERT_EQ(r.module->attentions.size(), 1u);
  EXPECT_EQ(r.module->attentions[0].name, "a");
  o.onlyName = "c";
  Result missing = parse(src, o);
  EXPECT_FALSE(missing.module);
  EXPECT_EQ(missing.errors, "test.attn: error: no attention block named 'c'\n");
  o.onlyName = "a";
  o.defines = {{"v", "3"}};
  Result other = parse(src, o);
  EXPECT_EQ(other.errors,
            "error: -D v=3: attention 'a' has no param named 'v'\n");
  o.onlyName = "b";
  Result b = parse(src, o);
  ASSERT_TRUE(b.module) << b.errors;
  EXPECT_EQ(b.module->attentions[0].params[0].intValue, 3);
}

TEST(Frontend, DeepAndLongInputsDoNotCrash) {
  auto nested = [](const std::string &open, const std::string &close, int n) {
    std::string s = "attention a { mask = ";
    for (int i = 0; i < n; ++i)
      s += open;
    s += "q >= kv";
    for (int i = 0; i < n; ++i)
      s += close;
    return s + " }";
  };
  for (int n : {static_cast<int>(kMaxExprDepth / 5), 100000}) {
    bool ok = n < 100;
    for (const auto &[open, close] :
         std::vector<std::pair<std::string, std::string>>{
             {"(", ")"}, {"!!(", ")"}, {"(true && ", ")"}, {"true == (", ")"},
             {"(q < kv ? ", ": true)"}, {"abs(", ") > 0"}}) {
      if (open == "abs(" && ok)
        continue; // not well typed when nested; only needs to not crash
      Result r = parse(nested(open, close, n));
      EXPECT_EQ(bool(r.module), ok) << open << " " << n << r.errors;
      if (!ok) {
        EXPECT_NE(r.errors.find("nested too deeply"), std::string::npos)
            << open << r.errors.substr(0, 200);
      }
    }
  }
  std::string longSum = "attention a { mask = q";
  for (int i = 0; i < 100000; ++i)
    longSum += " + 1";
  Result r = parse(longSum + " > kv }");
  EXPECT_FALSE(r.module);
  EXPECT_NE(r.errors.find("nested too deeply"), std::string::npos);
  std::string manyArgs = "attention a { score = min(score";
  for (int i = 0; i < 100000; ++i)
    manyArgs += ", 1";
  Result args = parse(manyArgs + ") }");
  EXPECT_NE(args.errors.find("'min' expects 2 arguments, got 100001"),
            std::string::npos);
  std::string ident(1 << 20, 'x');
  Result longName = parse("attention a { mask = " + ident + " }");
  EXPECT_FALSE(longName.module);
  std::string digits(100000, '9');
  Result longNum = parse("attention a { mask = q < " + digits + " }");
  EXPECT_NE(longNum.errors.find("integer literal is too large"),
            std::string::npos);
  Result longFloat = parse("attention a { score = 0." + digits + "e-99999 }");
  EXPECT_TRUE(longFloat.module) << longFloat.errors;
}

TEST(Frontend, MutatedSpecsNeverCrash) {
  std::vector<std::string> seeds = sharedSpecs();
  seeds.push_back("attention local {\n  param window: int = 4096\n"
                  "  param cap: float = 50.0\n  input slopes: float[HQ]\n"
                  "  scale = 1 / sqrt(D)\n"
                  "  score = cap * tanh(score / cap) - slopes[h] * float(q - kv)\n"
                  "  mask  = q >= kv && q - kv < window\n"
                  "  normalize = sigmoid(bias = -log(float(LK)))\n}\n");
  const std::vector<std::string> pieces = {
      "(", ")", "[", "]", "{", "}", ",", ":", "?", "=", "-", "!", "&&", "||",
      "%", "/", "0", "-0", "1e39", "9223372036854775808", ".5", "score",
      "mask", "param", "input", "attention", "q", "kv", "true", "float(",
      "sigmoid(bias = ", "#", "\n", "\xff", std::string(1, '\0'), " "};
  std::mt19937 rng(20240601);
  unsigned accepted = 0, rejected = 0;
  for (int iter = 0; iter < 600; ++iter) {
    std::string s = seeds[iter % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
      switch (rng() % 5) {
      case 0: // replace a byte
        if (!s.empty() && pos < s.size())
          s[pos] = static_cast<char>(rng() & 0xff);
        break;
      case 1: // delete a span
        s.erase(pos, rng() % 8);
        break;
      case 2: // insert a token
        s.insert(pos, pieces[rng() % pieces.size()]);
        break;
      case 3: { // duplicate a span
        std::string span = s.substr(pos, rng() % 32);
        s.insert(std::min(s.size(), static_cast<size_t>(rng() % (s.size() + 1))),
                 span);
        break;
      }
      default: // truncate
        s.resize(pos);
        break;
      }
    }
    FrontendOptions o;
    if (iter % 7 == 0)
      o.defines = {{"window", std::to_string(static_cast<int>(rng() % 100))}};
    Result r = parse(s, o);
    if (r.module) {
      ++accepted;
      EXPECT_EQ(r.errors, "");
      expectChecked(*r.module);
    } else {
      ++rejected;
      EXPECT_TRUE(isOneError(r.errors)) << r.errors;
    }
  }
  EXPECT_GT(rejected, 0u);
  // Random bytes.
  for (int iter = 0; iter < 200; ++iter) {
    std::string s(rng() % 64, '\0');
    for (char &c : s)
      c = static_cast<char>(rng() & 0xff);
    Result r = parse(s);
    EXPECT_TRUE(r.module ? r.errors.empty() : isOneError(r.errors));
  }
  (void)accepted;
}
