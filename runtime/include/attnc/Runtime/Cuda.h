//===- Cuda.h - NVRTC compilation, device tensors, kernel launch -*- C++ -*-===//
//
// The runtime's CUDA half: what turns a .cu that follows CudaABI.h into
// results on a GPU.
//   - compileCuda: NVRTC (JIT) to PTX or a cubin, cached in the KernelCache;
//   - DeviceTensor: an owning device buffer with a dtype and a shape,
//     uploaded from and downloaded to host Tensors;
//   - Module: a loaded PTX/cubin image;
//   - prepareForward / forwardCuda: the launcher of an attnc_fwd_* entry
//     (checks as forwardCpu, launch record, pre-pass, tensor maps, launch,
//     the error word).
// No CUDA header is needed to use it: handles are opaque. The driver and
// NVRTC are loaded at first use, so a program linked with the runtime runs
// on machines without a GPU; every call then returns a Status that says
// so. If the runtime was built without CUDA (ATTNC_ENABLE_CUDA=OFF), every
// call returns an error that says that; enabled() tells which.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_RUNTIME_CUDA_H
#define ATTNC_RUNTIME_CUDA_H

#include "attnc/Runtime/ForwardChecks.h"
#include "attnc/Runtime/KernelCache.h"
#include "attnc/Runtime/Status.h"
#include "attnc/Runtime/Tensor.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace attnc::runtime::cuda {

/// True if this runtime was built with its CUDA half (ATTNC_ENABLE_CUDA).
bool enabled();

// --- NVRTC -------------------------------------------------------------------

enum class BinaryKind { Ptx, Cubin };

struct CompileRequest {
  /// sm_80, sm_90a, or any sm_<digits>[a].
  std::string arch = "sm_80";
  /// PTX or a cubin for `arch`.
  BinaryKind kind = BinaryKind::Cubin;
  /// -D definitions, "NAME" or "NAME=VALUE" (e.g. entryDefines()).
  std::vector<std::string> defines;
  /// The name NVRTC gives the source in messages.
  std::string sourceName = "attnc.cu";
};

struct CompileResult {
  std::string binary;   // PTX text or cubin bytes
  std::string log;      // NVRTC's log (warnings), empty on a cache hit
  bool cacheHit = false;
};

/// True if \p arch is sm_<digits> or sm_<digits>a.
bool isValidArch(std::string_view arch);

/// NVRTC's version, "13.0"; an error if NVRTC cannot be loaded.
Expected<std::string> nvrtcVersion();

/// The options compileCuda passes to NVRTC for \p request: -std=c++17,
/// -arch, the CUDA include directory, the defines. Part of the cache key.
Expected<std::vector<std::string>> nvrtcOptions(const CompileRequest &request);

/// Compiles \p source with NVRTC. With a \p cache, the result is looked up
/// and stored under a key of the source, the options and NVRTC's version.
/// Errors carry NVRTC's log.
Expected<CompileResult> compileCuda(std::string_view source,
                                    const CompileRequest &request,
                                    KernelCache *cache = nullptr);

// --- Devices -------------------------------------------------------------------

struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  int major = 0, minor = 0; // compute capability
  size_t totalMemory = 0;
  int driverVersion = 0;    // e.g. 13000
};

/// Selects the device later calls use (default 0); no driver call.
Status selectDevice(int ordinal);
int selectedDeviceOrdinal();

/// Loads the driver and describes the selected device; the error when
/// there is no driver or GPU says so ("no CUDA driver found ...").
Expected<DeviceInfo> currentDevice();

/// The arch attnc compiles for on \p d: sm_90a on compute capability 9.0,
/// sm_80 on every other one from 8.0 up; an error below 8.0.
Expected<std::string> archForDevice(const DeviceInfo &d);

/// What to load on \p d for code built for \p arch: a cubin when it runs
/// there as is, PTX when the driver must JIT it (sm_80 code on 9.0 and
/// later); an error when neither runs (sm_90a code off 9.0, or a device
/// older than the arch).
Expected<BinaryKind> binaryKindFor(const DeviceInfo &d, std::string_view arch);

// --- Memory ------------------------------------------------------------------

/// An owning device allocation (cuMemAlloc); move-only, freed on
/// destruction.
class DeviceBuffer {
public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer &&o) noexcept;
  DeviceBuffer &operator=(DeviceBuffer &&o) noexcept;
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;

  /// \p bytes of device memory (at least 1 byte is allocated, so that even
  /// an empty buffer has a valid address).
  static Expected<DeviceBuffer> allocate(size_t bytes);
  uint64_t address() const { return ptr; }
  size_t size() const { return bytes; }
  Status upload(const void *host, size_t n, size_t offset = 0);
  Status download(void *host, size_t n, size_t offset = 0) const;
  Status fill(unsigned char byte);

private:
  uint64_t ptr = 0;
  size_t bytes = 0;
};

/// A strided view of device memory and the allocation it must stay in:
/// forwardCuda checks every view against its allocation (checkBounds).
struct DeviceView {
  TensorView view;       // data is a device address
  uint64_t buffer = 0;   // the allocation's first byte
  size_t bufferBytes = 0;
};

