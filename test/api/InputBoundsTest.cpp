//===- InputBoundsTest.cpp - Masks bounded by int inputs read at b, h or q ===//
//
// `kv < kv_len[b]` (padding) and `kv >= start[b] && q >= kv` bound the keys
// by an input element of each sequence: the analysis makes it a symbol of
// the atom (reads(...)), and the kernels load it per task, so key tiles past
// a sequence's length are EMPTY and tiles wholly inside it FULL (no mask
// code), as for a param. `kv < len[q]` and `kv >= start[b, q]` bound them
// by an element of each row: the kernels scan its min and max over a query
// tile, and a key tile is EMPTY past every row's bound and FULL inside
// every row's. Checked tile by tile on a traced kernel, against the host
// schedule (MaskSchedule.h) and against the float64 reference, with fully
// masked rows and bounds that are not tile multiples; a decode shape (rows
// of several query heads packed in one tile) against the reference. The
// backward (column view) against the whole-gradient reference is
// BackwardTest's (moa_head_windows reads window[h]).
//
//===----------------------------------------------------------------------===//
#include "../common/RandomTensors.h"
#include "../common/SpecReference.h"

#include "attnc/Compiler.h"
#include "attnc/Passes/MaskSchedule.h"
#include "attnc/Reference/TensorInputs.h"

#include <gtest/gtest.h>

#include <functional>

using namespace attnc;
using namespace attnc::test;
using runtime::DType;
using runtime::Tensor;

namespace {

struct Traced {
  Status status;
  Tensor out, lse;
  std::vector<int8_t> trace;
};

Traced runTraced(const Kernel &kernel, const Shape &s, const Operand &q,
                 const Operand &k, const Operand &v, const Tensor &bound) {
  Traced r{{}, Tensor::zeros(DType::F32, {s.B, s.HQ, s.LQ, s.DV}).value(),
           Tensor::zeros(DType::F32, {s.B, s.HQ, s.LQ}).value(), {}};
  for (int64_t i = 0; i < r.out.numel(); ++i)
    r.out.setFromDouble(i, NAN);
  runtime::TensorView lv = r.lse.view();
  ForwardOptions fo;
  fo.lse = &lv;
  fo.tileTrace = &r.trace;
  fo.inputs = {{kernel.info().inputs[0].name, bound.view()}};
  r.status = kernel.forward(q.tensor.view(), k.tensor.view(), v.tensor.view(),
                            r.out.view(), fo);
  return r;
}

/// An int input of the spec: its shape and values.
struct BoundInput {
  std::vector<int64_t> shape, values;
};

/// Tile kinds of (b, rows [q0, q1], keys [k0, k1]) as the bounds give them.
using KindOf = std::function<int8_t(int64_t b, int64_t q0, int64_t q1,
                                    int64_t k0, int64_t k1)>;

/// The traced kernel's tile kinds: `kind`'s, and the host schedule's.
void checkTrace(const Kernel &kernel, const std::string &text, const Shape &s,
                const Tensor &bound, const std::vector<int8_t> &trace,
                const KindOf &kind) {
  const int64_t nq = (s.LQ + 15) / 16, nk = (s.LK + 31) / 32;
  ASSERT_EQ(int64_t(trace.size()), s.B * s.HQ * nq * nk);
  std::string errors;
  llvm::raw_string_ostream es(errors);
  Driver driver(es);
  auto module = driver.loadSpecText("bounds.attn", text, {});
  ASSERT_TRUE(module && mlir::succeeded(driver.runSpecPipeline(*module))) << errors;
  mlir::attn::MaskAttr mask =
      (*module->getOps<mlir::attn::SpecOp>().begin()).getMaskScheduleAttr();
  const std::string name = kernel.info().inputs[0].name;
  mlir::attn::IdsReader ids = [&](llvm::StringRef n, llvm::ArrayRef<int64_t> idx)
      -> std::optional<int64_t> {
    std::optional<mlir::attn::Scalar> v;
    if (n == name)
      v = mlir::attn::readTensorElement(bound, idx);
    return v ? std::optional<int64_t>(v->i) : std::nullopt;
  };
  mlir::attn::ProblemSizes ps;
  ps.B = s.B, ps.HQ = s.HQ, ps.HKV = s.HKV, ps.LQ = s.LQ, ps.LK = s.LK,
  ps.D = s.D, ps.DV = s.DV;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.HQ; ++h) {
      ps.b = b, ps.h = h;
      auto host = mlir::attn::computeSchedule(mask, ps, 16, 32, &ids);
      for (int64_t qt = 0; qt < nq; ++qt)
        for (int64_t kt = 0; kt < nk; ++kt) {
          int64_t q0 = qt * 16, q1 = std::min(q0 + 16, s.LQ) - 1;
          int64_t k0 = kt * 32, k1 = std::min(k0 + 32, s.LK) - 1;
          int got = trace[size_t(((b * s.HQ + h) * nq + qt) * nk + kt)];
          EXPECT_EQ(got, int(kind(b, q0, q1, k0, k1)))
              << "b " << b << " h " << h << " tile (" << qt << ", " << kt << ")";
          EXPECT_EQ(got, int(host.at(qt, kt)))
              << "host schedule, b " << b << " h " << h << " tile (" << qt
              << ", " << kt << ")";
        }
    }
}

