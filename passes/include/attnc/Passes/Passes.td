//===- Passes.td - Passes on attn IR ------------------------*- tablegen -*-===//
//
// Spec-level passes. Canonicalisation is MLIR's own `-canonicalize`, driven
// by the attn ops' folders (params fold to constants) and arith's patterns.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_PASSES_TD
#define ATTNC_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnBindParams : Pass<"attn-bind-params", "::mlir::ModuleOp"> {
  let summary = "Give params the values of NAME=VALUE overrides (attnc -D)";
  let description = [{
    Sets the value of every param named in `defines` in every attn.spec that
    declares it. A name that no spec declares, or a value that does not parse
    as the param's type (int, float, bool), is an error. Run `-canonicalize`
    afterwards to fold the params into constants.
  }];
  let options = [
    ListOption<"defines", "defines", "std::string",
               "NAME=VALUE overrides, comma separated">
  ];
}

def AttnMaskAnalysis : Pass<"attn-mask-analysis", "::mlir::ModuleOp"> {
  let summary = "Derive the tile schedule formula of each spec's mask";
  let description = [{
    Rewrites the mask region, symbolically, into a formula of key-position
    bounds (`#attn.mask`) and stores it as the spec's `mask_schedule`.

    Masks built from affine comparisons of q, kv, the sizes and bound params,
    with `&& || !`, `==`, floor division by constants, abs, min, max and
    clamp, become atoms `kv >= T(q)`, `kv <= T(q)` and `T(q) >= 0` with T
    affine in q: min/max are hoisted to the top of each comparison (where they
    become all_of/any_of) and floor divisions of kv are inverted
    (`x floordiv w >= t` iff `x >= w * t`). Anything else (input reads,
    modulo of kv, float comparisons, non-constant divisors) is `opaque`,
    which is sound: such pairs are decided per element.

    At run time, for a block of query rows [q0, q1], each atom gives in O(1)
    the keys some row keeps (`kv >= min T`) and the keys every row keeps
    (`kv >= max T`); all_of/any_of intersect/unite them. A key tile is EMPTY
    if no key of it may be kept, FULL if every key of it is kept by every
    row, PARTIAL otherwise. Run `-canonicalize` first so params are constants.
  }];
}

#endif // ATTNC_PASSES_TD
