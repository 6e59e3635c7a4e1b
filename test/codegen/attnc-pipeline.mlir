// The whole pipeline (codegen/Pipeline.h) as attn-opt runs it: the same
// passes as attnc and the C++ API, stopped at a level with `until`.
// RUN: attn-opt %s --attnc-pipeline="until=analysed" | FileCheck %s --check-prefix=ANALYSED
// RUN: attn-opt %s --attnc-pipeline="until=tiled storage=bf16 tile-q=16 tile-k=32" | FileCheck %s --check-prefix=TILED
// RUN: attn-opt %s --attnc-pipeline="target=cuda arch=sm_90a storage=f16" | FileCheck %s --check-prefix=CUDA
// RUN: attn-opt %s --attnc-pipeline="until=loops" | FileCheck %s --check-prefix=LOOPS
// RUN: attn-opt %s --attnc-pipeline | FileCheck %s --check-prefix=LLVM
// RUN: not attn-opt %s --attnc-pipeline="target=cuda" 2>&1 | FileCheck %s --check-prefix=NOARCH

// ANALYSED: attn.spec @causal normalize(softmax) attributes {mask_schedule = #attn.mask<kv_le "q">, mask_schedule_columns = #attn.mask<kv_ge "q">}
// TILED:    attn.flash tiles(16, 32) storage(bf16) scale_per_call mask_on_partial prepass(0) {
// CUDA:     attn.flash tiles(128, 128) storage(f16) scale_per_call mask_on_partial prepass(0) {
// LOOPS:    func.call @attnc_uk_qk_f32
// LOOPS:    } {attn.loop = "tasks"}
// LLVM:     llvm.func @attnc_kernel_causal(
// NOARCH:   error: attn-choose-tiles: target must be cpu, sm_80 or sm_90a, got ''
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
