// RUN: %attn-opt %s --split-input-file --attn-expand-math | FileCheck %s
// RUN: %attn-opt %s --split-input-file --attn-expand-math --attn-expand-math | FileCheck %s
// attn-expand-math: float32 math.exp and math.tanh become arith code (no
// libm call left in the loops); anything else stays. Running it twice
// changes nothing more (second RUN line). The accuracy against float64 libm
// (Inputs/expand-math-accuracy.mlir, run by mlir-runner): exp within 1 ulp
// over [-120, 100] (denormals, overflow, +-inf, NaN), tanh within 4 ulps.
// RUN: %if mlir-runner %{ %attn-opt %S/Inputs/expand-math-accuracy.mlir --attn-expand-math | %mlir_run | FileCheck %s --check-prefix=ACCURACY %}

// exp(x) = p(r) 2^n: n = roundeven(x' log2 e) of the clamped x', 2^n as two
// halves 2^(n >> 1) 2^(n - (n >> 1)) (each a normal float32), then the
// edges: x < -103.97 gives 0, x > 88.7228 +inf, NaN NaN.
// CHECK-LABEL: func.func @exp_f32(
// CHECK-SAME:    %[[X:.*]]: f32
// CHECK-NOT:     math.exp
// CHECK:         %[[HI:.*]] = arith.minnumf %[[X]], %[[OVF:.*]] : f32
// CHECK:         %[[XC:.*]] = arith.maxnumf %[[HI]], %[[LO:.*]] : f32
// CHECK:         %[[N:.*]] = math.roundeven
// CHECK:         %[[K:.*]] = arith.fptosi %[[N]] : f32 to i32
// CHECK:         %[[K1:.*]] = arith.shrsi %[[K]], %c1_i32
// CHECK:         %[[K2:.*]] = arith.subi %[[K]], %[[K1]]
// CHECK:         %[[P1:.*]] = arith.mulf %{{.*}}, %{{.*}} : f32
// CHECK:         %[[E:.*]] = arith.mulf %[[P1]], %{{.*}} : f32
// CHECK:         %[[UNDER:.*]] = arith.cmpf olt, %[[X]], %[[LO]]
// CHECK:         %[[OVER:.*]] = arith.cmpf ogt, %[[X]], %[[OVF]]
// CHECK:         %[[NAN:.*]] = arith.cmpf uno, %[[X]], %[[X]]
// CHECK:         %[[R:.*]] = arith.select %[[NAN]], %[[X]], %{{.*}} : f32
// CHECK:         return %[[R]]
func.func @exp_f32(%x: f32) -> f32 {
  %e = math.exp %x : f32
  return %e : f32
}

// -----

// tanh: MLIR's rational approximation (clamped to +-7.99881172, x itself
// below |x| = 0.0004).
// CHECK-LABEL: func.func @tanh_f32(
// CHECK-NOT:     math.tanh
// CHECK:         arith.constant 7.99881172 : f32
// CHECK:         arith.divf
// CHECK-NOT:     math.tanh
// CHECK:         return
func.func @tanh_f32(%x: f32) -> f32 {
  %t = math.tanh %x : f32
  return %t : f32
}

// -----

// Only float32 scalars: float64 keeps its libm call (and so do the other
// math functions, such as log).
// CHECK-LABEL: func.func @others(
// CHECK:         math.exp %{{.*}} : f64
// CHECK:         math.log
func.func @others(%y: f64, %x: f32) -> (f64, f32) {
  %a = math.exp %y : f64
  %c = math.log %x : f32
  return %a, %c : f64, f32
}

// The largest error in ulps: the exp sweep and exp at its 14 edge and
// special values (at most 1), the tanh sweeps over [-20, 20] and near 0 (at
// most 4), tanh of +-inf, NaN and 1e-30 (exact).
// ACCURACY:      {{^[01]$}}
// ACCURACY-NEXT: {{^[01]$}}
// ACCURACY-NEXT: {{^[01]$}}
// ACCURACY-NEXT: {{^[01]$}}
// ACCURACY-NEXT: {{^[01]$}}
// ACCURACY-NEXT: {{^[01]$}}
// ACCURACY-NEXT: {{^[01]$}}
// ACCURACY-NEXT: {{^[01]$}}
// ACCURACY-NEXT: {{^[01]$}}
// ACCURACY-NEXT: {{^[01]$}}
// ACCURACY-NEXT: {{^[01]$}}
// ACCURACY-NEXT: {{^[01]$}}
// ACCURACY-NEXT: {{^[01]$}}
// ACCURACY-NEXT: {{^[01]$}}
// ACCURACY-NEXT: {{^[01]$}}
// ACCURACY-NEXT: {{^[0-4]$}}
// ACCURACY-NEXT: {{^[0-4]$}}
// ACCURACY-NEXT: {{^0$}}
// ACCURACY-NEXT: {{^0$}}
// ACCURACY-NEXT: {{^0$}}
// ACCURACY-NEXT: {{^0$}}
// ACCURACY-NOT:  {{.}}
