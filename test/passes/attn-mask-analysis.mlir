// RUN: %attn-opt %s --split-input-file --attn-canonicalize --attn-mask-analysis | FileCheck %s
// The mask analysis turns each mask region into a formula of key bounds
// (mask_schedule) and, for the backward's column view, the transposed mask
// into a formula of query bounds (mask_schedule_columns: its q is the key,
// its kv the query, LQ the key length and LK the query length).
// Inputs were produced by `attnc compile --emit=mlir` from .attn blocks.

// Causal: keys up to the query; the queries of a key k are those >= k. The
// spec's own mask region is left as it was.
// CHECK-LABEL: attn.spec @causal
// CHECK-SAME:    mask_schedule = #attn.mask<kv_le "q">
// CHECK-SAME:    mask_schedule_columns = #attn.mask<kv_ge "q">
// CHECK:         mask {
// CHECK-NEXT:      %0 = attn.index q
// CHECK-NEXT:      %1 = attn.index kv
// CHECK-NEXT:      %2 = arith.cmpi sge, %0, %1 : i64
module {
  attn.spec @causal normalize(softmax) scale {
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
  }
}

// -----

// Bottom-right aligned causal cross attention: the bound reads the sizes.
// CHECK-LABEL: attn.spec @bottom_right
// CHECK-SAME:    mask_schedule = #attn.mask<kv_le "q + LK - LQ">
// Transposed (key k, query length LK in the column symbols' LK, key length
// in their LQ): the queries q' >= k - LQ' + LK', i.e. q + LK - LQ >= k.
// CHECK-SAME:    mask_schedule_columns = #attn.mask<kv_ge "q - LQ + LK">
// CHECK:         mask {
// CHECK-NEXT:      attn.index q
// CHECK-NEXT:      attn.dim LK
// CHECK-NEXT:      attn.dim LQ
module {
  attn.spec @bottom_right normalize(softmax) scale {
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
    %1 = attn.dim LK
    %2 = attn.dim LQ
    %3 = arith.subi %1, %2 : i64
    %4 = arith.addi %0, %3 : i64
    %5 = attn.index kv
    %6 = arith.cmpi sge, %4, %5 : i64
    attn.yield %6 : i1
  }
}

// -----

// Sliding window: the param is folded first (run after --attn-canonicalize).
// CHECK-LABEL: attn.spec @window
// CHECK-SAME:    mask_schedule = #attn.mask<all_of(kv_le "q", kv_ge "q - 127")>
// CHECK-SAME:    mask_schedule_columns = #attn.mask<all_of(kv_ge "q", kv_le "q + 127")>
module {
  attn.spec @window normalize(softmax) params [#attn.param<"window" : i64 = 128>] scale {
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
    %3 = attn.index q
    %4 = attn.index kv
    %5 = arith.subi %3, %4 : i64
    %6 = attn.param "window" : i64
    %7 = arith.cmpi slt, %5, %6 : i64
    %8 = arith.andi %2, %7 : i1
    attn.yield %8 : i1
  }
}

// -----

// Prefix LM: a union of two bounds.
// CHECK-LABEL: attn.spec @prefix_lm
// CHECK-SAME:    mask_schedule = #attn.mask<any_of(kv_le "63", kv_le "q")>
// Transposed, the prefix is a test of the key alone (k <= 63: every query).
// CHECK-SAME:    mask_schedule_columns = #attn.mask<any_of(q_pred "-q + 63", kv_ge "q")>
module {
  attn.spec @prefix_lm normalize(softmax) params [#attn.param<"prefix" : i64 = 64>] scale {
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
    %0 = attn.index kv
    %1 = attn.param "prefix" : i64
    %2 = arith.cmpi slt, %0, %1 : i64
    %3 = attn.index q
    %4 = attn.index kv
    %5 = arith.cmpi sge, %3, %4 : i64
    %6 = arith.ori %2, %5 : i1
    attn.yield %6 : i1
  }
}

// -----

