//===- FakeCudaDriver.cpp - A CUDA driver that runs the test kernel on the CPU -===//
//
// Lets the launcher (forwardCuda) run end to end on a machine without a GPU:
// the ctest `cuda-fake-driver` names this library in ATTNC_CUDA_DRIVER
// (not libcuda.so.1 on LD_LIBRARY_PATH: NVRTC would load it too) and runs
// the GPU tests (CudaGpuTest.cpp) against it. It implements the driver calls the runtime
// makes, with host memory as "device" memory, and checks what a real
// driver checks that a launcher can get wrong: a function and a global that
// the module has, cluster launches whose grid is whole clusters, tensor
// maps with 16-byte aligned addresses and strides and a 128-byte swizzle
// span. Modules are PTX (the device reports compute capability 10.0, so
// the runtime loads sm_80 PTX); launch records are read from the PTX's
// .const initialisers. Kernels run as host code: those of
// test/runtime/Inputs/copy_kernel.cu (attnc_fwd_copy*, attnc_prepass_copy),
// written here as the .cu writes them, and, when ATTNC_FAKE_CUDA_KERNELS
// names a library of emulated kernels (test/cuda-emu), attnc's own sm_80
// kernels. It says nothing about real GPUs.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/CudaABI.h"

#include <cuda.h>

#include <dlfcn.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {
struct FakeFunction;
struct FakeModule {
  std::string ptx; // PTX text, or a cubin's bytes
  bool cubin = false;
  std::map<std::string, std::vector<unsigned char>> globals;
  std::vector<std::unique_ptr<FakeFunction>> functions; // live with the module
};
struct FakeFunction {
  FakeModule *module;
  std::string name;
};
struct FakeEvent {
  std::chrono::steady_clock::time_point t;
};
CUcontext theContext = reinterpret_cast<CUcontext>(0x1);

/// The bytes of `.const ... NAME[N] = {b0, b1, ...};` in the PTX.
bool parseGlobal(const std::string &ptx, const std::string &name,
                 std::vector<unsigned char> &out) {
  const std::string key = " " + name + "[";
  size_t at = ptx.find(key);
  if (at == std::string::npos)
    return false;
  size_t n = std::strtoul(ptx.c_str() + at + key.size(), nullptr, 10);
  out.assign(n, 0);
  size_t open = ptx.find('{', at), close = ptx.find('}', at);
  if (open == std::string::npos || close == std::string::npos)
    return true; // no initialiser: zeros
  const char *p = ptx.c_str() + open + 1;
  for (size_t i = 0; i < n && p < ptx.c_str() + close; ++i) {
    char *end;
    out[i] = (unsigned char)std::strtoul(p, &end, 10);
    p = end;
    while (*p == ',' || *p == ' ')
      ++p;
  }
  return true;
}

/// The library of emulated kernels for PTX (sm_80) or cubin (sm_90a)
/// modules, or null when its variable is unset.
void *emulatedKernels(bool cubin) {
  static void *libs[2] = {nullptr, nullptr};
  static bool tried[2] = {false, false};
  if (!tried[cubin]) {
    tried[cubin] = true;
    const char *path = std::getenv(cubin ? "ATTNC_FAKE_CUDA_KERNELS_SM90" : "ATTNC_FAKE_CUDA_KERNELS");
    libs[cubin] = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : nullptr;
    if (path && !libs[cubin])
      std::fprintf(stderr, "fake CUDA driver: %s\n", dlerror());
  }
  return libs[cubin];
}

