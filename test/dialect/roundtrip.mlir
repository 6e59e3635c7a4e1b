// RUN: %attn-opt %s --split-input-file | %attn-opt --split-input-file | FileCheck %s
// Every op and attribute of the attn dialect prints and parses back to itself.

// CHECK-LABEL: attn.spec @causal normalize(softmax) scale {
// CHECK:         %[[D:.*]] = attn.dim D
// CHECK:         arith.sitofp %[[D]] : i64 to f32
// CHECK:       } score {
// CHECK:         %[[S:.*]] = attn.score
// CHECK:         attn.yield %[[S]] : f32
// CHECK:       } mask {
// CHECK:         %[[Q:.*]] = attn.index q
// CHECK:         %[[KV:.*]] = attn.index kv
// CHECK:         arith.cmpi sge, %[[Q]], %[[KV]] : i64
attn.spec @causal normalize(softmax) scale {
  %d = attn.dim D
  %f = arith.sitofp %d : i64 to f32
  %s = math.sqrt %f : f32
  %one = arith.constant 1.0 : f32
  %r = arith.divf %one, %s : f32
  attn.yield %r : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %q = attn.index q
  %kv = attn.index kv
  %c = arith.cmpi sge, %q, %kv : i64
  attn.yield %c : i1
}

// -----

// CHECK-LABEL: attn.spec @decls normalize(softmax)
// CHECK-SAME:    params [#attn.param<"window" : i64 = 256>, #attn.param<"cap" : f32 = 5.000000e+01>, #attn.param<"causal" : i1 = true>, #attn.param<"unbound" : i64>]
// CHECK-SAME:    inputs [#attn.input<"slopes" : f32 [HQ]>, #attn.input<"ids" : i64 [B, LK]>, #attn.input<"keep" : i1 [window, 4]>]
// CHECK:         attn.param "cap" : f32
// CHECK:         attn.read "slopes"[%{{.*}}] : f32
// CHECK:         attn.read "ids"[%{{.*}}, %{{.*}}] : i64
// CHECK:         attn.read "keep"[%{{.*}}, %{{.*}}] : i1
// CHECK:         attn.floormod %{{.*}}, %{{.*}}
attn.spec @decls normalize(softmax)
    params [#attn.param<"window" : i64 = 256>, #attn.param<"cap" : f32 = 50.0>,
            #attn.param<"causal" : i1 = true>, #attn.param<"unbound" : i64>]
    inputs [#attn.input<"slopes" : f32 [HQ]>, #attn.input<"ids" : i64 [B, LK]>,
            #attn.input<"keep" : i1 [window, 4]>] scale {
  %c = attn.param "cap" : f32
  attn.yield %c : f32
} score {
  %s = attn.score
  %h = attn.index h
  %sl = attn.read "slopes"[%h] : f32
  %r = arith.addf %s, %sl : f32
  attn.yield %r : f32
} mask {
  %b = attn.index b
  %kv = attn.index kv
  %hkv = attn.index hkv
  %id = attn.read "ids"[%b, %kv] : i64
  %k = attn.read "keep"[%hkv, %hkv] : i1
  %w = attn.param "window" : i64
  %m = attn.floormod %id, %w
  %z = arith.constant 0 : i64
  %e = arith.cmpi eq, %m, %z : i64
  %a = arith.andi %e, %k : i1
  attn.yield %a : i1
}

// -----

// CHECK-LABEL: attn.spec @sig normalize(sigmoid)
// CHECK:       } bias {
// CHECK:         %[[LK:.*]] = attn.dim LK
attn.spec @sig normalize(sigmoid) scale {
  %one = arith.constant 1.0 : f32
  attn.yield %one : f32
} score {
  %s = attn.score
  attn.yield %s : f32
} mask {
  %t = arith.constant true
  attn.yield %t : i1
} bias {
  %lk = attn.dim LK
  %f = arith.sitofp %lk : i64 to f32
  %l = math.log %f : f32
  %n = arith.negf %l : f32
  attn.yield %n : f32
}

// -----

// The mask analysis result round-trips too.
// CHECK-LABEL: attn.spec @window
// CHECK-SAME:    mask_schedule = #attn.mask<any_of(all_of(kv_le "q", kv_ge "q - 127"), kv_le "q floordiv 64 + LK - LQ", q_pred "q - 3", opaque, never, always)>
attn.spec @window normalize(softmax) attributes {mask_schedule = #attn.mask<any_of(all_of(kv_le "q", kv_ge "q - 127"), kv_le "LK - LQ + q floordiv 64", q_pred "q - 3", opaque, never, always)>} scale {
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

// ids_eq atoms (document masks) name their two reads.
// CHECK-LABEL: attn.spec @docs
// CHECK-SAME:    mask_schedule = #attn.mask<all_of(ids_eq "doc_q"[b, q] "doc_kv"[b, kv], kv_le "q")>
attn.spec @docs normalize(softmax) attributes {mask_schedule = #attn.mask<all_of(ids_eq "doc_q"[b, q] "doc_kv"[b, kv], kv_le "q")>} scale {
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

// Atoms whose bound reads int inputs at b, h, hkv or q name them r0, r1,
// ... and list the reads; inside a combination the list is delimited.
// CHECK-LABEL: attn.spec @reads
// CHECK-SAME:    mask_schedule = #attn.mask<all_of(kv_le "r0 - 1" reads("kv_len"[b]), kv_ge "q - r0 - r1" reads("w"[h], "v"[b, hkv]), kv_le "q", kv_ge "r0" reads("start"[b, q]))>
attn.spec @reads normalize(softmax) attributes {mask_schedule = #attn.mask<all_of(kv_le "r0 - 1" reads("kv_len"[b]), kv_ge "q - r0 - r1" reads("w"[h], "v"[b, hkv]), kv_le "q", kv_ge "r0" reads("start"[b, q]))>} scale {
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

// The tiled form: attn.flash with every optional part.
// CHECK-LABEL: attn.flash tiles(32, 128) storage(bf16) grid_patch [64, 4, 8] scale_per_call mask_on_partial prepass(1) {
// CHECK-NEXT:    attn.spec @doc normalize(softmax) inputs
attn.flash tiles(32, 128) storage(bf16) grid_patch [64, 4, 8] scale_per_call mask_on_partial prepass(1) {
  attn.spec @doc normalize(softmax) inputs [#attn.input<"ids" : i64 [LQ]>] attributes {mask_schedule = #attn.mask<ids_eq "ids"[q] "ids"[kv]>} scale {
    %one = arith.constant 1.0 : f32
    attn.yield %one : f32
  } score {
    %s = attn.score
    attn.yield %s : f32
  } mask {
    %q = attn.index q
    %a = attn.read "ids"[%q] : i64
    %kv = attn.index kv
    %b = attn.read "ids"[%kv] : i64
    %e = arith.cmpi eq, %a, %b : i64
    attn.yield %e : i1
  }
}
