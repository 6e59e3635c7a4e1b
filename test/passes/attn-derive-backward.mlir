// RUN: %attn-opt %s --split-input-file --attn-derive-backward | FileCheck %s
// RUN: %attn-opt %s --split-input-file --attn-derive-backward --attn-derive-backward | FileCheck %s
// attn-derive-backward: the reverse-mode gradient regions of each spec (each
// input is attn-canonicalize's output for the `.attn:` line above it).
// Running the pass twice replaces the regions (second RUN line).

// .attn: score = cap * tanh(score / cap) - slopes[h] * float(q - kv)
// Softcap and ALiBi: d(cap tanh(s / cap))/ds = sech^2(s / cap), computed as
// 4u / (1 + u)^2 with u = exp(-2|s / cap|) (1 - tanh^2 rounds to 0 in
// float32 once |s / cap| > 9); the slope gets -adj * (q - kv). The forward
// tanh is dead in the gradient region.
// CHECK-LABEL: attn.spec @softcap_alibi
// CHECK:       score_grad {
// CHECK:         %[[X:.*]] = arith.divf %{{.*}}, %[[CAP:.*]] : f32
// CHECK-NOT:     math.tanh
// CHECK:         %[[SLOPE:.*]] = attn.read "slopes"
// CHECK:         %[[REL:.*]] = arith.sitofp
// CHECK:         %[[ADJ:.*]] = attn.adjoint
// CHECK:         %[[NEG:.*]] = arith.negf %[[ADJ]]
// CHECK:         %[[DSLOPE:.*]] = arith.mulf %[[NEG]], %[[REL]]
// CHECK:         attn.accumulate %[[SLOPE]], %[[DSLOPE]] : f32
// CHECK:         %[[ADJT:.*]] = arith.mulf %[[ADJ]], %[[CAP]]
// CHECK:         %[[ABS:.*]] = math.absf %[[X]]
// CHECK:         %[[M2:.*]] = arith.constant -2.0
// CHECK:         %[[E:.*]] = arith.mulf %[[M2]], %[[ABS]]
// CHECK:         %[[U:.*]] = math.exp %[[E]]
// CHECK:         %[[ONEPU:.*]] = arith.addf %{{.*}}, %[[U]]
// CHECK:         %[[DEN:.*]] = arith.mulf %[[ONEPU]], %[[ONEPU]]
// CHECK:         %[[FOURU:.*]] = arith.mulf %{{.*}}, %[[U]]
// CHECK:         %[[SECH2:.*]] = arith.divf %[[FOURU]], %[[DEN]]
// CHECK:         %[[D:.*]] = arith.mulf %[[ADJT]], %[[SECH2]]
// CHECK:         %[[DS:.*]] = arith.divf %[[D]], %[[CAP]]
// CHECK:         attn.yield %[[DS]] : f32
// CHECK-NOT:   scale_grad

  attn.spec @softcap_alibi normalize(softmax) params [#attn.param<"cap" : f32 = 5.000000e+01>] inputs [#attn.input<"slopes" : f32 [HQ]>] scale {
    %cst = arith.constant 1.000000e+00 : f32
    %0 = attn.dim D
    %1 = arith.sitofp %0 : i64 to f32
    %2 = math.sqrt %1 : f32
    %3 = arith.divf %cst, %2 : f32
    attn.yield %3 : f32
  } score {
    %cst = arith.constant 5.000000e+01 : f32
    %0 = attn.score
    %1 = arith.divf %0, %cst : f32
    %2 = math.tanh %1 : f32
    %3 = arith.mulf %2, %cst : f32
    %4 = attn.index h
    %5 = attn.read "slopes"[%4] : f32
    %6 = attn.index q
    %7 = attn.index kv
    %8 = arith.subi %6, %7 : i64
    %9 = arith.sitofp %8 : i64 to f32
    %10 = arith.mulf %5, %9 : f32
    %11 = arith.subf %3, %10 : f32
    attn.yield %11 : f32
  } mask {
    %0 = attn.index q
    %1 = attn.index kv
    %2 = arith.cmpi sge, %0, %1 : i64
    attn.yield %2 : i1
  }

// -----