/// The bytes of symbol `name` in an ELF64 image (a cubin): its section's
/// data at the symbol's value, or zeros for a NOBITS section.
bool elfSymbol(const std::string &elf, const std::string &name, std::vector<unsigned char> &out) {
  struct Section {
    uint32_t name, type;
    uint64_t flags, addr, offset, size;
    uint32_t link, info;
    uint64_t addralign, entsize;
  };
  const char *p = elf.data();
  uint64_t shoff;
  uint16_t shentsize, shnum;
  std::memcpy(&shoff, p + 0x28, 8);
  std::memcpy(&shentsize, p + 0x3a, 2);
  std::memcpy(&shnum, p + 0x3c, 2);
  auto section = [&](unsigned i) {
    Section sh;
    std::memcpy(&sh, p + shoff + uint64_t(i) * shentsize, sizeof sh);
    return sh;
  };
  for (unsigned i = 0; i < shnum; ++i) {
    Section symtab = section(i);
    if (symtab.type != 2) // SHT_SYMTAB
      continue;
    Section strtab = section(symtab.link);
    for (uint64_t off = 0; off + 24 <= symtab.size; off += 24) {
      const char *sym = p + symtab.offset + off;
      uint32_t nameOff;
      uint16_t shndx;
      uint64_t value, size;
      std::memcpy(&nameOff, sym, 4);
      std::memcpy(&shndx, sym + 6, 2);
      std::memcpy(&value, sym + 8, 8);
      std::memcpy(&size, sym + 16, 8);
      if (name != p + strtab.offset + nameOff || shndx == 0 || shndx >= shnum)
        continue;
      Section data = section(shndx);
      if (data.type == 8) // SHT_NOBITS
        out.assign(size, 0);
      else
        out.assign(p + data.offset + value, p + data.offset + value + size);
      return true;
    }
  }
  return false;
}

/// A global of a module: parsed from a PTX module's .const initialiser, or
/// read from a cubin's symbol table.
bool moduleGlobal(FakeModule &m, const std::string &name, std::vector<unsigned char> &out) {
  return m.cubin ? elfSymbol(m.ptx, name, out) : parseGlobal(m.ptx, name, out);
}

int recordWord(FakeModule &m, const std::string &fn, int word) {
  std::vector<unsigned char> &r = m.globals[fn + "__launch"];
  if (r.empty() && !moduleGlobal(m, fn + "__launch", r))
    return 0;
  int v;
  std::memcpy(&v, r.data() + 4 * word, 4);
  return v;
}

void report(const attnc_cuda_args &a, long long code, long long w3) {
  if (a.error[0] == 0) {
    a.error[0] = code;
    a.error[1] = 0;
    a.error[2] = 0;
    a.error[3] = w3;
  }
}

/// Any other kernel: from a library of attnc's emitted kernels built for
/// the CPU (test/cuda-emu), run by its attnc_emu_launch: the sm_80 .cu
/// files (PTX modules) from ATTNC_FAKE_CUDA_KERNELS, the sm_90a ones
/// (cubins) from ATTNC_FAKE_CUDA_KERNELS_SM90.
CUresult runEmulated(FakeFunction &f, unsigned gx, unsigned gy, unsigned gz,
                     unsigned threads, unsigned smem, void **params) {
  void *lib = emulatedKernels(f.module->cubin);
  if (!lib)
    return CUDA_ERROR_NOT_SUPPORTED;
  using Launch = int (*)(void *, unsigned, unsigned, unsigned, unsigned, unsigned,
                         const void *, const void *, char *, unsigned);
  void *entry = dlsym(lib, f.name.c_str());
  auto launch = reinterpret_cast<Launch>(dlsym(lib, "attnc_emu_launch"));
  if (!entry || !launch)
    return CUDA_ERROR_NOT_FOUND;
  const bool tma = recordWord(*f.module, f.name, ATTNC_LAUNCH_TMA) == 1;
  char error[512] = "";
  if (launch(entry, gx, gy, gz, threads, smem, params[0], tma ? params[1] : nullptr,
             error, sizeof error)) {
    std::fprintf(stderr, "fake CUDA driver: %s: %s\n", f.name.c_str(), error);
    return CUDA_ERROR_LAUNCH_FAILED;
  }
  return CUDA_SUCCESS;
}

