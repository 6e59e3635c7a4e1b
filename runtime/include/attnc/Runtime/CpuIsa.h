//===- CpuIsa.h - Which microkernel path runs: ATTNC_CPU_ISA ----*- C++ -*-===//
//
// The CPU kernels call microkernels (Microkernels.h) in one of three paths:
// avx512, avx2 (AVX2 + FMA + F16C) or generic (portable loops). The best one
// this CPU has runs unless ATTNC_CPU_ISA names another, so that every path
// can be tested and benchmarked on any machine that has it. The entry points
// (forwardCpu, backwardCpu, attnc::compile, the tools) check the variable
// first: an unknown name, or a path this CPU lacks, is an error, never a
// silent fallback.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_RUNTIME_CPUISA_H
#define ATTNC_RUNTIME_CPUISA_H

#include "attnc/Runtime/Status.h"

#include <vector>

namespace attnc::runtime {

enum class CpuIsa { Generic = 0, Avx2 = 1, Avx512 = 2 };

/// "generic", "avx2" or "avx512".
const char *cpuIsaName(CpuIsa isa);
/// The paths this CPU has, best first.
std::vector<CpuIsa> supportedCpuIsas();
/// The path the microkernels use now.
CpuIsa activeCpuIsa();
/// OK when ATTNC_CPU_ISA is unset, empty, or names a path this CPU has;
/// otherwise an error that says why and lists the paths this CPU has. The
/// microkernels read the variable once, at their first call, and keep that
/// path (attnc_uk_set_isa, Microkernels.h, changes it later): set it before
/// the process runs a kernel.
Status checkCpuIsaEnvironment();

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_CPUISA_H
