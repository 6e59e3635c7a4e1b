// RUN: %attn-opt %s --split-input-file --verify-diagnostics
// The #attn.mask parser bounds a formula's depth (256 levels), its size
// (4096 nodes) and each bound's operators (256), with a located error, so a
// huge attribute cannot overflow the stack. (A bound with 10^5 additions
// used to crash attn-opt in MLIR's recursive affine parser.)

// Generated formulas: 10^5 atoms, 10^5 levels, a 10^5-term bound; the
// largest accepted ones still parse, print and round-trip.
// RUN: %python %S/Inputs/gen_mask.py flat 100000 > %t.flat.mlir
// RUN: not %attn-opt %t.flat.mlir 2>&1 | FileCheck %s --check-prefix=FLAT
// FLAT: error: mask formula has more than 4096 terms
// RUN: %python %S/Inputs/gen_mask.py nest 100000 > %t.nest.mlir
// RUN: not %attn-opt %t.nest.mlir 2>&1 | FileCheck %s --check-prefix=NEST
// NEST: error: mask formula is nested too deeply (more than 256 levels)
// RUN: %python %S/Inputs/gen_mask.py bound 100000 > %t.bound.mlir
// RUN: not %attn-opt %t.bound.mlir 2>&1 | FileCheck %s --check-prefix=BOUND
// BOUND: error: mask bound has more than 256 operators
// RUN: %python %S/Inputs/gen_mask.py flat 4095 > %t.flat-ok.mlir
// RUN: %attn-opt %t.flat-ok.mlir | %attn-opt | FileCheck %s --check-prefix=FLAT-OK
// FLAT-OK: mask_schedule = #attn.mask<any_of(kv_le "q", kv_le "q - 1",
// FLAT-OK-SAME: kv_le "q - 4094")>
// RUN: %python %S/Inputs/gen_mask.py nest 255 > %t.nest-ok.mlir
// RUN: %attn-opt %t.nest-ok.mlir -o %t.nest-ok.1.mlir
// RUN: %attn-opt %t.nest-ok.1.mlir -o %t.nest-ok.2.mlir
// RUN: diff %t.nest-ok.1.mlir %t.nest-ok.2.mlir
// RUN: FileCheck %s --check-prefix=NEST-OK < %t.nest-ok.1.mlir
// NEST-OK: mask_schedule = #attn.mask<any_of(never, any_of(never,
// NEST-OK-SAME: any_of(never, always))))
// RUN: %python %S/Inputs/gen_mask.py bound 256 > %t.bound-ok.mlir
// RUN: %attn-opt %t.bound-ok.mlir | FileCheck %s --check-prefix=BOUND-OK
// BOUND-OK: mask_schedule = #attn.mask<kv_le "q + 256">

attn.spec @w normalize(softmax) attributes {
  // expected-error @+1 {{mask bound has more than 256 operators}}
  mask_schedule = #attn.mask<kv_le "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((q))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))">
} scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}

// -----

attn.spec @w normalize(softmax) attributes {
  // expected-error @+1 {{mask bound has more than 256 operators}}
  mask_schedule = #attn.mask<kv_ge "q - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK - LK floordiv 2">
} scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}
