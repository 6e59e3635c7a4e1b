// attn-expand-math's exp and tanh against float64 libm, rounded to float32:
// the largest error in ulps over a sweep of float32 inputs (run by
// attn-expand-math.mlir). Only float32 math ops are expanded, so the f64
// reference stays a libm call.

memref.global constant @exp_specials : memref<14xf32> = dense<[-103.97,
    -103.279, -87.34, -87.33, 88.37, 88.72, 88.7228, 88.7229, 0.0, -0.0,
    1.0e-30, 0x7F800000, 0xFF800000, 0x7FC00000]>
memref.global constant @tanh_specials : memref<4xf32> =
    dense<[0x7F800000, 0xFF800000, 0x7FC00000, 1.0e-30]>

func.func private @printI64(i64)
func.func private @printNewline()

// Distance in ulps between two float32s (ordered as sign-magnitude ints).
func.func @ulps(%a: f32, %b: f32) -> i64 {
  %c0 = arith.constant 0 : i32
  %min = arith.constant -2147483648 : i32
  %ia = arith.bitcast %a : f32 to i32
  %ib = arith.bitcast %b : f32 to i32
  %na = arith.cmpi slt, %ia, %c0 : i32
  %nb = arith.cmpi slt, %ib, %c0 : i32
  %fa = arith.subi %min, %ia : i32
  %fb = arith.subi %min, %ib : i32
  %oa = arith.select %na, %fa, %ia : i32
  %ob = arith.select %nb, %fb, %ib : i32
  %wa = arith.extsi %oa : i32 to i64
  %wb = arith.extsi %ob : i32 to i64
  %d = arith.subi %wa, %wb : i64
  %r = math.absi %d : i64
  return %r : i64
}

// max over x = lo + i * step, i < n, of ulps(f32 op(x), f32(f64 op(x))); a
// NaN result where the reference is not NaN (or the other way) counts 2^40.
func.func @sweep(%lo: f32, %step: f32, %n: index, %tanh: i1) -> i64 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %z = arith.constant 0 : i64
  %bad = arith.constant 1099511627776 : i64
  %max = scf.for %i = %c0 to %n step %c1 iter_args(%m = %z) -> i64 {
    %ii = arith.index_cast %i : index to i64
    %fi = arith.sitofp %ii : i64 to f32
    %x = math.fma %fi, %step, %lo : f32
    %x64 = arith.extf %x : f32 to f64
    %got, %want64 = scf.if %tanh -> (f32, f64) {
      %g = math.tanh %x : f32
      %w = math.tanh %x64 : f64
      scf.yield %g, %w : f32, f64
    } else {
      %g = math.exp %x : f32
      %w = math.exp %x64 : f64
      scf.yield %g, %w : f32, f64
    }
    %want = arith.truncf %want64 : f64 to f32
    %gnan = arith.cmpf uno, %got, %got : f32
    %wnan = arith.cmpf uno, %want, %want : f32
    %mismatch = arith.xori %gnan, %wnan : i1
    %u = func.call @ulps(%got, %want) : (f32, f32) -> i64
    %both = arith.andi %gnan, %wnan : i1
    %u0 = arith.select %both, %z, %u : i64
    %e = arith.select %mismatch, %bad, %u0 : i64
    %m2 = arith.maxsi %m, %e : i64
    scf.yield %m2 : i64
  }
  return %max : i64
}

func.func @report(%lo: f32, %step: f32, %n: index, %tanh: i1) {
  %r = func.call @sweep(%lo, %step, %n, %tanh) : (f32, f32, index, i1) -> i64
  func.call @printI64(%r) : (i64) -> ()
  func.call @printNewline() : () -> ()
  return
}

func.func @main() {
  %false = arith.constant false
  %true = arith.constant true
  %one = arith.constant 1 : index
  // exp over [-120, 100] (underflow to 0, the denormals, overflow to +inf).
  %elo = arith.constant -120.0 : f32
  %estep = arith.constant 0.000731 : f32
  %en = arith.constant 300000 : index
  func.call @report(%elo, %estep, %en, %false) : (f32, f32, index, i1) -> ()
  // exp's edges and special values, one at a time.
  %specials = memref.get_global @exp_specials : memref<14xf32>
  %zero = arith.constant 0.0 : f32
  %c0 = arith.constant 0 : index
  %c14 = arith.constant 14 : index
  scf.for %i = %c0 to %c14 step %one {
    %x = memref.load %specials[%i] : memref<14xf32>
    func.call @report(%x, %zero, %one, %false) : (f32, f32, index, i1) -> ()
  }
  // tanh over [-20, 20], then near 0 (the linear range) and its specials.
  %tlo = arith.constant -20.0 : f32
  %tstep = arith.constant 0.0001373 : f32
  %tn = arith.constant 291333 : index
  func.call @report(%tlo, %tstep, %tn, %true) : (f32, f32, index, i1) -> ()
  %slo = arith.constant -0.01 : f32
  %sstep = arith.constant 0.0000001 : f32
  %sn = arith.constant 200000 : index
  func.call @report(%slo, %sstep, %sn, %true) : (f32, f32, index, i1) -> ()
  %tspecials = memref.get_global @tanh_specials : memref<4xf32>
  %c4 = arith.constant 4 : index
  scf.for %i = %c0 to %c4 step %one {
    %x = memref.load %tspecials[%i] : memref<4xf32>
    func.call @report(%x, %zero, %one, %true) : (f32, f32, index, i1) -> ()
  }
  return
}
