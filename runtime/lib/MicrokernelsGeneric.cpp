//===- MicrokernelsGeneric.cpp - Generic microkernels: one build ---===//
//
// MicrokernelsPortable.inc compiled for the baseline target (SSE2 on x86-64, NEON on AArch64);
// see runtime/CMakeLists.txt for the flags and Microkernels.cpp for the
// CPUID check that picks this copy.
//
//===----------------------------------------------------------------------===//
#define ATTNC_UK_GENERIC_SUFFIX _base
#include "MicrokernelsPortable.inc"