// Block-diagonal: floor divisions of kv are inverted.
// CHECK-LABEL: attn.spec @block_diagonal
// CHECK-SAME:    mask_schedule = #attn.mask<all_of(kv_le "(q floordiv 64) * 64 + 63", kv_ge "(q floordiv 64) * 64")>
// CHECK-SAME:    mask_schedule_columns = #attn.mask<all_of(kv_ge "(q floordiv 64) * 64", kv_le "(q floordiv 64) * 64 + 63")>
module {
  attn.spec @block_diagonal normalize(softmax) scale {
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
    %c64_i64 = arith.constant 64 : i64
    %1 = arith.floordivsi %0, %c64_i64 : i64
    %2 = attn.index kv
    %c64_i64_0 = arith.constant 64 : i64
    %3 = arith.floordivsi %2, %c64_i64_0 : i64
    %4 = arith.cmpi eq, %1, %3 : i64
    attn.yield %4 : i1
  }
}

// -----

// abs() becomes max(x, -x), hoisted into two bounds.
// CHECK-LABEL: attn.spec @band
// CHECK-SAME:    mask_schedule = #attn.mask<all_of(kv_ge "q - 8", kv_le "q + 8")>
module {
  attn.spec @band normalize(softmax) scale {
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
    %2 = arith.subi %0, %1 : i64
    %3 = math.absi %2 : i64
    %c8_i64 = arith.constant 8 : i64
    %4 = arith.cmpi sle, %3, %c8_i64 : i64
    attn.yield %4 : i1
  }
}

// -----

// Negation is pushed into the comparison.
// CHECK-LABEL: attn.spec @negated
// CHECK-SAME:    mask_schedule = #attn.mask<kv_le "q">
module {
  attn.spec @negated normalize(softmax) scale {
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
    %2 = arith.cmpi slt, %0, %1 : i64
    %true = arith.constant true
    %3 = arith.xori %2, %true : i1
    attn.yield %3 : i1
  }
}

// -----

// One id tensor for both sides: doc is [LQ] and read at kv too, which the
// analysis cannot prove in range; it forms ids_eq all the same, and the
// scans of the ids check positions against the tensor's extent at run time
// (a tile past it stays PARTIAL). Transposed, the same atom with the sides
// exchanged (the one tensor on both).
// CHECK-LABEL: attn.spec @document
// CHECK-SAME:    mask_schedule = #attn.mask<all_of(ids_eq "doc"[q] "doc"[kv], kv_le "q")>
// CHECK-SAME:    mask_schedule_columns = #attn.mask<all_of(ids_eq "doc"[q] "doc"[kv], kv_ge "q")>
module {
  attn.spec @document normalize(softmax) inputs [#attn.input<"doc" : i64 [LQ]>] scale {
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
    %1 = attn.read "doc"[%0] : i64
    %2 = attn.index kv
    %3 = attn.read "doc"[%2] : i64
    %4 = arith.cmpi eq, %1, %3 : i64
    %5 = attn.index q
    %6 = attn.index kv
    %7 = arith.cmpi sge, %5, %6 : i64
    %8 = arith.andi %4, %7 : i1
    attn.yield %8 : i1
  }
}

// -----

// Modulo of kv is opaque (decided per element).
// CHECK-LABEL: attn.spec @dilated
// CHECK-SAME:    mask_schedule = #attn.mask<opaque>
module {
  attn.spec @dilated normalize(softmax) scale {
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
    %2 = arith.subi %0, %1 : i64
    %c2_i64 = arith.constant 2 : i64
    %3 = attn.floormod %2, %c2_i64
    %c0_i64 = arith.constant 0 : i64
    %4 = arith.cmpi eq, %3, %c0_i64 : i64
    attn.yield %4 : i1
  }
}

// -----

// A test of q alone.
// CHECK-LABEL: attn.spec @rows
// CHECK-SAME:    mask_schedule = #attn.mask<q_pred "q - 10">
// A test of q is, transposed, a bound on the queries of every key.
// CHECK-SAME:    mask_schedule_columns = #attn.mask<kv_ge "10">
module {
  attn.spec @rows normalize(softmax) scale {
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
    %c10_i64 = arith.constant 10 : i64
    %1 = arith.cmpi sge, %0, %c10_i64 : i64
    attn.yield %1 : i1
  }
}

// -----