/// Runs `text` on shape `s` with its one int input `boundIn` against the
/// float64 reference; with `kind`, also checks every tile's kind (tiles
/// 16 x 32, one task per query tile: not for decode shapes, whose tasks
/// pack query heads and split keys).
void checkSpec(const std::string &text, const Shape &s, const BoundInput &boundIn,
               const KindOf &kind, uint32_t seed) {
  Compiler compiler;
  CompileOptions opts;
  opts.traceTiles = true;
  opts.tileQ = 16, opts.tileK = 32;
  auto kernel = compiler.compile(text, opts);
  ASSERT_TRUE(kernel.ok()) << kernel.status().message();
  SCOPED_TRACE("ATTNC_TEST_SEED=" + std::to_string(seed));
  std::mt19937 rng(seed);
  Operand q = randomOperand(DType::F32, {s.B, s.HQ, s.LQ, s.D}, rng, -2, 2);
  Operand k = randomOperand(DType::F32, {s.B, s.HKV, s.LK, s.D}, rng, -2, 2);
  Operand v = randomOperand(DType::F32, {s.B, s.HKV, s.LK, s.DV}, rng, -1, 1);
  Tensor bound = Tensor::zeros(DType::I64, boundIn.shape).value();
  for (int64_t i = 0; i < bound.numel(); ++i)
    bound.setFromDouble(i, double(boundIn.values[size_t(i)]));
  Traced r = runTraced(*kernel, s, q, k, v, bound);
  ASSERT_TRUE(r.status.ok()) << r.status.message();
  if (kind)
    checkTrace(*kernel, text, s, bound, r.trace, kind);

  mlir::attn::ProblemSizes ps;
  ps.B = s.B, ps.HQ = s.HQ, ps.HKV = s.HKV, ps.LQ = s.LQ, ps.LK = s.LK,
  ps.D = s.D, ps.DV = s.DV;
  mlir::attn::NamedTensors named;
  named.push_back({kernel->info().inputs[0].name, std::move(bound)});
  std::vector<double> refOut, refLse;
  ASSERT_EQ(referenceOf(text, ps, named, q.values, k.values, v.values, refOut,
                        refLse),
            "");
  EXPECT_LT(relativeError(r.out, refOut), 1e-5);
  for (int64_t i = 0; i < r.lse.numel(); ++i) {
    if (std::isinf(refLse[size_t(i)]))
      ASSERT_EQ(r.lse.getAsDouble(i), refLse[size_t(i)]) << "row " << i;
    else
      ASSERT_NEAR(r.lse.getAsDouble(i), refLse[size_t(i)], 1e-4) << "row " << i;
  }
}

/// One bound per sequence b: the traced shape with B = its size.
void checkPerSequence(const char *text, const std::vector<int64_t> &perSequence,
                      const KindOf &kind) {
  const int64_t B = int64_t(perSequence.size());
  checkSpec(text, Shape{B, 2, 1, 50, 83, 16, 12}, {{B}, perSequence}, kind,
            testSeed());
}

constexpr int8_t kEmpty = 0, kFull = 1, kPartial = 2;

TEST(InputBounds, PaddingMask) {
  // Lengths 0 (every row masked), inside the first key tile, at a tile
  // boundary, in the last tile, and past LK.
  checkPerSequence("attention padded {\n input kv_len: int[B]\n mask = kv < kv_len[b]\n}",
            {0, 7, 64, 70, 100}, [](int64_t b, int64_t, int64_t, int64_t k0, int64_t k1) {
              const int64_t len[] = {0, 7, 64, 70, 100};
              if (k0 >= len[b])
                return kEmpty;
              return k1 < len[b] ? kFull : kPartial;
            });
}

