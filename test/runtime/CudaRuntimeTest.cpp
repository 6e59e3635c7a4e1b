//===- CudaRuntimeTest.cpp - The CUDA runtime without a GPU ---------------===//
//
// What runs on any machine with libnvrtc: NVRTC compiles the hand-written
// .cu (Inputs/copy_kernel.cu) to PTX and cubins for sm_80 and sm_90a, the
// ATTNC_ONLY_* selection, the kernel cache, NVRTC's log in errors; and
// forwardCuda's argument checks, which come before any driver call (so
// they are the errors even where there is no driver). The launches are in
// CudaGpuTest.cpp (ctest label "gpu").
//
//===----------------------------------------------------------------------===//
#include "CudaTestUtil.h"

#include "attnc/Runtime/CudaABI.h"

#include "../common/TempDir.h"

#include <gtest/gtest.h>

#include <dlfcn.h>
#include <unistd.h>

using namespace cuda_test;
using namespace attnc::runtime::cuda;
using attnc::test::TempDir;

namespace {
#define SKIP_WITHOUT_CUDA()                                                    \
  do {                                                                         \
    if (!enabled())                                                            \
      GTEST_SKIP() << "runtime built without CUDA (ATTNC_ENABLE_CUDA=OFF)";    \
  } while (0)

bool contains(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

TEST(CudaNvrtc, PtxAndCubinForBothArches) {
  SKIP_WITHOUT_CUDA();
  const std::string src = copyKernelSource();
  ASSERT_FALSE(src.empty());
  for (const char *arch : {"sm_80", "sm_90a"}) {
    CompileRequest req;
    req.arch = arch;
    req.kind = BinaryKind::Ptx;
    Expected<CompileResult> ptx = compileCuda(src, req);
    ASSERT_TRUE(ptx.ok()) << ptx.status().message();
    EXPECT_TRUE(contains(ptx->binary, std::string(".target ") + arch))
        << ptx->binary.substr(0, 400);
    EXPECT_TRUE(contains(ptx->binary, ".entry attnc_fwd_copy__bf16_64_64"));
    EXPECT_TRUE(contains(ptx->binary, ".entry attnc_fwd_copy__f16_64_64"));
    EXPECT_TRUE(contains(ptx->binary, ".entry attnc_prepass_copy"));
    EXPECT_TRUE(contains(ptx->binary, "attnc_fwd_copy__bf16_64_64__launch"));
    // The device sees the host's layout of the ABI structs: one parameter
    // of sizeof(attnc_cuda_args) bytes, and a second of sizeof
    // (attnc_tma_maps), 64-byte aligned, for a TMA entry.
    EXPECT_TRUE(contains(ptx->binary,
                         ".param .align 8 .b8 attnc_fwd_copy__bf16_64_64_param_0[" +
                             std::to_string(sizeof(attnc_cuda_args)) + "]"))
        << sizeof(attnc_cuda_args);
    EXPECT_TRUE(contains(ptx->binary,
                         ".param .align 64 .b8 attnc_fwd_copytma__bf16_64_64_param_1[" +
                             std::to_string(sizeof(attnc_tma_maps)) + "]"))
        << sizeof(attnc_tma_maps);
    EXPECT_FALSE(ptx->cacheHit);

    req.kind = BinaryKind::Cubin;
    Expected<CompileResult> cubin = compileCuda(src, req);
    ASSERT_TRUE(cubin.ok()) << cubin.status().message();
    ASSERT_GT(cubin->binary.size(), 4u);
    EXPECT_EQ(cubin->binary.substr(0, 4), "\x7f" "ELF");
    EXPECT_TRUE(contains(cubin->binary, "attnc_fwd_copy__f16_64_64"));
  }
}

TEST(CudaNvrtc, OnlyDefinesKeepOneEntry) {
  SKIP_WITHOUT_CUDA();
  CompileRequest req;
  req.kind = BinaryKind::Ptx;
  req.defines = entryDefines(DType::F16, 64, 64);
  EXPECT_EQ(req.defines,
            (std::vector<std::string>{"ATTNC_ONLY_DT=0", "ATTNC_ONLY_HD=64",
                                      "ATTNC_ONLY_HDV=64"}));
  Expected<CompileResult> ptx = compileCuda(copyKernelSource(), req);
  ASSERT_TRUE(ptx.ok()) << ptx.status().message();
  EXPECT_TRUE(contains(ptx->binary, ".entry attnc_fwd_copy__f16_64_64"));
  EXPECT_FALSE(contains(ptx->binary, "attnc_fwd_copy__bf16_64_64"));
  EXPECT_TRUE(contains(ptx->binary, ".entry attnc_prepass_copy"));
}

TEST(CudaNvrtc, CacheHitsAndKeys) {
  SKIP_WITHOUT_CUDA();
  TempDir dir("attnc-cuda-cache");
  KernelCache cache(dir / "cache");
  const std::string src = copyKernelSource();
  CompileRequest req;
  req.arch = "sm_80";
  Expected<CompileResult> first = compileCuda(src, req, &cache);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_FALSE(first->cacheHit);
  Expected<CompileResult> second = compileCuda(src, req, &cache);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->cacheHit);
  EXPECT_EQ(second->binary, first->binary);
  // From disk, in a fresh process's view of the cache.
  cache.clearMemory();
  KernelCache other(cache.directory());
  Expected<CompileResult> third = compileCuda(src, req, &other);
  ASSERT_TRUE(third.ok());
  EXPECT_TRUE(third->cacheHit);
  EXPECT_EQ(third->binary, first->binary);
  // Everything the result depends on is in the key.
  CompileRequest ptx = req;
  ptx.kind = BinaryKind::Ptx;
  CompileRequest arch = req;
  arch.arch = "sm_90a";
  CompileRequest defs = req;
  defs.defines = entryDefines(DType::BF16, 64, 64);
  for (const CompileRequest *r : {&ptx, &arch, &defs}) {
    Expected<CompileResult> x = compileCuda(src, *r, &cache);
    ASSERT_TRUE(x.ok()) << x.status().message();
    EXPECT_FALSE(x->cacheHit);
  }
  Expected<CompileResult> edited = compileCuda(src + "\n// edit\n", req, &cache);
  ASSERT_TRUE(edited.ok());
  EXPECT_FALSE(edited->cacheHit);
}

TEST(CudaNvrtc, ErrorsCarryTheLog) {
  SKIP_WITHOUT_CUDA();
  CompileRequest req;
  req.sourceName = "broken.cu";
  Expected<CompileResult> r =
      compileCuda("extern \"C\" __global__ void f() { undeclared_thing = 1; }",
                  req);
  ASSERT_FALSE(r.ok());
  const std::string &m = r.status().message();
  EXPECT_TRUE(contains(m, "NVRTC could not compile broken.cu for sm_80")) << m;
  EXPECT_TRUE(contains(m, "nvrtcCompileProgram failed")) << m;
  EXPECT_TRUE(contains(m, "undeclared_thing")) << m; // from the log
  EXPECT_TRUE(contains(m, "-arch=sm_80")) << m;

  req.arch = "sm80";
  r = compileCuda("", req);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "invalid CUDA architecture 'sm80'"));
  req.arch = "sm_90a";
  req.defines = {"=1"};
  r = compileCuda("", req);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "invalid -D definition '=1'"));
}

