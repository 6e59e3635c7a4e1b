//===- CpuDispatchTest.cpp - forwardCpu against fake kernels --------------===//
//
// forwardCpu is tested without a compiler, with the fake kernels of
// CpuDispatchTestUtil.h. The naive softmax fake is checked against a
// float64 reference on contiguous, transposed and negative-stride views, on
// grouped heads, empty lengths and inputs in every accepted dtype; a probe
// kernel checks the descriptors and the meta array word by word; counting
// and failing kernels check the task split and the reported kernel errors.
// CpuDispatchErrorsTest.cpp has the argument errors.
//
//===----------------------------------------------------------------------===//
#include "CpuDispatchTestUtil.h"

#include <cstring>
#include <mutex>
#include <set>
#include <thread>

using namespace cpu_dispatch_test;

namespace {
/// Copies what it is given, for layout checks; converted inputs die with
/// the call, so their contents are copied too. Run with threads = 1.
struct Probe {
  size_t numBuffers = 0, metaWords = 0;
  std::vector<size_t> inputElemSizes; // bytes per element of each input
  std::vector<attnc_buffer> buffers;
  std::vector<int64_t> meta;
  std::vector<std::vector<char>> inputs; // from `aligned`, `size` elements
  int64_t begin = -1, end = -1;
} gProbe;
void probeKernel(const attnc_buffer *buf, const int64_t *meta, int64_t *,
                 int64_t begin, int64_t end) {
  gCalls.fetch_add(1);
  gProbe.buffers.assign(buf, buf + gProbe.numBuffers);
  gProbe.meta.assign(meta, meta + gProbe.metaWords);
  gProbe.inputs.clear();
  for (size_t i = 0; i < gProbe.inputElemSizes.size(); ++i) {
    const attnc_buffer &b = buf[ATTNC_BUF_INPUTS + i];
    const char *p = static_cast<const char *>(b.aligned);
    gProbe.inputs.emplace_back(p,
                               p + size_t(b.size) * gProbe.inputElemSizes[i]);
  }
  gProbe.begin = begin;
  gProbe.end = end;
}
/// Element \p i of input \p n as the probe saw it (offset applied).
template <class T> T probedInput(int n, int64_t i) {
  T v;
  std::memcpy(&v,
              gProbe.inputs[size_t(n)].data() +
                  (gProbe.buffers[size_t(ATTNC_BUF_INPUTS + n)].offset + i) *
                      int64_t(sizeof(T)),
              sizeof(T));
  return v;
}
const std::vector<size_t> kDocElemSizes = {8, 8, 4, 8, 1};

/// Counts the runs of each task and the threads that ran them.
std::vector<std::atomic<int>> *gTaskRuns = nullptr;
std::mutex gThreadsMutex;
std::set<std::thread::id> gThreads;
void countingKernel(const attnc_buffer *, const int64_t *, int64_t *,
                    int64_t begin, int64_t end) {
  gCalls.fetch_add(1);
  for (int64_t t = begin; t < end; ++t)
    (*gTaskRuns)[size_t(t)].fetch_add(1);
  std::lock_guard<std::mutex> lock(gThreadsMutex);
  gThreads.insert(std::this_thread::get_id());
}

/// Reports an error code the ABI does not define, at task 5.
void failingKernel(const attnc_buffer *, const int64_t *, int64_t *status,
                   int64_t begin, int64_t end) {
  gCalls.fetch_add(1);
  if (begin <= 5 && 5 < end)
    status[0] = 42;
}

/// Softmax attention in double, read through the views; out [B,HQ,LQ,DV]
/// and lse [B,HQ,LQ] in C order. A row with nothing kept gives 0 and -inf.
struct Reference {
  std::vector<double> out, lse;
};
Reference reference(const TensorView &q, const TensorView &k,
                    const TensorView &v, const DocInputs *in = nullptr) {
  const int64_t B = q.shape[0], HQ = q.shape[1], LQ = q.shape[2],
                D = q.shape[3], HKV = k.shape[1], LK = k.shape[2],
                DV = v.shape[3];
  const double scale = D > 0 ? 1 / std::sqrt(double(D)) : 1.0;
  Reference r;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < HQ; ++h)
      for (int64_t i = 0; i < LQ; ++i) {
        const int64_t hk = h / (HQ / HKV);
        std::vector<double> s(static_cast<size_t>(LK), -kInf);
        double m = -kInf;
        for (int64_t j = 0; j < LK; ++j) {
          if (in && !in->keepPair(i, j))
            continue;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += at(q, {b, h, i, d}) * at(k, {b, hk, j, d});
          s[size_t(j)] = scale * dot + (in ? in->bias(b, i) : 0.0);
          m = std::max(m, s[size_t(j)]);
        }
        double l = 0;
        for (double &x : s)
          l += x = m == -kInf ? 0.0 : std::exp(x - m);
        for (int64_t dv = 0; dv < DV; ++dv) {
          double acc = 0;
          for (int64_t j = 0; j < LK; ++j)
            acc += s[size_t(j)] * at(v, {b, hk, j, dv});
          r.out.push_back(l > 0 ? acc / l : 0.0);
        }
        r.lse.push_back(l > 0 ? m + std::log(l) : -kInf);
      }
  return r;
}