TEST(InputBounds, StartAndCausal) {
  checkPerSequence("attention started {\n input start: int[B]\n"
            " mask = kv >= start[b] && q >= kv\n}",
            {0, 5, 40}, [](int64_t b, int64_t q0, int64_t q1, int64_t k0, int64_t k1) {
              const int64_t start[] = {0, 5, 40};
              // Some row keeps a key: k1 >= start and k0 <= q1; every row
              // keeps every key: k0 >= start and k1 <= q0.
              if (k1 < start[b] || k0 > q1 || q1 < start[b])
                return kEmpty;
              return k0 >= start[b] && k1 <= q0 ? kFull : kPartial;
            });
}

/// Per-row values for the 50 rows (query tiles of 16): tile 0 in
/// [lo0, lo0 + 9], tile 1 all `none` (fully masked rows), tile 2 in
/// [64, 93] (some past LK = 83), the last two rows anywhere in [0, 83].
std::vector<int64_t> perRow(std::mt19937 &rng, int64_t lo0, int64_t none) {
  std::vector<int64_t> v(50);
  for (int64_t q = 0; q < 50; ++q)
    v[size_t(q)] = q < 16   ? lo0 + int64_t(rng() % 10)
                   : q < 32 ? none
                   : q < 48 ? 64 + int64_t(rng() % 30)
                            : int64_t(rng() % 84);
  return v;
}

std::pair<int64_t, int64_t> rangeOf(const std::vector<int64_t> &v, int64_t first,
                                    int64_t last) {
  auto [lo, hi] = std::minmax_element(v.begin() + first, v.begin() + last + 1);
  return {*lo, *hi};
}

TEST(InputBounds, PerRowLength) {
  // kv < len[q]: EMPTY past the longest row of the tile, FULL inside the
  // shortest.
  const uint32_t seed = testSeed();
  std::mt19937 rng(seed ^ 0x5eed);
  std::vector<int64_t> len = perRow(rng, 40, 0);
  checkSpec("attention per_row {\n input len: int[LQ]\n mask = kv < len[q]\n}",
            Shape{2, 2, 1, 50, 83, 16, 12}, {{50}, len},
            [&](int64_t, int64_t q0, int64_t q1, int64_t k0, int64_t k1) {
              auto [lo, hi] = rangeOf(len, q0, q1);
              if (k0 >= hi)
                return kEmpty;
              return k1 < lo ? kFull : kPartial;
            },
            seed);
}

TEST(InputBounds, PerRowStartAndCausal) {
  // kv >= start[b, q] && q >= kv, with start[b, q] = q - w and w in
  // [0, 19] per row (a sliding window of varying width), and rows whose
  // start is past q (fully masked).
  const uint32_t seed = testSeed();
  std::mt19937 rng(seed ^ 0x5eed);
  std::vector<int64_t> start(2 * 50);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t q = 0; q < 50; ++q)
      start[size_t(b * 50 + q)] = (q >= 16 && q < 32 && b == 1)
                                      ? q + 1
                                      : std::max<int64_t>(0, q - int64_t(rng() % 20));
  checkSpec("attention started_rows {\n input start: int[B, LQ]\n"
            " mask = kv >= start[b, q] && q >= kv\n}",
            Shape{2, 2, 1, 50, 83, 16, 12}, {{2, 50}, start},
            [&](int64_t b, int64_t q0, int64_t q1, int64_t k0, int64_t k1) {
              std::vector<int64_t> row(start.begin() + b * 50, start.begin() + b * 50 + 50);
              auto [lo, hi] = rangeOf(row, q0, q1);
              // Some row may keep a key: k1 >= min start and k0 <= q1
              // (and the hull [max(min start, 0), q1] is not empty);
              // every row keeps every key: k0 >= max start and k1 <= q0.
              if (k1 < lo || k0 > q1 || lo > q1)
                return kEmpty;
              return k0 >= hi && k1 <= q0 ? kFull : kPartial;
            },
            seed);
}

TEST(InputBounds, PerRowLengthDecode) {
  // Decode: 3 queries of 8 heads on 2 KV heads (GQA), packed 4 heads to a
  // tile, against 1000 keys split across tasks; one row fully masked.
  checkSpec("attention per_row {\n input len: int[LQ]\n mask = kv < len[q]\n}",
            Shape{2, 8, 2, 3, 1000, 16, 12}, {{3}, {517, 0, 1000}}, nullptr,
            testSeed());
}

} // namespace
