//===- AttnAttrs.td - Attributes of the attn dialect --------*- tablegen -*-===//
//
// Enums for coordinates, sizes and normalisations; declarations of params and
// input tensors; and the mask formula that the mask analysis attaches.
//
//===----------------------------------------------------------------------===//
#ifndef ATTN_ATTRS_TD
#define ATTN_ATTRS_TD

include "attnc/Dialect/AttnDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Attn_NormalizeKind : I32EnumAttr<"NormalizeKind", "row normalisation", [
    I32EnumAttrCase<"softmax", 0>,
    I32EnumAttrCase<"sigmoid", 1>]> {
  let cppNamespace = "::mlir::attn";
  let genSpecializedAttr = 0;
}
def Attn_NormalizeKindAttr
    : EnumAttr<Attn_Dialect, Attn_NormalizeKind, "normalize"> {
  let assemblyFormat = "$value";
}

// The per-element coordinates: batch, query head, key/value head, query and
// key position.
def Attn_IndexVar : I32EnumAttr<"IndexVar", "element coordinate", [
    I32EnumAttrCase<"b", 0>, I32EnumAttrCase<"h", 1>,
    I32EnumAttrCase<"hkv", 2>, I32EnumAttrCase<"q", 3>,
    I32EnumAttrCase<"kv", 4>]> {
  let cppNamespace = "::mlir::attn";
  let genSpecializedAttr = 0;
}
def Attn_IndexVarAttr : EnumAttr<Attn_Dialect, Attn_IndexVar, "index_var"> {
  let assemblyFormat = "$value";
}

// The problem sizes, known at run time.
def Attn_SizeVar : I32EnumAttr<"SizeVar", "problem size", [
    I32EnumAttrCase<"B", 0>, I32EnumAttrCase<"HQ", 1>,
    I32EnumAttrCase<"HKV", 2>, I32EnumAttrCase<"LQ", 3>,
    I32EnumAttrCase<"LK", 4>, I32EnumAttrCase<"D", 5>,
    I32EnumAttrCase<"DV", 6>]> {
  let cppNamespace = "::mlir::attn";
  let genSpecializedAttr = 0;
}
def Attn_SizeVarAttr : EnumAttr<Attn_Dialect, Attn_SizeVar, "size_var"> {
  let assemblyFormat = "$value";
}

// Node kinds of a mask formula (see MaskAttr).
def Attn_MaskKind : I32EnumAttr<"MaskKind", "mask formula node", [
    I32EnumAttrCase<"always", 0>, I32EnumAttrCase<"never", 1>,
    I32EnumAttrCase<"opaque", 2>, I32EnumAttrCase<"all_of", 3>,
    I32EnumAttrCase<"any_of", 4>, I32EnumAttrCase<"kv_ge", 5>,
    I32EnumAttrCase<"kv_le", 6>, I32EnumAttrCase<"q_pred", 7>,
    I32EnumAttrCase<"ids_eq", 8>]> {
  let cppNamespace = "::mlir::attn";
  let genSpecializedAttr = 0;
}

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

class Attn_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Attn_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

def Attn_ParamAttr : Attn_Attr<"Param", "param"> {
  let summary = "a compile-time param of a variant: name, type, value";
  let description = [{
    `#attn.param<"window" : i64 = 256>`. The type is i64 (int), f32 (float)
    or i1 (bool). A param without a value must be bound (`attnc -D`, or the
    `attn-bind-params` pass) before lowering.
  }];
  let parameters = (ins "::mlir::StringAttr":$name, "::mlir::Type":$type,
                        OptionalParameter<"::mlir::TypedAttr">:$value);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
}

def Attn_InputAttr : Attn_Attr<"Input", "input"> {
  let summary = "a run-time input tensor that expressions may read";
  let description = [{
    `#attn.input<"slopes" : f32 [HQ]>`. Each dimension is a size name
    (B, HQ, HKV, LQ, LK, D, DV), the name of an int param, or a positive
    integer. Element types: i64, f32, i1.
  }];
  let parameters = (ins "::mlir::StringAttr":$name,
                        "::mlir::Type":$elementType,
                        "::mlir::ArrayAttr":$shape);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    int64_t getRank() const { return getShape().size(); }
  }];
}

def Attn_MaskAttr : Attn_Attr<"Mask", "mask"> {
  let summary = "the mask as a formula of key-position bounds";
  let description = [{
    The result of the mask analysis. A node is `always`, `never`, `opaque`
    (not analysable: decided per element), `all_of(...)`, `any_of(...)`, or
    an atom whose bound is an affine expression of the query position `q`
    and the symbols `b, h, hkv, B, HQ, HKV, LQ, LK, D, DV`:
      `kv_ge "EXPR"` (kv >= EXPR), `kv_le "EXPR"` (kv <= EXPR) and
      `q_pred "EXPR"` (EXPR >= 0, a test of q alone).
    An atom's bound may also name int input elements indexed by b, h or hkv
    (a per-sequence length, a per-head window): `kv_le "r0 - 1" reads(
    "kv_len"[b])`, or also by q (a length per query row): `kv_le "r0 - 1"
    reads("len"[q])`. r0, r1, ... are symbols 10, 11, ... of the bound map,
    and the atom's terms are their reads [name, coordinate names...];
    kernels load them once per row block, and a read at q as its min and max
    over the block's rows (a scan, O(rows)).
    One atom reads inputs: `ids_eq "X"[i..] "Y"[j..]` is X[i..] == Y[j..]
    for int inputs X read at q (and b, h, hkv) and Y read at kv (and b, h,
    hkv), as in document masks; its terms are two arrays [name, coordinate
    names...]. Kernels classify its tiles from per-tile min/max of X and Y
    (a generated pre-pass over Y, O(LK) per head).
    For a block of query rows [q0, q1] each node gives two sets of key
    positions in O(1): the keys some row may keep, and the keys every row
    keeps; a key tile is EMPTY, FULL or PARTIAL from those.
  }];
  let parameters = (ins "MaskKind":$kind,
                        ArrayRefParameter<"::mlir::Attribute">:$terms,
                        "::mlir::AffineMap":$bound);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Dims and symbols of every bound map.
    static constexpr unsigned kNumDims = 1;
    static constexpr unsigned kNumSymbols = 10;
    static MaskAttr getLeaf(::mlir::MLIRContext *ctx, MaskKind kind);
    static MaskAttr getAtom(::mlir::MLIRContext *ctx, MaskKind kind,
                            ::mlir::AffineExpr bound,
                            ::llvm::ArrayRef<::mlir::Attribute> reads = {});
    static MaskAttr getCombination(::mlir::MLIRContext *ctx, MaskKind kind,
                                   ::llvm::ArrayRef<::mlir::Attribute> terms);
    ::mlir::AffineExpr getBoundExpr() const {
      return getBound() ? getBound().getResult(0) : ::mlir::AffineExpr();
    }
  }];
}

#endif // ATTN_ATTRS_TD