// Float comparisons are not analysed.
// CHECK-LABEL: attn.spec @float_mask
// CHECK-SAME:    mask_schedule = #attn.mask<opaque>
module {
  attn.spec @float_mask normalize(softmax) scale {
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
    %1 = arith.sitofp %0 : i64 to f32
    %cst = arith.constant 5.000000e-01 : f32
    %2 = arith.mulf %1, %cst : f32
    %3 = attn.index kv
    %4 = arith.sitofp %3 : i64 to f32
    %5 = arith.cmpf oge, %2, %4 : f32
    attn.yield %5 : i1
  }
}

// -----

// No mask clause: every pair is kept.
// CHECK-LABEL: attn.spec @full
// CHECK-SAME:    mask_schedule = #attn.mask<always>
module {
  attn.spec @full normalize(softmax) scale {
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
    %true = arith.constant true
    attn.yield %true : i1
  }
}

// -----

// Document masks: X[q] == Y[kv] on int inputs read at in-range coordinates
// is an ids_eq atom (either order; batch coordinates allowed). != is not.
// CHECK-LABEL: attn.spec @ids
// CHECK-SAME:    inputs [#attn.input<"dq" : i64 [B, LQ]>, #attn.input<"dk" : i64 [B, LK]>]
// CHECK-SAME:    mask_schedule = #attn.mask<any_of(all_of(ids_eq "dq"[b, q] "dk"[b, kv], kv_le "q"), ids_eq "dq"[b, q] "dk"[b, kv], opaque)>
// Transposed, the key-side ids come first: "dk" read at the key (q), "dq"
// at the query (kv). The declarations keep their shapes.
// CHECK-SAME:    mask_schedule_columns = #attn.mask<any_of(all_of(ids_eq "dk"[b, q] "dq"[b, kv], kv_ge "q"), ids_eq "dk"[b, q] "dq"[b, kv], opaque)>
module {
  attn.spec @ids normalize(softmax) inputs [#attn.input<"dq" : i64 [B, LQ]>, #attn.input<"dk" : i64 [B, LK]>] scale {
    %cst = arith.constant 1.000000e+00 : f32
    attn.yield %cst : f32
  } score {
    %0 = attn.score
    attn.yield %0 : f32
  } mask {
    %b = attn.index b
    %q = attn.index q
    %kv = attn.index kv
    %x = attn.read "dq"[%b, %q] : i64
    %y = attn.read "dk"[%b, %kv] : i64
    %e1 = arith.cmpi eq, %x, %y : i64
    %c = arith.cmpi sge, %q, %kv : i64
    %a = arith.andi %e1, %c : i1
    %e2 = arith.cmpi eq, %y, %x : i64
    %n = arith.cmpi ne, %x, %y : i64
    %o1 = arith.ori %a, %e2 : i1
    %o2 = arith.ori %o1, %n : i1
    attn.yield %o2 : i1
  }
}

// -----

// One id tensor for both sides (FlexAttention's document mask): an [LQ]
// tensor read at kv (and an [LK] one read at q) still forms ids_eq; the
// scans check the position against the tensor's extent at run time. A
// batch coordinate must index a dimension of its own extent: "w" [HQ] read
// at b stays opaque.
// CHECK-LABEL: attn.spec @one_ids
// CHECK-SAME:    mask_schedule = #attn.mask<all_of(ids_eq "doc"[q] "doc"[kv], ids_eq "key"[q] "key"[kv], opaque)>
// CHECK-SAME:    mask_schedule_columns = #attn.mask<all_of(ids_eq "doc"[q] "doc"[kv], ids_eq "key"[q] "key"[kv], opaque)>
module {
  attn.spec @one_ids normalize(softmax) inputs [#attn.input<"doc" : i64 [LQ]>, #attn.input<"key" : i64 [LK]>, #attn.input<"w" : i64 [HQ]>, #attn.input<"u" : i64 [B]>] scale {
    %cst = arith.constant 1.000000e+00 : f32
    attn.yield %cst : f32
  } score {
    %0 = attn.score
    attn.yield %0 : f32
  } mask {
    %b = attn.index b
    %q = attn.index q
    %kv = attn.index kv
    %x = attn.read "doc"[%q] : i64
    %y = attn.read "doc"[%kv] : i64
    %e1 = arith.cmpi eq, %x, %y : i64
    %z = attn.read "key"[%kv] : i64
    %t = attn.read "key"[%q] : i64
    %e2 = arith.cmpi eq, %z, %t : i64
    %w = attn.read "w"[%b] : i64
    %u = attn.read "u"[%b] : i64
    %e3 = arith.cmpi eq, %w, %u : i64
    %a = arith.andi %e1, %e2 : i1
    %a2 = arith.andi %a, %e3 : i1
    attn.yield %a2 : i1
  }
}