void expectClose(double got, double want, double tol, const char *what,
                 size_t index) {
  if (std::isinf(want))
    EXPECT_EQ(got, want) << what << " at " << index;
  else
    EXPECT_NEAR(got, want, tol) << what << " at " << index;
}

/// Compares out and lse (views of any layout) with \p r.
void expectMatches(const TensorView &out, const TensorView *lse,
                   const Reference &r, double tol = 1e-5) {
  size_t n = 0, m = 0;
  for (int64_t b = 0; b < out.shape[0]; ++b)
    for (int64_t h = 0; h < out.shape[1]; ++h)
      for (int64_t i = 0; i < out.shape[2]; ++i) {
        for (int64_t dv = 0; dv < out.shape[3]; ++dv, ++n)
          expectClose(at(out, {b, h, i, dv}), r.out[n], tol, "out", n);
        if (lse)
          expectClose(at(*lse, {b, h, i}), r.lse[m], tol, "lse", m);
        ++m;
      }
  EXPECT_EQ(n, r.out.size());
}

TEST(CpuDispatch, TileCounts) {
  KernelInfo k = softmaxKernel();
  EXPECT_EQ(numQueryTiles(k, 0), 0);
  EXPECT_EQ(numQueryTiles(k, 1), 1);
  EXPECT_EQ(numQueryTiles(k, 4), 1);
  EXPECT_EQ(numQueryTiles(k, 5), 2);
  EXPECT_EQ(numKeyTiles(k, 0), 0);
  EXPECT_EQ(numKeyTiles(k, 9), 3);
  EXPECT_EQ(numKeyTiles(k, 10), 4);
  const int64_t big = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(numQueryTiles(k, big), big / 4 + 1); // no overflow in the ceiling
}

TEST(CpuDispatch, MatchesReferenceContiguous) {
  for (Dims d : {Dims{1, 1, 1, 1, 1, 1, 1}, Dims{2, 3, 3, 7, 11, 5, 6},
                 Dims{1, 2, 2, 8, 9, 16, 8}, Dims{3, 1, 1, 13, 4, 3, 2}}) {
    Call c(d, 7);
    ASSERT_OK(forwardCpu(softmaxKernel(), c.args));
    expectMatches(c.out.view(), &c.lseView,
                  reference(c.args.q, c.args.k, c.args.v));
  }
}

TEST(CpuDispatch, MatchesReferenceOnStridedViews) {
  const Dims d{2, 3, 3, 6, 7, 5, 4};
  // q and out as [B, L, H, D] buffers, k walked backwards along LK, v along
  // DV (inside a BLHD buffer), lse as a [B, LQ, HQ] buffer.
  Tensor qBlhd = randomTensor({d.B, d.LQ, d.HQ, d.D}, 11);
  Tensor kT = randomTensor({d.B, d.HKV, d.LK, d.D}, 12);
  Tensor vBlhd = randomTensor({d.B, d.LK, d.HKV, d.DV}, 13);
  Tensor outBlhd = zeros(DType::F32, {d.B, d.LQ, d.HQ, d.DV});
  Tensor lseBlh = zeros(DType::F32, {d.B, d.LQ, d.HQ});
  poison(outBlhd);
  CpuForwardArgs a;
  a.q = viewBHLDFromBLHD(qBlhd.view()).value();
  a.k = reversed(kT.view(), 2);
  a.v = reversed(viewBHLDFromBLHD(vBlhd.view()).value(), 3);
  a.out = viewBHLDFromBLHD(outBlhd.view()).value();
  TensorView lse = lseBlh.view();
  std::swap(lse.shape[1], lse.shape[2]);
  std::swap(lse.strides[1], lse.strides[2]);
  a.lse = &lse;
  ASSERT_OK(forwardCpu(softmaxKernel(), a));
  expectMatches(a.out, &lse, reference(a.q, a.k, a.v));

  // The same data made contiguous gives the same bits.
  Call c(d);
  Tensor qc = makeContiguous(a.q).value(), kc = makeContiguous(a.k).value(),
         vc = makeContiguous(a.v).value();
  c.args.q = qc.view();
  c.args.k = kc.view();
  c.args.v = vc.view();
  ASSERT_OK(forwardCpu(softmaxKernel(), c.args));
  Tensor outc = makeContiguous(a.out).value();
  Tensor lsec = makeContiguous(lse).value();
  EXPECT_EQ(std::memcmp(outc.data(), c.out.data(), c.out.nbytes()), 0);
  EXPECT_EQ(std::memcmp(lsec.data(), c.lse.data(), c.lse.nbytes()), 0);
}

