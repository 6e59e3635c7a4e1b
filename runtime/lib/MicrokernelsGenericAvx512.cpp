//===- MicrokernelsGenericAvx512.cpp - Generic microkernels: one build ---===//
//
// MicrokernelsPortable.inc compiled for AVX-512 F/DQ/BW/VL (x86-64 only);
// see runtime/CMakeLists.txt for the flags and Microkernels.cpp for the
// CPUID check that picks this copy.
//
//===----------------------------------------------------------------------===//
#define ATTNC_UK_GENERIC_SUFFIX _avx512
#include "MicrokernelsPortable.inc"
