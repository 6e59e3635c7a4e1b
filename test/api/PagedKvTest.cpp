//===- PagedKvTest.cpp - Kernels on a paged KV cache ----------------------===//
//
// ForwardOptions::paged: k and v are pages [num_pages, page_size, HKV, D|DV]
// listed per sequence by a page table, with per-sequence lengths. Each
// sequence's out and lse must equal the float64 reference of that sequence
// alone, its keys read in table order. Page sizes 1, 16 and 64; tables
// shuffled (pages of 16 and 64 read by the kernel through the table, in
// pieces of one page per key tile; pages of 1 gathered), one sequence on
// consecutive pages (read in place), an empty sequence and unused pages;
// GQA, LQ != LK, DV != D;
// every shared spec that takes a paged cache (document reads doc_kv[LK]).
// Then the errors, which write nothing: pages out of range, lengths beyond
// the pages given, mismatched shapes. The decode path (LQ <= 16) runs
// fragmented sequences in chunks merged by their lse: run here in chunks
// of 9 keys.
//
//===----------------------------------------------------------------------===//
#include "../common/RandomTensors.h"
#include "../common/SequenceInputs.h"
#include "../common/SharedSpecs.h"
#include "../common/SpecReference.h"

#include "attnc/Compiler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <numeric>

using namespace attnc;
using namespace attnc::test;
using runtime::DType;
using runtime::Tensor;
using runtime::TensorView;
namespace fs = std::filesystem;