// -----

// Bounds read from int inputs at b, h or hkv, each at a dimension of its
// extent: a padding length kv < kv_len[b], a start kv >= start[b], a
// per-head window q - kv < w[h]; each becomes a symbol r0, r1, ... of its
// atom, which lists the reads its bound uses and no other. An input read
// at a dimension of another extent ("bad" [HQ] read at b) stays opaque.
// Transposed (the column view), the same reads bound the queries.
// CHECK-LABEL: attn.spec @bounds
// CHECK-SAME:    mask_schedule = #attn.mask<all_of(kv_le "r0 - 1" reads("kv_len"[b]), kv_ge "r0" reads("start"[b]), kv_ge "q - r0 + 1" reads("w"[h]), kv_le "q", opaque)>
// CHECK-SAME:    mask_schedule_columns = #attn.mask<all_of(q_pred "-q + r0 - 1" reads("kv_len"[b]), q_pred "q - r0" reads("start"[b]), kv_le "q + r0 - 1" reads("w"[h]), kv_ge "q", opaque)>
module {
  attn.spec @bounds normalize(softmax) inputs [#attn.input<"kv_len" : i64 [B]>, #attn.input<"start" : i64 [B]>, #attn.input<"w" : i64 [HQ]>, #attn.input<"bad" : i64 [HQ]>] scale {
    %cst = arith.constant 1.000000e+00 : f32
    attn.yield %cst : f32
  } score {
    %0 = attn.score
    attn.yield %0 : f32
  } mask {
    %b = attn.index b
    %h = attn.index h
    %q = attn.index q
    %kv = attn.index kv
    %len = attn.read "kv_len"[%b] : i64
    %c1 = arith.cmpi slt, %kv, %len : i64
    %st = attn.read "start"[%b] : i64
    %c2 = arith.cmpi sge, %kv, %st : i64
    %w = attn.read "w"[%h] : i64
    %d = arith.subi %q, %kv : i64
    %c3 = arith.cmpi slt, %d, %w : i64
    %c4 = arith.cmpi sge, %q, %kv : i64
    %bad = attn.read "bad"[%b] : i64
    %c5 = arith.cmpi slt, %kv, %bad : i64
    %a1 = arith.andi %c1, %c2 : i1
    %a2 = arith.andi %a1, %c3 : i1
    %a3 = arith.andi %a2, %c4 : i1
    %a4 = arith.andi %a3, %c5 : i1
    attn.yield %a4 : i1
  }
}

// -----

// Bounds read at q, on a dimension of LQ or LK: a per-row length kv <
// len[q] and a per-row start kv >= start[b, q] become symbols that vary
// with the row (the schedule scans their min and max per block of rows).
// Read at q on a dimension of another extent ("bad" [HQ]), or at kv
// (first[kv]), they stay opaque. Transposed, the reads at q are reads at
// the column view's kv, opaque, and first[kv], read at its q, bounds it.
// CHECK-LABEL: attn.spec @row_bounds
// CHECK-SAME:    mask_schedule = #attn.mask<all_of(kv_le "r0 - 1" reads("len"[q]), kv_ge "r0" reads("start"[b, q]), opaque)>
// CHECK-SAME:    mask_schedule_columns = #attn.mask<all_of(opaque, kv_ge "r0" reads("first"[q]))>
module {
  attn.spec @row_bounds normalize(softmax) inputs [#attn.input<"len" : i64 [LQ]>, #attn.input<"start" : i64 [B, LQ]>, #attn.input<"bad" : i64 [HQ]>, #attn.input<"first" : i64 [LK]>] scale {
    %cst = arith.constant 1.000000e+00 : f32
    attn.yield %cst : f32
  } score {
    %0 = attn.score
    attn.yield %0 : f32
  } mask {
    %b = attn.index b
    %q = attn.index q
    %kv = attn.index kv
    %len = attn.read "len"[%q] : i64
    %c1 = arith.cmpi slt, %kv, %len : i64
    %st = attn.read "start"[%b, %q] : i64
    %c2 = arith.cmpi sge, %kv, %st : i64
    %bad = attn.read "bad"[%q] : i64
    %c3 = arith.cmpi slt, %kv, %bad : i64
    %first = attn.read "first"[%kv] : i64
    %c4 = arith.cmpi sle, %first, %q : i64
    %a1 = arith.andi %c1, %c2 : i1
    %a2 = arith.andi %a1, %c3 : i1
    %a3 = arith.andi %a2, %c4 : i1
    attn.yield %a3 : i1
  }
}

