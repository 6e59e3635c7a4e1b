// RUN: attn-opt %s --split-input-file --attn-lower-cpu --verify-diagnostics | FileCheck %s
// The same flash ops with bf16 storage and 16 x 8 tiles (the grid op keeps
// its own: its patch shape belongs to its tiles).
// RUN: sed -e 's/tiles(32, 64) storage(f32) scale/tiles(16, 8) storage(bf16) scale/' %s | attn-opt --split-input-file --attn-lower-cpu --verify-diagnostics | FileCheck %s --check-prefix=BF16
// RUN: attn-opt %s --split-input-file --attn-lower-cpu="microkernels=1" --verify-diagnostics | FileCheck %s --check-prefix=UK

// The flash form of full attention: the task loop, the key-tile loop, the
// online softmax (exp, running max) and the lse (log); no mask code at all.
module {
  attn.flash tiles(32, 64) storage(f32) scale_per_call prepass(0) {
      attn.spec @full normalize(softmax) attributes {mask_schedule = #attn.mask<always>} scale {
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
}

// The tiles are views of the caller's arena (KernelABI.h), never stack
// arrays; a too small arena records status 3 and runs no task.
// CHECK-LABEL: func.func @attn_full(
// CHECK-SAME:    memref<?xf32, strided<[1], offset: ?>>
// CHECK-SAME:    %[[ARENA:arg7]]: memref<?xi8, strided<[1], offset: ?>>
// CHECK-SAME:    %[[STATUS:arg9]]: memref<?xi64, strided<[1], offset: ?>>
// CHECK-SAME:    %[[BEGIN:arg10]]: index, %[[END:arg11]]: index
// CHECK-SAME:    attn.normalize = #attn<normalize softmax>, attn.tile_k = 64 : i64, attn.tile_q = 32 : i64
// CHECK-NOT:     memref.alloca
// CHECK:         %[[LEN:.*]] = memref.dim %[[ARENA]]
// CHECK:         %[[BYTES:.*]] = memref.reinterpret_cast %[[ARENA]] to offset: [0], sizes: [%[[LEN]]], strides: [1]
// CHECK-COUNT-8: memref.view %[[BYTES]][%{{.*}}][%{{.*}}] : memref<?xi8> to memref<?xf32>
// CHECK-COUNT-2: memref.view %[[BYTES]][%{{.*}}][%{{.*}}] : memref<?xi8> to memref<?xi64>
// CHECK:         %[[FITS:.*]] = arith.cmpi sle, %[[NEED:.*]], %{{.*}} : i64
// CHECK:         arith.constant 3 : i64
// CHECK-NEXT:    memref.store %{{.*}}, %[[STATUS]]
// CHECK:         memref.store %[[NEED]], %[[STATUS]]
// CHECK-NOT:     memref.alloca
// CHECK:         %[[LAST:.*]] = arith.select %[[FITS]], %[[END]], %[[BEGIN]] : index
// CHECK:         scf.for %{{.*}} = %[[BEGIN]] to %[[LAST]]
// CHECK:         scf.for
// CHECK:           scf.for
// CHECK:             scf.if
// CHECK:               arith.maximumf
// CHECK:               math.exp
// CHECK:               math.exp
// CHECK-NOT:         attn.tile = "partial"
// CHECK:           } {attn.tile = "visit"}
// CHECK-NEXT:    } {attn.loop = "key_tiles"}
// CHECK:         math.log
// CHECK:       } {attn.loop = "tasks"}
// BF16-LABEL: func.func @attn_full(
// BF16-SAME:    memref<?xbf16, strided<[1], offset: ?>>
// BF16-SAME:    attn.tile_k = 8 : i64, attn.tile_q = 16 : i64
// BF16:         arith.extf {{.*}} : bf16 to f32
// BF16:         arith.truncf {{.*}} : f32 to bf16

// -----

// Causal: the mask (q >= kv) is evaluated only inside the PARTIAL branch,
// where it replaces dropped logits by -inf.
module {
  attn.flash tiles(32, 64) storage(f32) scale_per_call mask_on_partial prepass(0) {
    attn.spec @causal normalize(softmax) attributes {mask_schedule = #attn.mask<kv_le "q">} scale {
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
}

// Causal reads no h, so a task may hold the rows of P = max(meta[32], 1)
// query heads (KernelABI.h, ATTNC_META_ROW_HEADS): a task is (b, head
// block, tile of P * LQ rows), its first head hb * P, and row r is query
// r % LQ of head h + r / LQ (the queries kept in the qIdx view). A paged
// cache (meta[33] > 0) runs each key tile in pieces of one page, each
// prefetching head hkv's keys and values of the page 2 ahead when that
// page holds keys of the call (its table entry at meta[34] + b * meta[35]
// + g + 2) and rows are dense.
// CHECK-LABEL: func.func @attn_causal(
// CHECK-SAME:    %[[META:arg8]]: memref<?xi64
// CHECK:         %[[C32:.*]] = arith.constant 32 : index
// CHECK-NEXT:    %[[P0:.*]] = memref.load %[[META]][%[[C32]]]
// CHECK-NEXT:    %[[P:.*]] = arith.maxsi %[[P0]], %c1_i64 : i64
// CHECK-NEXT:    %[[BLOCKS:.*]] = arith.divsi %{{.*}}, %[[P]] : i64
// CHECK-NEXT:    %[[ROWS:.*]] = arith.muli %[[P]], %[[LQ:.*]] : i64
// CHECK-NEXT:    %[[NQT:.*]] = arith.ceildivsi %[[ROWS]], %c32_i64 : i64
// CHECK:         %[[N:.*]] = memref.load %[[META]][%c33]
// CHECK:         %[[PAGED:.*]] = arith.cmpi sgt, %[[N]], %c0_i64{{.*}}
// CHECK:         %[[QIDX:.*]] = memref.view {{.*}} to memref<?xi64>
// CHECK:         scf.for %[[T:.*]] = %[[BEGIN:.*]] to
// CHECK:           %[[TI:.*]] = arith.index_cast %[[T]] : index to i64
// CHECK-NEXT:      %[[QT:.*]] = arith.remsi %[[TI]], %[[NQT]] : i64
// CHECK-NEXT:      %[[BH:.*]] = arith.divsi %[[TI]], %[[NQT]] : i64
// CHECK-NEXT:      %[[HB:.*]] = arith.remsi %[[BH]], %[[BLOCKS]] : i64
// CHECK-NEXT:      %[[H:.*]] = arith.muli %[[HB]], %[[P]] : i64
// CHECK:           scf.for %[[I:.*]] = %c0{{.*}} to
// CHECK-NEXT:        %[[II:.*]] = arith.index_cast %[[I]] : index to i64
// CHECK-NEXT:        %[[R:.*]] = arith.addi %{{.*}}, %[[II]] : i64
// CHECK-NEXT:        %[[Q:.*]] = arith.remsi %[[R]], %[[LQ]] : i64
// CHECK-NEXT:        memref.store %[[Q]], %[[QIDX]][%[[I]]]
// CHECK:         %[[AHEAD:.*]] = arith.addi %[[G:.*]], %c2_i64{{.*}} : i64
// CHECK:         %[[LAST:.*]] = arith.divsi %{{.*}}, %[[ROWSPP:.*]] : i64
// CHECK:         %[[FITS:.*]] = arith.cmpi sle, %[[AHEAD]], %[[LAST]] : i64
// CHECK:         scf.if %{{.*}} {
// CHECK:           %[[AT:.*]] = arith.addi %[[TABLE:.*]], %{{.*}} : i64
// CHECK:           memref.load %[[META]][%{{.*}}]
// CHECK:           scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c1
// CHECK:             scf.for %{{.*}} = %{{.*}} to %{{.*}} step %c16
// CHECK:               memref.prefetch %arg1[%{{.*}}], read, locality<3>, data
// CHECK:               memref.prefetch %arg2[%{{.*}}], read, locality<3>, data
// CHECK:           arith.cmpi eq, %{{.*}}, %c2_i64{{.*}}
// CHECK-NEXT:      scf.if
// CHECK:             %[[KEEP:.*]] = arith.cmpi sge
// CHECK:             arith.select %[[KEEP]], %{{.*}}, %cst
// CHECK:           } {attn.tile = "partial"}
// CHECK:           math.exp
// CHECK:         } {attn.loop = "page_pieces"}
// CHECK-NEXT:    } {attn.tile = "visit"}
// BF16-LABEL: func.func @attn_causal(

// With microkernels (the CPU back end): S^T = K Q^T, the softmax update and
// P V are calls; the mask still runs on PARTIAL tiles only, in between.
// UK-LABEL: func.func @attn_causal(
// UK:         func.call @attnc_uk_qk_f32(
// UK:         scf.if
// UK:           arith.cmpi sge
// UK:         } {attn.tile = "partial"}
// UK:         func.call @attnc_uk_softmax_t_f32(
// UK:         func.call @attnc_uk_pv_t_f32(
// UK:       } {attn.tile = "visit"}

// -----

// Sigmoid: p = 1 / (1 + exp(-(s + bias))) with the bias region inlined
// (-log LK) in the element step, under the mask on PARTIAL tiles (P = 0
// where it drops) and without it on the others; no running max and no lse.
module {
  attn.flash tiles(32, 64) storage(f32) scale_per_call mask_on_partial prepass(0) {
    attn.spec @sigmoid_causal normalize(sigmoid) attributes {mask_schedule = #attn.mask<kv_le "q">} scale {
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
      %0 = attn.dim LK
      %1 = arith.sitofp %0 : i64 to f32
      %2 = math.log %1 : f32
      %3 = arith.negf %2 : f32
      attn.yield %3 : f32
    }
  }
}

// CHECK-LABEL: func.func @attn_sigmoid_causal(
// CHECK-SAME:    attn.normalize = #attn<normalize sigmoid>
// CHECK-NOT:     arith.maximumf
// CHECK:         %[[KEEP:.*]] = arith.cmpi sge
// CHECK:         math.log
// CHECK:         arith.negf
// CHECK:         math.exp
// CHECK:         %[[P:.*]] = arith.divf
// CHECK:         arith.select %[[KEEP]], %[[P]], %cst
// CHECK:       } else {
// CHECK-NOT:     arith.cmpi sge
// CHECK:         math.log
// CHECK:         math.exp
// CHECK:       } {attn.tile = "partial"}
// CHECK-NOT:   math.log
// CHECK:       } {attn.loop = "tasks"}
// BF16-LABEL: func.func @attn_sigmoid_causal(

// -----

// An input read with an unproven index is bounds-checked: out of range, it
// yields 0 and, after the region (where its value is needed: here always),
// records error 1 (input 0, dimension, index) in the status buffer. A read
// indexed by h in an [HQ] input needs no check.
module {
  attn.flash tiles(32, 64) storage(f32) scale_per_call prepass(0) {
    attn.spec @gather normalize(softmax) inputs [#attn.input<"idx" : i64 [LQ]>, #attn.input<"t" : f32 [4]>, #attn.input<"s" : f32 [HQ]>] attributes {mask_schedule = #attn.mask<always>} scale {
      %cst = arith.constant 1.000000e+00 : f32
      %0 = attn.dim D
      %1 = arith.sitofp %0 : i64 to f32
      %2 = math.sqrt %1 : f32
      %3 = arith.divf %cst, %2 : f32
      attn.yield %3 : f32
    } score {
      %0 = attn.score
      %1 = attn.index q
      %2 = attn.read "idx"[%1] : i64
      %3 = attn.read "t"[%2] : f32
      %4 = arith.addf %0, %3 : f32
      %5 = attn.index h
      %6 = attn.read "s"[%5] : f32
      %7 = arith.addf %4, %6 : f32
      attn.yield %7 : f32
    } mask {
      %true = arith.constant true
      attn.yield %true : i1
    }
  }
}

// The score reads h, the mask does not: heads may share a task (meta[32]
// read), each element reading its row's own head.
// CHECK-LABEL: func.func @attn_gather(
// CHECK-SAME:    %[[META:arg11]]: memref<?xi64
// CHECK:         memref.load %[[META]][%c32{{.*}}]
// CHECK:         arith.cmpi slt
// CHECK:         %[[OK:.*]] = arith.andi %true{{.*}}, %{{.*}} : i1
// CHECK:         %[[BAD:.*]] = arith.xori %[[OK]], %true
// CHECK:         scf.if %[[OK]] -> (f32) {
// CHECK:           memref.load
// CHECK:         } else {
// CHECK:           scf.yield %cst
// CHECK:         }
// CHECK:         scf.if %[[BAD]] {
// CHECK:           memref.store %c1_i64{{.*}}, %arg{{[0-9]+}}[%c0{{.*}}]
// CHECK:         }
// BF16-LABEL: func.func @attn_gather(

// -----

// A mask that reads h (a window per head) is classified per task: one head
// per task, meta[32] unread.
module {
  attn.flash tiles(32, 64) storage(f32) scale_per_call mask_on_partial prepass(0) {
    attn.spec @head_window normalize(softmax) attributes {mask_schedule = #attn.mask<all_of(kv_le "q", kv_ge "q - h")>} scale {
      %cst = arith.constant 1.000000e+00 : f32
      attn.yield %cst : f32
    } score {
      %0 = attn.score
      attn.yield %0 : f32
    } mask {
      %0 = attn.index q
      %1 = attn.index kv
      %2 = attn.index h
      %3 = arith.cmpi sge, %0, %1 : i64
      %4 = arith.subi %0, %2 : i64
      %5 = arith.cmpi sge, %1, %4 : i64
      %6 = arith.andi %3, %5 : i1
      attn.yield %6 : i1
    }
  }
}

// CHECK-LABEL: func.func @attn_head_window(
// CHECK-SAME:    %[[META:arg8]]: memref<?xi64
// CHECK-NOT:     memref.load %[[META]][%c32{{.*}}]
// CHECK:       } {attn.loop = "tasks"}

// -----

// The evaluation rule: a read in the unchosen arm of a select reports only
// where its arm is chosen (its failure and'ed with the condition), and the
// score region of a PARTIAL tile reports only where the mask keeps the
// pair (and'ed with the mask's value).
module {
  attn.flash tiles(32, 64) storage(f32) scale_per_call mask_on_partial prepass(0) {
    attn.spec @guarded normalize(softmax) inputs [#attn.input<"rel" : f32 [LK]>] attributes {mask_schedule = #attn.mask<kv_ge "q">} scale {
      %cst = arith.constant 1.000000e+00 : f32
      attn.yield %cst : f32
    } score {
      %0 = attn.score
      %1 = attn.index q
      %2 = attn.index kv
      %3 = arith.subi %2, %1 : i64
      %4 = attn.read "rel"[%3] : f32
      %5 = arith.addf %0, %4 : f32
      %c0 = arith.constant 0 : i64
      %6 = arith.cmpi sge, %3, %c0 : i64
      %7 = arith.select %6, %5, %0 : f32
      attn.yield %7 : f32
    } mask {
      %0 = attn.index q
      %1 = attn.index kv
      %2 = arith.cmpi sge, %1, %0 : i64
      attn.yield %2 : i1
    }
  }
}

// CHECK-LABEL: func.func @attn_guarded(
// CHECK:         arith.cmpi eq, %{{.*}}, %c2_i64{{.*}}
// CHECK-NEXT:    scf.if
// CHECK:           %[[KEEP:.*]] = arith.cmpi sge
// CHECK:           %[[BAD:.*]] = arith.xori
// CHECK:           %[[ARM:.*]] = arith.cmpi sge
// CHECK:           %[[SEL:.*]] = arith.select %[[ARM]]
// CHECK:           %[[N1:.*]] = arith.ori %false{{.*}}, %[[KEEP]]
// CHECK:           arith.andi %[[N1]], %[[ARM]]
// CHECK:           %[[FAIL:.*]] = arith.andi %{{.*}}, %[[BAD]]
// CHECK:           scf.if %[[FAIL]] {
// CHECK:             memref.store %c1_i64
// CHECK:           arith.select %[[KEEP]], %[[SEL]], %cst
// CHECK:         } else {
// CHECK:           %[[BAD2:.*]] = arith.xori
// CHECK:           %[[ARM2:.*]] = arith.cmpi sge
// CHECK:           arith.ori %false{{.*}}, %[[ARM2]]
// CHECK:           %[[FAIL2:.*]] = arith.andi %{{.*}}, %[[BAD2]]
// CHECK:           scf.if %[[FAIL2]] {
// CHECK:         } {attn.tile = "partial"}
// BF16-LABEL: func.func @attn_guarded(

// -----

// A document mask (ids_eq): the rows' ids are scanned per query tile, the
// keys' come from a generated pre-pass over (b, h) that stores per key tile
// the min and max id in the scratch buffer (%arg6); no O(L^2) mask tensor.
module {
  attn.flash tiles(32, 64) storage(f32) scale_per_call mask_on_partial prepass(1) {
    attn.spec @document normalize(softmax) inputs [#attn.input<"doc_q" : i64 [LQ]>, #attn.input<"doc_kv" : i64 [LK]>] attributes {mask_schedule = #attn.mask<all_of(ids_eq "doc_q"[q] "doc_kv"[kv], kv_le "q")>} scale {
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
      %1 = attn.read "doc_q"[%0] : i64
      %2 = attn.index kv
      %3 = attn.read "doc_kv"[%2] : i64
      %4 = arith.cmpi eq, %1, %3 : i64
      %5 = attn.index q
      %6 = attn.index kv
      %7 = arith.cmpi sge, %5, %6 : i64
      %8 = arith.andi %4, %7 : i1
      attn.yield %8 : i1
    }
  }
}

// CHECK-LABEL: func.func @attn_document(
// CHECK:         scf.for {{.*}} iter_args({{.*}}) -> (i64, i64)
// CHECK:           arith.minsi
// CHECK:           arith.maxsi
// CHECK:         } {attn.loop = "key_tiles"}
// CHECK-LABEL: func.func @attn_document__prepass(
// CHECK-SAME:    %[[SCRATCH:arg6]]: memref<?xi64, strided<[1], offset: ?>>
// CHECK:         scf.for
// CHECK:           scf.for
// CHECK:             scf.for {{.*}} iter_args({{.*}}) -> (i64, i64)
// CHECK:             memref.store %{{.*}}, %[[SCRATCH]]
// CHECK:             memref.store %{{.*}}, %[[SCRATCH]]
// CHECK:       } {attn.loop = "prepass_heads"}
// BF16-LABEL: func.func @attn_document__prepass(

// -----

// A grid mask (attn.grid from the mask analysis): the tasks of complete
// bands are 2-D patches (4 x 8 queries at tile-q 32) whose keys are
// gathered and masked per element (the "partial" branch inside the
// "grid_patch" branch); the tail keeps the ordinary key-tile loop.
// CHECK-LABEL: func.func @attn_grid3
// CHECK-SAME:    attn.grid_patch = array<i64: 32, 4, 8>
// CHECK-NOT:     attn.loop = "page_pieces"
// CHECK:         attn.tile = "partial"
// CHECK:         attn.loop = "key_tiles"
// CHECK-NEXT:    attn.tile = "grid_patch"
// CHECK:         attn.loop = "tasks"
// UK-LABEL:    func.func @attn_grid3
// UK-SAME:       attn.grid_patch = array<i64: 32, 4, 8>
// UK:            call @attnc_uk_qk_f32
// UK:            attn.tile = "grid_patch"
module {
  attn.flash tiles(32, 64) storage(f32) grid_patch [32, 4, 8] scale_per_call mask_on_partial prepass(0) {
    attn.spec @grid3 normalize(softmax) attributes {attn.grid = {columns = #attn.mask<all_of(opaque, kv_le "q + 1", kv_ge "q - 1")>, width = 32 : i64}, mask_schedule = #attn.mask<all_of(kv_le "(q floordiv 32) * 32 + 63", kv_ge "(q floordiv 32) * 32 - 32", opaque)>} scale {
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
      %c1_i64 = arith.constant 1 : i64
      %c32_i64 = arith.constant 32 : i64
      %0 = attn.index kv
      %1 = arith.floordivsi %0, %c32_i64 : i64
      %2 = attn.index q
      %3 = arith.floordivsi %2, %c32_i64 : i64
      %4 = arith.subi %1, %3 : i64
      %5 = math.absi %4 : i64
      %6 = arith.cmpi sle, %5, %c1_i64 : i64
      %7 = attn.index kv
      %8 = attn.floormod %7, %c32_i64
      %9 = attn.index q
      %10 = attn.floormod %9, %c32_i64
      %11 = arith.subi %8, %10 : i64
      %12 = math.absi %11 : i64
      %13 = arith.cmpi sle, %12, %c1_i64 : i64
      %14 = arith.andi %6, %13 : i1
      attn.yield %14 : i1
    }
  }
}

// -----

// A grid_patch other than the grid tiling of the mask at the op's tiles.
module {
  // expected-error @+1 {{grid_patch does not match the grid tiling of its mask at these tile sizes}}
  attn.flash tiles(32, 64) storage(f32) grid_patch [32, 2, 16] scale_per_call mask_on_partial prepass(0) {
    attn.spec @grid_bad normalize(softmax) attributes {attn.grid = {columns = #attn.mask<all_of(opaque, kv_le "q + 1", kv_ge "q - 1")>, width = 32 : i64}, mask_schedule = #attn.mask<all_of(kv_le "(q floordiv 32) * 32 + 63", kv_ge "(q floordiv 32) * 32 - 32", opaque)>} scale {
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
      %c1_i64 = arith.constant 1 : i64
      %c32_i64 = arith.constant 32 : i64
      %0 = attn.index kv
      %1 = arith.floordivsi %0, %c32_i64 : i64
      %2 = attn.index q
      %3 = arith.floordivsi %2, %c32_i64 : i64
      %4 = arith.subi %1, %3 : i64
      %5 = math.absi %4 : i64
      %6 = arith.cmpi sle, %5, %c1_i64 : i64
      %7 = attn.index kv
      %8 = attn.floormod %7, %c32_i64
      %9 = attn.index q
      %10 = attn.floormod %9, %c32_i64
      %11 = arith.subi %8, %10 : i64
      %12 = math.absi %11 : i64
      %13 = arith.cmpi sle, %12, %c1_i64 : i64
      %14 = arith.andi %6, %13 : i1
      attn.yield %14 : i1
    }
  }
}

// -----

// A spec with gradient regions (attn-derive-backward) also gets the
// backward helpers of KernelABI.h: the column view of the schedule per key
// tile (here causal, transposed: the query tiles from the key tile's first
// key on), and the element-wise step of one tile pair: the mask on PARTIAL
// tiles only, P = exp(z - lse), dZ = P (dP - delta), the derivative region
// with the slope's gradient added where the pair is kept, P and dS * scale
// stored back.
// CHECK-LABEL: func.func @attn_softcap_alibi__bwd_kinds(
// CHECK-SAME:    %[[DESC:[a-z0-9]+]]: memref<?xi64, strided<[1], offset: ?>>, %[[KINDS:[a-z0-9]+]]: memref<?xi64
// CHECK:         %[[NUMQT:.*]] = arith.ceildivsi
// CHECK:         memref.store %{{.*}}, %[[KINDS]][%{{.*}}]
// CHECK:         memref.store %{{.*}}, %[[KINDS]][%{{.*}}]
// CHECK:         scf.for
// CHECK:           memref.store %{{.*}}, %[[KINDS]][%{{.*}}]
// CHECK:         } {attn.loop = "query_tiles"}
// CHECK-LABEL: func.func @attn_softcap_alibi__bwd_tile(
// CHECK-SAME:    %[[D:[a-z0-9]+]]: memref<?xi64, strided<[1], offset: ?>>, %[[S:[a-z0-9]+]]: memref<?xf32, strided<[1], offset: ?>>, %[[DP:[a-z0-9]+]]: memref<?xf32, strided<[1], offset: ?>>, %[[LSE:[a-z0-9]+]]: memref<?xf32, strided<[1], offset: ?>>, %[[DELTA:[a-z0-9]+]]: memref<?xf32, strided<[1], offset: ?>>, %[[GRAD:[a-z0-9]+]]: memref<?xf32
// The kind is tested once: PARTIAL tiles get the loops with the mask, the
// others the same loops without it. exp is a polynomial (no math.exp: that
// would be a libm call, which LLVM does not vectorise).
// CHECK-NOT:     math.exp
// CHECK:         %[[PARTIAL:.*]] = arith.cmpi eq, %{{.*}}, %c2_i64
// CHECK:         scf.if %[[PARTIAL]] {
// CHECK:           scf.for
// CHECK:             scf.for
// CHECK:               %[[KEEP:.*]] = arith.cmpi sge
// CHECK:               %[[DOT:.*]] = memref.load %[[S]]
// CHECK:               math.tanh
// CHECK:               %[[DPV:.*]] = memref.load %[[DP]]
// CHECK:               %[[ROWLSE:.*]] = memref.load %[[LSE]]
// CHECK:               %[[ROWDELTA:.*]] = memref.load %[[DELTA]]
// CHECK:               %[[ZL:.*]] = arith.subf %{{.*}}, %[[ROWLSE]]
// CHECK:               %[[CLAMP:.*]] = arith.minnumf %[[ZL]], %{{.*}}
// CHECK:               math.roundeven
// CHECK:               arith.shli %{{.*}}, %c23_i32
// CHECK:               %[[UNO:.*]] = arith.cmpf uno, %[[ZL]], %[[ZL]]
// CHECK:               %[[P:.*]] = arith.select %[[UNO]], %[[ZL]], %{{.*}}
// CHECK:               %[[DD:.*]] = arith.subf %[[DPV]], %[[ROWDELTA]]
// CHECK:               %[[DZ:.*]] = arith.mulf %[[P]], %[[DD]]
// CHECK:               %[[KEPTREAD:.*]] = arith.andi %[[KEEP]], %true
// CHECK:               scf.if %[[KEPTREAD]] {
// CHECK:                 memref.load %[[GRAD]]
// CHECK:                 arith.addf
// CHECK:                 memref.store %{{.*}}, %[[GRAD]]
// CHECK:               %[[PK:.*]] = arith.select %[[KEEP]], %[[P]], %{{.*}}
// CHECK:               memref.store %[[PK]], %[[S]]
// CHECK:               %[[DSK:.*]] = arith.select %[[KEEP]]
// CHECK:               memref.store %[[DSK]], %[[DP]]
// CHECK:           } {attn.loop = "pairs"}
// CHECK:         } else {
// CHECK:           scf.for
// CHECK:             scf.for
// CHECK-NOT:           arith.cmpi sge
// CHECK:               math.tanh
// CHECK:               math.roundeven
// CHECK:               memref.store %{{.*}}, %[[S]]
// CHECK:               memref.store %{{.*}}, %[[DP]]
// CHECK:           } {attn.loop = "pairs"}
// CHECK-NEXT:    } {attn.tile = "partial"}
// CHECK-NOT:     math.exp
module {
  attn.flash tiles(64, 64) storage(f32) scale_per_call mask_on_partial prepass(0) {
    attn.spec @softcap_alibi normalize(softmax) params [#attn.param<"cap" : f32 = 5.000000e+01>] inputs [#attn.input<"slopes" : f32 [HQ]>] attributes {mask_schedule = #attn.mask<kv_le "q">, mask_schedule_columns = #attn.mask<kv_ge "q">} scale {
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
    } score_grad {
      %cst = arith.constant 5.000000e+01 : f32
      %0 = attn.score
      %1 = arith.divf %0, %cst : f32
      %2 = math.tanh %1 : f32
      %3 = attn.index h
      %4 = attn.read "slopes"[%3] : f32
      %5 = attn.index q
      %6 = attn.index kv
      %7 = arith.subi %5, %6 : i64
      %8 = arith.sitofp %7 : i64 to f32
      %9 = attn.adjoint
      %10 = arith.negf %9 : f32
      %11 = arith.mulf %10, %8 : f32
      attn.accumulate %4, %11 : f32
      %12 = arith.mulf %9, %cst : f32
      %13 = arith.mulf %2, %2 : f32
      %cst_0 = arith.constant 1.000000e+00 : f32
      %14 = arith.subf %cst_0, %13 : f32
      %15 = arith.mulf %12, %14 : f32
      %16 = arith.divf %15, %cst : f32
      attn.yield %16 : f32
    }
  }
}

// -----

// A softmax sink (softmax(sink = sinks[h])): the forward's row finish reads
// the row's sink only in the call whose key window starts at key 0, and
// takes it in as a key with no value (m' = max(m, s), l' = c l + e^(s - m'),
// out = c acc / l'). The backward's tile helper has kind 3, the rows' sinks:
// P_s stored to S, -P_s delta into sink_grad.
// CHECK-LABEL: func.func @attn_sinks(
// CHECK:         } {attn.loop = "key_tiles"}
// CHECK:         %[[FIRST:.*]] = arith.cmpi eq, %{{.*}}, %c0_i64
// CHECK:         memref.load %{{.*}} : memref<?xf32
// CHECK:         %[[SINK:.*]] = arith.select %[[FIRST]], %{{.*}}, %cst : f32
// CHECK-NEXT:    %{{.*}} = arith.maximumf %{{.*}}, %[[SINK]] : f32
// Both exps are the polynomial (n = roundeven(x log2 e)), not libm calls.
// CHECK-NOT:     math.exp
// CHECK:         math.roundeven
// CHECK-NOT:     math.exp
// CHECK:         math.roundeven
// CHECK-NOT:     math.exp
// CHECK:         math.log
// CHECK-LABEL: func.func @attn_sinks__bwd_tile(
// CHECK:         arith.cmpi eq, %{{.*}}, %c3_i64
// CHECK:         scf.if
// CHECK:           memref.load
// CHECK:         } {attn.loop = "sink_rows"}
module {
  attn.flash tiles(64, 64) storage(f32) scale_per_call mask_on_partial prepass(0) {
    attn.spec @sinks normalize(softmax) inputs [#attn.input<"sinks" : f32 [HQ]>] attributes {mask_schedule = #attn.mask<kv_le "q">, mask_schedule_columns = #attn.mask<kv_ge "q">} scale {
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
    } sink {
      %0 = attn.index h
      %1 = attn.read "sinks"[%0] : f32
      attn.yield %1 : f32
    } score_grad {
      %0 = attn.adjoint
      attn.yield %0 : f32
    } sink_grad {
      %0 = attn.index h
      %1 = attn.read "sinks"[%0] : f32
      %2 = attn.adjoint
      attn.accumulate %1, %2 : f32
      attn.yield
    }
  }
}

