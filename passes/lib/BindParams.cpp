//===- BindParams.cpp - Give params the values of NAME=VALUE overrides ----===//
//
// The IR-level twin of `attnc -D`: sets param values on attn.spec ops so
// that a later -canonicalize folds them into constants. Each define is split
// by the front end's splitDefine and its value read by parseParamValue, the
// rules of every `-D` (attnc, attn-bench, attn-demo, the C++ API).
//
//===----------------------------------------------------------------------===//
#include "attnc/Passes/Passes.h"

#include "attnc/Frontend/Frontend.h"
#include "attnc/Frontend/Sema.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringSet.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNBINDPARAMSPASS
#include "attnc/Passes/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

/// Parses `text` as a value of type `type` (i64, f32 or i1) with the front
/// end's rules for -D values.
static TypedAttr parseValue(Builder &b, Type type, StringRef text) {
  attnc::ast::ParamDecl decl;
  decl.type = type.isInteger(1)    ? attnc::ast::Type::Bool
              : type.isInteger(64) ? attnc::ast::Type::Int
                                   : attnc::ast::Type::Float;
  if (!attnc::parseParamValue(text, decl).empty())
    return {};
  if (type.isInteger(1))
    return b.getBoolAttr(decl.boolValue);
  if (type.isInteger(64))
    return b.getI64IntegerAttr(decl.intValue);
  return b.getF32FloatAttr(static_cast<float>(decl.floatValue));
}

namespace {
struct AttnBindParams
    : public mlir::attn::impl::AttnBindParamsPassBase<AttnBindParams> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    Builder b(module.getContext());
    llvm::StringSet<> seen;
    for (const std::string &define : defines) {
      std::pair<std::string, std::string> split;
      if (std::string why = attnc::splitDefine(define, split); !why.empty()) {
        module.emitError() << "define '" << define << "': " << why;
        return signalPassFailure();
      }
      StringRef name = split.first, value = split.second;
      if (!seen.insert(name).second) {
        // As for attnc -D (Sema): a second value would silently win.
        module.emitError() << "define " << define << ": param '" << name
                           << "' is given more than once";
        return signalPassFailure();
      }
      bool found = false;
      WalkResult r = module.walk([&](SpecOp spec) {
        ParamAttr decl = spec.lookupParam(name);
        if (!decl)
          return WalkResult::advance();
        found = true;
        TypedAttr v = parseValue(b, decl.getType(), value);
        if (!v) {
          spec.emitError() << "define " << define << ": param '" << name
                           << "' has type " << decl.getType()
                           << " and cannot take the value '" << value << "'";
          return WalkResult::interrupt();
        }
        SmallVector<Attribute> params(spec.getParamsAttr().begin(),
                                      spec.getParamsAttr().end());
        for (Attribute &p : params)
          if (cast<ParamAttr>(p).getName() == name)
            p = ParamAttr::get(b.getContext(), decl.getName(), decl.getType(),
                               v);
        spec.setParamsAttr(b.getArrayAttr(params));
        return WalkResult::advance();
      });
      if (r.wasInterrupted())
        return signalPassFailure();
      if (!found) {
        module.emitError() << "define " << define << ": no spec has a param '"
                           << name << "'";
        return signalPassFailure();
      }
    }
  }
};
} // namespace