TEST(CudaNames, EntriesAndArches) {
  EXPECT_EQ(entryName("causal", DType::BF16, 128, 64),
            "attnc_fwd_causal__bf16_128_64");
  EXPECT_EQ(entryName("x", DType::F16, 64, 64), "attnc_fwd_x__f16_64_64");
  EXPECT_EQ(prepassName("document"), "attnc_prepass_document");
  EXPECT_TRUE(isValidArch("sm_80"));
  EXPECT_TRUE(isValidArch("sm_90a"));
  EXPECT_FALSE(isValidArch("sm_"));
  EXPECT_FALSE(isValidArch("compute_80"));
  EXPECT_FALSE(isValidArch("sm_8x"));

  DeviceInfo h200{0, "H200", 9, 0, 0, 0}, a100{0, "A100", 8, 0, 0, 0},
      l4{0, "L4", 8, 9, 0, 0}, b200{0, "B200", 10, 0, 0, 0},
      v100{0, "V100", 7, 0, 0, 0};
  EXPECT_EQ(*archForDevice(h200), "sm_90a");
  EXPECT_EQ(*archForDevice(a100), "sm_80");
  EXPECT_EQ(*archForDevice(b200), "sm_80");
  EXPECT_FALSE(archForDevice(v100).ok());
  EXPECT_EQ(*binaryKindFor(h200, "sm_90a"), BinaryKind::Cubin);
  EXPECT_EQ(*binaryKindFor(h200, "sm_80"), BinaryKind::Ptx);
  EXPECT_EQ(*binaryKindFor(l4, "sm_80"), BinaryKind::Cubin);
  EXPECT_FALSE(binaryKindFor(a100, "sm_90a").ok());
  EXPECT_TRUE(contains(binaryKindFor(b200, "sm_90a").status().message(),
                       "sm_90a code runs only on compute capability 9.0"));
}

