//===- HostMicrokernels.h - The generic path's kernels, JIT-built for the host -*- C++ -*-===//
//
// Internal to api/lib. The runtime ships the generic path's portable
// microkernels (runtime/lib/MicrokernelsPortable.inc) prebuilt for the
// baseline target and, on x86-64, for AVX2 and AVX-512. A CPU between those
// (x86-64 with AVX but no AVX2, or SSE4 only) or another architecture
// (AArch64 with SVE) would get the baseline build. The JIT instead compiles
// that C++'s LLVM bitcode, embedded at build time, for the CPU it runs on,
// and hands the result to the runtime (attnc_uk_set_generic_kernels).
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_API_LIB_HOSTMICROKERNELS_H
#define ATTNC_API_LIB_HOSTMICROKERNELS_H

#include "attnc/Runtime/KernelCache.h"
#include "attnc/Runtime/Status.h"

namespace attnc {

/// Once per process (later calls return the first call's result): compiles
/// the portable microkernels for the host at -O3 (or takes the object from
/// `cache`, keyed on the bitcode, LLVM's version and the host CPU), loads
/// them into a JIT that lives as long as the process and makes the generic
/// path run them. An error (or a build without the bitcode) leaves the
/// runtime's built-in copies in use; attnc_uk_generic_build() says which
/// code runs.
runtime::Status useHostMicrokernels(runtime::KernelCache &cache);

/// ATTNC_GENERIC_MICROKERNELS: unset or "jit" (jit = true: the generic path
/// runs the microkernels useHostMicrokernels builds) or "builtin" (the
/// runtime's copies, e.g. to compare the two); an error for anything else.
runtime::Status checkGenericMicrokernelsEnvironment(bool &jit);

} // namespace attnc

#endif // ATTNC_API_LIB_HOSTMICROKERNELS_H