// -----

// A 2-D neighbourhood on a 32-wide grid: the ordinary formula bounds the
// keys by whole grid rows, the grid view bounds kv mod 32 by q mod 32.
// CHECK-LABEL: attn.spec @grid3
// CHECK-SAME:    attn.grid = {columns = #attn.mask<all_of(opaque, kv_le "q + 1", kv_ge "q - 1")>, width = 32 : i64}
// CHECK-SAME:    mask_schedule = #attn.mask<all_of(kv_le "(q floordiv 32) * 32 + 63", kv_ge "(q floordiv 32) * 32 - 32", opaque)>
module {
  attn.spec @grid3 normalize(softmax) scale {
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
    %0 = attn.index kv
    %c32_i64 = arith.constant 32 : i64
    %1 = arith.floordivsi %0, %c32_i64 : i64
    %2 = attn.index q
    %c32_i64_0 = arith.constant 32 : i64
    %3 = arith.floordivsi %2, %c32_i64_0 : i64
    %4 = arith.subi %1, %3 : i64
    %5 = math.absi %4 : i64
    %c1_i64 = arith.constant 1 : i64
    %6 = arith.cmpi sle, %5, %c1_i64 : i64
    %7 = attn.index kv
    %c32_i64_1 = arith.constant 32 : i64
    %8 = attn.floormod %7, %c32_i64_1
    %9 = attn.index q
    %c32_i64_2 = arith.constant 32 : i64
    %10 = attn.floormod %9, %c32_i64_2
    %11 = arith.subi %8, %10 : i64
    %12 = math.absi %11 : i64
    %c1_i64_3 = arith.constant 1 : i64
    %13 = arith.cmpi sle, %12, %c1_i64_3 : i64
    %14 = arith.andi %6, %13 : i1
    attn.yield %14 : i1
  }
}


// -----

// kv mod 16 against q mod 32: no common width, no grid view.
// CHECK-LABEL: attn.spec @grid_mismatch
// CHECK-NOT:     attn.grid
// CHECK-SAME:    mask_schedule
module {
  attn.spec @grid_mismatch normalize(softmax) scale {
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
    %0 = attn.index kv
    %c32_i64 = arith.constant 32 : i64
    %1 = arith.floordivsi %0, %c32_i64 : i64
    %2 = attn.index q
    %c32_i64_0 = arith.constant 32 : i64
    %3 = arith.floordivsi %2, %c32_i64_0 : i64
    %4 = arith.subi %1, %3 : i64
    %5 = math.absi %4 : i64
    %c1_i64 = arith.constant 1 : i64
    %6 = arith.cmpi sle, %5, %c1_i64 : i64
    %7 = attn.index kv
    %c32_i64_1 = arith.constant 16 : i64
    %8 = attn.floormod %7, %c32_i64_1
    %9 = attn.index q
    %c32_i64_2 = arith.constant 32 : i64
    %10 = attn.floormod %9, %c32_i64_2
    %11 = arith.subi %8, %10 : i64
    %12 = math.absi %11 : i64
    %c1_i64_3 = arith.constant 1 : i64
    %13 = arith.cmpi sle, %12, %c1_i64_3 : i64
    %14 = arith.andi %6, %13 : i1
    attn.yield %14 : i1
  }
}

