//===- CudaTestUtil.h - The hand-written .cu the CUDA runtime tests use ---===//
//
// test/runtime/Inputs/copy_kernel.cu follows CudaABI.h without the emitter;
// copyKernelSource() prepends CudaABI.h's text to it, as the emitter pastes
// the header into every .cu. Shared by the no-GPU tests (NVRTC, checks) and
// the GPU tests (launches).
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_TEST_UNIT_CUDATESTUTIL_H
#define ATTNC_TEST_UNIT_CUDATESTUTIL_H

#include "attnc/Runtime/Cuda.h"
#include "attnc/Runtime/Npy.h"

#include <string>

namespace cuda_test {
using namespace attnc::runtime;

/// CudaABI.h + copy_kernel.cu; empty (and a gtest failure) if unreadable.
inline std::string copyKernelSource() {
  Expected<std::string> abi =
      readFile(ATTNC_RUNTIME_INCLUDE_DIR "/attnc/Runtime/CudaABI.h");
  Expected<std::string> cu = readFile(ATTNC_TEST_INPUTS_DIR "/copy_kernel.cu");
  if (!abi.ok() || !cu.ok())
    return "";
  return *abi + "\n" + *cu;
}

/// The declaration of the "copy" spec, with or without its int input idx[LQ].
inline cuda::CudaKernelDecl copyDecl(DType storage, bool withInput) {
  cuda::CudaKernelDecl d;
  d.name = "copy";
  d.storage = storage;
  if (withInput) {
    InputDecl in;
    in.name = "idx";
    in.dtype = DType::I64;
    InputDim dim;
    dim.isSize = true;
    dim.size = SizeName::LQ;
    in.dims.push_back(dim);
    d.inputs.push_back(in);
  }
  return d;
}
} // namespace cuda_test

#endif // ATTNC_TEST_UNIT_CUDATESTUTIL_H
