//===- CudaModule.h - The per-spec glue of an emitted .cu (internal) -*- C++ -*-===//
//
// An emitted .cu is the kernel templates of codegen/cuda/*.cuh (pasted:
// NVRTC compiles a self-contained text) and what depends on the spec:
//   1. the element code (CudaElementCode.cpp: the regions and the tile
//      schedule as functions);
//   2. the spec's struct attnc_spec_<n>, the contract of the templates:
//        static constexpr bool sigmoid;   // normalisation (else softmax)
//        static constexpr bool prescale;  // softmax's u.pre may be != 1
//        static constexpr bool has_sink;  // softmax(sink = ...): sink(c, q)
//                                         // is row q's sink logit
//        static constexpr int ids;        // ids_eq atoms of the pre-pass
//        typedef ... rowset;              // the schedule's per-CTA rows
//        rows(c, q0, q1), tile_kind(c, rows, k0, k1, pre): the schedule;
//        kvid(c, j, p): atom j's key-side id, kvid_extent(c, j): the keys
//          it has (only when ids > 0);
//        uniforms(c): the per-CTA attnc_uniforms (scale, bias, fold, pre);
//        element<PARTIAL>(c, u, q, kv, inb, s): S's element (q, kv) made
//          P's logit in log2 units (softmax) or P (sigmoid); PARTIAL tiles
//          run the mask, keys past LK (inb false) are dropped;
//   3. the instantiations: the pre-pass entry, one entry per storage type
//      and head dims (CudaABI.h's names, under ATTNC_ONLY_* guards), the
//      entry of other head dims, and the nvcc host launcher's table.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_CODEGEN_LIB_CUDAMODULE_H
#define ATTNC_CODEGEN_LIB_CUDAMODULE_H

#include "attnc/Dialect/AttnDialect.h"
#include "attnc/Runtime/Cuda.h"

#include "llvm/ADT/StringRef.h"

#include <string>

namespace attnc::cudamod {

/// (D, DV) pairs each .cu has entries for (attnc_flash.cuh's list).
struct HeadDims {
  int hd, hdv;
};
extern const HeadDims kHeadDims[4];

/// The storage types every .cu has entries for (the runtime's dtypeCode
/// and dtypeTag name them in the ABI and the entry names).
extern const runtime::DType kStorageTypes[2];

/// The .cu of `flash` for "sm_80" or "sm_90a" (emitCuda checked both).
runtime::Expected<std::string> emitKernels(mlir::attn::FlashOp flash, llvm::StringRef arch);

} // namespace attnc::cudamod

#endif // ATTNC_CODEGEN_LIB_CUDAMODULE_H