// .attn: score = score + table[clamp(q - kv, -W, W) + W]
// A table lookup: the adjoint goes to the element read, the index (ints)
// gets nothing.
// CHECK-LABEL: attn.spec @rel_table
// CHECK:       score_grad {
// CHECK:         %[[IDX:.*]] = arith.addi
// CHECK:         %[[E:.*]] = attn.read "table"[%[[IDX]]] : f32
// CHECK:         %[[ADJ:.*]] = attn.adjoint
// CHECK:         attn.accumulate %[[E]], %[[ADJ]] : f32
// CHECK:         attn.yield %[[ADJ]] : f32

  attn.spec @rel_table normalize(softmax) params [#attn.param<"W" : i64 = 8>] inputs [#attn.input<"table" : f32 [17]>] scale {
    %cst = arith.constant 1.000000e+00 : f32
    %0 = attn.dim D
    %1 = arith.sitofp %0 : i64 to f32
    %2 = math.sqrt %1 : f32
    %3 = arith.divf %cst, %2 : f32
    attn.yield %3 : f32
  } score {
    %c8_i64 = arith.constant 8 : i64
    %c-8_i64 = arith.constant -8 : i64
    %0 = attn.score
    %1 = attn.index q
    %2 = attn.index kv
    %3 = arith.subi %1, %2 : i64
    %4 = arith.maxsi %3, %c-8_i64 : i64
    %5 = arith.minsi %4, %c8_i64 : i64
    %6 = arith.addi %5, %c8_i64 : i64
    %7 = attn.read "table"[%6] : f32
    %8 = arith.addf %0, %7 : f32
    attn.yield %8 : f32
  } mask {
    %0 = attn.index q
    %1 = attn.index kv
    %2 = arith.cmpi sge, %0, %1 : i64
    attn.yield %2 : i1
  }

// -----

// .attn: normalize = sigmoid(bias = b0[h] - log(float(LK)))
// Sigmoid with a learnable bias: the bias gets dL/dbias through bias_grad,
// which yields nothing.
// CHECK-LABEL: attn.spec @sig_bias normalize(sigmoid)
// CHECK:       score_grad {
// CHECK-NEXT:    %[[ADJ:.*]] = attn.adjoint
// CHECK-NEXT:    attn.yield %[[ADJ]] : f32
// CHECK:       bias_grad {
// CHECK:         %[[B:.*]] = attn.read "b0"
// CHECK-NOT:     math.log
// CHECK:         %[[A:.*]] = attn.adjoint
// CHECK-NEXT:    attn.accumulate %[[B]], %[[A]] : f32
// CHECK-NEXT:    attn.yield{{$}}

  attn.spec @sig_bias normalize(sigmoid) inputs [#attn.input<"b0" : f32 [HQ]>] scale {
    %cst = arith.constant 1.000000e+00 : f32
    %0 = attn.dim D
    %1 = arith.sitofp %0 : i64 to f32
    %2 = math.sqrt %1 : f32
    %3 = arith.divf %cst, %2 : f32
    attn.yield %3 : f32
  } score {
    %0 = attn.score
    attn.yield %0 : f32
  } mask {
    %0 = attn.index q
    %1 = attn.index kv
    %2 = arith.cmpi sge, %0, %1 : i64
    attn.yield %2 : i1
  } bias {
    %0 = attn.index h
    %1 = attn.read "b0"[%0] : f32
    %2 = attn.dim LK
    %3 = arith.sitofp %2 : i64 to f32
    %4 = math.log %3 : f32
    %5 = arith.subf %1, %4 : f32
    attn.yield %5 : f32
  }

// -----

// .attn: scale = temp[h] / sqrt(D)
// A per-head scale: scale_grad, with dL/dscale as its adjoint.
// CHECK-LABEL: attn.spec @head_scale
// CHECK:       scale_grad {
// CHECK:         %[[T:.*]] = attn.read "temp"
// CHECK:         %[[R:.*]] = math.sqrt
// CHECK:         %[[A:.*]] = attn.adjoint
// CHECK-NEXT:    %[[D:.*]] = arith.divf %[[A]], %[[R]]
// CHECK-NEXT:    attn.accumulate %[[T]], %[[D]] : f32
// CHECK-NEXT:    attn.yield{{$}}

  attn.spec @head_scale normalize(softmax) inputs [#attn.input<"temp" : f32 [HQ]>] scale {
    %0 = attn.index h
    %1 = attn.read "temp"[%0] : f32
    %2 = attn.dim D
    %3 = arith.sitofp %2 : i64 to f32
    %4 = math.sqrt %3 : f32
    %5 = arith.divf %1, %4 : f32
    attn.yield %5 : f32
  } score {
    %0 = attn.score
    attn.yield %0 : f32
  } mask {
    %0 = attn.index q
    %1 = attn.index kv
    %2 = arith.cmpi sge, %0, %1 : i64
    attn.yield %2 : i1
  }

// -----