TEST(CudaDriver, NoDriverIsAClearError) {
  SKIP_WITHOUT_CUDA();
  if (void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
    dlclose(h);
    GTEST_SKIP() << "this machine has a CUDA driver";
  }
  Expected<DeviceInfo> d = currentDevice();
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(contains(d.status().message(),
                       "no CUDA driver found (libcuda.so.1)"))
      << d.status().message();
  Expected<DeviceBuffer> b = DeviceBuffer::allocate(16);
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(contains(b.status().message(), "no CUDA driver found"));
}

// --- forwardCuda's checks: before any driver call ------------------------------

/// Fake device views: checkCudaForward never dereferences them.
struct FakeCall {
  std::vector<int64_t> qs, ks, vs, os;
  DeviceView q, k, v, out, lse;
  CudaForwardArgs args;
  static constexpr uint64_t kBase = 0x7f0000000000ull; // 16-byte aligned

  FakeCall(int64_t B, int64_t HQ, int64_t HKV, int64_t LQ, int64_t LK,
           int64_t D, int64_t DV, DType dt = DType::BF16) {
    q = make(dt, {B, HQ, LQ, D}, 0);
    k = make(dt, {B, HKV, LK, D}, 1);
    v = make(dt, {B, HKV, LK, DV}, 2);
    out = make(dt, {B, HQ, LQ, DV}, 3);
    lse = make(DType::F32, {B, HQ, LQ}, 4);
    sync();
  }
  static DeviceView make(DType dt, std::vector<int64_t> shape, int slot) {
    DeviceView v;
    // 256 GiB apart: even the 2^31-row views below do not overlap.
    v.buffer = kBase + uint64_t(slot) * (1ull << 38);
    v.view.data = reinterpret_cast<void *>(v.buffer);
    v.view.dtype = dt;
    v.view.strides = contiguousStrides(shape);
    v.view.shape = shape;
    v.bufferBytes = size_t(*checkedNumel(shape)) * dtypeSize(dt);
    return v;
  }
  void sync() {
    args.q = q;
    args.k = k;
    args.v = v;
    args.out = out;
  }
};

/// Runs the check and prepareForward (with no module: a launch would need
/// a driver call first); both must fail with \p what.
void expectRejected(const CudaKernelDecl &decl, FakeCall &c,
                    const std::string &what) {
  c.sync();
  CheckedCall checked;
  Status s = checkCudaForward(decl, c.args, checked);
  ASSERT_FALSE(s.ok()) << "accepted; expected: " << what;
  EXPECT_TRUE(contains(s.message(), what)) << s.message();
  Expected<std::unique_ptr<PreparedForward>> p =
      prepareForward(Module(), decl, c.args);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), s.message());
}

TEST(CudaForwardChecks, AcceptsAWellFormedCall) {
  FakeCall c(2, 4, 2, 33, 47, 64, 64);
  c.args.lse = &c.lse;
  CheckedCall checked;
  Status s = checkCudaForward(copyDecl(DType::BF16, false), c.args, checked);
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(checked.size(SizeName::LK), 47);
  // With no module loaded, prepareForward stops at that, after the checks.
  Expected<std::unique_ptr<PreparedForward>> p =
      prepareForward(Module(), copyDecl(DType::BF16, false), c.args);
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(contains(p.status().message(), "no CUDA module loaded"));
}

TEST(CudaForwardChecks, SameErrorsAsTheCpu) {
  const CudaKernelDecl bf16 = copyDecl(DType::BF16, false);
  {
    FakeCall c(1, 2, 2, 5, 6, 64, 64, DType::F32);
    CudaKernelDecl f32 = bf16;
    f32.storage = DType::F32;
    expectRejected(f32, c, "kernel 'copy': the CUDA kernels store q, k, v "
                           "and out as float16 or bfloat16, not float32");
  }
  {
    FakeCall c(1, 2, 2, 5, 6, 64, 64, DType::F16);
    expectRejected(bf16, c, "q: expected dtype bfloat16");
  }
  {
    FakeCall c(1, 3, 2, 5, 6, 64, 64);
    expectRejected(bf16, c, "HQ (3) is not a multiple of HKV (2)");
  }
  {
    FakeCall c(1, 2, 2, 5, 6, 64, 64);
    c.out = FakeCall::make(DType::BF16, {1, 2, 4, 64}, 3);
    expectRejected(bf16, c, "out: shape [1, 2, 4, 64] does not match q's");
  }
  {
    FakeCall c(1, 2, 2, 5, 6, 64, 64);
    c.args.lse = &c.lse;
    CudaKernelDecl sig = bf16;
    sig.sigmoid = true;
    expectRejected(sig, c, "lse is not defined for sigmoid normalisation");
  }
  {
    FakeCall c(1, 2, 2, 5, 6, 64, 64);
    expectRejected(copyDecl(DType::BF16, true), c,
                   "missing input 'idx' (declared inputs: idx)");
  }
  {
    FakeCall c(1, 2, 2, 5, 6, 64, 64);
    std::vector<int64_t> idx(4, 0);
    TensorView t{idx.data(), DType::I64, {4}, {1}};
    c.args.inputs = {{"idx", t}};
    expectRejected(copyDecl(DType::BF16, true), c,
                   "input 'idx': shape [4] does not match the declared [LQ] = [5]");
  }
}

