//===- AttnOps.td - Operations of the attn dialect ----------*- tablegen -*-===//
//
// Spec level: `attn.spec` and the scalar leaf ops its regions are built from.
//
//===----------------------------------------------------------------------===//
#ifndef ATTN_OPS_TD
#define ATTN_OPS_TD

include "attnc/Dialect/AttnAttrs.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/IR/RegionKindInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

def Attn_Scalar : AnyTypeOf<[I64, F32, I1]>;

def Attn_SpecOp : Attn_Op<"spec", [Symbol, IsolatedFromAbove]> {
  let summary = "one attention variant at the spec level";
  let description = [{
    Holds the variant's params and inputs and four scalar regions, each one
    block without arguments that ends in `attn.yield`:
      - `scale` (f32): the logit scale; `score` is `scale * dot(q_row, k_row)`;
      - `score` (f32): the modified logit, reading the scaled one with
        `attn.score`;
      - `mask` (i1): whether the (q, kv) pair exists;
      - `bias` (f32): only for `sigmoid`, `p = sigmoid(score + bias)`;
      - `sink` (f32): only for `softmax`, optional: a per-row logit that
        joins the row's max and sum and has no value row (GPT-OSS's
        learnable sinks). It may not read `kv` or `attn.score`.

    `dropout(p)`, only for `softmax`: attention dropout with probability p
    in [0, 1). A call that asks for it (with a seed and an offset) drops
    pair (b, h, q, kv)'s P when Philox4x32-10 says so
    (runtime/include/attnc/Runtime/Dropout.h), and scales the kept ones by
    1 / (1 - p); the row's max, sum and lse stay those of the undropped P.
    A call without a seed computes plain softmax (inference).

    `attn-derive-backward` adds the reverse-mode derivatives of the regions
    that carry gradient (attn-derive-backward in Passes.td), each a copy of
    its primal region's computation followed by the adjoint sweep:
      - `score_grad` (yields f32): with `attn.adjoint` = dL/dz (z the score
        region's value), yields dL/ds (s = `attn.score`);
      - `scale_grad` (yields nothing): with `attn.adjoint` = dL/dscale at
        this pair; only when the scale region reads a float input;
      - `bias_grad` (yields nothing): with `attn.adjoint` = dL/dbias; only
        for a sigmoid bias that reads a float input;
      - `sink_grad` (yields nothing): with `attn.adjoint` = dL/dsink of a
        row; only for a sink that reads a float input.
    In all three, `attn.accumulate %r, %g` adds %g to the gradient of the
    float input element that the `attn.read` %r reads. `mask_schedule_columns`
    is the mask's formula with the roles of q and kv exchanged (the column
    view: per key tile, the query tiles it meets), from attn-mask-analysis.

    ```mlir
    attn.spec @causal normalize(softmax) scale {
      ...
      attn.yield %s : f32
    } score {
      %0 = attn.score
      attn.yield %0 : f32
    } mask {
      %q = attn.index q
      %kv = attn.index kv
      %0 = arith.cmpi sge, %q, %kv : i64
      attn.yield %0 : i1
    }
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name,
                       Attn_NormalizeKindAttr:$normalize,
                       OptionalAttr<TypedArrayAttrBase<Attn_ParamAttr,
                           "param declarations">>:$params,
                       OptionalAttr<TypedArrayAttrBase<Attn_InputAttr,
                           "input declarations">>:$inputs,
                       OptionalAttr<Attn_MaskAttr>:$mask_schedule,
                       OptionalAttr<Attn_MaskAttr>:$mask_schedule_columns,
                       OptionalAttr<F64Attr>:$dropout);
  let regions = (region SizedRegion<1>:$scale, SizedRegion<1>:$score,
                        SizedRegion<1>:$mask, AnyRegion:$bias,
                        AnyRegion:$sink,
                        AnyRegion:$score_grad, AnyRegion:$scale_grad,
                        AnyRegion:$bias_grad, AnyRegion:$sink_grad);
  let assemblyFormat = [{
    $sym_name `normalize` `(` custom<Keyword>($normalize) `)`
    (`dropout` `(` $dropout^ `)`)? (`params` $params^)? (`inputs` $inputs^)? attr-dict-with-keyword
    `scale` $scale `score` $score `mask` $mask (`bias` $bias^)?
    (`sink` $sink^)?
    (`score_grad` $score_grad^)? (`scale_grad` $scale_grad^)?
    (`bias_grad` $bias_grad^)? (`sink_grad` $sink_grad^)?
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The declaration of param / input `name`, or null.
    ParamAttr lookupParam(::llvm::StringRef name);
    InputAttr lookupInput(::llvm::StringRef name);
    /// The value yielded by a region.
    static ::mlir::Value getYielded(::mlir::Region &region);
    /// Whether `region` is score_grad, scale_grad, bias_grad or sink_grad.
    bool isGradRegion(::mlir::Region *region);
    /// Whether the scale region reads neither a coordinate nor an input, so
    /// that a kernel may evaluate it once per call.
    bool isScaleUniform();
  }];
}

def Attn_FlashOp : Attn_Op<"flash", [IsolatedFromAbove, SymbolTable, SingleBlock,
                                     NoTerminator]> {
  let summary = "one attention variant in the tiled flash form";
  let description = [{
    The level between a spec and a back end (the output of `attn-tile`, the
    input of `attn-lower-cpu` and of the CUDA emitter). Its body is the
    analysed `attn.spec` (regions and `mask_schedule`); its attributes are
    the tiling decisions every back end follows:

      for each task (b, h, query tile of `tile_q` rows):
        m = -inf, l = 0, acc = 0
        for each key tile of `tile_k` keys that mask_schedule keeps:
          S = scale * Q K^T, then the score region       (per element)
          if the tile is PARTIAL and `mask_on_partial`:  S = -inf where !mask
          softmax: online update of m, l, acc += P V;  sigmoid: acc += P V
        softmax with a sink s(b, h, q), in the call whose key window
        starts at key 0 (so split keys count it once):
          m' = max(m, s), l = l e^(m - m') + e^(s - m'), acc *= e^(m - m')
        out = acc / l (softmax), lse = m + log l

    - `tiles(Q, K)`: query rows and keys per tile;
    - `storage(T)`: the element type of q, k, v and out (f32, f16, bf16);
    - `grid_patch [width, rows, cols]`: query tiles are 2-D patches of a
      grid mask with gathered keys (TileGrid.cpp) instead of row ranges;
    - `scale_per_call`: the scale region is evaluated once per call;
    - `mask_on_partial`: PARTIAL tiles evaluate the mask region (absent when
      the schedule decides every pair: `always`, `never`);
    - `prepass(n)`: the number of ids_eq atoms, whose key-side id ranges a
      pre-pass computes per key tile.

    ```mlir
    attn.flash tiles(128, 128) storage(bf16) scale_per_call mask_on_partial prepass(0) {
      attn.spec @causal normalize(softmax) attributes {mask_schedule = ...} ...
    }
    ```
  }];
  let arguments = (ins I64Attr:$tile_q, I64Attr:$tile_k, TypeAttr:$storage,
                       OptionalAttr<DenseI64ArrayAttr>:$grid_patch,
                       UnitAttr:$scale_per_call, UnitAttr:$mask_on_partial,
                       I64Attr:$prepass);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    `tiles` `(` $tile_q `,` $tile_k `)` `storage` `(` $storage `)`
    (`grid_patch` $grid_patch^)? (`scale_per_call` $scale_per_call^)?
    (`mask_on_partial` $mask_on_partial^)? `prepass` `(` $prepass `)`
    attr-dict-with-keyword $body
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The analysed spec the body holds.
    SpecOp getSpec();
    /// Builds the flash form of `spec` (moved into the body) with the
    /// derived attributes (scale_per_call, mask_on_partial, prepass).
    static FlashOp wrap(::mlir::OpBuilder &b, SpecOp spec, int64_t tileQ,
                          int64_t tileK, ::mlir::Type storage,
                          ::mlir::DenseI64ArrayAttr gridPatch);
    /// Whether one CPU task may hold the rows of several query heads of a
    /// KV group (KernelABI.h, ATTNC_META_ROW_HEADS): no grid patch, and a
    /// mask that does not read `h` (its tiles are classified per task;
    /// the score, scale and bias see each row's own head).
    bool packsQueryHeads();
    /// Whether the CPU kernel may read a paged KV cache through its page
    /// table (KernelABI.h, ATTNC_META_PAGE_SIZE): every kernel but one with
    /// a grid patch, whose keys are gathered by index.
    bool readsPagedKeys() { return !getGridPatch(); }
  }];
}

def Attn_YieldOp : Attn_Op<"yield", [Pure, Terminator, ReturnLike,
                                     HasParent<"SpecOp">]> {
  let summary = "yields the scalar a spec region computes";
  let description = [{
    Every primal region and `score_grad` yield one scalar; `scale_grad` and
    `bias_grad` (whose results are their `attn.accumulate`s) yield none.
  }];
  let arguments = (ins Optional<Attn_Scalar>:$value);
  let assemblyFormat = "($value^ `:` type($value))? attr-dict";
}

def Attn_IndexOp : Attn_Op<"index", [Pure]> {
  let summary = "an element coordinate: b, h, hkv, q or kv";
  let description = [{
    `hkv` is the key/value head that query head `h` reads,
    `h / (HQ / HKV)`.
  }];
  let arguments = (ins Attn_IndexVarAttr:$var);
  let results = (outs I64:$result);
  let assemblyFormat = "custom<Keyword>($var) attr-dict";
}

def Attn_DimOp : Attn_Op<"dim", [Pure]> {
  let summary = "a problem size: B, HQ, HKV, LQ, LK, D or DV";
  let arguments = (ins Attn_SizeVarAttr:$var);
  let results = (outs I64:$result);
  let assemblyFormat = "custom<Keyword>($var) attr-dict";
}

def Attn_ParamOp : Attn_Op<"param", [Pure]> {
  let summary = "reads a param of the enclosing spec";
  let description = [{
    Folds to the param's value once it has one, so `-canonicalize` turns
    params into constants.
  }];
  let arguments = (ins StrAttr:$name);
  let results = (outs Attn_Scalar:$result);
  let assemblyFormat = "$name attr-dict `:` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Attn_ScoreOp : Attn_Op<"score", [Pure]> {
  let summary = "the scaled logit scale * dot(q_row, k_row)";
  let description = "Only allowed in the `score` region.";
  let results = (outs F32:$result);
  let assemblyFormat = "attr-dict";
  let hasVerifier = 1;
}

def Attn_ReadOp : Attn_Op<"read", [Pure]> {
  let summary = "reads one element of an input tensor";
  let description = [{
    `attn.read "slopes"[%h] : f32`. Indices are i64, one per dimension. An
    index that cannot be proven in range is checked by the lowering; an
    out-of-range read is a reported error.
  }];
  let arguments = (ins StrAttr:$input, Variadic<I64>:$indices);
  let results = (outs Attn_Scalar:$result);
  let assemblyFormat = "$input `[` $indices `]` attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Attn_AdjointOp : Attn_Op<"adjoint", [Pure]> {
  let summary = "the gradient of the loss with respect to the primal value";
  let description = [{
    Only in the gradient regions (`score_grad`, `scale_grad`, `bias_grad`):
    dL/dz for the value z that the region's primal computes at this pair.
  }];
  let results = (outs F32:$result);
  let assemblyFormat = "attr-dict";
  let hasVerifier = 1;
}

def Attn_AccumulateOp : Attn_Op<"accumulate",
                                [MemoryEffects<[MemRead, MemWrite]>]> {
  let summary = "adds to the gradient of the input element a read reads";
  let description = [{
    `attn.accumulate %r, %g : f32`, with %r an `attn.read` of a float input
    in the same gradient region: grad[input][indices of %r] += %g. It runs
    exactly when %r is evaluated (the evaluation rule), so an accumulate on
    an arm of `?:` that is not chosen adds nothing.
  }];
  let arguments = (ins F32:$element, F32:$value);
  let assemblyFormat = "$element `,` $value attr-dict `:` type($value)";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// The attn.read whose element %element is, or null.
    ReadOp getRead();
  }];
}

def Attn_FloorModOp : Attn_Op<"floormod", [Pure, SameOperandsAndResultType]> {
  let summary = "integer modulo with the sign of the divisor (floor modulo)";
  let description = [{
    `a - b * floor(a / b)`, as Python's and PyTorch's `%`. Companion of
    `arith.floordivsi`, which the language's int `/` lowers to.
  }];
  let arguments = (ins I64:$lhs, I64:$rhs);
  let results = (outs I64:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict";
  let hasFolder = 1;
}

#endif // ATTN_OPS_TD
