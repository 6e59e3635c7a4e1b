//===- CudaModule.h - Pieces every emitted .cu shares (internal) -*- C++ -*-===//
//
// The parts of a .cu that do not depend on the architecture: the banner and
// includes, the storage types (bf16 / f16 as raw 16-bit words, converted
// with PTX cvt, so that NVRTC needs no cuda_fp16.h), the entry-point names
// and ATTNC_ONLY_* guards of CudaABI.h, and the ids pre-pass kernel.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_CODEGEN_LIB_CUDAMODULE_H
#define ATTNC_CODEGEN_LIB_CUDAMODULE_H

#include "attnc/Dialect/AttnDialect.h"
#include "attnc/Runtime/Cuda.h"

#include <string>

namespace attnc::cudamod {

/// (D, DV) pairs each .cu has forward entries for.
struct HeadDims {
  int hd, hdv;
};
extern const HeadDims kHeadDims[4];

/// The storage types every .cu has entries for (the runtime's dtypeCode
/// and dtypeTag name them in the ABI and the entry names).
extern const runtime::DType kStorageTypes[2];
/// The kernels' storage type name: "attnc_f16", "attnc_bf16".
std::string dtType(runtime::DType dt);

/// `#if` line keeping one entry under the ATTNC_ONLY_* macros.
std::string selectGuard(runtime::DType dt, int hd, int hdv);

/// A launch record's initializer (CudaABI.h's word order).
struct Record {
  int rows = 0, threads = 0, smem = 0, cluster = 0, scratch = 0, tma = 0, keys = 0;
};
std::string recordInit(const Record &r);

/// The entry for head dims outside kHeadDims (compiled only under
/// -DATTNC_ONLY_DT/HD/HDV): `padHd` / `padHdv` are C expressions of X (the
/// real dim) giving the instantiated dims, `smem` one of attnc_gen_hd_<n>
/// and attnc_gen_hdv_<n>; `body` calls the kernel body with
/// ATTNC_GEN_T_<n>, attnc_gen_hd_<n>, attnc_gen_hdv_<n>.
struct GenericEntry {
  std::string padHd, padHdv, smem, bounds, params, body;
  int rows = 0, threads = 0, keys = 0;
  bool tma = false;
};
std::string genericEntry(const std::string &n, const GenericEntry &g);

/// Banner, includes and CudaABI.h / element prelude, storage helpers.
std::string fileHeader(const std::string &arch);

/// The ids pre-pass of CudaABI.h (attnc_prepass_<n>, its launch record and,
/// under nvcc, a host helper attnc_run_prepass_<n>(a, stream)), for the
/// flash op's key tiles; "" when its schedule has no ids_eq atom.
std::string prepassKernel(mlir::attn::FlashOp flash);

/// The element-code placeholders both kernels share: @PRE_SETUP@, @PRE@
/// (the pre-pass words of a key tile), @USETUP@ (the per-CTA `attnc_uniforms u`:
/// scale, bias, fold, pre), @ELEMENT_LOOP@ (the loop over a tile's accumulator fragment
/// and, in it, the code of one score element over the kernel's @ACC@:
/// logits in log2 units for softmax), @PRESCALE@.
/// @NAME@ and @ACC@ stay for the caller.
void fillElementParts(mlir::attn::FlashOp flash, std::string &k);

void replaceAll(std::string &s, const std::string &from, const std::string &to);

} // namespace attnc::cudamod

#endif // ATTNC_CODEGEN_LIB_CUDAMODULE_H
