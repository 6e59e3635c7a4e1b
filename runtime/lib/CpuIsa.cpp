//===- CpuIsa.cpp - ATTNC_CPU_ISA: parse, check, report -------------------===//
#include "attnc/Runtime/CpuIsa.h"

#include "attnc/Runtime/Microkernels.h"

#include <cstdlib>

using namespace attnc::runtime;

const char *attnc::runtime::cpuIsaName(CpuIsa isa) {
  return attnc_uk_isa_name(int(isa));
}

std::vector<CpuIsa> attnc::runtime::supportedCpuIsas() {
  std::vector<CpuIsa> out;
  for (CpuIsa isa : {CpuIsa::Avx512, CpuIsa::Avx2, CpuIsa::Generic})
    if (attnc_uk_isa_supported(int(isa)))
      out.push_back(isa);
  return out;
}

CpuIsa attnc::runtime::activeCpuIsa() { return CpuIsa(attnc_uk_isa()); }

static std::string supportedList() {
  std::string out;
  for (CpuIsa isa : supportedCpuIsas())
    out += std::string(out.empty() ? "" : ", ") + cpuIsaName(isa);
  return out;
}

Status attnc::runtime::checkCpuIsaEnvironment() {
  const char *env = std::getenv("ATTNC_CPU_ISA");
  if (!env || !*env)
    return Status::success();
  const int isa = attnc_uk_isa_from_name(env);
  if (isa < 0)
    return Status::error("ATTNC_CPU_ISA='" + std::string(env) +
                         "' is not one of avx512, avx2, generic");
  if (!attnc_uk_isa_supported(isa))
    return Status::error("ATTNC_CPU_ISA=" + std::string(env) +
                         ": this CPU lacks that path (it has: " +
                         supportedList() + ")");
  return Status::success();
}
