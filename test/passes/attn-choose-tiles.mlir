// RUN: attn-opt %s --split-input-file --attn-choose-tiles="tile-q=16 tile-k=8" | FileCheck %s --check-prefix=EXPLICIT
// RUN: attn-opt %s --split-input-file --attn-choose-tiles | FileCheck %s --check-prefix=TUNED
// RUN: attn-opt %s --split-input-file --attn-choose-tiles="target=sm_80" | FileCheck %s --check-prefix=SM80
// RUN: attn-opt %s --split-input-file --attn-choose-tiles="target=sm_90a storage=bf16" | FileCheck %s --check-prefix=SM90
// RUN: not attn-opt %s --split-input-file --attn-choose-tiles="target=sm_70" 2>&1 | FileCheck %s --check-prefix=BADTARGET
// RUN: not attn-opt %s --split-input-file --attn-choose-tiles="target=sm_90a tile-q=64" 2>&1 | FileCheck %s --check-prefix=CUDATILES
// RUN: not attn-opt %s --split-input-file --attn-choose-tiles="storage=f64" 2>&1 | FileCheck %s --check-prefix=BADSTORAGE

// Explicit sizes, the tuned table (positive sizes from CpuTileTable.inc),
// and the CUDA kernels' fixed tiles.
// EXPLICIT: attn.spec @causal {{.*}}attn.tiles = array<i64: 16, 8>
// TUNED:    attn.spec @causal {{.*}}attn.tiles = array<i64: {{[1-9][0-9]*}}, {{[1-9][0-9]*}}>
// SM80:     attn.spec @causal {{.*}}attn.tiles = array<i64: 64, 64>
// SM90:     attn.spec @causal {{.*}}attn.tiles = array<i64: 128, 128>
// BADTARGET: error: attn-choose-tiles: target must be cpu, sm_80 or sm_90a, got 'sm_70'
// CUDATILES: error: attn-choose-tiles: the CUDA kernels' tiles are fixed (128 x 128 on sm_90a); tile-q and tile-k are for the cpu target
// BADSTORAGE: error: attn-choose-tiles: storage must be f32, f16 or bf16, got 'f64'
module {
  attn.spec @causal normalize(softmax) attributes {mask_schedule = #attn.mask<kv_le "q">} scale {
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

// A spec that already has tiles keeps them.
// EXPLICIT: attn.spec @own {{.*}}attn.tiles = array<i64: 24, 40>
// SM80:     attn.spec @own {{.*}}attn.tiles = array<i64: 24, 40>
module {
  attn.spec @own normalize(softmax) attributes {attn.tiles = array<i64: 24, 40>, mask_schedule = #attn.mask<always>} scale {
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
