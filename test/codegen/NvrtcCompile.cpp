//===- NvrtcCompile.cpp - Compile an emitted .cu with NVRTC (test tool) ---===//
//
// attnc-nvrtc-compile FILE.cu --arch=sm_80|sm_90a [-DNAME=VALUE]...
// compiles FILE.cu the way the runtime's JIT path does (NVRTC, so
// __CUDACC_RTC__ is defined: no host code, no C library headers) and
// prints, one a line, the `.entry` kernels and the `__launch` records of
// the PTX, then how many lines use each instruction family that matters
// (`instr wgmma.mma_async 24`), for FileCheck. Exits 1 with NVRTC's log on a compile error.
// No GPU is needed (and none is used).
//
//===----------------------------------------------------------------------===//
#include <nvrtc.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

/// " {w0, w1, ...}": the 32-bit words of a launch record's initializer
/// (`.b8` bytes, little-endian, or `.b32` / `.u32` words), "" without one.
/// The record regex matched, so the line holds `name__launch[N]`.
static std::string recordWords(const std::string &line) {
  size_t open = line.find('{'), close = line.find('}');
  if (open == std::string::npos || close == std::string::npos)
    return "";
  std::vector<long long> values;
  std::istringstream in(line.substr(open + 1, close - open - 1));
  for (std::string v; std::getline(in, v, ',');)
    values.push_back(std::stoll(v));
  // PTX leaves out trailing zeros: the array's size says how many there are.
  size_t lb = line.find('[');
  size_t declared = lb == std::string::npos ? 0 : std::stoul(line.substr(lb + 1));
  if (values.size() < declared)
    values.resize(declared, 0);
  std::vector<long long> words;
  if (line.find(".b8") != std::string::npos) {
    for (size_t i = 0; i + 3 < values.size(); i += 4)
      words.push_back(int32_t(uint32_t(values[i]) | uint32_t(values[i + 1]) << 8 |
                              uint32_t(values[i + 2]) << 16 | uint32_t(values[i + 3]) << 24));
  } else {
    words = values;
  }
  std::string s = " {";
  for (size_t i = 0; i < words.size(); ++i)
    s += (i ? ", " : "") + std::to_string(words[i]);
  return s + "}";
}

int main(int argc, char **argv) {
  std::string file, arch = "sm_80";
  std::vector<std::string> defines;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--arch=", 0) == 0)
      arch = a.substr(7);
    else if (a.rfind("-D", 0) == 0)
      defines.push_back(a);
    else
      file = a;
  }
  if (file.empty()) {
    std::fprintf(stderr, "usage: attnc-nvrtc-compile FILE.cu --arch=sm_80|sm_90a [-DNAME=VALUE]...\n");
    return 2;
  }
  std::ifstream in(file);
  if (!in) {
    std::fprintf(stderr, "attnc-nvrtc-compile: cannot read %s\n", file.c_str());
    return 2;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string src = ss.str();

  nvrtcProgram prog;
  if (nvrtcCreateProgram(&prog, src.c_str(), file.c_str(), 0, nullptr, nullptr) != NVRTC_SUCCESS) {
    std::fprintf(stderr, "attnc-nvrtc-compile: nvrtcCreateProgram failed\n");
    return 1;
  }
  // No include path on purpose: under NVRTC the .cu must need no header at
  // all (CudaABI.h is pasted in, the C library is not used).
  std::vector<std::string> opts = {"-arch=" + arch, "--std=c++17"};
  opts.insert(opts.end(), defines.begin(), defines.end());
  std::vector<const char *> copts;
  for (const std::string &o : opts)
    copts.push_back(o.c_str());
  nvrtcResult r = nvrtcCompileProgram(prog, int(copts.size()), copts.data());
  size_t logSize = 0;
  nvrtcGetProgramLogSize(prog, &logSize);
  std::string log(logSize, '\0');
  if (logSize > 1)
    nvrtcGetProgramLog(prog, log.data());
  if (r != NVRTC_SUCCESS) {
    std::fprintf(stderr, "attnc-nvrtc-compile: %s: %s\n%s\n", file.c_str(),
                 nvrtcGetErrorString(r), log.c_str());
    nvrtcDestroyProgram(&prog);
    return 1;
  }
  size_t ptxSize = 0;
  nvrtcGetPTXSize(prog, &ptxSize);
  std::string ptx(ptxSize, '\0');
  nvrtcGetPTX(prog, ptx.data());
  nvrtcDestroyProgram(&prog);

  std::regex entry(R"(\.entry\s+([A-Za-z_0-9]+))"), record(R"(\.const\s.*\s([A-Za-z_0-9]+__launch)\[)");
  const char *families[] = {"mma.sync", "ldmatrix", "cp.async.cg", "cp.async.wait_group",
                             "wgmma.mma_async", "cp.async.bulk.tensor", "mbarrier.try_wait",
                             "setmaxnreg", "trap"};
  std::vector<int> counts(std::size(families), 0);
  std::istringstream lines(ptx);
  std::string line;
  std::smatch m;
  while (std::getline(lines, line)) {
    if (std::regex_search(line, m, entry))
      std::printf("entry %s\n", m[1].str().c_str());
    else if (std::regex_search(line, m, record))
      std::printf("record %s%s\n", m[1].str().c_str(), recordWords(line).c_str());
    for (size_t i = 0; i < std::size(families); ++i)
      if (line.find(families[i]) != std::string::npos)
        ++counts[i];
  }
  for (size_t i = 0; i < std::size(families); ++i)
    std::printf("instr %s %d\n", families[i], counts[i]);
  return 0;
}
