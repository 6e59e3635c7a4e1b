//===- CudaGpuTest.cpp - The CUDA launcher on a GPU (ctest label "gpu") ---===//
//
// Runs the hand-written Inputs/copy_kernel.cu through NVRTC, Module::load
// and forwardCuda: results, strided views, the pre-pass and its scratch,
// kernel-reported errors (the same messages as forwardCpu), timing. On a
// machine without a driver or GPU, main prints "skipped: no CUDA GPU (...)"
// and exits 77, which ctest reports as skipped (SKIP_RETURN_CODE).
//
//===----------------------------------------------------------------------===//
#include "CudaTestUtil.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

using namespace cuda_test;
using namespace attnc::runtime::cuda;

namespace {
/// The copy module, compiled once for the device's arch.
const Module &copyModule() {
  static Module *m = [] {
    Expected<DeviceInfo> d = currentDevice();
    EXPECT_TRUE(d.ok());
    Expected<std::string> arch = archForDevice(*d);
    EXPECT_TRUE(arch.ok()) << arch.status().message();
    CompileRequest req;
    req.arch = *arch;
    req.kind = *binaryKindFor(*d, *arch);
    Expected<CompileResult> bin = compileCuda(copyKernelSource(), req);
    EXPECT_TRUE(bin.ok()) << bin.status().message();
    Expected<Module> mod = Module::load(bin->binary);
    EXPECT_TRUE(mod.ok()) << mod.status().message();
    return new Module(std::move(*mod));
  }();
  return *m;
}

Tensor randomTensor(DType dt, std::vector<int64_t> shape, unsigned seed) {
  Tensor t = *Tensor::zeros(dt, shape);
  unsigned x = seed * 2654435761u + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    x = x * 1664525u + 1013904223u;
    t.setFromDouble(i, double(int(x >> 16) % 2001 - 1000) / 256.0);
  }
  return t;
}

struct DeviceCall {
  DeviceTensor q, k, v, out, lse;
  CudaForwardArgs args;
  Tensor hostQ;
};

DeviceCall makeCall(DType dt, int64_t B, int64_t HQ, int64_t HKV, int64_t LQ,
                    int64_t LK) {
  DeviceCall c{};
  c.hostQ = randomTensor(dt, {B, HQ, LQ, 64}, 1);
  c.q = DeviceTensor::upload(c.hostQ.view()).value();
  c.k = DeviceTensor::upload(randomTensor(dt, {B, HKV, LK, 64}, 2).view()).value();
  c.v = DeviceTensor::upload(randomTensor(dt, {B, HKV, LK, 64}, 3).view()).value();
  c.out = DeviceTensor::allocate(dt, {B, HQ, LQ, 64}).value();
  c.lse = DeviceTensor::allocate(DType::F32, {B, HQ, LQ}).value();
  EXPECT_TRUE(c.out.fill(0xff).ok()); // NaN: unwritten elements fail
  EXPECT_TRUE(c.lse.fill(0xff).ok());
  c.args.q = c.q.view();
  c.args.k = c.k.view();
  c.args.v = c.v.view();
  c.args.out = c.out.view();
  return c;
}

TEST(CudaGpu, CopyKernelRunsWithPrepass) {
  for (DType dt : {DType::BF16, DType::F16}) {
    DeviceCall c = makeCall(dt, 2, 4, 2, 37, 130);
    DeviceView lse = c.lse.view();
    c.args.lse = &lse;
    Status s = forwardCuda(copyModule(), copyDecl(dt, false), c.args);
    ASSERT_TRUE(s.ok()) << s.message();
    Tensor out = *c.out.download();
    ASSERT_EQ(out.nbytes(), c.hostQ.nbytes());
    EXPECT_EQ(std::memcmp(out.data(), c.hostQ.data(), out.nbytes()), 0);
    Tensor l = *c.lse.download();
    for (int64_t i = 0; i < l.numel(); ++i)
      ASSERT_EQ(l.getAsDouble(i), double(i % 37 + 1000)) << i;
  }
}

TEST(CudaGpu, KernelErrorsMatchTheCpu) {
  DeviceCall c = makeCall(DType::BF16, 1, 2, 2, 5, 6);
  std::vector<int64_t> idx = {1, 2, 7, 3, 4};
  c.args.inputs = {{"idx", TensorView{idx.data(), DType::I64, {5}, {1}}}};
  Status s = forwardCuda(copyModule(), copyDecl(DType::BF16, true), c.args);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "input 'idx' read out of range: index 7 in dimension 0 of size 5");
  idx = {1, 2, 0, 3, 4};
  // int32 ids are converted to int64 as forwardCpu does.
  std::vector<int32_t> idx32(idx.begin(), idx.end());
  c.args.inputs = {{"idx", TensorView{idx32.data(), DType::I32, {5}, {1}}}};
  s = forwardCuda(copyModule(), copyDecl(DType::BF16, true), c.args);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "kernel 'copy': integer division or modulo by zero "
                         "in the spec's expressions");
}

TEST(CudaGpu, TensorMapsAndClusters) {
  Expected<DeviceInfo> d = currentDevice();
  ASSERT_TRUE(d.ok());
  if (d->major < 9)
    GTEST_SKIP() << "tensor maps and clusters need compute capability 9.0";
  DeviceCall c = makeCall(DType::BF16, 2, 2, 2, 37, 40);
  CudaKernelDecl decl = copyDecl(DType::BF16, false);
  decl.name = "copytma";
  auto p = prepareForward(copyModule(), decl, c.args);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ((*p)->launchRecord()[5], 1); // ATTNC_LAUNCH_TMA
  ASSERT_TRUE((*p)->launch().ok());
  Status s = (*p)->finish();
  ASSERT_TRUE(s.ok()) << s.message();
  Tensor out = *c.out.download();
  EXPECT_EQ(std::memcmp(out.data(), c.hostQ.data(), out.nbytes()), 0);
}

TEST(CudaGpu, MissingEntryAndTiming) {
  DeviceCall c = makeCall(DType::BF16, 1, 2, 2, 5, 6);
  CudaKernelDecl other = copyDecl(DType::BF16, false);
  other.name = "nosuch";
  Status s = forwardCuda(copyModule(), other, c.args);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("has no entry attnc_fwd_nosuch__bf16_64_64"),
            std::string::npos)
      << s.message();
  auto p = prepareForward(copyModule(), copyDecl(DType::BF16, false), c.args);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ((*p)->entry(), "attnc_fwd_copy__bf16_64_64");
  EXPECT_EQ((*p)->launchRecord()[1], 128);
  auto ms = (*p)->time(2, 5);
  ASSERT_TRUE(ms.ok()) << ms.status().message();
  EXPECT_EQ(ms->size(), 5u);
  for (double t : *ms)
    EXPECT_GE(t, 0.0);
}
} // namespace

int main(int argc, char **argv) {
  Expected<DeviceInfo> d = currentDevice();
  if (!d.ok()) {
    std::printf("skipped: no CUDA GPU (%s)\n", d.status().message().c_str());
    return 77;
  }
  std::printf("CUDA device %d: %s, compute capability %d.%d\n", d->ordinal,
              d->name.c_str(), d->major, d->minor);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
