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
  check([](KernelInfo &k) { k.tileQ = 0; }, "tile sizes must be positive");
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
    Call c(Dims{0, 2, 2, 5, 6, 4, 4});
    expectRejected(k, c, "q: B (dimension 0) must be at least 1, got 0");
  }
  {
    Call c(Dims{1, 0, 1, 5, 6, 4, 4});
    expectRejected(k, c, "q: HQ (dimension 1) must be at least 1, got 0");
  }
  {
    Call c(Dims{1, 2, 0, 5, 6, 4, 4});
    expectRejected(k, c, "k: HKV (dimension 1) must be at least 1, got 0");
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