/// A contiguous device tensor.
class DeviceTensor {
public:
  /// Uninitialised memory for \p shape.
  static Expected<DeviceTensor> allocate(DType dtype, std::vector<int64_t> shape);
  /// A contiguous device copy of \p host (any strides).
  static Expected<DeviceTensor> upload(const TensorView &host);
  /// A host copy.
  Expected<Tensor> download() const;
  /// Sets every byte to \p byte (0xff poisons floats with NaN).
  Status fill(unsigned char byte) { return buf.fill(byte); }

  DType dtype() const { return type; }
  const std::vector<int64_t> &shape() const { return dims; }
  /// The whole tensor, C order.
  DeviceView view() const;

private:
  DeviceBuffer buf;
  DType type = DType::F32;
  std::vector<int64_t> dims;
};

// --- Modules and launches ----------------------------------------------------

/// A loaded PTX or cubin image (cuModuleLoadDataEx); unloaded when the last
/// copy goes.
class Module {
public:
  static Expected<Module> load(std::string_view image);
  /// False for a default-constructed Module.
  bool loaded() const { return p != nullptr; }
  /// True if the module has the __global__ function \p name.
  bool hasFunction(const std::string &name) const;
  struct Impl;
  const Impl &impl() const { return *p; }

private:
  std::shared_ptr<Impl> p;
};

/// attnc_cuda_args::dtype and ATTNC_ONLY_DT for a 16-bit storage type
/// (CudaABI.h): 0 for F16, 1 for BF16.
int dtypeCode(DType storage);
/// The <dt> of the entry names: "f16" or "bf16".
const char *dtypeTag(DType storage);

/// attnc_fwd_<spec>__<dt>_<D>_<DV> (CudaABI.h); dt is bf16 or f16.
std::string entryName(const std::string &spec, DType storage, int64_t d,
                      int64_t dv);
/// attnc_prepass_<spec>.
std::string prepassName(const std::string &spec);
/// The -D definitions that keep only that entry: ATTNC_ONLY_DT/HD/HDV.
std::vector<std::string> entryDefines(DType storage, int64_t d, int64_t dv);

/// What the launcher needs to know of a spec (the .cu does not describe its
/// inputs): the same declaration the CPU dispatcher checks against.
struct CudaKernelDecl {
  std::string name;
  DType storage = DType::BF16; // F16 or BF16
  bool sigmoid = false;
  /// The spec has softmax(dropout = p): a call may pass a DropoutSeed.
  bool dropout = false;
  std::vector<InputDecl> inputs;
  Signature signature() const { return {name, storage, sigmoid, inputs}; }
};

/// q, k, v, out (and lse, float32) in device memory; the spec's inputs as
/// host tensors (forwardCuda converts them as forwardCpu does and copies
/// them to the device).
struct CudaForwardArgs {
  DeviceView q, k, v, out;
  const DeviceView *lse = nullptr;
  std::vector<std::pair<std::string, TensorView>> inputs;
  /// A training call of a spec with softmax(dropout = p): its seed and
  /// offset (checkDropoutSeed); unset: no pair is dropped.
  std::optional<DropoutSeed> dropout;
};

/// A checked call, ready to launch again and again (the benchmarks time
/// launch() alone): the launch record read, scratch, inputs and the error
/// word in device memory, tensor maps encoded.
class PreparedForward {
public:
  ~PreparedForward();
  /// Queues the pre-pass (if any) and the kernel on the default stream;
  /// clears the error word first. Does not wait.
  Status launch();
  /// Waits for the queued work and turns a kernel-reported error into the
  /// Status forwardCpu would return.
  Status finish();
  /// Times \p runs launches after \p warmup untimed ones, each between two
  /// CUDA events; milliseconds per run. Checks the error word at the end.
  Expected<std::vector<double>> time(int warmup, int runs);
  /// The entry that runs, and its launch record (CudaABI.h words).
  const std::string &entry() const;
  const std::vector<int> &launchRecord() const;
  struct Impl;

private:
  friend Expected<std::unique_ptr<PreparedForward>>
  prepareForward(const Module &, const CudaKernelDecl &,
                 const CudaForwardArgs &);
  explicit PreparedForward(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> p;
};

/// Checks the call (before any driver call, with forwardCpu's messages,
/// plus CUDA's layout rules: unit stride along d, 16-byte aligned base
/// addresses and row strides) and prepares it.
Expected<std::unique_ptr<PreparedForward>>
prepareForward(const Module &module, const CudaKernelDecl &decl,
               const CudaForwardArgs &args);

/// prepareForward, launch, finish.
Status forwardCuda(const Module &module, const CudaKernelDecl &decl,
                   const CudaForwardArgs &args);

/// The checks prepareForward makes before any driver call (exposed for
/// tests): forwardCpu's, the bounds of each view in its allocation, and
/// the CUDA layout rules.
Status checkCudaForward(const CudaKernelDecl &decl, const CudaForwardArgs &args,
                        CheckedCall &checked);

} // namespace attnc::runtime::cuda

#endif // ATTNC_RUNTIME_CUDA_H
