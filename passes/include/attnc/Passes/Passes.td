//===- Passes.td - Passes on attn IR ------------------------*- tablegen -*-===//
//
// The passes from the analysed spec to the tiled flash form and its CPU
// loops; attnc::buildPipeline (Pipeline.h) runs them in order.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_PASSES_TD
#define ATTNC_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnBindParamsPass : Pass<"attn-bind-params", "::mlir::ModuleOp"> {
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

def AttnCanonicalizePass : Pass<"attn-canonicalize", "::mlir::ModuleOp"> {
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

def AttnDeriveBackwardPass : Pass<"attn-derive-backward", "::mlir::ModuleOp"> {
  let summary = "Differentiate each spec's regions for the backward pass";
  let description = [{
    Adds to every attn.spec the reverse-mode derivatives of the regions that
    carry gradient (AttnOps.td): `score_grad` (dL/ds from dL/dz, with
    `attn.accumulate` into the float inputs the score reads), `scale_grad`
    when the scale region reads a float input, `bias_grad` for a sigmoid
    bias that reads one, and `sink_grad` for a softmax sink that reads one.
    Each is the primal region's computation followed by
    the adjoint sweep; rules: + - * / fmod, exp, log, sqrt, tanh, sin, cos,
    pow in both arguments, abs (0 at 0), min/max and clamp (the selected
    operand; a tie selects the first), sigmoid as s sigmoid(-x), `?:` (the chosen
    arm); floor, ceil and int-to-float conversions have zero derivative and
    masks none. A value used only on an arm of `?:` sends its contributions
    through select(arm condition, x, 0), so an arm that is not taken can
    neither be evaluated nor turn the gradient into NaN. Run it after
    `attn-canonicalize` so params are constants; re-running it replaces the
    gradient regions.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect"];
}

def AttnMaskAnalysisPass : Pass<"attn-mask-analysis", "::mlir::ModuleOp"> {
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

    The column view, for the backward pass that walks the query tiles of each
    key tile, is the same analysis of the transposed mask (q <-> kv and
    LQ <-> LK exchanged in a copy of the mask region), stored as
    `mask_schedule_columns`: its `q` is the key position, its `kv` the query
    position, LQ the key length and LK the query length (causal `q >= kv`
    gives `kv_ge "q"`: the queries of keys [k0, k1] start at k0). Evaluated
    with the sizes exchanged, it gives per key tile the same O(1) query-tile
    hull and EMPTY / FULL / PARTIAL kinds (`computeColumnSchedule`).
  }];
}

def AttnChooseTilesPass : Pass<"attn-choose-tiles", "::mlir::ModuleOp"> {
  let summary = "Choose each spec's tile sizes for a target (attn.tiles)";
  let description = [{
    Sets `attn.tiles = array<i64: Q, K>` on every attn.spec that has none;
    `attn-tile` reads nothing else. The CUDA targets take the tiles their
    kernel templates are written for (sm_80: 64 x 64, sm_90a: 128 x 128).
    The CPU takes tile-q / tile-k where they are set and the rest from the
    tuned table (TileChoice.h) for the storage type, the head dim and the
    mask's class: a grid mask that attn-tile would tile with 2-D patches
    at the table's grid tiles gets those. Run it after attn-mask-analysis.
  }];
  let options = [
    Option<"target", "target", "std::string", "\"cpu\"",
           "cpu, sm_80 or sm_90a">,
    Option<"storage", "storage", "std::string", "\"f32\"",
           "element type of q, k, v and out: f32, f16 or bf16">,
    Option<"headDim", "head-dim", "int64_t", "0",
           "the head dim the kernel will mostly run with (0: unknown)">,
    Option<"tileQ", "tile-q", "int64_t", "0",
           "query rows per tile (cpu; 0: the tuned choice)">,
    Option<"tileK", "tile-k", "int64_t", "0",
           "keys per tile (cpu; 0: the tuned choice)">
  ];
}

def AttnTilePass : Pass<"attn-tile", "::mlir::ModuleOp"> {
  let summary = "Rewrite analysed specs into the tiled flash form (attn.flash)";
  let description = [{
    Wraps every attn.spec (after attn-mask-analysis and attn-choose-tiles)
    in an `attn.flash` op: the tiled, fused flash loop nest that every back
    end implements, with its decisions as attributes (AttnOps.td): the
    tile sizes from `attn.tiles`, the storage type, 2-D grid patches for a
    grid mask (when `grid-patches` is set and the mask has a grid view),
    whether the scale is evaluated once per call, whether PARTIAL tiles
    need the mask region, and the number of ids pre-pass atoms.
    `attn-lower-cpu` turns it into loops; the CUDA emitter into a .cu.
  }];
  let options = [
    Option<"storage", "storage", "std::string", "\"f32\"",
           "element type of q, k, v and out: f32, f16 or bf16">,
    Option<"gridPatches", "grid-patches", "bool", "true",
           "tile grid masks with 2-D query patches and gathered keys (the "
           "CPU back end; the CUDA kernels take row tiles)">
  ];
}

def AttnLowerCpuPass : Pass<"attn-lower-cpu", "::mlir::ModuleOp"> {
  let summary = "Lower attn.flash ops to the CPU loop nest (scf, memref)";
  let description = [{
    Replaces every attn.flash by a func.func `@attn_<name>`: a loop over a
    range of tasks (b, h, query tile), the key tiles the mask schedule
    keeps, S = Q K^T, the score region, the mask region on PARTIAL tiles
    only, the online softmax (or sigmoid) update, O += P V and the final
    rescale and lse; and, when the schedule has ids_eq atoms, its pre-pass
    `@attn_<name>__prepass`. Arguments follow the runtime's kernel ABI
    (KernelABI.h): flat strided buffers for q, k, v, out, lse, the tile
    trace and the inputs, a meta array of sizes and strides, a status buffer
    and the task range. Input reads are bounds-checked; an out-of-range read
    or an integer division by zero stores an error code in the status buffer.
  }];
  let options = [
    Option<"microkernels", "microkernels", "bool", "false",
           "compute Q K^T, the softmax update and P V with calls to the "
           "runtime's register-tiled microkernels (attnc_uk_*) instead "
           "of scalar loops">
  ];
  let dependentDialects = ["::mlir::func::FuncDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::LLVM::LLVMDialect"];
}

def AttnExpandMathPass : Pass<"attn-expand-math", "::mlir::ModuleOp"> {
  let summary = "Replace float32 math.exp and math.tanh by arith code";
  let description = [{
    MLIR lowers math.exp and math.tanh to calls to libm's expf and tanhf,
    which LLVM neither inlines nor vectorises: one call per (q, kv) pair
    for a score such as softcap's `cap * tanh(score / cap)`. This pass,
    run on `attn-lower-cpu`'s output, replaces every float32 one:
      exp(x)  = p(r) * 2^n, n = roundeven(x log2 e), r = x - n ln 2
                (Cephes' degree-6 polynomial; 2^n from exponent bits, in two
                halves so that results down to the denormals and up to
                overflow are libm's to an ulp or two; NaN, +-inf kept);
      tanh(x) = MLIR's rational approximation (a few ulp; +-1 beyond
                |x| = 7.9, where tanh(x) is within 2.2e-7 of +-1).
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect"];
}

#endif // ATTNC_PASSES_TD
