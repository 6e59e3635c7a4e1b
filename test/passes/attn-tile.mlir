// RUN: attn-opt %s --split-input-file --attn-tile --verify-diagnostics | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-tile="storage=bf16 grid-patches=0" --verify-diagnostics | FileCheck %s --check-prefix=BF16

// Causal: the spec's tiles (attn.tiles, which the flash op now holds), a
// uniform scale (scale_per_call) and a schedule with PARTIAL tiles
// (mask_on_partial); the spec itself moves into the body unchanged.
// CHECK-LABEL: module {
// CHECK-NEXT:    attn.flash tiles(16, 128) storage(f32) scale_per_call mask_on_partial prepass(0) {
// CHECK-NEXT:      attn.spec @causal normalize(softmax) attributes {mask_schedule = #attn.mask<kv_le "q">} scale {
// CHECK:             arith.cmpi sge
// CHECK:         }
// BF16:          attn.flash tiles(16, 128) storage(bf16) scale_per_call mask_on_partial prepass(0) {
module {
  attn.spec @causal normalize(softmax) attributes {attn.tiles = array<i64: 16, 128>, mask_schedule = #attn.mask<kv_le "q">} scale {
    %c = arith.constant 1.0 : f32
    attn.yield %c : f32
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

// A mask the schedule decides alone (always) needs no mask code; a scale
// that reads a coordinate is evaluated per element (no scale_per_call).
// CHECK: attn.flash tiles(32, 64) storage(f32) prepass(0) {
// BF16:  attn.flash tiles(32, 64) storage(bf16) prepass(0) {
module {
  attn.spec @per_head normalize(softmax) attributes {attn.tiles = array<i64: 32, 64>, mask_schedule = #attn.mask<always>} scale {
    %0 = attn.index h
    %1 = arith.sitofp %0 : i64 to f32
    attn.yield %1 : f32
  } score {
    %0 = attn.score
    attn.yield %0 : f32
  } mask {
    %t = arith.constant true
    attn.yield %t : i1
  }
}

// -----

// A document mask: one ids_eq atom, one pre-pass word pair per key tile.
// CHECK: attn.flash tiles(64, 64) storage(f32) scale_per_call mask_on_partial prepass(1) {
module {
  attn.spec @document normalize(softmax) inputs [#attn.input<"doc_q" : i64 [LQ]>, #attn.input<"doc_kv" : i64 [LK]>] attributes {attn.tiles = array<i64: 64, 64>, mask_schedule = #attn.mask<all_of(ids_eq "doc_q"[q] "doc_kv"[kv], kv_le "q")>} scale {
    %c = arith.constant 1.0 : f32
    attn.yield %c : f32
  } score {
    %0 = attn.score
    attn.yield %0 : f32
  } mask {
    %0 = attn.index q
    %1 = attn.read "doc_q"[%0] : i64
    %2 = attn.index kv
    %3 = attn.read "doc_kv"[%2] : i64
    %4 = arith.cmpi eq, %1, %3 : i64
    attn.yield %4 : i1
  }
}

// -----

// A grid mask (attn.grid from the mask analysis) at 32 x 64 tiles: 2-D
// query patches of 4 x 8 queries, unless grid-patches=0 (the CUDA pipeline).
// CHECK: attn.flash tiles(32, 64) storage(f32) grid_patch [32, 4, 8] scale_per_call mask_on_partial prepass(0) {
// BF16:  attn.flash tiles(32, 64) storage(bf16) scale_per_call mask_on_partial prepass(0) {
module {
  attn.spec @grid3 normalize(softmax) attributes {attn.grid = {columns = #attn.mask<all_of(opaque, kv_le "q + 1", kv_ge "q - 1")>, width = 32 : i64}, attn.tiles = array<i64: 32, 64>, mask_schedule = #attn.mask<all_of(kv_le "(q floordiv 32) * 32 + 63", kv_ge "(q floordiv 32) * 32 - 32", opaque)>} scale {
    %c = arith.constant 1.0 : f32
    attn.yield %c : f32
  } score {
    %0 = attn.score
    attn.yield %0 : f32
  } mask {
    %c1_i64 = arith.constant 1 : i64
    %0 = attn.index kv
    %1 = attn.index q
    %2 = arith.subi %0, %1 : i64
    %3 = math.absi %2 : i64
    %4 = arith.cmpi sle, %3, %c1_i64 : i64
    attn.yield %4 : i1
  }
}

// -----

// The pass needs the mask analysis.
module {
  // expected-error @+1 {{attn-tile needs the mask analysis}}
  attn.spec @raw normalize(softmax) attributes {attn.tiles = array<i64: 32, 64>} scale {
    %c = arith.constant 1.0 : f32
    attn.yield %c : f32
  } score {
    %0 = attn.score
    attn.yield %0 : f32
  } mask {
    %t = arith.constant true
    attn.yield %t : i1
  }
}

// -----

// ... and the tile choice.
module {
  // expected-error @+1 {{attn-tile needs the spec's tile sizes (attn.tiles): run attn-choose-tiles first}}
  attn.spec @untiled normalize(softmax) attributes {mask_schedule = #attn.mask<always>} scale {
    %c = arith.constant 1.0 : f32
    attn.yield %c : f32
  } score {
    %0 = attn.score
    attn.yield %0 : f32
  } mask {
    %t = arith.constant true
    attn.yield %t : i1
  }
}

// -----

// Malformed attn.tiles.
module {
  // expected-error @+1 {{attn-tile: attn.tiles must be array<i64: Q, K> with positive sizes, got array<i64: 0, 64>}}
  attn.spec @bad_tiles normalize(softmax) attributes {attn.tiles = array<i64: 0, 64>, mask_schedule = #attn.mask<always>} scale {
    %c = arith.constant 1.0 : f32
    attn.yield %c : f32
  } score {
    %0 = attn.score
    attn.yield %0 : f32
  } mask {
    %t = arith.constant true
    attn.yield %t : i1
  }
}