/// copy_kernel.cu's kernels, one CTA at a time; the rest emulated.
CUresult runKernel(FakeFunction &f, unsigned gx, unsigned gy, unsigned gz,
                   unsigned threads, unsigned smem, void **params) {
  const attnc_cuda_args &a = *static_cast<attnc_cuda_args *>(params[0]);
  if (f.name == "attnc_prepass_copy") {
    const long long tiles = (a.LK + 63) / 64;
    for (unsigned z = 0; z < gz; ++z)
      for (unsigned y = 0; y < gy; ++y)
        for (unsigned x = 0; x < gx; ++x)
          a.scratch[(z * a.HQ + y) * tiles + x] = x == 0 ? 1000 : x;
    return CUDA_SUCCESS;
  }
  if (f.name.rfind("attnc_fwd_copy", 0) != 0)
    return runEmulated(f, gx, gy, gz, threads, smem, params);
  if (f.name.rfind("attnc_fwd_copytma", 0) == 0) {
    const attnc_tma_maps &m = *static_cast<attnc_tma_maps *>(params[1]);
    for (const attnc_tensor_map *t : {&m.q, &m.k, &m.v}) {
      bool any = false;
      for (uint64_t w : t->opaque)
        any = any || w != 0;
      if (!any)
        report(a, 2, 0);
    }
  }
  const int rows = recordWord(*f.module, f.name, ATTNC_LAUNCH_ROWS);
  const unsigned short *q = static_cast<const unsigned short *>(a.q);
  unsigned short *o = static_cast<unsigned short *>(a.out);
  for (long long b = 0; b < gz; ++b)
    for (long long h = 0; h < gy; ++h)
      for (long long x = 0; x < gx; ++x)
        for (long long r = 0; r < (long long)rows * a.DV; ++r) {
          const long long l = x * rows + r / a.DV, d = r % a.DV;
          if (l >= a.LQ)
            continue;
          o[b * a.os[0] + h * a.os[1] + l * a.os[2] + d * a.os[3]] =
              q[b * a.qs[0] + h * a.qs[1] + l * a.qs[2] + d * a.qs[3]];
          if (d != 0)
            continue;
          if (a.lse) {
            const long long bonus =
                a.scratch ? a.scratch[(b * a.HQ + h) * ((a.LK + 63) / 64)] : 0;
            a.lse[b * a.ls[0] + h * a.ls[1] + l * a.ls[2]] = float(l + bonus);
          }
          if (a.inputs) {
            const attnc_input &in = a.inputs[0];
            const long long i =
                static_cast<const long long *>(in.data)[l * in.strides[0]];
            if (i < 0 || i >= in.dims[0])
              report(a, 1, i);
            else if (i == 0)
              report(a, 2, 0);
          }
        }
  return CUDA_SUCCESS;
}
} // namespace

extern "C" {
CUresult cuInit(unsigned) { return CUDA_SUCCESS; }
CUresult cuGetErrorString(CUresult e, const char **s) {
  *s = e == CUDA_ERROR_NOT_FOUND ? "named symbol not found" : "fake driver error";
  return CUDA_SUCCESS;
}
CUresult cuGetErrorName(CUresult e, const char **s) {
  *s = e == CUDA_ERROR_NOT_FOUND ? "CUDA_ERROR_NOT_FOUND" : "CUDA_ERROR_FAKE";
  return CUDA_SUCCESS;
}
CUresult cuDriverGetVersion(int *v) { *v = 13000; return CUDA_SUCCESS; }
CUresult cuDeviceGetCount(int *n) { *n = 1; return CUDA_SUCCESS; }
CUresult cuDeviceGet(CUdevice *d, int i) { *d = i; return i == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE; }
CUresult cuDeviceGetName(char *name, int len, CUdevice) {
  std::strncpy(name, "attnc fake CUDA device", size_t(len));
  return CUDA_SUCCESS;
}
// Compute capability 10.0 (the runtime loads sm_80 PTX), or what
// ATTNC_FAKE_CUDA_CC says ("90": 9.0, where it loads sm_90a cubins).
CUresult cuDeviceGetAttribute(int *v, CUdevice_attribute a, CUdevice) {
  const char *cc = std::getenv("ATTNC_FAKE_CUDA_CC");
  const int value = cc ? std::atoi(cc) : 100;
  *v = a == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR   ? value / 10
       : a == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR ? value % 10
                                                           : 0;
  return CUDA_SUCCESS;
}
CUresult cuDeviceTotalMem(size_t *b, CUdevice) { *b = size_t(1) << 30; return CUDA_SUCCESS; }
CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice) { *c = theContext; return CUDA_SUCCESS; }
CUresult cuCtxSetCurrent(CUcontext c) { return c == theContext ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT; }
CUresult cuCtxSynchronize() { return CUDA_SUCCESS; }
CUresult cuMemAlloc(CUdeviceptr *p, size_t n) {
  void *m = std::aligned_alloc(256, (n + 255) / 256 * 256);
  *p = CUdeviceptr(m);
  return m ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}
