//===- AST.cpp - Names of the .attn syntax tree's enums, and copies ---------===//
//
// Spellings of types, built-in names, operators and functions, as the
// language writes them; used by diagnostics, MLIRGen and tests. cloneExpr
// copies the shared declarations into each block (Import.cpp).
//
//===----------------------------------------------------------------------===//
#include "attnc/Frontend/AST.h"

using namespace attnc::ast;

const char *attnc::ast::typeName(Type t) {
  switch (t) {
  case Type::Unknown: return "unknown";
  case Type::Int: return "int";
  case Type::Float: return "float";
  case Type::Bool: return "bool";
  }
  return "?";
}

const char *attnc::ast::indexVarName(IndexVar v) {
  switch (v) {
  case IndexVar::B: return "b";
  case IndexVar::H: return "h";
  case IndexVar::HKV: return "hkv";
  case IndexVar::Q: return "q";
  case IndexVar::KV: return "kv";
  }
  return "?";
}

const char *attnc::ast::sizeVarName(SizeVar v) {
  switch (v) {
  case SizeVar::B: return "B";
  case SizeVar::HQ: return "HQ";
  case SizeVar::HKV: return "HKV";
  case SizeVar::LQ: return "LQ";
  case SizeVar::LK: return "LK";
  case SizeVar::D: return "D";
  case SizeVar::DV: return "DV";
  }
  return "?";
}

const char *attnc::ast::binaryOpSpelling(BinaryOp op) {
  switch (op) {
  case BinaryOp::Add: return "+";
  case BinaryOp::Sub: return "-";
  case BinaryOp::Mul: return "*";
  case BinaryOp::Div: return "/";
  case BinaryOp::Mod: return "%";
  case BinaryOp::Lt: return "<";
  case BinaryOp::Le: return "<=";
  case BinaryOp::Gt: return ">";
  case BinaryOp::Ge: return ">=";
  case BinaryOp::Eq: return "==";
  case BinaryOp::Ne: return "!=";
  case BinaryOp::And: return "&&";
  case BinaryOp::Or: return "||";
  case BinaryOp::BitAnd: return "&";
  case BinaryOp::BitOr: return "|";
  case BinaryOp::BitXor: return "^";
  case BinaryOp::Shl: return "<<";
  case BinaryOp::Shr: return ">>";
  }
  return "?";
}

const char *attnc::ast::builtinName(Builtin f) {
  switch (f) {
  case Builtin::Exp: return "exp";
  case Builtin::Log: return "log";
  case Builtin::Sqrt: return "sqrt";
  case Builtin::Tanh: return "tanh";
  case Builtin::Sigmoid: return "sigmoid";
  case Builtin::Abs: return "abs";
  case Builtin::Min: return "min";
  case Builtin::Max: return "max";
  case Builtin::Floor: return "floor";
  case Builtin::Ceil: return "ceil";
  case Builtin::Sin: return "sin";
  case Builtin::Cos: return "cos";
  case Builtin::Pow: return "pow";
  case Builtin::Clamp: return "clamp";
  case Builtin::Exp2: return "exp2";
  case Builtin::Log2: return "log2";
  case Builtin::Round: return "round";
  case Builtin::Sign: return "sign";
  case Builtin::ToFloat: return "float";
  case Builtin::ToInt: return "int";
  }
  return "?";
}

ExprPtr attnc::ast::cloneExpr(const Expr &e) {
  auto copy = std::make_unique<Expr>(e.kind, e.loc);
  copy->type = e.type;
  copy->intValue = e.intValue;
  copy->floatValue = e.floatValue;
  copy->boolValue = e.boolValue;
  copy->indexVar = e.indexVar;
  copy->sizeVar = e.sizeVar;
  copy->unaryOp = e.unaryOp;
  copy->binaryOp = e.binaryOp;
  copy->builtin = e.builtin;
  copy->letIndex = e.letIndex;
  copy->name = e.name;
  for (const ExprPtr &op : e.operands)
    copy->operands.push_back(cloneExpr(*op));
  return copy;
}
