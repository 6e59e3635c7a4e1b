// RUN: %attn-opt %s --split-input-file \
// RUN:   --attn-bind-params="defines=window=1024,cap=3.5,on=false" | FileCheck %s
// RUN: %attn-opt %s --split-input-file \
// RUN:   --attn-bind-params="defines=window=1024,cap=3.5,on=false" --attn-canonicalize \
// RUN:   | FileCheck %s --check-prefix=FOLD
// RUN: not %attn-opt %s --attn-bind-params="defines=window=wide" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=BADVALUE
// RUN: not %attn-opt %s --attn-bind-params="defines=nothing=1" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=UNKNOWN
// RUN: not %attn-opt %s --attn-bind-params="defines=window" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=MALFORMED
// RUN: not %attn-opt %s --attn-bind-params="defines==3" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=NONAME
// RUN: not %attn-opt %s --attn-bind-params="defines=1w=3" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=BADNAME
// RUN: not %attn-opt %s --attn-bind-params="defines=window=1,window=2" 2>&1 \
// RUN:   | FileCheck %s --check-prefix=TWICE

// BADVALUE: error: define window=wide: param 'window' has type 'i64' and cannot take the value 'wide'
// UNKNOWN: error: define nothing=1: no spec has a param 'nothing'
// The NAME=VALUE split is the front end's (splitDefine), as for attnc -D.
// MALFORMED: error: define 'window': expected NAME=VALUE
// NONAME: error: define '=3': expected NAME=VALUE
// BADNAME: error: define '1w=3': '1w' is not a param name (letters, digits and '_')
// TWICE: error: define window=2: param 'window' is given more than once

// CHECK-LABEL: attn.spec @a
// CHECK-SAME:    params [#attn.param<"window" : i64 = 1024>, #attn.param<"cap" : f32 = 3.500000e+00>, #attn.param<"on" : i1 = false>]
// FOLD-LABEL:  attn.spec @a
// FOLD:        mask {
// FOLD-NEXT:     %[[F:.*]] = arith.constant false
// FOLD-NEXT:     attn.yield %[[F]] : i1
attn.spec @a normalize(softmax)
    params [#attn.param<"window" : i64 = 128>, #attn.param<"cap" : f32>, #attn.param<"on" : i1 = true>] scale {
  %c = attn.param "cap" : f32
  attn.yield %c : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %q = attn.index q
  %w = attn.param "window" : i64
  %c = arith.cmpi slt, %q, %w : i64
  %on = attn.param "on" : i1
  %r = arith.andi %c, %on : i1
  attn.yield %r : i1
}

// A second spec that declares only `window` gets it too.
// CHECK-LABEL: attn.spec @b
// CHECK-SAME:    params [#attn.param<"window" : i64 = 1024>]
attn.spec @b normalize(softmax) params [#attn.param<"window" : i64 = 1>] scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
}
