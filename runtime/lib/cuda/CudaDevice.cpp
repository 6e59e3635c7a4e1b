//===- CudaDevice.cpp - Devices, device memory and modules ----------------===//
//
// The driver-API objects the launcher works with. All of them make the
// selected device's primary context current first (contextDriver), so
// they work from any thread.
//
//===----------------------------------------------------------------------===//
#include "CudaApi.h"

#include "attnc/Runtime/Cuda.h"

#include <cstring>

using namespace attnc::runtime;
using namespace attnc::runtime::cuda;
using namespace attnc::runtime::cuda::detail;

bool attnc::runtime::cuda::enabled() { return true; }

Expected<DeviceInfo> attnc::runtime::cuda::currentDevice() {
  Expected<const Driver *> d = contextDriver();
  if (!d.ok())
    return d.status();
  const Driver &dr = **d;
  DeviceInfo info;
  info.ordinal = selectedDeviceOrdinal();
  CUdevice dev;
  ATTNC_CU(dr, cuDeviceGet, &dev, info.ordinal);
  char name[256] = {};
  ATTNC_CU(dr, cuDeviceGetName, name, int(sizeof name) - 1, dev);
  info.name = name;
  ATTNC_CU(dr, cuDeviceGetAttribute, &info.major,
           CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
  ATTNC_CU(dr, cuDeviceGetAttribute, &info.minor,
           CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
  ATTNC_CU(dr, cuDeviceTotalMem, &info.totalMemory, dev);
  ATTNC_CU(dr, cuDriverGetVersion, &info.driverVersion);
  return info;
}

// --- DeviceBuffer ------------------------------------------------------------

DeviceBuffer::~DeviceBuffer() {
  if (!ptr)
    return;
  Expected<const Driver *> d = contextDriver();
  if (d.ok())
    (void)(*d)->cuMemFree(CUdeviceptr(ptr)); // a destructor cannot report
}

DeviceBuffer::DeviceBuffer(DeviceBuffer &&o) noexcept
    : ptr(o.ptr), bytes(o.bytes) {
  o.ptr = 0;
  o.bytes = 0;
}

DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&o) noexcept {
  if (this != &o) {
    DeviceBuffer old(std::move(*this));
    ptr = o.ptr;
    bytes = o.bytes;
    o.ptr = 0;
    o.bytes = 0;
  }
  return *this;
}

Expected<DeviceBuffer> DeviceBuffer::allocate(size_t n) {
  Expected<const Driver *> d = contextDriver();
  if (!d.ok())
    return d.status();
  CUdeviceptr p = 0;
  Status s = check(**d, (*d)->cuMemAlloc(&p, n ? n : 1), "cuMemAlloc");
  if (!s.ok())
    return s.withContext("allocating " + std::to_string(n) +
                         " bytes of device memory");
  DeviceBuffer b;
  b.ptr = uint64_t(p);
  b.bytes = n;
  return b;
}

static Status checkRange(size_t offset, size_t n, size_t size, const char *op) {
  if (offset > size || n > size - offset)
    return Status::error(std::string(op) + ": bytes [" + std::to_string(offset) +
                         ", " + std::to_string(offset) + " + " +
                         std::to_string(n) + ") lie outside the buffer of " +
                         std::to_string(size) + " bytes");
  return Status::success();
}

Status DeviceBuffer::upload(const void *host, size_t n, size_t offset) {
  Status s = checkRange(offset, n, bytes, "upload");
  if (!s.ok() || n == 0)
    return s;
  Expected<const Driver *> d = contextDriver();
  if (!d.ok())
    return d.status();
  ATTNC_CU(**d, cuMemcpyHtoD, CUdeviceptr(ptr + offset), host, n);
  return Status::success();
}

Status DeviceBuffer::download(void *host, size_t n, size_t offset) const {
  Status s = checkRange(offset, n, bytes, "download");
  if (!s.ok() || n == 0)
    return s;
  Expected<const Driver *> d = contextDriver();
  if (!d.ok())
    return d.status();
  ATTNC_CU(**d, cuMemcpyDtoH, host, CUdeviceptr(ptr + offset), n);
  return Status::success();
}

Status DeviceBuffer::fill(unsigned char byte) {
  if (!ptr || bytes == 0)
    return Status::success();
  Expected<const Driver *> d = contextDriver();
  if (!d.ok())
    return d.status();
  ATTNC_CU(**d, cuMemsetD8, CUdeviceptr(ptr), byte, bytes);
  return Status::success();
}

// --- DeviceTensor ------------------------------------------------------------

Expected<DeviceTensor> DeviceTensor::allocate(DType dtype,
                                              std::vector<int64_t> shape) {
  Expected<int64_t> n = checkedNumel(shape);
  if (!n.ok())
    return n.status();
  size_t bytes;
  if (__builtin_mul_overflow(size_t(*n), dtypeSize(dtype), &bytes))
    return Status::error("a device tensor of shape " + shapeToString(shape) +
                         " is too large");
  Expected<DeviceBuffer> b = DeviceBuffer::allocate(bytes);
  if (!b.ok())
    return b.status();
  DeviceTensor t;
  t.buf = std::move(*b);
  t.type = dtype;
  t.dims = std::move(shape);
  return t;
}

Expected<DeviceTensor> DeviceTensor::upload(const TensorView &host) {
  Status s = validate(host, "host tensor");
  if (!s.ok())
    return s;
  std::optional<Tensor> copy;
  const void *data = host.data;
  if (!host.isContiguous()) {
    Expected<Tensor> c = makeContiguous(host);
    if (!c.ok())
      return c.status();
    copy.emplace(std::move(*c));
    data = copy->data();
  }
  Expected<DeviceTensor> t = allocate(host.dtype, host.shape);
  if (!t.ok())
    return t.status();
  if (!(s = t->buf.upload(data, t->buf.size())).ok())
    return s;
  return t;
}

Expected<Tensor> DeviceTensor::download() const {
  Expected<Tensor> t = Tensor::zeros(type, dims);
  if (!t.ok())
    return t.status();
  Status s = buf.download(t->data(), t->nbytes());
  if (!s.ok())
    return s;
  return t;
}

DeviceView DeviceTensor::view() const {
  DeviceView v;
  v.view.data = reinterpret_cast<void *>(buf.address());
  v.view.dtype = type;
  v.view.shape = dims;
  v.view.strides = contiguousStrides(dims);
  v.buffer = buf.address();
  v.bufferBytes = buf.size();
  return v;
}

// --- Module ------------------------------------------------------------------

Module::Impl::~Impl() {
  Expected<const Driver *> d = contextDriver();
  if (module && d.ok())
    (void)(*d)->cuModuleUnload(module); // a destructor cannot report
}

Expected<Module> Module::load(std::string_view image) {
  if (image.empty())
    return Status::error("cannot load an empty CUDA module image");
  Expected<const Driver *> d = contextDriver();
  if (!d.ok())
    return d.status();
  // PTX must be NUL-terminated; a std::string always is.
  const std::string data(image);
  // The JIT's error log: what went wrong when PTX does not assemble.
  char log[8192] = {};
  CUjit_option options[] = {CU_JIT_ERROR_LOG_BUFFER,
                            CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {log, reinterpret_cast<void *>(uintptr_t(sizeof log - 1))};
  auto impl = std::make_shared<Impl>();
  Status s = check(**d,
                   (*d)->cuModuleLoadDataEx(&impl->module, data.data(), 2,
                                            options, values),
                   "cuModuleLoadDataEx");
  if (!s.ok()) {
    impl->module = nullptr;
    return Status::error(s.message() +
                         (log[0] ? std::string(":\n") + log : std::string()));
  }
  Module m;
  m.p = std::move(impl);
  return m;
}

bool Module::hasFunction(const std::string &name) const {
  Expected<const Driver *> d = contextDriver();
  if (!d.ok() || !p)
    return false;
  CUfunction f;
  return (*d)->cuModuleGetFunction(&f, p->module, name.c_str()) == CUDA_SUCCESS;
}