TEST(CpuDispatch, GroupedQueryAttention) {
  for (Dims d : {Dims{2, 6, 2, 5, 7, 4, 3}, Dims{1, 4, 1, 9, 5, 8, 8}}) {
    Call c(d, 3);
    ASSERT_OK(forwardCpu(softmaxKernel(), c.args));
    expectMatches(c.out.view(), &c.lseView,
                  reference(c.args.q, c.args.k, c.args.v));
  }
}

TEST(CpuDispatch, EmptyQueryLengthRunsNothing) {
  Call c(Dims{2, 2, 1, 0, 5, 4, 4});
  KernelInfo k = softmaxKernel();
  k.traced = true;
  std::vector<int8_t> trace(10, 7);
  c.args.tileTrace = &trace;
  const int before = gCalls.load();
  ASSERT_OK(forwardCpu(k, c.args));
  EXPECT_EQ(gCalls.load(), before);
  EXPECT_TRUE(trace.empty());
}

TEST(CpuDispatch, EmptyKeyLengthGivesEmptyRows) {
  Call c(Dims{2, 2, 2, 5, 0, 4, 3});
  const int before = gCalls.load();
  ASSERT_OK(forwardCpu(softmaxKernel(), c.args));
  EXPECT_GT(gCalls.load(), before);
  for (int64_t i = 0; i < c.out.numel(); ++i)
    EXPECT_EQ(c.out.getAsDouble(i), 0.0);
  for (int64_t i = 0; i < c.lse.numel(); ++i)
    EXPECT_EQ(c.lse.getAsDouble(i), -kInf);
}

TEST(CpuDispatch, ThreadCountsGiveIdenticalBits) {
  const Dims d{2, 4, 2, 37, 23, 8, 8};
  Call one(d, 5);
  one.args.threads = 1;
  ASSERT_OK(forwardCpu(softmaxKernel(), one.args));
  for (int threads : {2, 0, 64}) {
    Call c(d, 5);
    c.args.threads = threads;
    ASSERT_OK(forwardCpu(softmaxKernel(), c.args));
    EXPECT_EQ(std::memcmp(one.out.data(), c.out.data(), c.out.nbytes()), 0)
        << threads;
    EXPECT_EQ(std::memcmp(one.lse.data(), c.lse.data(), c.lse.nbytes()), 0)
        << threads;
  }
}

TEST(CpuDispatch, EveryTaskRunsExactlyOnce) {
  const Dims d{3, 2, 1, 147, 5, 1, 1}; // 3 * 2 * 37 = 222 tasks
  KernelInfo k = softmaxKernel();
  k.fn = countingKernel;
  for (int threads : {1, 2, 0}) {
    std::vector<std::atomic<int>> runs(222);
    gTaskRuns = &runs;
    gThreads.clear();
    Call c(d);
    c.args.threads = threads;
    ASSERT_OK(forwardCpu(k, c.args));
    for (size_t t = 0; t < runs.size(); ++t)
      EXPECT_EQ(runs[t].load(), 1) << "task " << t << ", threads " << threads;
    if (threads == 1) {
      EXPECT_EQ(gThreads.size(), 1u);
      EXPECT_EQ(gThreads.count(std::this_thread::get_id()), 1u);
    }
    gTaskRuns = nullptr;
  }
}

