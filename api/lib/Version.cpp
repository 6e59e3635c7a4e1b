//===- Version.cpp - What attnc --version reports -------------------------===//
#include "attnc/Version.h"

#include "attnc/CodegenStamp.h"
#include "llvm/Config/llvm-config.h"

#include <string>

#ifndef ATTNC_VERSION
#error "ATTNC_VERSION is set by api/CMakeLists.txt"
#endif

const char *attnc::version() { return ATTNC_VERSION; }

const char *attnc::llvmVersion() { return LLVM_VERSION_STRING; }

// Part of every kernel cache key (api/lib/Compiler.cpp), beside the source
// stamp; bump it with a change of the kernel design.
const char *attnc::codegenDesignVersion() { return "attnc-cpu-12"; }

const char *attnc::codegenHash() {
  static const std::string hash =
      std::string(codegenDesignVersion()) + "+" + ATTNC_CODEGEN_SOURCE_STAMP;
  return hash.c_str();
}