// .attn: score = q >= kv ? score + t[q - kv] : sqrt(score)
// `c ? a : b`: each arm's adjoint is select(c, adj, 0) / select(c, 0, adj),
// and sqrt's derivative on the false arm is guarded by !c, so at s = 0
// with c true it is 0, not NaN.
// CHECK-LABEL: attn.spec @guarded
// CHECK:       score_grad {
// CHECK:         %[[C:.*]] = arith.cmpi sge
// CHECK:         %[[T:.*]] = attn.read "t"
// CHECK:         %[[ADJ:.*]] = attn.adjoint
// CHECK:         %[[ATRUE:.*]] = arith.select %[[C]], %[[ADJ]], %{{.*}}
// CHECK:         %[[NOTC:.*]] = arith.xori %[[C]], %true
// CHECK:         %[[AFALSE:.*]] = arith.select %[[C]], %{{.*}}, %[[ADJ]]
// CHECK:         %[[DSQRT:.*]] = arith.divf
// CHECK:         %[[GUARDED:.*]] = arith.select %[[NOTC]], %[[DSQRT]], %{{.*}}
// CHECK:         attn.accumulate %[[T]], %[[ATRUE]] : f32
// CHECK:         %[[SUM:.*]] = arith.addf %[[GUARDED]], %[[ATRUE]]
// CHECK:         attn.yield %[[SUM]] : f32

  attn.spec @guarded normalize(softmax) inputs [#attn.input<"t" : f32 [LK]>] scale {
    %cst = arith.constant 1.000000e+00 : f32
    %0 = attn.dim D
    %1 = arith.sitofp %0 : i64 to f32
    %2 = math.sqrt %1 : f32
    %3 = arith.divf %cst, %2 : f32
    attn.yield %3 : f32
  } score {
    %0 = attn.index q
    %1 = attn.index kv
    %2 = arith.cmpi sge, %0, %1 : i64
    %3 = attn.score
    %4 = attn.index q
    %5 = attn.index kv
    %6 = arith.subi %4, %5 : i64
    %7 = attn.read "t"[%6] : f32
    %8 = arith.addf %3, %7 : f32
    %9 = attn.score
    %10 = math.sqrt %9 : f32
    %11 = arith.select %2, %8, %10 : f32
    attn.yield %11 : f32
  } mask {
    %true = arith.constant true
    attn.yield %true : i1
  }

// -----

// .attn: score = pow(abs(score) + 1.0, e[h]) + max(score, 0.0) - sigmoid(score)
// pow in both arguments, abs, max and sigmoid (as sigmoid(x) sigmoid(-x),
// not through the expansion's exp, which overflows, nor 1 - s, which loses
// its digits where s is near 1).
// CHECK-LABEL: attn.spec @powmix
// CHECK:       score_grad {
// CHECK:         arith.negf %[[X:[0-9]+]] : f32
// CHECK:         %[[SIG:.*]] = arith.divf %cst{{.*}}, %{{.*}}
// CHECK:         %[[ADJ:.*]] = attn.adjoint
// CHECK:         %[[EX:.*]] = math.exp %[[X]]
// CHECK:         %[[DEN:.*]] = arith.addf %{{.*}}, %[[EX]]
// CHECK:         %[[SIGNEG:.*]] = arith.divf %{{.*}}, %[[DEN]]
// CHECK:         arith.mulf %[[SIG]], %[[SIGNEG]]
// CHECK:         arith.cmpf oge
// CHECK:         math.powf
// CHECK:         math.log
// CHECK:         attn.accumulate
// CHECK:         arith.cmpf olt
// CHECK:         arith.cmpf ogt
// CHECK:         attn.yield

  attn.spec @powmix normalize(softmax) inputs [#attn.input<"e" : f32 [HQ]>] scale {
    %cst = arith.constant 1.000000e+00 : f32
    %0 = attn.dim D
    %1 = arith.sitofp %0 : i64 to f32
    %2 = math.sqrt %1 : f32
    %3 = arith.divf %cst, %2 : f32
    attn.yield %3 : f32
  } score {
    %cst = arith.constant 0.000000e+00 : f32
    %cst_0 = arith.constant 1.000000e+00 : f32
    %0 = attn.score
    %1 = math.absf %0 : f32
    %2 = arith.addf %1, %cst_0 : f32
    %3 = attn.index h
    %4 = attn.read "e"[%3] : f32
    %5 = math.powf %2, %4 : f32
    %6 = attn.score
    %7 = arith.maximumf %6, %cst : f32
    %8 = arith.addf %5, %7 : f32
    %9 = attn.score
    %10 = arith.negf %9 : f32
    %11 = math.exp %10 : f32
    %12 = arith.addf %11, %cst_0 : f32
    %13 = arith.divf %cst_0, %12 : f32
    %14 = arith.subf %8, %13 : f32
    attn.yield %14 : f32
  } mask {
    %true = arith.constant true
    attn.yield %true : i1
  }

