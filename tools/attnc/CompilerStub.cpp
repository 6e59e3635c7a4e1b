//===- CompilerStub.cpp - TEMPORARY stand-in for AttncCompiler ------------===//
//
// TEMP: lets `attnc run` compile and link before the real implementation of
// attnc/Compiler.h (codegen/lib, library AttncCompiler) lands. Every entry
// point returns "not implemented". Drop this file, and the AttncCompiler
// target in tools/CMakeLists.txt that builds it, when merging the real one.
//
//===----------------------------------------------------------------------===//
#include "attnc/Compiler.h"

using namespace attnc;

struct attnc::Kernel::Impl {
  runtime::KernelInfo info;
};
struct attnc::Compiler::Impl {};

static Status notImplemented() {
  return Status::error("the attnc::Compiler implementation is not in this "
                       "build (stub)");
}

Define::Define(std::string n, double v)
    : name(std::move(n)), value(std::to_string(v)) {}

Status Kernel::forward(const TensorView &, const TensorView &,
                       const TensorView &, const TensorView &,
                       const ForwardOptions &) const {
  return notImplemented();
}

const runtime::KernelInfo &Kernel::info() const { return impl->info; }

Compiler::Compiler() : impl(std::make_unique<Impl>()) {}
Compiler::~Compiler() = default;

Expected<Kernel> Compiler::compile(std::string_view, const CompileOptions &,
                                   std::string_view) {
  return notImplemented();
}

Expected<Kernel> Compiler::compileFile(const std::string &,
                                       const CompileOptions &) {
  return notImplemented();
}
