//===- Nvrtc.cpp - Compile CUDA C++ to PTX or a cubin with NVRTC ----------===//
//
// The JIT half of `attnc compile --emit=ptx|cubin` and of `attnc run
// --target=cuda`. NVRTC needs no GPU and no driver, so this part runs (and
// is tested) on any machine with the CUDA toolkit's libnvrtc.
//
//===----------------------------------------------------------------------===//
#include "CudaApi.h"

#include "attnc/Runtime/Cuda.h"

#include <sys/stat.h>

#include <cctype>
#include <cstdlib>
#include <memory>

using namespace attnc::runtime;
using namespace attnc::runtime::cuda;
using namespace attnc::runtime::cuda::detail;

namespace {
bool isDirectory(const std::string &path) {
  struct stat st;
  return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

/// The CUDA headers NVRTC may include (cuda_fp16.h, cuda_bf16.h, ...):
/// $CUDA_HOME/include, else those of the toolkit attnc was built with; ""
/// if neither exists (NVRTC's built-in headers must then do).
std::string cudaIncludeDir() {
  for (const char *env : {"CUDA_HOME", "CUDA_PATH"})
    if (const char *home = std::getenv(env); home && *home &&
                                             isDirectory(std::string(home) + "/include"))
      return std::string(home) + "/include";
#ifdef ATTNC_CUDA_INCLUDE_DIR
  if (isDirectory(ATTNC_CUDA_INCLUDE_DIR))
    return ATTNC_CUDA_INCLUDE_DIR;
#endif
  return "";
}

/// Destroys an NVRTC program however the compilation ends.
struct ProgramGuard {
  const Nvrtc &n;
  nvrtcProgram prog = nullptr;
  ~ProgramGuard() {
    if (prog)
      (void)n.nvrtcDestroyProgram(&prog); // nothing to report at this point
  }
};
} // namespace

Expected<std::string> attnc::runtime::cuda::nvrtcVersion() {
  Expected<const Nvrtc *> n = nvrtc();
  if (!n.ok())
    return n.status();
  int major = 0, minor = 0;
  ATTNC_CU(**n, nvrtcVersion, &major, &minor);
  return std::to_string(major) + "." + std::to_string(minor);
}

Expected<std::vector<std::string>>
attnc::runtime::cuda::nvrtcOptions(const CompileRequest &request) {
  if (!isValidArch(request.arch))
    return Status::error("invalid CUDA architecture '" + request.arch +
                         "': expected sm_80, sm_90a or another sm_<N>[a]");
  std::vector<std::string> opts = {"-std=c++17", "-arch=" + request.arch};
  std::string inc = cudaIncludeDir();
  if (!inc.empty())
    opts.push_back("-I" + inc);
  for (const std::string &d : request.defines) {
    if (d.empty() || d.front() == '=')
      return Status::error("invalid -D definition '" + d +
                           "': expected NAME or NAME=VALUE");
    opts.push_back("-D" + d);
  }
  return opts;
}

Expected<CompileResult>
attnc::runtime::cuda::compileCuda(std::string_view source,
                                  const CompileRequest &request,
                                  KernelCache *cache) {
  Expected<std::vector<std::string>> opts = nvrtcOptions(request);
  if (!opts.ok())
    return opts.status();
  Expected<const Nvrtc *> lib = nvrtc();
  if (!lib.ok())
    return lib.status();
  const Nvrtc &n = **lib;
  Expected<std::string> version = nvrtcVersion();
  if (!version.ok())
    return version.status();

  const bool cubin = request.kind == BinaryKind::Cubin;
  std::string key;
  if (cache) {
    std::vector<std::string> material = {"attnc-nvrtc-1", std::string(source),
                                         cubin ? "cubin" : "ptx",
                                         "nvrtc " + *version};
    material.insert(material.end(), opts->begin(), opts->end());
    key = KernelCache::makeKey(material);
    Expected<std::optional<std::string>> hit = cache->lookup(key);
    if (!hit.ok())
      return hit.status();
    if (*hit) {
      CompileResult r;
      r.binary = std::move(**hit);
      r.cacheHit = true;
      return r;
    }
  }

  ProgramGuard guard{n};
  const std::string text(source); // NVRTC wants a NUL-terminated string
  ATTNC_CU(n, nvrtcCreateProgram, &guard.prog, text.c_str(),
           request.sourceName.c_str(), 0, nullptr, nullptr);
  std::vector<const char *> argv;
  for (const std::string &o : *opts)
    argv.push_back(o.c_str());
  const nvrtcResult compiled =
      n.nvrtcCompileProgram(guard.prog, int(argv.size()), argv.data());
  std::string log;
  size_t logSize = 0;
  ATTNC_CU(n, nvrtcGetProgramLogSize, guard.prog, &logSize);
  if (logSize > 1) {
    log.resize(logSize);
    ATTNC_CU(n, nvrtcGetProgramLog, guard.prog, log.data());
    log.resize(logSize - 1); // the terminating NUL
  }
  if (compiled != NVRTC_SUCCESS) {
    Status s = check(n, compiled, "nvrtcCompileProgram");
    std::string optText;
    for (const std::string &o : *opts)
      optText += " " + o;
    return Status::error("NVRTC could not compile " + request.sourceName +
                         " for " + request.arch + " (" + s.message() +
                         "; options:" + optText + ")" +
                         (log.empty() ? std::string() : ":\n" + log));
  }

  CompileResult r;
  r.log = std::move(log);
  size_t size = 0;
  if (cubin) {
    ATTNC_CU(n, nvrtcGetCUBINSize, guard.prog, &size);
    r.binary.resize(size);
    ATTNC_CU(n, nvrtcGetCUBIN, guard.prog, r.binary.data());
  } else {
    ATTNC_CU(n, nvrtcGetPTXSize, guard.prog, &size);
    r.binary.resize(size);
    ATTNC_CU(n, nvrtcGetPTX, guard.prog, r.binary.data());
    while (!r.binary.empty() && r.binary.back() == '\0')
      r.binary.pop_back(); // text; Module::load terminates it again
  }
  if (r.binary.empty())
    return Status::error("NVRTC produced an empty " +
                         std::string(cubin ? "cubin" : "PTX") + " for " +
                         request.sourceName);
  if (cache) {
    Status s = cache->store(key, r.binary);
    (void)s; // a cache that cannot store (read-only disk) costs time only
  }
  return r;
}