// -----

// .attn: score = exp2(score) + log2(w[kv]) * score + round(score)
// d exp2(s) = exp2(s) ln 2 ds, d log2(w) = dw / (w ln 2); round has zero
// derivative, so it sends nothing.
// CHECK-LABEL: attn.spec @base2
// CHECK:       score_grad {
// CHECK:         %[[E:.*]] = math.exp2 %[[S:.*]] : f32
// CHECK:         %[[W:.*]] = attn.read "w"
// CHECK:         %[[L:.*]] = math.log2 %[[W]] : f32
// CHECK:         %[[ADJ:.*]] = attn.adjoint
// CHECK:         %[[DL:.*]] = arith.mulf %[[ADJ]], %{{.*}} : f32
// CHECK:         %[[DS1:.*]] = arith.mulf %[[ADJ]], %[[L]] : f32
// CHECK:         %[[LN2:.*]] = arith.constant 0.693147182 : f32
// CHECK:         %[[WLN2:.*]] = arith.mulf %[[W]], %[[LN2]] : f32
// CHECK:         %[[DW:.*]] = arith.divf %[[DL]], %[[WLN2]] : f32
// CHECK:         attn.accumulate %[[W]], %[[DW]] : f32
// CHECK:         %[[ELN2:.*]] = arith.mulf %[[E]], %{{.*}} : f32
// CHECK:         %[[DS2:.*]] = arith.mulf %[[ADJ]], %[[ELN2]] : f32
// CHECK:         %[[DS:.*]] = arith.addf %[[DS1]], %[[DS2]] : f32
// CHECK-NOT:     math.round
// CHECK:         attn.yield %[[DS]] : f32

  attn.spec @base2 normalize(softmax) inputs [#attn.input<"w" : f32 [LK]>] scale {
    %cst = arith.constant 1.000000e+00 : f32
    %0 = attn.dim D
    %1 = arith.sitofp %0 : i64 to f32
    %2 = math.sqrt %1 : f32
    %3 = arith.divf %cst, %2 : f32
    attn.yield %3 : f32
  } score {
    %0 = attn.score
    %1 = math.exp2 %0 : f32
    %2 = attn.index kv
    %3 = attn.read "w"[%2] : f32
    %4 = math.log2 %3 : f32
    %5 = attn.score
    %6 = arith.mulf %4, %5 : f32
    %7 = arith.addf %1, %6 : f32
    %8 = attn.score
    %9 = math.round %8 : f32
    %10 = arith.addf %7, %9 : f32
    attn.yield %10 : f32
  } mask {
    %true = arith.constant true
    attn.yield %true : i1
  }

// -----

// .attn: normalize = softmax(sink = sinks[h] * 2.0)
// A softmax sink that reads a float input: sink_grad gets dL/dsink as its
// adjoint and sends it, times the derivative, to the input.
// CHECK-LABEL: attn.spec @sinks normalize(softmax)
// CHECK:       sink {
// CHECK:       sink_grad {
// CHECK:         %[[R:.*]] = attn.read "sinks"
// CHECK:         %[[A:.*]] = attn.adjoint
// CHECK:         %[[G:.*]] = arith.mulf %[[A]], %{{.*}} : f32
// CHECK-NEXT:    attn.accumulate %[[R]], %[[G]] : f32
// CHECK-NEXT:    attn.yield{{$}}

  attn.spec @sinks normalize(softmax) inputs [#attn.input<"sinks" : f32 [HQ]>] scale {
    %cst = arith.constant 1.000000e+00 : f32
    attn.yield %cst : f32
  } score {
    %0 = attn.score
    attn.yield %0 : f32
  } mask {
    %0 = attn.index q
    %1 = attn.index kv
    %2 = arith.cmpi sge, %0, %1 : i64
    attn.yield %2 : i1
  } sink {
    %0 = attn.index h
    %1 = attn.read "sinks"[%0] : f32
    %c2 = arith.constant 2.000000e+00 : f32
    %2 = arith.mulf %1, %c2 : f32
    attn.yield %2 : f32
  }

// -----

// .attn: normalize = softmax(sink = 0.5): a sink with no input has no
// sink_grad.
// CHECK-LABEL: attn.spec @const_sink
// CHECK:       sink {
// CHECK-NOT:   sink_grad

  attn.spec @const_sink normalize(softmax) scale {
    %cst = arith.constant 1.000000e+00 : f32
    attn.yield %cst : f32
  } score {
    %0 = attn.score
    attn.yield %0 : f32
  } mask {
    %t = arith.constant true
    attn.yield %t : i1
  } sink {
    %c = arith.constant 5.000000e-01 : f32
    attn.yield %c : f32
  }
