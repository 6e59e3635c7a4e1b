//===- CudaApi.cpp - dlopen the CUDA driver and NVRTC, check every call ---===//
//
// Loading happens once per process (std::call_once); the outcome, a table
// of entry points or the reason there is none, is kept, so a machine
// without a driver pays one failed dlopen and every later call gets the
// same clear error.
//
//===----------------------------------------------------------------------===//
#include "CudaApi.h"

#include "attnc/Runtime/Cuda.h"

#include <dlfcn.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <vector>

using namespace attnc::runtime;
using namespace attnc::runtime::cuda::detail;

#define ATTNC_STR(x) #x
// Expands the argument first: ATTNC_XSTR(cuMemAlloc) is "cuMemAlloc_v2",
// the symbol that cuda.h's prototype of cuMemAlloc names.
#define ATTNC_XSTR(x) ATTNC_STR(x)

namespace {
std::string dlerrorText() {
  const char *e = dlerror();
  return e ? e : "unknown dlopen error";
}

/// Looks up every entry point; the first missing one is the error.
template <class Table>
Status resolve(void *handle, const char *library,
               std::vector<std::pair<const char *, void **>> symbols) {
  for (auto &[name, slot] : symbols) {
    dlerror();
    *slot = dlsym(handle, name);
    if (!*slot)
      return Status::error(std::string(library) + " has no symbol " + name +
                           " (the driver or NVRTC is older than the CUDA " +
                           std::to_string(CUDA_VERSION / 1000) + "." +
                           std::to_string(CUDA_VERSION % 1000 / 10) +
                           " headers attnc was built with): " +
                           dlerrorText());
  }
  return Status::success();
}

struct DriverState {
  std::once_flag once;
  Driver table;
  Status status;
};
DriverState &driverState() {
  static DriverState s;
  return s;
}

struct NvrtcState {
  std::once_flag once;
  Nvrtc table;
  Status status;
};
NvrtcState &nvrtcState() {
  static NvrtcState s;
  return s;
}

Status loadDriver(Driver &d) {
  // ATTNC_CUDA_DRIVER names another driver library: the tests' fake driver
  // (test/runtime/FakeCudaDriver.cpp), which must not be called libcuda.so.1
  // because NVRTC looks for that name too.
  const char *env = std::getenv("ATTNC_CUDA_DRIVER");
  const std::string library = env && *env ? env : "libcuda.so.1";
  void *h = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h)
    return Status::error("no CUDA driver found (" + library + "): " +
                         dlerrorText() +
                         "; running CUDA kernels needs an NVIDIA GPU and its "
                         "driver");
  std::vector<std::pair<const char *, void **>> symbols;
#define ATTNC_SYMBOL(fn)                                                       \
  symbols.push_back({ATTNC_XSTR(fn), reinterpret_cast<void **>(&d.fn)});
  ATTNC_CUDA_DRIVER_FUNCTIONS(ATTNC_SYMBOL)
#undef ATTNC_SYMBOL
  Status s = resolve<Driver>(h, library.c_str(), symbols);
  if (!s.ok())
    return s;
  CUresult r = d.cuInit(0);
  if (r != CUDA_SUCCESS) {
    // "no device" is the common case on a machine with a driver but no
    // usable GPU; say so in words.
    Status c = check(d, r, "cuInit");
    return Status::error("no usable CUDA GPU: " + c.message());
  }
  return Status::success();
}

Status loadNvrtc(Nvrtc &n) {
  std::vector<std::string> candidates = {"libnvrtc.so.13", "libnvrtc.so"};
  for (const char *env : {"CUDA_HOME", "CUDA_PATH"})
    if (const char *home = std::getenv(env); home && *home)
      candidates.push_back(std::string(home) + "/lib64/libnvrtc.so");
#ifdef ATTNC_CUDA_LIBRARY_DIR
  candidates.push_back(std::string(ATTNC_CUDA_LIBRARY_DIR) + "/libnvrtc.so");
#endif
  void *h = nullptr;
  std::string tried;
  for (const std::string &c : candidates) {
    h = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h)
      break;
    tried += (tried.empty() ? "" : "; ") + dlerrorText();
  }
  if (!h)
    return Status::error("NVRTC not found (libnvrtc.so.13, libnvrtc.so): " +
                         tried + "; install the CUDA toolkit or set CUDA_HOME");
  std::vector<std::pair<const char *, void **>> symbols;