TEST(CpuDispatch, InputsMatchReference) {
  const Dims d{2, 2, 1, 11, 13, 4, 3};
  DocInputs in(d);
  Call c(d, 9);
  auto list = in.list();
  std::reverse(list.begin(), list.end()); // any order the caller likes
  c.args.inputs = list;
  ASSERT_OK(forwardCpu(docKernel(), c.args));
  expectMatches(c.out.view(), &c.lseView,
                reference(c.args.q, c.args.k, c.args.v, &in));

  // int32 ids, a float16 table and a strided idx give the same bits.
  DocInputs in32(d, DType::I32);
  Tensor table16 = convert(in.table.view(), DType::F16).value();
  Tensor idxT = zeros(DType::I64, {d.LQ, d.B}); // idx stored transposed
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t i = 0; i < d.LQ; ++i)
      idxT.setFromDouble(i * d.B + b, in.idx.getAsDouble(b * d.LQ + i));
  TensorView idxView = idxT.view();
  std::swap(idxView.shape[0], idxView.shape[1]);
  std::swap(idxView.strides[0], idxView.strides[1]);
  Call c2(d, 9);
  c2.args.inputs = {{"doc_q", in32.docQ.view()},
                    {"doc_kv", in32.docKv.view()},
                    {"table", table16.view()},
                    {"idx", idxView},
                    {"keep", in.keep.view()}};
  ASSERT_OK(forwardCpu(docKernel(), c2.args));
  EXPECT_EQ(std::memcmp(c.out.data(), c2.out.data(), c.out.nbytes()), 0);
  EXPECT_EQ(std::memcmp(c.lse.data(), c2.lse.data(), c.lse.nbytes()), 0);
}

TEST(CpuDispatch, TileTrace) {
  // All tiles FULL without a mask.
  const Dims d{2, 3, 3, 10, 8, 4, 4};
  KernelInfo k = softmaxKernel();
  k.traced = true;
  std::vector<int8_t> trace(3, 9);
  Call c(d);
  c.args.tileTrace = &trace;
  ASSERT_OK(forwardCpu(k, c.args));
  const int64_t tasks = d.B * d.HQ * ceilDiv(d.LQ, kTQ),
                nkt = ceilDiv(d.LK, kTK);
  ASSERT_EQ(int64_t(trace.size()), tasks * nkt);
  for (int8_t e : trace)
    EXPECT_EQ(e, 1);

  // With the document mask: 0 for tiles skipped (the vector is cleared
  // first), 1 FULL, 2 PARTIAL.
  const Dims e{2, 2, 2, 13, 17, 4, 4};
  DocInputs in(e);
  KernelInfo kd = docKernel();
  kd.traced = true;
  Call cd(e);
  cd.args.inputs = in.list();
  cd.args.tileTrace = &trace;
  cd.args.threads = 2;
  ASSERT_OK(forwardCpu(kd, cd.args));
  const int64_t nqt = ceilDiv(e.LQ, kTQ), nk = ceilDiv(e.LK, kTK);
  ASSERT_EQ(int64_t(trace.size()), e.B * e.HQ * nqt * nk);
  std::set<int> seen;
  for (int64_t task = 0; task < e.B * e.HQ * nqt; ++task)
    for (int64_t kt = 0; kt < nk; ++kt) {
      const int64_t qt = task % nqt;
      int kept = 0, valid = 0;
      for (int64_t i = qt * kTQ; i < std::min(e.LQ, (qt + 1) * kTQ); ++i)
        for (int64_t j = kt * kTK; j < std::min(e.LK, (kt + 1) * kTK); ++j)
          ++valid, kept += in.keepPair(i, j);
      const int want = kept == 0 ? 0 : kept == valid ? 1 : 2;
      seen.insert(want);
      EXPECT_EQ(trace[size_t(task * nk + kt)], want) << task << ", " << kt;
    }
  EXPECT_EQ(seen.size(), 3u); // the case covers all three
}