CUresult cuMemFree(CUdeviceptr p) { std::free(reinterpret_cast<void *>(p)); return CUDA_SUCCESS; }
CUresult cuMemcpyHtoD(CUdeviceptr d, const void *h, size_t n) {
  std::memcpy(reinterpret_cast<void *>(d), h, n);
  return CUDA_SUCCESS;
}
CUresult cuMemcpyDtoH(void *h, CUdeviceptr d, size_t n) {
  std::memcpy(h, reinterpret_cast<void *>(d), n);
  return CUDA_SUCCESS;
}
CUresult cuMemsetD8(CUdeviceptr d, unsigned char v, size_t n) {
  std::memset(reinterpret_cast<void *>(d), v, n);
  return CUDA_SUCCESS;
}
CUresult cuModuleLoadDataEx(CUmodule *m, const void *image, unsigned, CUjit_option *, void **) {
  const char *text = static_cast<const char *>(image);
  if (std::strncmp(text, "\x7f" "ELF", 4) == 0) {
    // A cubin (sm_90a on a 9.0 device): kept for its symbols; its kernels
    // run only if a library of emulated sm_90a kernels has them. Its size
    // is where its section header table ends (ELF64).
    uint64_t shoff;
    uint16_t shentsize, shnum;
    std::memcpy(&shoff, text + 0x28, 8);
    std::memcpy(&shentsize, text + 0x3a, 2);
    std::memcpy(&shnum, text + 0x3c, 2);
    *m = reinterpret_cast<CUmodule>(
        new FakeModule{std::string(text, shoff + uint64_t(shentsize) * shnum), true, {}});
    return CUDA_SUCCESS;
  }
  if (!std::strstr(text, ".entry"))
    return CUDA_ERROR_INVALID_IMAGE;
  *m = reinterpret_cast<CUmodule>(new FakeModule{text, false, {}});
  return CUDA_SUCCESS;
}
CUresult cuModuleUnload(CUmodule m) { delete reinterpret_cast<FakeModule *>(m); return CUDA_SUCCESS; }
CUresult cuModuleGetFunction(CUfunction *f, CUmodule m, const char *name) {
  FakeModule *fm = reinterpret_cast<FakeModule *>(m);
  const std::string key = fm->cubin ? std::string(name) + '\0' : ".entry " + std::string(name) + "(";
  if (fm->ptx.find(key) == std::string::npos)
    return CUDA_ERROR_NOT_FOUND;
  fm->functions.push_back(std::make_unique<FakeFunction>(FakeFunction{fm, name}));
  *f = reinterpret_cast<CUfunction>(fm->functions.back().get());
  return CUDA_SUCCESS;
}
CUresult cuModuleGetGlobal(CUdeviceptr *p, size_t *bytes, CUmodule m, const char *name) {
  FakeModule *fm = reinterpret_cast<FakeModule *>(m);
  std::vector<unsigned char> &g = fm->globals[name];
  if (g.empty() && !moduleGlobal(*fm, name, g)) {
    fm->globals.erase(name);
    return CUDA_ERROR_NOT_FOUND;
  }
  *p = CUdeviceptr(g.data());
  *bytes = g.size();
  return CUDA_SUCCESS;
}
CUresult cuFuncSetAttribute(CUfunction, CUfunction_attribute a, int v) {
  if (a == CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES && (v < 0 || v > 227 * 1024))
    return CUDA_ERROR_INVALID_VALUE;
  return CUDA_SUCCESS;
}
CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                        unsigned by, unsigned bz, unsigned smem, CUstream, void **params,
                        void **extra) {
  if (!gx || !gy || !gz || gy > 65535 || gz > 65535 || !bx || bx * by * bz > 1024 || extra)
    return CUDA_ERROR_INVALID_VALUE;
  return runKernel(*reinterpret_cast<FakeFunction *>(f), gx, gy, gz, bx * by * bz, smem,
                   params);
}
CUresult cuLaunchKernelEx(const CUlaunchConfig *c, CUfunction f, void **params, void **extra) {
  for (unsigned i = 0; i < c->numAttrs; ++i)
    if (c->attrs[i].id == CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION &&
        c->gridDimX % c->attrs[i].value.clusterDim.x != 0)
      return CUDA_ERROR_INVALID_CLUSTER_SIZE;
  return cuLaunchKernel(f, c->gridDimX, c->gridDimY, c->gridDimZ, c->blockDimX,
                        c->blockDimY, c->blockDimZ, c->sharedMemBytes, c->hStream,
                        params, extra);
}
CUresult cuTensorMapEncodeTiled(CUtensorMap *map, CUtensorMapDataType type, cuuint32_t rank,
                                void *address, const cuuint64_t *dims, const cuuint64_t *strides,
                                const cuuint32_t *box, const cuuint32_t *elementStrides,
                                CUtensorMapInterleave, CUtensorMapSwizzle swizzle,
                                CUtensorMapL2promotion, CUtensorMapFloatOOBfill) {
  const uint64_t elem = type == CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 ||
                                type == CU_TENSOR_MAP_DATA_TYPE_FLOAT16 ? 2 : 0;
  if (!elem || rank != 4 || reinterpret_cast<uintptr_t>(address) % 16 ||
      reinterpret_cast<uintptr_t>(map) % 64)
    return CUDA_ERROR_INVALID_VALUE;
  for (int i = 0; i < 3; ++i)
    if (strides[i] % 16 || strides[i] >= (uint64_t(1) << 40))
      return CUDA_ERROR_INVALID_VALUE;
  for (int i = 0; i < 4; ++i)
    if (!dims[i] || !box[i] || box[i] > 256 || elementStrides[i] != 1)
      return CUDA_ERROR_INVALID_VALUE;
  if (swizzle == CU_TENSOR_MAP_SWIZZLE_128B && box[0] * elem > 128)
    return CUDA_ERROR_INVALID_VALUE;
  std::memset(map, 0, sizeof *map);
  // What test/cuda-emu's TMA reads back.
  uint64_t words[16] = {uint64_t(reinterpret_cast<uintptr_t>(address)), dims[0], dims[1],
                        dims[2], dims[3], strides[0], strides[1], strides[2], box[0], box[1],
                        uint64_t(swizzle == CU_TENSOR_MAP_SWIZZLE_128B), elem};
  std::memcpy(map, words, sizeof words);
  return CUDA_SUCCESS;
}
CUresult cuEventCreate(CUevent *e, unsigned) {
  *e = reinterpret_cast<CUevent>(new FakeEvent);
  return CUDA_SUCCESS;
}
CUresult cuEventRecord(CUevent e, CUstream) {
  reinterpret_cast<FakeEvent *>(e)->t = std::chrono::steady_clock::now();
  return CUDA_SUCCESS;
}
CUresult cuEventSynchronize(CUevent) { return CUDA_SUCCESS; }
CUresult cuEventElapsedTime(float *ms, CUevent a, CUevent b) {
  *ms = std::chrono::duration<float, std::milli>(reinterpret_cast<FakeEvent *>(b)->t -
                                                 reinterpret_cast<FakeEvent *>(a)->t)
            .count();
  return CUDA_SUCCESS;
}
CUresult cuEventDestroy(CUevent e) { delete reinterpret_cast<FakeEvent *>(e); return CUDA_SUCCESS; }
}
