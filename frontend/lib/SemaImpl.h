//===- SemaImpl.h - The checker of Sema.cpp and SemaExpr.cpp ----*- C++ -*-===//
//
// Private to frontend/lib: the checker class (Sema.cpp: blocks, declarations,
// lets and clauses; SemaExpr.cpp: expressions) and its small helpers.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_FRONTEND_LIB_SEMAIMPL_H
#define ATTNC_FRONTEND_LIB_SEMAIMPL_H

#include "attnc/Frontend/Sema.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/Twine.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>
#include <string>

namespace attnc::sema {

using ast::Expr;
using ast::ExprPtr;
using ast::Type;
using llvm::StringRef;
using llvm::Twine;

inline unsigned builtinArity(ast::Builtin f) {
  using F = ast::Builtin;
  return f == F::Clamp ? 3 : f == F::Min || f == F::Max || f == F::Pow ? 2 : 1;
}

inline bool isNumeric(Type t) { return t == Type::Int || t == Type::Float; }


class SemaImpl {
public:
  SemaImpl(llvm::SourceMgr &sm, unsigned bufferId, llvm::raw_ostream &errs)
      : sm(sm), bufferId(bufferId), errs(errs) {}

  bool run(ast::Module &m, const FrontendOptions &options);

private:
  llvm::SMLoc smLoc(ast::Loc loc) const {
    unsigned id = loc.file < module->files.size()
                      ? module->files[loc.file].bufferId
                      : bufferId;
    return sm.FindLocForLineAndColumn(id, loc.line, loc.col);
  }
  bool fail(ast::Loc loc, const Twine &msg) {
    sm.PrintMessage(errs, smLoc(loc), llvm::SourceMgr::DK_Error, msg);
    return false;
  }
  /// An error at `loc` and a note at `other` (e.g. the first declaration).
  bool failWithNote(ast::Loc loc, const Twine &msg, ast::Loc other,
                    const Twine &note) {
    fail(loc, msg);
    sm.PrintMessage(errs, smLoc(other), llvm::SourceMgr::DK_Note, note);
    return false;
  }
  /// Declaration order across files: imported files first (their rank),
  /// then line and column.
  bool before(ast::Loc a, ast::Loc b) const {
    unsigned ra = rank(a), rb = rank(b);
    if (ra != rb)
      return ra < rb;
    return a.line < b.line || (a.line == b.line && a.col < b.col);
  }
  unsigned rank(ast::Loc l) const {
    return l.file < module->files.size() ? module->files[l.file].rank : 0;
  }
  /// "LINE:COL", with the file name when it is not the main file.
  std::string where(ast::Loc l) const {
    std::string at = std::to_string(l.line) + ":" + std::to_string(l.col);
    if (l.file != 0 && l.file < module->files.size())
      return module->files[l.file].name + ":" + at;
    return at;
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
  bool checkLets();
  bool checkSink(ExprPtr &slot);
  bool checkDropout();
  bool checkLetUse(Expr &e, int index);
  bool checkBitwise(Expr &e, const std::string &op, Type l, Type r);
  std::optional<int64_t> constantInt(const Expr &e);
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
  int findLet(StringRef name) {
    for (auto [i, l] : llvm::enumerate(blk->lets))
      if (l.name == name)
        return int(i);
    return -1;
  }
  bool isValueName(StringRef name) {
    return lookupIndexVar(name) || lookupSizeVar(name) || name == "score" ||
           findParam(name) || findInput(name) || findLet(name) >= 0;
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
  const ast::Module *module = nullptr;
  llvm::raw_ostream &errs;
  ast::AttentionDecl *blk = nullptr;
  bool inScore = false;
  bool readsScore = false; // the expression being checked reads score
  bool inLet = false;      // checking a let: score is allowed, and noted
  int checkingLet = -1;    // which one
};

/// Wraps an int expression in a Cast to float; leaves others alone.
inline void promote(ExprPtr &slot) {
  if (slot->type != Type::Int)
    return;
  auto cast = std::make_unique<Expr>(Expr::Kind::Cast, slot->loc);
  cast->type = Type::Float;
  cast->operands.push_back(std::move(slot));
  slot = std::move(cast);
}

} // namespace attnc::sema

#endif // ATTNC_FRONTEND_LIB_SEMAIMPL_H
