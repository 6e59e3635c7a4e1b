// RUN: %attn-opt %s --split-input-file --attn-canonicalize | FileCheck %s
// Canonicalisation of spec regions: params fold to their values, constants
// fold (including floor modulo), and predicates simplify.

// CHECK-LABEL: attn.spec @fold_params
// CHECK:       scale {
// CHECK-NEXT:    %[[CAP:.*]] = arith.constant 2.000000e+00 : f32
// CHECK-NEXT:    attn.yield %[[CAP]] : f32
// CHECK:       mask {
// CHECK-DAG:     %[[W:.*]] = arith.constant 128 : i64
// CHECK-DAG:     %[[Q:.*]] = attn.index q
// CHECK-NOT:     attn.param
// CHECK:         arith.subi
// CHECK:         arith.cmpi slt, %{{.*}}, %[[W]] : i64
attn.spec @fold_params normalize(softmax)
    params [#attn.param<"window" : i64 = 128>, #attn.param<"cap" : f32 = 2.0>] scale {
  %c = attn.param "cap" : f32
  attn.yield %c : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %q = attn.index q
  %kv = attn.index kv
  %w = attn.param "window" : i64
  %d = arith.subi %q, %kv : i64
  %c = arith.cmpi slt, %d, %w : i64
  attn.yield %c : i1
}

// -----

// An unbound param stays.
// CHECK-LABEL: attn.spec @unbound
// CHECK:         attn.param "w" : i64
attn.spec @unbound normalize(softmax) params [#attn.param<"w" : i64>] scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %q = attn.index q
  %w = attn.param "w" : i64
  %c = arith.cmpi sge, %q, %w : i64
  attn.yield %c : i1
}

// -----

// Floor modulo folds with the divisor's sign (7 % 3 = 1, 7 % -3 = -2, so
// they differ; a truncating modulo would give 1 twice and fold the mask to
// false); x % 1 is 0; a bool param folds; `x && true` and `!(a < b)`
// simplify. All that is left is q >= kv.
// CHECK-LABEL: attn.spec @fold_mod
// CHECK:       mask {
// CHECK-NEXT:    %[[Q:.*]] = attn.index q
// CHECK-NEXT:    %[[KV:.*]] = attn.index kv
// CHECK-NEXT:    %[[C:.*]] = arith.cmpi sge, %[[Q]], %[[KV]] : i64
// CHECK-NEXT:    attn.yield %[[C]] : i1
attn.spec @fold_mod normalize(softmax) params [#attn.param<"on" : i1 = true>] scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %q = attn.index q
  %kv = attn.index kv
  %c7 = arith.constant 7 : i64
  %cm3 = arith.constant -3 : i64
  %c3 = arith.constant 3 : i64
  %c1 = arith.constant 1 : i64
  %a = attn.floormod %c7, %c3          // 1
  %b = attn.floormod %c7, %cm3         // -2
  %z = attn.floormod %q, %c1           // 0
  %lt = arith.cmpi slt, %q, %kv : i64
  %true = arith.constant true
  %ge = arith.xori %lt, %true : i1     // !(q < kv) -> q >= kv
  %on = attn.param "on" : i1
  %x = arith.andi %ge, %on : i1        // && true
  %ne = arith.cmpi ne, %a, %b : i64
  %zz = arith.cmpi eq, %z, %z : i64
  %y = arith.andi %ne, %zz : i1
  %r = arith.andi %x, %y : i1
  attn.yield %r : i1
}
