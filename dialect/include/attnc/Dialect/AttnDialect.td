//===- AttnDialect.td - The attn dialect --------------------*- tablegen -*-===//
//
// The dialect that holds attention variants. Spec level: one `attn.spec` op
// per variant, whose scalar regions (scale, score, mask, bias, sink) say how a logit
// is modified and which (query, key) pairs exist.
//
//===----------------------------------------------------------------------===//
#ifndef ATTN_DIALECT_TD
#define ATTN_DIALECT_TD

include "mlir/IR/OpBase.td"

def Attn_Dialect : Dialect {
  let name = "attn";
  let cppNamespace = "::mlir::attn";
  let summary = "Attention variants: spec-level ops and their analyses";
  let description = [{
    An attention variant is an `attn.spec` op. Its regions compute, for one
    (batch b, query head h, query position q, key position kv) element, the
    scalar pieces of the variant: the logit scale, the modified score, whether
    the pair exists (mask) and, for sigmoid attention, the bias. Leaf ops read
    the coordinates (`attn.index`), the problem sizes (`attn.dim`), params
    (`attn.param`), input tensors (`attn.read`) and the scaled logit
    (`attn.score`); arithmetic comes from `arith` and `math`.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect"];
  let useDefaultAttributePrinterParser = 1;
  let hasConstantMaterializer = 1;
  let extraClassDeclaration = [{
    void registerAttributes();
  }];
}

class Attn_Op<string mnemonic, list<Trait> traits = []>
    : Op<Attn_Dialect, mnemonic, traits>;

#endif // ATTN_DIALECT_TD
