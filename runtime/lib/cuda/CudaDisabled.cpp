//===- CudaDisabled.cpp - The CUDA runtime when built without CUDA --------===//
//
// Built instead of the driver/NVRTC files when ATTNC_ENABLE_CUDA is off (no
// CUDA headers at build time): every call that would need CUDA returns the
// same error, so the tools link and say why CUDA is unavailable.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/Cuda.h"

using namespace attnc::runtime;
using namespace attnc::runtime::cuda;

namespace {
Status disabled() {
  return Status::error("this attnc was built without CUDA support (no CUDA "
                       "toolkit headers at build time, or "
                       "-DATTNC_ENABLE_CUDA=OFF)");
}
} // namespace

bool attnc::runtime::cuda::enabled() { return false; }
Expected<std::string> attnc::runtime::cuda::nvrtcVersion() { return disabled(); }
Expected<std::vector<std::string>>
attnc::runtime::cuda::nvrtcOptions(const CompileRequest &) {
  return disabled();
}
Expected<CompileResult> attnc::runtime::cuda::compileCuda(std::string_view,
                                                          const CompileRequest &,
                                                          KernelCache *) {
  return disabled();
}
Status attnc::runtime::cuda::selectDevice(int) { return disabled(); }
int attnc::runtime::cuda::selectedDeviceOrdinal() { return 0; }
Expected<DeviceInfo> attnc::runtime::cuda::currentDevice() { return disabled(); }

DeviceBuffer::~DeviceBuffer() = default;
DeviceBuffer::DeviceBuffer(DeviceBuffer &&o) noexcept : ptr(o.ptr), bytes(o.bytes) {}
DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&) noexcept { return *this; }
Expected<DeviceBuffer> DeviceBuffer::allocate(size_t) { return disabled(); }
Status DeviceBuffer::upload(const void *, size_t, size_t) { return disabled(); }
Status DeviceBuffer::download(void *, size_t, size_t) const { return disabled(); }
Status DeviceBuffer::fill(unsigned char) { return disabled(); }

Expected<DeviceTensor> DeviceTensor::allocate(DType, std::vector<int64_t>) {
  return disabled();
}
Expected<DeviceTensor> DeviceTensor::upload(const TensorView &) {
  return disabled();
}
Expected<Tensor> DeviceTensor::download() const { return disabled(); }
DeviceView DeviceTensor::view() const { return {}; }

struct Module::Impl {};
Expected<Module> Module::load(std::string_view) { return disabled(); }
bool Module::hasFunction(const std::string &) const { return false; }

struct PreparedForward::Impl {
  std::string entry;
  std::vector<int> record;
};
PreparedForward::PreparedForward(std::unique_ptr<Impl> impl)
    : p(std::move(impl)) {}
PreparedForward::~PreparedForward() = default;
Status PreparedForward::launch() { return disabled(); }
Status PreparedForward::finish() { return disabled(); }
Expected<std::vector<double>> PreparedForward::time(int, int) {
  return disabled();
}
const std::string &PreparedForward::entry() const { return p->entry; }
const std::vector<int> &PreparedForward::launchRecord() const {
  return p->record;
}
Expected<std::unique_ptr<PreparedForward>>
attnc::runtime::cuda::prepareForward(const Module &, const CudaKernelDecl &,
                                     const CudaForwardArgs &) {
  return disabled();
}
Status attnc::runtime::cuda::forwardCuda(const Module &, const CudaKernelDecl &,
                                         const CudaForwardArgs &) {
  return disabled();
}
