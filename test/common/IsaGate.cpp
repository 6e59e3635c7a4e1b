//===- IsaGate.cpp - Skip a test run whose ATTNC_CPU_ISA this CPU lacks ---===//
//
// Linked into attnc-api-tests, which ctest also runs once per microkernel
// path (api-isa-avx2, api-isa-generic: ATTNC_CPU_ISA set). On a CPU without
// the path the whole run exits 77, which ctest reports as skipped; a
// misspelt path fails.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/CpuIsa.h"
#include "attnc/Runtime/Microkernels.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

namespace {
class IsaGate : public ::testing::Environment {
public:
  void SetUp() override {
    const char *env = std::getenv("ATTNC_CPU_ISA");
    if (!env || !*env)
      return;
    const int isa = attnc_uk_isa_from_name(env);
    if (isa >= 0 && !attnc_uk_isa_supported(isa)) {
      std::printf("skipped: %s\n",
                  attnc::runtime::checkCpuIsaEnvironment().message().c_str());
      std::fflush(stdout);
      std::_Exit(77);
    }
    ASSERT_TRUE(attnc::runtime::checkCpuIsaEnvironment().ok())
        << attnc::runtime::checkCpuIsaEnvironment().message();
    std::printf("ATTNC_CPU_ISA: the %s path\n",
                attnc::runtime::cpuIsaName(attnc::runtime::activeCpuIsa()));
  }
};
const auto *const gate = ::testing::AddGlobalTestEnvironment(new IsaGate);
} // namespace