/// The shared rules (ForwardChecks.h): an empty problem (B, HQ or LQ = 0)
/// is a no-op that needs no module nor driver; head dims outside 1..1024
/// and outputs overlapping an input are the CPU's errors.
TEST(CudaForwardChecks, EmptyProblemsRangesAndOverlaps) {
  const CudaKernelDecl bf16 = copyDecl(DType::BF16, false);
  for (FakeCall *c : {new FakeCall(0, 2, 2, 5, 6, 64, 64),
                      new FakeCall(1, 0, 0, 5, 6, 64, 64),
                      new FakeCall(1, 2, 1, 0, 6, 64, 64)}) {
    std::unique_ptr<FakeCall> own(c);
    c->sync();
    Expected<std::unique_ptr<PreparedForward>> p =
        prepareForward(Module(), bf16, c->args);
    ASSERT_TRUE(p.ok()) << p.status().message();
    EXPECT_TRUE((*p)->launch().ok());
    EXPECT_TRUE((*p)->finish().ok());
  }
  {
    FakeCall c(1, 2, 2, 5, 6, 0, 64);
    expectRejected(bf16, c, "q: D = 0 (dimension 3 of shape [1, 2, 5, 0]) is "
                            "outside the supported head dims 1..1024");
  }
  {
    FakeCall c(1, 2, 2, 5, 6, 64, 64);
    c.out = c.q;
    expectRejected(bf16, c, "out overlaps q in memory");
  }
}

TEST(CudaForwardChecks, CudaLayoutRules) {
  const CudaKernelDecl decl = copyDecl(DType::BF16, false);
  {
    FakeCall c(1, 2, 2, 5, 6, 64, 64);
    c.q.view.strides = {2 * 5 * 128, 5 * 128, 128, 2}; // every other element
    c.q.bufferBytes *= 2;
    expectRejected(decl, c, "q: the CUDA kernels need unit stride along d "
                            "(dimension 3), got stride 2");
  }
  {
    FakeCall c(1, 2, 2, 5, 6, 64, 64);
    c.k.view.data = reinterpret_cast<void *>(c.k.buffer + 2);
    c.k.bufferBytes += 2;
    expectRejected(decl, c, "k: the CUDA kernels need a 16-byte aligned base");
  }
  {
    FakeCall c(1, 2, 2, 5, 6, 60, 60); // rows of 120 bytes
    expectRejected(decl, c, "dimension 2 (l) has stride 60 (120 bytes)");
  }
  {
    FakeCall c(1, 2, 2, 5, 6, 64, 64);
    c.v.bufferBytes -= 2; // the last element lies outside the allocation
    expectRejected(decl, c, "v: ");
  }
  {
    FakeCall c(1, 2, 2, 5, 6, 64, 64);
    c.out.buffer = 0;
    expectRejected(decl, c, "out: no device allocation given");
  }
  {
    FakeCall c(1, 1, 1, int64_t(1) << 31, 6, 8, 8); // positions past 32 bits
    expectRejected(decl, c, "the CUDA kernels index positions in 32 bits; LQ = 2147483648");
  }
  {
    // A [B, L, H, D] buffer viewed as [B, H, L, D]: fine.
    FakeCall c(1, 4, 4, 5, 6, 64, 64);
    c.q.view.strides = {5 * 4 * 64, 64, 4 * 64, 1};
    c.sync();
    CheckedCall checked;
    Status s = checkCudaForward(decl, c.args, checked);
    EXPECT_TRUE(s.ok()) << s.message();
  }
}
} // namespace