#define ATTNC_SYMBOL(fn)                                                       \
  symbols.push_back({ATTNC_XSTR(fn), reinterpret_cast<void **>(&n.fn)});
  ATTNC_NVRTC_FUNCTIONS(ATTNC_SYMBOL)
#undef ATTNC_SYMBOL
  return resolve<Nvrtc>(h, "libnvrtc", symbols);
}

std::atomic<int> selectedDevice{0};
} // namespace

Expected<const Driver *> attnc::runtime::cuda::detail::driver() {
  DriverState &s = driverState();
  std::call_once(s.once, [&] { s.status = loadDriver(s.table); });
  if (!s.status.ok())
    return s.status;
  return &s.table;
}

Expected<const Nvrtc *> attnc::runtime::cuda::detail::nvrtc() {
  NvrtcState &s = nvrtcState();
  std::call_once(s.once, [&] { s.status = loadNvrtc(s.table); });
  if (!s.status.ok())
    return s.status;
  return &s.table;
}

Status attnc::runtime::cuda::detail::check(const Driver &d, CUresult r,
                                           const char *call) {
  if (r == CUDA_SUCCESS)
    return Status::success();
  const char *name = nullptr, *text = nullptr;
  if (!d.cuGetErrorName || d.cuGetErrorName(r, &name) != CUDA_SUCCESS)
    name = nullptr;
  if (!d.cuGetErrorString || d.cuGetErrorString(r, &text) != CUDA_SUCCESS)
    text = nullptr;
  std::string what = name ? name : "CUDA error " + std::to_string(int(r));
  if (text)
    what += std::string(" (") + text + ")";
  return Status::error(std::string(call) + " failed: " + what);
}

Status attnc::runtime::cuda::detail::check(const Nvrtc &n, nvrtcResult r,
                                           const char *call) {
  if (r == NVRTC_SUCCESS)
    return Status::success();
  const char *text = n.nvrtcGetErrorString ? n.nvrtcGetErrorString(r) : nullptr;
  return Status::error(std::string(call) + " failed: " +
                       (text ? text : "NVRTC error " + std::to_string(int(r))));
}

Expected<const Driver *> attnc::runtime::cuda::detail::contextDriver() {
  Expected<const Driver *> d = driver();
  if (!d.ok())
    return d.status();
  const Driver &dr = **d;
  // One primary context per device, retained once and kept for the life of
  // the process (the driver releases it at exit).
  static std::mutex mutex;
  static std::vector<CUcontext> contexts;
  const int ordinal = selectedDevice.load();
  CUcontext ctx = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex);
    int count = 0;
    ATTNC_CU(dr, cuDeviceGetCount, &count);
    if (count == 0)
      return Status::error("no CUDA GPU found (cuDeviceGetCount is 0)");
    if (ordinal < 0 || ordinal >= count)
      return Status::error("CUDA device " + std::to_string(ordinal) +
                           " does not exist (this machine has " +
                           std::to_string(count) + ")");
    if (contexts.size() < size_t(count))
      contexts.resize(size_t(count), nullptr);
    if (!contexts[size_t(ordinal)]) {
      CUdevice dev;
      ATTNC_CU(dr, cuDeviceGet, &dev, ordinal);
      ATTNC_CU(dr, cuDevicePrimaryCtxRetain, &contexts[size_t(ordinal)], dev);
    }
    ctx = contexts[size_t(ordinal)];
  }
  ATTNC_CU(dr, cuCtxSetCurrent, ctx);
  return &dr;
}

Status attnc::runtime::cuda::selectDevice(int ordinal) {
  if (ordinal < 0)
    return Status::error("CUDA device ordinal must be >= 0, got " +
                         std::to_string(ordinal));
  selectedDevice.store(ordinal);
  return Status::success();
}

int attnc::runtime::cuda::selectedDeviceOrdinal() { return selectedDevice.load(); }