namespace {

constexpr int64_t B = 3, HQ = 4, HKV = 2, LQ = 7, D = 16, DV = 12;
// kv_lens: one sequence on consecutive pages (the last), one empty.
const std::vector<int32_t> kLens = {70, 0, 45};

struct PagedCache {
  int64_t pageSize = 0, numPages = 0, maxPages = 0;
  std::vector<int32_t> table, lens;
  Operand k, v; // [num_pages, page_size, HKV, D|DV]
  TensorView tableView() {
    return TensorView{table.data(), DType::I32, {B, maxPages}, {maxPages, 1}};
  }
  TensorView lensView() {
    return TensorView{lens.data(), DType::I32, {B}, {1}};
  }
  /// Sequence b's keys as dense [1, HKV, len, X] values (table order).
  std::vector<double> keys(const Operand &cache, int64_t b, int64_t X) const {
    const int64_t len = lens[size_t(b)];
    std::vector<double> r(size_t(HKV * len * X));
    for (int64_t h = 0; h < HKV; ++h)
      for (int64_t i = 0; i < len; ++i)
        for (int64_t x = 0; x < X; ++x) {
          const int64_t page = table[size_t(b * maxPages + i / pageSize)];
          r[size_t((h * len + i) * X + x)] =
              cache.values[size_t(((page * pageSize + i % pageSize) * HKV + h) * X + x)];
        }
    return r;
  }
};

/// Pages for kLens with \p pageSize rows each, plus two unused pages,
/// handed out in a shuffled order, except that the last sequence gets
/// consecutive ones.
PagedCache makeCache(int64_t pageSize, std::mt19937 &rng) {
  PagedCache c;
  c.pageSize = pageSize;
  c.lens = kLens;
  std::vector<int64_t> pages(kLens.size());
  for (size_t b = 0; b < kLens.size(); ++b)
    pages[b] = (kLens[b] + pageSize - 1) / pageSize;
  c.maxPages = *std::max_element(pages.begin(), pages.end()) + 1;
  c.numPages = std::accumulate(pages.begin(), pages.end(), int64_t(0)) + 2;
  std::vector<int32_t> order(size_t(c.numPages - pages.back()));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  c.table.assign(size_t(B * c.maxPages), -1); // unused entries: never read
  size_t next = 0;
  for (int64_t b = 0; b + 1 < B; ++b)
    for (int64_t i = 0; i < pages[size_t(b)]; ++i)
      c.table[size_t(b * c.maxPages + i)] = order[next++];
  const int32_t first = int32_t(c.numPages - pages.back());
  for (int64_t i = 0; i < pages.back(); ++i)
    c.table[size_t((B - 1) * c.maxPages + i)] = first + int32_t(i);
  c.k = randomOperand(DType::F32, {c.numPages, pageSize, HKV, D}, rng, -1, 1);
  c.v = randomOperand(DType::F32, {c.numPages, pageSize, HKV, DV}, rng, -1, 1);
  return c;
}

/// Runs \p text on paged caches of page sizes 1, 16 and 64 and compares
/// every sequence with its own reference; \p decodeChunk > 0 runs the
/// fragmented sequences in chunks of that many keys (the decode path).
void checkPaged(const std::string &text, const std::string &label,
                int64_t decodeChunk = 0) {
  Compiler compiler;
  CompileOptions opts;
  opts.tileQ = 16, opts.tileK = 32;
  auto kernel = compiler.compile(text, opts, label);
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  const uint32_t seed = testSeed();
  SCOPED_TRACE("ATTNC_TEST_SEED=" + std::to_string(seed));
  std::mt19937 rng(seed);
  const bool sigmoid = kernel->info().sigmoid;
  for (int64_t pageSize : {1, 16, 64}) {
    SCOPED_TRACE("page size " + std::to_string(pageSize));
    PagedCache c = makeCache(pageSize, rng);
    Operand q = randomOperand(DType::F32, {B, HQ, LQ, D}, rng, -1, 1);
    auto inputs = randomInputs(kernel->info(), Shape{B, HQ, HKV, LQ, 1, D, DV}, rng);
    Tensor out = Tensor::zeros(DType::F32, {B, HQ, LQ, DV}).value();
    Tensor lse = Tensor::zeros(DType::F32, {B, HQ, LQ}).value();
    for (int64_t i = 0; i < out.numel(); ++i)
      out.setFromDouble(i, NAN);
    TensorView table = c.tableView(), lens = c.lensView(), lseView = lse.view();
    ForwardOptions fo;
    for (const auto &[n, t] : inputs)
      fo.inputs.push_back({n, t.view()});
    fo.paged = {&table, &lens, pageSize, decodeChunk};
    if (!sigmoid)
      fo.lse = &lseView;
    Status st = kernel->forward(q.tensor.view(), c.k.tensor.view(),
                                c.v.tensor.view(), out.view(), fo);
    ASSERT_TRUE(st.ok()) << st.message();
    for (int64_t b = 0; b < B; ++b) {
      SCOPED_TRACE("sequence " + std::to_string(b));
      const int64_t lk = c.lens[size_t(b)];
      mlir::attn::ProblemSizes ps;
      ps.B = 1, ps.HQ = HQ, ps.HKV = HKV, ps.LQ = LQ, ps.LK = lk, ps.D = D, ps.DV = DV;
      std::vector<double> qb(q.values.begin() + b * HQ * LQ * D,
                             q.values.begin() + (b + 1) * HQ * LQ * D);
      std::vector<double> refOut, refLse;
      ASSERT_EQ(referenceOf(text, ps, sequenceInputs(*kernel, inputs, b), qb,
                            c.keys(c.k, b, D), c.keys(c.v, b, DV), refOut, refLse),
                "");
      for (int64_t i = 0; i < HQ * LQ; ++i) {
        for (int64_t x = 0; x < DV; ++x)
          ASSERT_NEAR(out.getAsDouble((b * HQ * LQ + i) * DV + x),
                      refOut[size_t(i * DV + x)], 2e-5)
              << "row " << i << " col " << x;
        if (sigmoid)
          continue;
        const double want = refLse[size_t(i)], got = lse.getAsDouble(b * HQ * LQ + i);
        if (std::isinf(want))
          ASSERT_EQ(got, want) << "row " << i;
        else
          ASSERT_NEAR(got, want, 1e-4) << "row " << i;
      }
    }
  }
}

bool readsKeyLength(const Kernel &kernel) {
  for (const auto &d : kernel.info().inputs)
    for (const auto &dim : d.dims)
      if (dim.isSize && dim.size == runtime::SizeName::LK)
        return true;
  return false;
}

class PagedKv_ : public ::testing::TestWithParam<fs::path> {};

TEST_P(PagedKv_, EverySequenceMatchesItsReference) {
  const std::string text = readTextFile(GetParam());
  Compiler compiler;
  auto kernel = compiler.compile(text, CompileOptions(), GetParam().string());
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  if (readsKeyLength(*kernel))
    GTEST_SKIP() << "an input over LK cannot take a paged cache (Errors "
                    "covers the message)";
  checkPaged(text, GetParam().string());
  // The decode path: LQ = 7 <= 16, chunks of 9 keys (odd windows, one
  // chunk per 70-key sequence's last 7 keys).
  checkPaged(text, GetParam().string(), 9);
}

std::string specName(const ::testing::TestParamInfo<fs::path> &info) {
  return info.param.stem().string();
}

INSTANTIATE_TEST_SUITE_P(SharedSpecs, PagedKv_,
                         ::testing::ValuesIn(sharedSpecFiles()), specName);
// A softmax sink, counted once per row however the keys are split.
INSTANTIATE_TEST_SUITE_P(
    Sinks, PagedKv_,
    ::testing::Values(fs::path(ATTNC_EXAMPLES_DIR) / "gpt_oss_sinks.attn"),
    specName);

TEST(PagedKv, PaddingMaskAndBottomRightCausal) {
  checkPaged("attention padded {\n  input limit: int[B]\n"
             "  mask = kv < limit[b] && q + LK - LQ >= kv\n}\n",
             "padded.attn");
  checkPaged("attention padded {\n  input limit: int[B]\n"
             "  mask = kv < limit[b] && q + LK - LQ >= kv\n}\n",
             "padded.attn", 9);
}

/// The error of a paged call after \p edit changed the cache or the
/// options; also requires out to be untouched.
std::string pagedError(const std::string &text,
                       const std::function<void(PagedCache &, ForwardOptions &)> &edit) {
  Compiler compiler;
  auto kernel = compiler.compile(text, CompileOptions(), "e.attn");
  EXPECT_TRUE(kernel.ok());
  if (!kernel.ok())
    return "";
  std::mt19937 rng(1);
  PagedCache c = makeCache(16, rng);
  Operand q = randomOperand(DType::F32, {B, HQ, LQ, D}, rng, -1, 1);
  Tensor out = Tensor::zeros(DType::F32, {B, HQ, LQ, DV}).value();
  for (int64_t i = 0; i < out.numel(); ++i)
    out.setFromDouble(i, 7.0);
  ForwardOptions fo;
  edit(c, fo);
  TensorView table = c.tableView(), lens = c.lensView();
  if (!fo.paged.pageTable)
    fo.paged.pageTable = &table;
  if (!fo.paged.kvLens)
    fo.paged.kvLens = &lens;
  Status st = kernel->forward(q.tensor.view(), c.k.tensor.view(),
                              c.v.tensor.view(), out.view(), fo);
  EXPECT_FALSE(st.ok());
  for (int64_t i = 0; i < out.numel(); ++i)
    if (out.getAsDouble(i) != 7.0) {
      ADD_FAILURE() << "a failed call wrote out[" << i << "]";
      break;
    }
  return st.message();
}

TEST(PagedKv, Errors) {
  const std::string causal = "attention c {\n  mask = q + LK - LQ >= kv\n}\n";
  auto has = [](const std::string &message, const std::string &part) {
    EXPECT_NE(message.find(part), std::string::npos) << message;
  };
  has(pagedError(causal, [](PagedCache &c, ForwardOptions &) {
        c.table[0] = int32_t(c.numPages);
      }),
      "page_table[0, 0] = ");
  has(pagedError(causal, [](PagedCache &c, ForwardOptions &) { c.table[1] = -3; }),
      "page_table[0, 1] = -3 is not a page of the cache");
  has(pagedError(causal, [](PagedCache &c, ForwardOptions &) {
        c.lens[2] = int32_t(c.maxPages * c.pageSize + 1);
      }),
      "kv_lens[2] = ");
  has(pagedError(causal, [](PagedCache &c, ForwardOptions &) { c.lens[0] = -1; }),
      "kv_lens[0] = -1 is not in 0..");
  has(pagedError(causal, [](PagedCache &, ForwardOptions &fo) { fo.paged.pageSize = 8; }),
      "the page size is 8, but k's pages hold 16 rows");
  has(pagedError(causal, [](PagedCache &c, ForwardOptions &) {
        std::mt19937 other(2);
        c.v = randomOperand(DType::F32, {c.numPages, 8, HKV, DV}, other, -1, 1);
      }),
      "their pages, page sizes and heads must agree");
  has(pagedError("attention d {\n  input doc: int[LK]\n  mask = doc[kv] == 0\n}\n",
                 [](PagedCache &, ForwardOptions &) {}),
      "input 'doc' has a dimension LK");
  has(pagedError(causal, [](PagedCache &, ForwardOptions &fo) {
        fo.window = {0, 0, 100, 100};
      }),
      "no sequence window");
  // A table of 2^40 pages per sequence (one entry, zero strides) is more
  // than memory holds: refused, not allocated.
  static int32_t onePage = 0;
  static const TensorView hugeTable{&onePage, DType::I32, {B, int64_t(1) << 40}, {0, 0}};
  has(pagedError(causal, [](PagedCache &, ForwardOptions &fo) {
        fo.paged.pageTable = &hugeTable;
      }),
      "page_table");
}

} // namespace
