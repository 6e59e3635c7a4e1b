//===- CudaApi.h - The CUDA driver and NVRTC, loaded at first use -*- C++ -*-//
//
// attnc links neither libcuda nor libnvrtc: both are dlopen'ed the first
// time a CUDA path runs, so attnc and the runtime start (and do everything
// else) on machines with no GPU, no driver or no CUDA toolkit. The types
// and prototypes come from cuda.h / nvrtc.h of the toolkit found at build
// time; the entry points are looked up by the name the header maps each
// call to (cuMemAlloc is cuMemAlloc_v2), so they match those prototypes.
//
// Every call goes through check(): a failure becomes a Status that names
// the call and carries the library's own error text.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_RUNTIME_CUDA_CUDAAPI_H
#define ATTNC_RUNTIME_CUDA_CUDAAPI_H

#include "attnc/Runtime/Cuda.h"
#include "attnc/Runtime/Status.h"

#include <cuda.h>
#include <nvrtc.h>

#include <string>

namespace attnc::runtime::cuda::detail {

#define ATTNC_CUDA_DRIVER_FUNCTIONS(X)                                         \
  X(cuInit)                                                                    \
  X(cuGetErrorString)                                                          \
  X(cuGetErrorName)                                                            \
  X(cuDriverGetVersion)                                                        \
  X(cuDeviceGetCount)                                                          \
  X(cuDeviceGet)                                                               \
  X(cuDeviceGetName)                                                           \
  X(cuDeviceGetAttribute)                                                      \
  X(cuDeviceTotalMem)                                                          \
  X(cuDevicePrimaryCtxRetain)                                                  \
  X(cuCtxSetCurrent)                                                           \
  X(cuCtxSynchronize)                                                          \
  X(cuMemAlloc)                                                                \
  X(cuMemFree)                                                                 \
  X(cuMemcpyHtoD)                                                              \
  X(cuMemcpyDtoH)                                                              \
  X(cuMemsetD8)                                                                \
  X(cuModuleLoadDataEx)                                                        \
  X(cuModuleUnload)                                                            \
  X(cuModuleGetFunction)                                                       \
  X(cuModuleGetGlobal)                                                         \
  X(cuFuncSetAttribute)                                                        \
  X(cuLaunchKernel)                                                            \
  X(cuLaunchKernelEx)                                                          \
  X(cuTensorMapEncodeTiled)                                                    \
  X(cuEventCreate)                                                             \
  X(cuEventRecord)                                                             \
  X(cuEventSynchronize)                                                        \
  X(cuEventElapsedTime)                                                        \
  X(cuEventDestroy)

#define ATTNC_NVRTC_FUNCTIONS(X)                                               \
  X(nvrtcVersion)                                                              \
  X(nvrtcGetErrorString)                                                       \
  X(nvrtcCreateProgram)                                                        \
  X(nvrtcDestroyProgram)                                                       \
  X(nvrtcCompileProgram)                                                       \
  X(nvrtcGetProgramLogSize)                                                    \
  X(nvrtcGetProgramLog)                                                        \
  X(nvrtcGetPTXSize)                                                           \
  X(nvrtcGetPTX)                                                               \
  X(nvrtcGetCUBINSize)                                                         \
  X(nvrtcGetCUBIN)

/// The driver's entry points; members are named after the calls.
struct Driver {
#define ATTNC_MEMBER(fn) decltype(&::fn) fn = nullptr;
  ATTNC_CUDA_DRIVER_FUNCTIONS(ATTNC_MEMBER)
};
/// NVRTC's entry points.
struct Nvrtc {
  ATTNC_NVRTC_FUNCTIONS(ATTNC_MEMBER)
#undef ATTNC_MEMBER
};

/// The driver, loaded (libcuda.so.1) and initialised (cuInit) once; an
/// error that says why there is none ("no CUDA driver found ...").
Expected<const Driver *> driver();
/// NVRTC (libnvrtc.so.13, else libnvrtc.so, else the toolkit's lib64).
Expected<const Nvrtc *> nvrtc();

/// Ok, or "CALL failed: CUDA_ERROR_X (text)".
Status check(const Driver &d, CUresult r, const char *call);
/// Ok, or "CALL failed: NVRTC_ERROR_X".
Status check(const Nvrtc &n, nvrtcResult r, const char *call);

/// Makes the primary context of the selected device (cuda::selectDevice,
/// default 0) current on the calling thread; every driver path calls it.
Expected<const Driver *> contextDriver();

} // namespace attnc::runtime::cuda::detail

namespace attnc::runtime::cuda {
/// A loaded module; unloaded with the last Module that shares it.
struct Module::Impl {
  CUmodule module = nullptr;
  ~Impl();
};
} // namespace attnc::runtime::cuda

/// Calls `lib.fn(args...)` and returns its Status on failure.
#define ATTNC_CU(lib, fn, ...)                                                 \
  do {                                                                         \
    ::attnc::runtime::Status attnc_cu_status_ =                                \
        ::attnc::runtime::cuda::detail::check((lib), (lib).fn(__VA_ARGS__),    \
                                              #fn);                            \
    if (!attnc_cu_status_.ok())                                                \
      return attnc_cu_status_;                                                 \
  } while (0)

#endif // ATTNC_RUNTIME_CUDA_CUDAAPI_H
