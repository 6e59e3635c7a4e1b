//===- Version.h - What attnc --version reports ----------------*- C++ -*-===//
//
// The identity of this build: the project version, the LLVM it was built
// against, and the code generator's hash (the hash the kernel cache keys
// on, so two builds with equal hashes generate the same CPU kernels).
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_VERSION_H
#define ATTNC_VERSION_H

namespace attnc {

/// The project version from CMake's project() (e.g. "0.1").
const char *version();

/// The LLVM version the compiler was built against (e.g. "22.1.0").
const char *llvmVersion();

/// The code generator's design version ("attnc-cpu-N"): bumped when the
/// kernels change in a way the source hash cannot see.
const char *codegenDesignVersion();

/// The code generator's identity: its design version and the SHA-256 of
/// its sources (cmake/SourceStamp.cmake), as "attnc-cpu-N+<sha256>".
const char *codegenHash();

} // namespace attnc

#endif // ATTNC_VERSION_H
