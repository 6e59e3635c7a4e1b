//===- Passes.td - Passes on attn IR ------------------------*- tablegen -*-===//
//
// Spec-level passes.
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
    as the param's type (int, float, bool), is an error. Run a canonicalisation
    afterwards (`attn-canonicalize`) to fold the params into constants.
  }];
  let options = [
    ListOption<"defines", "defines", "std::string",
               "NAME=VALUE overrides, comma separated">
  ];
}

def AttnCanonicalize : Pass<"attn-canonicalize", "::mlir::ModuleOp"> {
  let summary = "Fold params and constants and simplify predicates in specs";
  let description = [{
    Runs, inside every attn.spec, the folders and canonicalisation patterns
    of the attn, arith and math ops: params with values fold to constants
    (so run `attn-bind-params` first to apply -D), constant expressions
    fold (floor division and floor modulo with Python's signs), and
    predicates simplify (`!(a < b)` becomes `a >= b`, `x && true` becomes
    `x`, comparisons of constants fold). Unlike `-canonicalize` it touches
    nothing outside the specs.
  }];
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
    row, PARTIAL otherwise. Run `attn-canonicalize` first so params are constants.
  }];
}

def AttnTile : Pass<"attn-tile", "::mlir::ModuleOp"> {
  let summary = "Rewrite specs into the tiled, fused flash loop nest";
  let description = [{
    Replaces every attn.spec (after attn-mask-analysis) by a func.func
    `@attn_<name>` in the mid-level flash form: a loop over a range of tasks
    (b, h, query tile), the key tiles the mask schedule keeps, S = Q K^T,
    the score region, the mask region on PARTIAL tiles only, the online
    softmax (or sigmoid) update, O += P V and the final rescale and lse.
    Arguments follow the runtime's kernel ABI (KernelABI.h): flat strided
    buffers for q, k, v, out, lse, the tile trace and the inputs, a meta
    array of sizes and strides, a status buffer and the task range. Input
    reads are bounds-checked; an out-of-range read or an integer division
    by zero stores an error code in the status buffer. A spec that carries
    `attn.tiles = array<i64: Q, K>` is tiled with those sizes instead of
    tile-q and tile-k (a back end's per-spec choice).
  }];
  let options = [
    Option<"tileQ", "tile-q", "int64_t", "32", "query rows per tile">,
    Option<"tileK", "tile-k", "int64_t", "64", "keys per tile">,
    Option<"storage", "storage", "std::string", "\"f32\"",
           "element type of q, k, v and out: f32, f16 or bf16">,
    Option<"microkernels", "microkernels", "bool", "false",
           "compute Q K^T, the softmax update and P V with calls to the "
           "runtime's register-tiled microkernels (attnc_uk_*, CPU) instead "
           "of scalar loops">
  ];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::LLVM::LLVMDialect"];
}

#endif // ATTNC_PASSES_TD
