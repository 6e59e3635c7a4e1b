//===- CpuDispatchErrorsTest.cpp - forwardCpu's argument errors -----------===//
//
// Every argument forwardCpu refuses: each case expects an error that names
// the tensor (or input) and what was wrong, no kernel call, and out and lse
// still poisoned with NaN (see expectRejected in CpuDispatchTestUtil.h).
//
//===----------------------------------------------------------------------===//
#include "CpuDispatchTestUtil.h"

#include <functional>

using namespace cpu_dispatch_test;

namespace {
TEST(CpuDispatchErrors, Kernel) {
  const Dims d{1, 2, 2, 5, 6, 4, 4};
  auto check = [&](std::function<void(KernelInfo &)> edit, const char *what) {
    KernelInfo k = docKernel();
    edit(k);
    Call c(d);
    DocInputs in(d);
    c.args.inputs = in.list();
    expectRejected(k, c, what);
  };
  check([](KernelInfo &k) { k.fn = nullptr; }, "kernel 'docs': no entry point");
  check([](KernelInfo &k) { k.tileQ = 0; }, "tile sizes must be in 1..65536");
  check([](KernelInfo &k) { k.tileQ = 65537; }, "tileQ = 65537");
  check([](KernelInfo &k) { k.tileK = -1; }, "tileK = -1");
  check([](KernelInfo &k) { k.storage = DType::F64; },
        "storage type must be float32, float16 or bfloat16, got float64");
  check([](KernelInfo &k) { k.inputs[1].dtype = DType::I32; },
        "input 'doc_kv' is declared as int32");
  check([](KernelInfo &k) { k.inputs[2].dims[0].literal = -1; },
        "negative extent");
  check([](KernelInfo &k) { k.inputs[3].name = "doc_q"; },
        "input 'doc_q' is declared twice");
}

TEST(CpuDispatchErrors, Tensors) {
  const Dims d{1, 2, 2, 5, 6, 4, 4};
  const KernelInfo k = softmaxKernel();
  {
    Call c(d);
    c.args.threads = -1;
    expectRejected(k, c, "threads must be 0");
  }
  {
    Call c(d);
    c.args.q = c.keep(randomTensor({1, 2, 5, 4}, 1, DType::F16));
    expectRejected(k, c, "q: expected dtype float32, got float16");
  }
  {
    Call c(d);
    c.args.q = c.keep(randomTensor({2, 5, 4}, 1));
    expectRejected(k, c,
                   "q: expected rank 4 [B, HQ, LQ, D], got shape [2, 5, 4]");
  }
  {
    Call c(d);
    c.args.k.strides.pop_back();
    expectRejected(k, c, "k: 3 strides for a rank-4 shape");
  }
  {
    Call c(d);
    c.args.v.data = nullptr;
    expectRejected(k, c, "v: null data");
  }
  {
    Call c(d);
    c.args.out = c.keep(randomTensor({1, 2, 5, 4}, 1, DType::BF16));
    expectRejected(k, c, "out: expected dtype float32, got bfloat16");
  }
}

TEST(CpuDispatchErrors, Sizes) {
  const KernelInfo k = softmaxKernel();
  {
    Call c(Dims{1, 2, 0, 5, 6, 4, 4});
    expectRejected(k, c, "HQ (2) is not a multiple of HKV (0)");
  }
  // Head dims outside 1..1024 (D = 0 gave all-NaN output).
  {
    Call c(Dims{1, 2, 2, 5, 6, 0, 4});
    expectRejected(k, c,
                   "q: D = 0 (dimension 3 of shape [1, 2, 5, 0]) is outside "
                   "the supported head dims 1..1024");
  }
  {
    Call c(Dims{1, 2, 2, 5, 6, 4, 0});
    expectRejected(k, c, "v: DV = 0 (dimension 3 of shape [1, 2, 6, 0])");
  }
  {
    Call c(Dims{1, 1, 1, 2, 3, 1025, 4});
    expectRejected(k, c, "q: D = 1025");
  }
  {
    Call c(Dims{1, 1, 1, 2, 3, 4, 1025});
    expectRejected(k, c, "v: DV = 1025");
  }
  {
    Call c(Dims{1, 8, 3, 5, 6, 4, 4});
    expectRejected(k, c, "HQ (8) is not a multiple of HKV (3)");
  }
  {
    Call c(Dims{1, 2, 2, 5, 19, 64, 64});
    c.args.k = c.keep(randomTensor({2, 2, 19, 64}, 1));
    expectRejected(k, c,
                   "k: shape [2, 2, 19, 64] does not match q's [B, D] "
                   "= [1, 64]: dimension 0 (B) is 2, not 1");
  }
  {
    Call c(Dims{1, 2, 2, 5, 19, 64, 64});
    c.args.k = c.keep(randomTensor({1, 2, 19, 32}, 1));
    expectRejected(k, c, "dimension 3 (D) is 32, not 64");
  }
  {
    Call c(Dims{1, 2, 2, 5, 19, 64, 64});
    c.args.v = c.keep(randomTensor({1, 2, 17, 64}, 1));
    expectRejected(k, c,
                   "v: shape [1, 2, 17, 64] does not match k's "
                   "[B, HKV, LK] = [1, 2, 19]: dimension 2 (LK) is 17");
  }
  {
    Call c(Dims{1, 4, 2, 5, 6, 4, 4});
    c.args.v = c.keep(randomTensor({1, 1, 6, 4}, 1));
    expectRejected(k, c, "dimension 1 (HKV) is 1, not 2");
  }
  {
    Call c(Dims{1, 2, 2, 5, 6, 4, 4});
    c.args.out = c.keep(randomTensor({1, 2, 6, 4}, 1));
    expectRejected(k, c,
                   "out: shape [1, 2, 6, 4] does not match q's "
                   "[B, HQ, LQ] = [1, 2, 5]: dimension 2 (LQ) is 6, not 5");
  }
  {
    Call c(Dims{1, 2, 2, 5, 6, 4, 4});
    c.args.out = c.keep(randomTensor({1, 2, 5, 3}, 1));
    expectRejected(k, c,
                   "out: shape [1, 2, 5, 3] does not match v's [DV] = "
                   "[4]: dimension 3 (DV) is 3, not 4");
  }
}

TEST(CpuDispatchErrors, Lse) {
  const Dims d{1, 2, 2, 5, 6, 4, 4};
  {
    Call c(d);
    TensorView bad = c.keep(randomTensor({1, 2, 5}, 1, DType::F16));
    c.args.lse = &bad;
    expectRejected(softmaxKernel(), c,
                   "lse: expected dtype float32, got float16");
  }
  {
    Call c(d);
    TensorView bad = c.keep(randomTensor({1, 2, 5, 1}, 1));
    c.args.lse = &bad;
    expectRejected(softmaxKernel(), c, "lse: expected rank 3 [B, HQ, LQ]");
  }
  {
    Call c(d);
    TensorView bad = c.keep(randomTensor({1, 3, 5}, 1));
    c.args.lse = &bad;
    expectRejected(softmaxKernel(), c,
                   "lse: shape [1, 3, 5] does not match q's [B, HQ, LQ] = "
                   "[1, 2, 5]: dimension 1 (HQ) is 3, not 2");
  }
  {
    Call c(d);
    KernelInfo k = softmaxKernel();
    k.sigmoid = true;
    expectRejected(k, c, "lse is not defined for sigmoid normalisation");
    c.args.lse = nullptr; // without lse the same call is fine
    ASSERT_OK(forwardCpu(k, c.args));
  }
}

TEST(CpuDispatchErrors, Inputs) {
  const Dims d{2, 2, 2, 5, 6, 4, 4};
  const KernelInfo k = docKernel();
  using Edit = std::function<void(
      Call &, std::vector<std::pair<std::string, TensorView>> &)>;
  auto check = [&](Edit edit, const std::string &what) {
    Call c(d);
    DocInputs in(d);
    auto list = in.list();
    edit(c, list);
    c.args.inputs = list;
    expectRejected(k, c, what);
  };
  const std::string declared =
      "(declared inputs: doc_q, doc_kv, table, idx, keep)";
  check([](Call &, auto &l) { l.erase(l.begin() + 1); },
        "missing input 'doc_kv' " + declared);
  check(
      [](Call &c, auto &l) {
        l.push_back({"bogus", c.q.view()});
      },
      "unknown input 'bogus' " + declared);
  check([](Call &, auto &l) { l.push_back(l[0]); },
        "input 'doc_q' is given twice " + declared);
  check([](Call &c, auto &l) { l[1].second = c.keep(zeros(DType::I64, {5})); },
        "input 'doc_kv': shape [5] does not match the declared [LK] = [6]");
  check([](Call &c, auto &l) { l[3].second = c.keep(zeros(DType::I64, {5})); },
        "input 'idx': expected rank 2 [B, LQ], got shape [5]");
  check([](Call &c, auto &l) { l[2].second = c.keep(zeros(DType::F32, {5})); },
        "input 'table': shape [5] does not match the declared [4] = [4]");
  check([](Call &c, auto &l) { l[0].second = c.keep(zeros(DType::F32, {5})); },
        "input 'doc_q': expected int32 or int64, got float32");
  check([](Call &c, auto &l) { l[2].second = c.keep(zeros(DType::I64, {4})); },
        "input 'table': expected float32, float16, bfloat16 or float64, got "
        "int64");
  check([](Call &c, auto &l) { l[4].second = c.keep(zeros(DType::I32, {6})); },
        "input 'keep': expected bool, got int32");
  check([](Call &, auto &l) { l[0].second.data = nullptr; },
        "input 'doc_q': null data");
  // A kernel without inputs says so.
  Call c(d);
  c.args.inputs = {{"doc_q", c.q.view()}};
  expectRejected(softmaxKernel(), c,
                 "unknown input 'doc_q' (the kernel declares no inputs)");
}

/// The empty-problem rule: B, HQ (with HKV) or LQ = 0 is a no-op that
/// succeeds without a kernel call (the head dims must still be in range).
TEST(CpuDispatchErrors, EmptyProblemsAreNoOps) {
  const KernelInfo k = softmaxKernel();
  for (Dims d : {Dims{0, 2, 2, 5, 6, 4, 4}, Dims{1, 0, 0, 5, 6, 4, 4},
                 Dims{1, 0, 2, 5, 6, 4, 4}, Dims{2, 2, 1, 0, 6, 4, 4},
                 Dims{0, 0, 0, 0, 0, 4, 4}}) {
    Call c(d);
    const int before = gCalls.load();
    ASSERT_OK(forwardCpu(k, c.args));
    EXPECT_EQ(gCalls.load(), before);
  }
  Call c(Dims{0, 2, 2, 5, 6, 0, 4});
  expectRejected(k, c, "q: D = 0");
}

/// Outputs must not overlap themselves, each other or any input (the
/// byte ranges the views span), as PyTorch checks: an out aliasing v ran
/// and returned ok with wrong values.
TEST(CpuDispatchErrors, OverlappingOutputs) {
  const Dims d{1, 2, 2, 5, 6, 4, 4};
  const KernelInfo k = softmaxKernel();
  {
    Call c(d);
    c.args.out = c.v.view(); // [1, 2, 6, 4] would not match: reshape
    c.args.out.shape = {1, 2, 5, 4};
    c.args.out.strides = {40, 20, 4, 1};
    expectRejected(k, c, "out overlaps v in memory");
  }
  {
    Call c(d);
    c.args.out = c.q.view();
    expectRejected(k, c, "out overlaps q in memory");
  }
  {
    Call c(d);
    c.args.out = c.k.view();
    c.args.out.shape = {1, 2, 5, 4};
    expectRejected(k, c, "out overlaps k in memory");
  }
  {
    Call c(d);
    c.args.out.strides[2] = 0;
    expectRejected(k, c, "out: dimension 2 has extent 5 and stride 0");
  }
  {
    Call c(d);
    c.lseView.strides = {10, 0, 1};
    expectRejected(k, c, "lse: dimension 1 has extent 2 and stride 0");
  }
  {
    Call c(d);
    c.args.out.strides = {40, 20, 2, 1}; // rows of 4 at a stride of 2
    expectRejected(k, c, "out: shape [1, 2, 5, 4] with strides [40, 20, 2, 1] "
                         "may place two elements at the same address");
  }
  {
    Call c(d);
    c.lseView.data = c.out.data(); // lse inside out
    expectRejected(k, c, "out overlaps lse in memory");
  }
  {
    Call c(d);
    DocInputs in(d);
    auto list = in.list();
    c.args.inputs = list;
    c.args.out = list[2].second; // out over the table input
    c.args.out.shape = {1, 2, 5, 4};
    c.args.out.strides = {0, 0, 0, 1};
    expectRejected(docKernel(), c, "out: dimension 1 has extent 2 and stride 0");
    c.args.out.strides = {40, 20, 4, 1};
    Tensor big = zeros(DType::F32, {64});
    c.args.out.data = static_cast<float *>(big.data()) + 4;
    c.args.inputs[2].second.data = big.data(); // table in [0, 16) bytes
    c.args.inputs[2].second.shape = {4};
    c.args.inputs[2].second.strides = {2};   // reaches element 6
    expectRejected(docKernel(), c, "out overlaps input 'table' in memory");
  }
  {
    // Negative and permuted strides that keep elements apart are fine.
    Call c(d);
    c.args.out.data = static_cast<float *>(c.out.data()) + 4 * 5 * 2 - 1;
    c.args.out.strides = {-40, -20, -4, -1};
    ASSERT_OK(forwardCpu(k, c.args));
  }
}

/// Allocations a call sizes (the tile trace, the ids pre-pass buffer) are
/// checked against the machine's memory before they are made: a 4 TB one
/// on a small broadcast input is an error naming it, never an abort.
TEST(CpuDispatchErrors, ImpossibleAllocationsAreErrors) {
  const int64_t LK = int64_t(3) << 40; // keys: a zero-stride view
  Call c(Dims{1, 2, 2, 5, 6, 4, 4});
  c.args.k.shape = {1, 2, LK, 4};
  c.args.k.strides = {0, 0, 0, 1};
  c.args.v.shape = {1, 2, LK, 4};
  c.args.v.strides = {0, 0, 0, 1};
  KernelInfo k = softmaxKernel();
  k.traced = true;
  std::vector<int8_t> trace;
  c.args.tileTrace = &trace;
  expectRejected(k, c, "out of memory: a tile trace of 4398046511104 entries "
                       "needs 4398046511104 bytes, more than this machine's");
  c.args.tileTrace = nullptr;
  k.traced = false;
  k.prepass = k.fn;
  k.numIdsAtoms = 1;
  expectRejected(k, c, "out of memory: the ids pre-pass buffer needs "
                       "35184372088832 bytes, more than this machine's");
}

TEST(CpuDispatchErrors, TraceOnAnUntracedKernel) {
  Call c(Dims{1, 2, 2, 5, 6, 4, 4});
  std::vector<int8_t> trace(4, 3);
  c.args.tileTrace = &trace;
  expectRejected(softmaxKernel(), c,
                 "a tile trace was requested, but kernel 'fake' was not "
                 "built to record one");
  EXPECT_EQ(trace, std::vector<int8_t>(4, 3));
}
} // namespace
