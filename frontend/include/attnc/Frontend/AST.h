//===- AST.h - Typed syntax tree of a .attn spec ---------------------------===//
//
// The front end is three steps, as in MLIR's Toy tutorial: the Lexer/Parser
// build this tree, Sema resolves names, checks and annotates types (and makes
// every implicit int->float promotion an explicit Cast node), and MLIRGen turns
// a checked tree into the attn dialect. The tree has no MLIR dependency so the
// fuzzer and the sanitizer builds can exercise the parser cheaply.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_FRONTEND_AST_H
#define ATTNC_FRONTEND_AST_H

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace attnc::ast {

/// 1-based position in a spec file: `file` indexes Module::files (0 is the
/// file given to the front end, the others were imported).
struct Loc {
  unsigned line = 1, col = 1;
  unsigned file = 0;
};

/// The three value types of the language: int is 64-bit signed, float is
/// 32-bit IEEE, bool. `Unknown` only before Sema has run.
enum class Type { Unknown, Int, Float, Bool };
const char *typeName(Type t);

/// Built-in names: per-element coordinates and sizes.
enum class IndexVar { B, H, HKV, Q, KV };            // b h hkv q kv
enum class SizeVar { B, HQ, HKV, LQ, LK, D, DV };   // B HQ HKV LQ LK D DV
const char *indexVarName(IndexVar v);
const char *sizeVarName(SizeVar v);

enum class UnaryOp { Neg, Not };
enum class BinaryOp {
  Add, Sub, Mul, Div, Mod, Lt, Le, Gt, Ge, Eq, Ne, And, Or,
  BitAnd, BitOr, BitXor, Shl, Shr // & | ^ << >> on ints (C's meaning)
};
const char *binaryOpSpelling(BinaryOp op);

/// Built-in functions. `ToFloat`/`ToInt` are the user-visible float(x)/int(x).
enum class Builtin {
  Exp, Log, Sqrt, Tanh, Sigmoid, Abs, Min, Max, Floor, Ceil, Sin, Cos, Pow,
  Clamp, Exp2, Log2, Round, Sign, ToFloat, ToInt
};
const char *builtinName(Builtin f);

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    IntLit,   // intValue
    FloatLit, // floatValue
    BoolLit,  // boolValue
    Index,    // indexVar            (b h hkv q kv)
    Size,     // sizeVar             (B HQ HKV LQ LK D DV)
    Score,    //                     (`score`, only in the score clause)
    Param,    // name                (a declared param)
    Read,     // name, operands=indices (element of a declared input)
    Unary,    // unaryOp, operands[0]
    Binary,   // binaryOp, operands[0..1]
    Select,   // operands = {cond, then, else}
    Call,     // builtin, operands = arguments
    Cast,     // operands[0] converted to `type` (inserted by Sema, and for
              // float(x)/int(x) calls after checking)
    Let,      // name, letIndex: a use of the block's lets[letIndex] (Sema)
  };
  Kind kind;
  Loc loc;
  Type type = Type::Unknown; // set by Sema
  int64_t intValue = 0;
  double floatValue = 0;
  bool boolValue = false;
  IndexVar indexVar = IndexVar::Q;
  SizeVar sizeVar = SizeVar::LQ;
  UnaryOp unaryOp = UnaryOp::Neg;
  BinaryOp binaryOp = BinaryOp::Add;
  Builtin builtin = Builtin::Exp;
  int letIndex = -1;
  std::string name; // Param/Read: the declared name; before Sema, any
                     // identifier is parsed as Kind::Param with its name and
                     // Sema re-kinds it (Index/Size/Score/Param) or reports it.
  std::vector<ExprPtr> operands;

  Expr(Kind k, Loc l) : kind(k), loc(l) {}
};

/// `param NAME: TYPE [= LITERAL]`
struct ParamDecl {
  std::string name;
  Loc loc;
  Type type = Type::Int;
  /// The value: the default, replaced by a -D override. Stored as the
  /// param's type (int -> intValue, float -> floatValue, bool -> boolValue).
  bool hasValue = false;
  int64_t intValue = 0;
  double floatValue = 0;
  bool boolValue = false;
};

/// One dimension of an input: a size name (B, HQ, ..., DV), an int param
/// name, or a positive integer literal.
struct InputDim {
  Loc loc;
  std::string symbol; // size or param name; empty for a literal
  int64_t extent = 0; // literal extent when symbol is empty
};

/// `input NAME: TYPE[DIM, ...]`
struct InputDecl {
  std::string name;
  Loc loc;
  Type elementType = Type::Float;
  std::vector<InputDim> dims;
};

/// `let NAME = EXPR`, or `mask NAME = EXPR` (a named mask: a bool let). A
/// use is a Let node; MLIRGen generates the expression at each use, so the
/// mask analysis sees through names.
struct LetDecl {
  std::string name;
  Loc loc;
  bool isMask = false;
  ExprPtr expr;
  bool readsScore = false; // set by Sema: usable only in the score clause
};

enum class NormalizeKind { Softmax, Sigmoid };

/// One `attention NAME { ... }` block. Absent clauses are filled with their
/// defaults by Sema (scale = 1 / sqrt(float(D)), score = score, mask = true,
/// normalize = softmax, sigmoid bias = -log(float(LK))), so after Sema every
/// expression pointer is non-null (bias only for sigmoid; softmaxSink only
/// when written).
struct AttentionDecl {
  std::string name;
  Loc loc;
  std::vector<ParamDecl> params;
  std::vector<InputDecl> inputs;
  std::vector<LetDecl> lets; // in source order
  ExprPtr scale, score, mask;
  NormalizeKind normalize = NormalizeKind::Softmax;
  Loc normalizeLoc;
  ExprPtr sigmoidBias; // only for sigmoid
  ExprPtr softmaxSink; // softmax(sink = EXPR), or null: a per-row logit
  /// softmax(dropout = EXPR), or null; Sema folds the constant into
  /// `dropout`, the probability in [0, 1) of dropping a pair's P.
  ExprPtr softmaxDropout;
  double dropout = 0;
  // Source positions of the clauses that were written (for messages).
  std::optional<Loc> scaleLoc, scoreLoc, maskLoc;
};

/// `import "PATH"` at the top of a file.
struct ImportDecl {
  std::string path; // as written, without the quotes
  Loc loc;          // the string literal
};

/// A spec file the module was read from: its name in messages and its
/// llvm::SourceMgr buffer.
struct SourceFile {
  std::string name;
  unsigned bufferId = 0;
  /// Declaration order across files: an imported file's declarations come
  /// before its importer's (files finish loading in this order; the main
  /// file is last).
  unsigned rank = 0;
};

struct Module {
  std::string fileName;
  std::vector<AttentionDecl> attentions;
  /// Declarations outside any block (param, input, let, mask NAME): shared
  /// by every block of the file and brought in by `import`. Only the
  /// params, inputs and lets of this decl are used.
  AttentionDecl shared;
  std::vector<ImportDecl> imports;
  /// files[loc.file] for every Loc of the tree; filled by the parser with
  /// the main file and by import resolution with the others.
  std::vector<SourceFile> files;
};

/// A deep copy of `e` (imported declarations are copied into each block).
ExprPtr cloneExpr(const Expr &e);

} // namespace attnc::ast

#endif // ATTNC_FRONTEND_AST_H
