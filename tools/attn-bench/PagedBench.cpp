//===- PagedBench.cpp - attn-bench --page-size: a paged KV cache ----------===//
//
// See PagedBench.h.
//
//===----------------------------------------------------------------------===//
#include "PagedBench.h"
#include "Baselines.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>
#include <random>

namespace attnc::bench {

using runtime::Tensor;
using runtime::TensorView;

namespace {

/// \p src [B, HKV, LK, X] copied into the pages [numPages, ps, HKV, X] the
/// table gives each sequence.
Tensor pagesOf(const Tensor &src, const std::vector<int32_t> &table,
               int64_t maxPages, int64_t numPages, int64_t ps) {
  const std::vector<int64_t> &sh = src.shape();
  const int64_t B = sh[0], H = sh[1], L = sh[2], X = sh[3];
  Tensor pages = Tensor::zeros(src.dtype(), {numPages, ps, H, X}).value();
  const size_t es = runtime::dtypeSize(src.dtype());
  const char *in = static_cast<const char *>(src.view().data);
  char *out = static_cast<char *>(pages.view().data);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t l = 0; l < L; ++l) {
        const int64_t page = table[size_t(b * maxPages + l / ps)];
        std::memcpy(out + size_t(((page * ps + l % ps) * H + h) * X) * es,
                    in + size_t(((b * H + h) * L + l) * X) * es, size_t(X) * es);
      }
  return pages;
}

std::vector<float> floatsOf(const Tensor &t) {
  std::vector<float> r(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i)
    r[size_t(i)] = float(t.getAsDouble(i));
  return r;
}

} // namespace

std::string benchPaged(const Flags &f, const PagedProblem &p, BenchResult &r) {
  if (f.pageSize <= 0)
    return "";
  const Shape &s = p.shape;
  const int64_t ps = f.pageSize, perSeq = (s.LK + ps - 1) / ps;
  const int64_t numPages = s.B * perSeq;
  std::vector<int32_t> order(static_cast<size_t>(numPages));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(f.seed + 2));
  std::vector<int32_t> lens(size_t(s.B), int32_t(s.LK));
  Tensor kPages = pagesOf(p.k->tensor, order, perSeq, numPages, ps);
  Tensor vPages = pagesOf(p.v->tensor, order, perSeq, numPages, ps);
  Tensor out = Tensor::zeros(p.contiguousOut->dtype(), p.contiguousOut->shape()).value();
  TensorView table{order.data(), runtime::DType::I32, {s.B, perSeq}, {perSeq, 1}};
  TensorView lensView{lens.data(), runtime::DType::I32, {s.B}, {1}};
  ForwardOptions fwd;
  fwd.threads = p.threads;
  for (auto &[name, t] : *p.inputs)
    fwd.inputs.push_back({name, t.view()});
  fwd.paged = {&table, &lensView, ps};

  std::vector<double> times;
  double timedMs = 0;
  for (int i = 0; i < f.warmup + f.runs || (timedMs < f.minTimeMs && i < 100000); ++i) {
    auto start = std::chrono::steady_clock::now();
    runtime::Status st = p.kernel->forward(p.q->tensor.view(), kPages.view(),
                                           vPages.view(), out.view(), fwd);
    if (!st.ok())
      return "paged run: " + st.message();
    if (i >= f.warmup) {
      times.push_back(msSince(start));
      timedMs += times.back();
    }
  }
  BaselineOutcome b{"paged"};
  b.ran = true;
  b.ms = median(times);
  b.gflops = gflopsOf(s.flops(), b.ms);
  b.relErr = relativeError(floatsOf(out), floatsOf(*p.contiguousOut));
  b.note = "the same kernel on a paged KV cache: pages of " + std::to_string(ps) +
           " rows in shuffled order (" +
           (ps >= 16 && p.kernel->info().pagedKeys
                ? std::string("read in place through the page table, each "
                              "head's rows prefetched two pages ahead")
                : std::string("gathered on every call; a decode step in "
                              "chunks, each gathered by the thread that runs "
                              "it")) +
           ")";
  r.baselines.push_back(b);
  return "";
}

} // namespace attnc::bench