TEST(CpuDispatch, BufferAndMetaLayout) {
  const Dims d{2, 4, 2, 5, 7, 3, 1};
  DocInputs in(d);
  Tensor docQ32 = convert(in.docQ.view(), DType::I32).value();
  Call c(d);
  c.args.q =
      viewBHLDFromBLHD(c.keep(randomTensor({d.B, d.LQ, d.HQ, d.D}, 1))).value();
  c.args.k = reversed(c.k.view(), 2);
  c.args.lse = nullptr;
  auto list = in.list();
  list[kDocQ].second = docQ32.view();
  std::reverse(list.begin(), list.end());
  c.args.inputs = list;
  c.args.threads = 1;
  KernelInfo k = docKernel();
  k.fn = probeKernel;
  gProbe.numBuffers = ATTNC_BUF_INPUTS + kNumDocInputs;
  gProbe.inputElemSizes = kDocElemSizes;
  gProbe.metaWords = ATTNC_META_INPUTS + 2 + 2 + 2 + 4 + 2;
  ASSERT_OK(forwardCpu(k, c.args));
  const std::vector<int64_t> &m = gProbe.meta;
  const std::vector<attnc_buffer> &b = gProbe.buffers;
  EXPECT_EQ(gProbe.begin, 0);
  EXPECT_EQ(gProbe.end,
            d.B * d.HQ * ceilDiv(d.LQ, kTQ)); // threads = 1: one call
  EXPECT_EQ(std::vector<int64_t>(m.begin(), m.begin() + 7),
            (std::vector<int64_t>{2, 4, 2, 5, 7, 3, 1}));
  auto words = [&](int at, int n) {
    return std::vector<int64_t>(m.begin() + at, m.begin() + at + n);
  };
  EXPECT_EQ(words(ATTNC_META_Q_STRIDES, 4), c.args.q.strides);
  EXPECT_EQ(words(ATTNC_META_K_STRIDES, 4), c.args.k.strides);
  EXPECT_EQ(words(ATTNC_META_V_STRIDES, 4), c.args.v.strides);
  EXPECT_EQ(words(ATTNC_META_OUT_STRIDES, 4), c.args.out.strides);
  EXPECT_EQ(words(ATTNC_META_LSE_STRIDES, 3), (std::vector<int64_t>{0, 0, 0}));
  EXPECT_EQ(m[ATTNC_META_HAS_LSE], 0);
  EXPECT_EQ(m[ATTNC_META_HAS_TRACE], 0);
  // Inputs in declaration order, dims then strides; converted ones contiguous.
  EXPECT_EQ(words(ATTNC_META_INPUTS, 12),
            (std::vector<int64_t>{5, 1, 7, 1, 4, 1, 2, 5, 5, 1, 7, 1}));

  for (const attnc_buffer &x : b) {
    EXPECT_NE(x.aligned, nullptr);
    EXPECT_EQ(x.stride, 1);
    EXPECT_EQ(x.allocated, x.aligned);
  }
  // q: a transposed view spans the whole buffer from its data pointer.
  EXPECT_EQ(b[ATTNC_BUF_Q].aligned, c.args.q.data);
  EXPECT_EQ(b[ATTNC_BUF_Q].offset, 0);
  EXPECT_EQ(b[ATTNC_BUF_Q].size, d.B * d.LQ * d.HQ * d.D);
  // k walked backwards: aligned at the lowest element, offset back to data.
  EXPECT_EQ(b[ATTNC_BUF_K].aligned, c.k.data());
  EXPECT_EQ(b[ATTNC_BUF_K].offset, (d.LK - 1) * d.D);
  EXPECT_EQ(static_cast<float *>(b[ATTNC_BUF_K].aligned) +
                b[ATTNC_BUF_K].offset,
            c.args.k.data);
  EXPECT_EQ(b[ATTNC_BUF_K].size, c.k.numel());
  EXPECT_EQ(b[ATTNC_BUF_OUT].aligned, c.out.data());
  EXPECT_EQ(b[ATTNC_BUF_OUT].size, c.out.numel());
  for (int slot : {ATTNC_BUF_LSE, ATTNC_BUF_TRACE})
    EXPECT_EQ(b[size_t(slot)].size, 0) << slot;
  // The arena: the call's tiles, 64-byte aligned, KernelABI.h's size.
  EXPECT_EQ(b[ATTNC_BUF_ARENA].size, attnc_arena_bytes(kTQ, kTK, d.D, d.DV));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b[ATTNC_BUF_ARENA].aligned) % 64, 0u);
  EXPECT_EQ(b[ATTNC_BUF_ARENA].offset, 0);
  // doc_q was converted to int64; the others are the caller's memory.
  EXPECT_NE(b[ATTNC_BUF_INPUTS + kDocQ].aligned, docQ32.data());
  EXPECT_EQ(b[ATTNC_BUF_INPUTS + kDocQ].size, d.LQ);
  for (int64_t i = 0; i < d.LQ; ++i)
    EXPECT_EQ(probedInput<int64_t>(kDocQ, i), i / 5);
  EXPECT_EQ(b[ATTNC_BUF_INPUTS + kDocKv].aligned, in.docKv.data());
  EXPECT_EQ(b[ATTNC_BUF_INPUTS + kIdx].aligned, in.idx.data());
  EXPECT_EQ(b[ATTNC_BUF_INPUTS + kKeep].aligned, in.keep.data());

  // With lse and a trace.
  KernelInfo kt = k;
  kt.traced = true;
  std::vector<int8_t> trace;
  c.args.lse = &c.lseView;
  c.args.tileTrace = &trace;
  ASSERT_OK(forwardCpu(kt, c.args));
  EXPECT_EQ(words(ATTNC_META_LSE_STRIDES, 3), c.lseView.strides);
  EXPECT_EQ(m[ATTNC_META_HAS_LSE], 1);
  EXPECT_EQ(m[ATTNC_META_HAS_TRACE], 1);
  EXPECT_EQ(b[ATTNC_BUF_LSE].aligned, c.lse.data());
  EXPECT_EQ(b[ATTNC_BUF_LSE].size, c.lse.numel());
  EXPECT_EQ(b[ATTNC_BUF_TRACE].aligned, trace.data());
  EXPECT_EQ(b[ATTNC_BUF_TRACE].size, int64_t(trace.size()));
  EXPECT_EQ(int64_t(trace.size()), gProbe.end * ceilDiv(d.LK, kTK));
}

TEST(CpuDispatch, SixteenBitStorage) {
  for (DType st : {DType::F16, DType::BF16}) {
    Call c(Dims{1, 2, 2, 5, 6, 4, 4}, 1, st);
    c.args.q = reversed(c.q.view(), 3);
    KernelInfo k = softmaxKernel();
    k.storage = st;
    k.fn = probeKernel;
    gProbe.numBuffers = ATTNC_BUF_INPUTS;
    gProbe.inputElemSizes.clear();
    gProbe.metaWords = ATTNC_META_INPUTS;
    ASSERT_OK(forwardCpu(k, c.args));
    const attnc_buffer &q = gProbe.buffers[ATTNC_BUF_Q];
    EXPECT_EQ(q.aligned, c.q.data());
    EXPECT_EQ(static_cast<char *>(q.aligned) + 2 * q.offset, c.args.q.data);
    EXPECT_EQ(q.size, c.q.numel());
    // float32 tensors for a 16-bit kernel are refused.
    Call f(Dims{1, 2, 2, 5, 6, 4, 4});
    expectRejected(k, f,
                   std::string("q: expected dtype ") + dtypeName(st) +
                       ", got float32");
  }
}

TEST(CpuDispatch, BoolInputsReachTheKernelAsZeroOrOne) {
  const Dims d{1, 1, 1, 4, 6, 2, 2};
  DocInputs in(d);
  static_cast<uint8_t *>(in.keep.data())[3] = 2; // a raw view can hold this
  Call c(d);
  c.args.inputs = in.list();
  c.args.threads = 1;
  KernelInfo k = docKernel();
  k.fn = probeKernel;
  gProbe.numBuffers = ATTNC_BUF_INPUTS + kNumDocInputs;
  gProbe.inputElemSizes = kDocElemSizes;
  gProbe.metaWords = ATTNC_META_INPUTS;
  ASSERT_OK(forwardCpu(k, c.args));
  for (int64_t j = 0; j < d.LK; ++j)
    EXPECT_EQ(probedInput<uint8_t>(kKeep, j), j % 7 != 5 ? 1 : 0) << j;
  EXPECT_EQ(static_cast<uint8_t *>(in.keep.data())[3], 2); // not modified
}

TEST(CpuDispatch, OutOfRangeInputReadIsReportedFromTheLowestTask) {
  const Dims d{2, 3, 1, 30, 9, 4, 4};
  DocInputs in(d);
  in.idx.setFromDouble(1 * d.LQ + 0, -3); // b = 1: a later task
  in.idx.setFromDouble(0 * d.LQ + 29, 9); // b = 0, the last query tile
  for (int threads : {1, 2, 0, 2, 2, 2}) {
    Call c(d);
    c.args.inputs = in.list();
    c.args.threads = threads;
    Status s = forwardCpu(docKernel(), c.args);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.message(), "input 'table' read out of range: index 9 in "
                           "dimension 0 of size 4")
        << threads;
  }
}

TEST(CpuDispatch, UnknownKernelErrorCode) {
  KernelInfo k = softmaxKernel();
  k.fn = failingKernel;
  for (int threads : {1, 2}) {
    Call c(Dims{1, 2, 2, 20, 3, 2, 2});
    c.args.threads = threads;
    Status s = forwardCpu(k, c.args);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.message(), "kernel error code 42");
  }
}

} // namespace
