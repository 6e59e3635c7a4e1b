//===- RuntimeTest.cpp - Dtypes, tensors and the thread pool --------------===//
//
// Float conversions are checked exhaustively on the 16-bit side and against
// an independent reference written with double arithmetic on the float
// side; tensors against hostile shapes and strides; the thread pool against
// nested and concurrent parallelFor. Nothing here sleeps or times anything:
// a deadlock would show as a hung test. The .npy reader and writer are in
// NpyTest.cpp, the kernel cache in KernelCacheTest.cpp.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/DType.h"
#include "attnc/Runtime/Tensor.h"
#include "attnc/Runtime/ThreadPool.h"

#include "RuntimeTestUtil.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <thread>

using namespace attnc::runtime;
using namespace runtime_test;

namespace {
template <class To, class From> To bitCast(From x) {
  static_assert(sizeof(To) == sizeof(From));
  To y;
  std::memcpy(&y, &x, sizeof y);
  return y;
}
uint32_t bitsOf(float f) { return bitCast<uint32_t>(f); }
float floatOf(uint32_t b) { return bitCast<float>(b); }

/// Reference rounding of x to a binary format with p significand bits,
/// minimum normal exponent emin and largest finite value maxFinite, ties to
/// even (nearbyint in the default rounding mode), in double arithmetic.
double refRound(double x, int p, int emin, double maxFinite) {
  if (std::isnan(x) || std::isinf(x) || x == 0)
    return x;
  int e;
  std::frexp(std::fabs(x), &e);
  double ulp = std::ldexp(1.0, std::max(e - 1, emin) - (p - 1));
  double r = std::nearbyint(std::fabs(x) / ulp) * ulp;
  return std::copysign(r > maxFinite ? INFINITY : r, x);
}
const double kHalfMax = 65504.0;
const double kBF16Max = std::ldexp(255.0, 120);
double refHalf(double x) { return refRound(x, 11, -14, kHalfMax); }
double refBF16(double x) { return refRound(x, 8, -126, kBF16Max); }

/// Checks that a conversion result (as a float) matches a reference value.
void expectSame(double ref, float got, double input, const char *what) {
  if (std::isnan(ref)) {
    EXPECT_TRUE(std::isnan(got)) << what << " of " << input;
    return;
  }
  EXPECT_EQ(bitsOf(float(ref)), bitsOf(got))
      << what << " of " << input << ": want " << ref << ", got " << got;
}

/// Floats to test rounding on: every midpoint between neighbouring 16-bit
/// values and the floats right next to it, a sweep over all bit patterns,
/// and random patterns.
std::vector<float> roundingInputs(float (*widen)(uint16_t)) {
  std::vector<float> xs;
  for (uint32_t h = 0; h < 0x7fff; ++h) {
    float a = widen(uint16_t(h)), b = widen(uint16_t(h + 1));
    if (!std::isfinite(a) || !std::isfinite(b))
      continue;
    float mid = float((double(a) + double(b)) / 2);
    for (float m :
         {mid, std::nextafter(mid, 0.f), std::nextafter(mid, INFINITY)})
      xs.insert(xs.end(), {m, -m});
  }
  for (uint64_t b = 0; b < (uint64_t(1) << 32); b += 7919)
    xs.push_back(floatOf(uint32_t(b)));
  std::mt19937 rng(42);
  for (int i = 0; i < 200000; ++i)
    xs.push_back(floatOf(rng()));
  return xs;
}


} // namespace

//===--- DType ------------------------------------------------------------===//

TEST(DType, SizesNamesParse) {
  EXPECT_EQ(dtypeSize(DType::BF16), 2u);
  EXPECT_EQ(dtypeSize(DType::I64), 8u);
  EXPECT_EQ(dtypeSize(DType::Bool), 1u);
  EXPECT_STREQ(dtypeName(DType::BF16), "bfloat16");
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I32,
                  DType::I64, DType::Bool})
    EXPECT_EQ(parseDType(dtypeName(t)), t);
  EXPECT_EQ(parseDType("bf16"), DType::BF16);
  EXPECT_EQ(parseDType("f17"), std::nullopt);
}

TEST(DType, All16BitPatternsRoundTripAndDecode) {
  // (widen, narrow, exponent bits, mantissa bits) of binary16 and bfloat16.
  struct Format {
    float (*widen)(uint16_t);
    uint16_t (*narrow)(float);
    int e, m;
  };
  for (Format f : {Format{halfToFloat, floatToHalf, 5, 10},
                   Format{bfloat16ToFloat, floatToBFloat16, 8, 7}}) {
    const unsigned maxExp = (1u << f.e) - 1, bias = maxExp / 2;
    for (uint32_t h = 0; h < 65536; ++h) {
      float x = f.widen(uint16_t(h));
      EXPECT_EQ(f.narrow(x), h) << std::hex << h; // NaN payloads included
      unsigned e = (h >> f.m) & maxExp, m = h & ((1u << f.m) - 1);
      double ref = e == maxExp ? (m ? NAN : INFINITY)
                   : e == 0    ? std::ldexp(double(m), 1 - int(bias) - f.m)
                               : std::ldexp(double(m + (1u << f.m)),
                                            int(e) - int(bias) - f.m);
      expectSame((h & 0x8000) ? -ref : ref, x, h, "widen");
    }
  }
}

TEST(DType, FloatTo16BitMatchesReference) {
  for (float x : roundingInputs(halfToFloat))
    expectSame(refHalf(x), halfToFloat(floatToHalf(x)), x, "floatToHalf");
  for (float x : roundingInputs(bfloat16ToFloat))
    expectSame(refBF16(x), bfloat16ToFloat(floatToBFloat16(x)), x,
               "floatToBFloat16");
}

TEST(DType, DoubleConversionsRoundOnce) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> exps(-160, 140);
  for (int i = 0; i < 300000; ++i) {
    // Random mantissa bits at exponents around every target's range.
    uint64_t bits = rng() & ((uint64_t(1) << 52) - 1);
    bits |= uint64_t(exps(rng) + 1023) << 52 | (rng() & (uint64_t(1) << 63));
    double d = bitCast<double>(bits);
    expectSame(refHalf(d), halfToFloat(doubleToHalf(d)), d, "doubleToHalf");
    expectSame(refBF16(d), bfloat16ToFloat(doubleToBFloat16(d)), d,
               "doubleToBFloat16");
    expectSame(refRound(d, 24, -126, FLT_MAX), doubleToFloat(d), d,
               "doubleToFloat");
  }
  // Just above a half midpoint: through float this would tie to even (1.0).
  EXPECT_EQ(doubleToHalf(1.0 + std::ldexp(1, -11) + std::ldexp(1, -40)),
            0x3c01);
  EXPECT_EQ(doubleToFloat(1e300), INFINITY);
  EXPECT_EQ(doubleToFloat(-double(FLT_MAX) * (1 + 1e-9)), -FLT_MAX);
}

TEST(DType, NaNsStayNaN) {
  // Payloads only in the low bits would vanish when truncated.
  EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(floatOf(0x7f800001)))));
  EXPECT_TRUE(
      std::isnan(bfloat16ToFloat(floatToBFloat16(floatOf(0xff800001)))));
  EXPECT_EQ(floatToBFloat16(floatOf(0xff800001)) & 0x8000, 0x8000);
  EXPECT_EQ(floatToHalf(65520.f), 0x7c00);         // rounds up to infinity
  EXPECT_EQ(floatToHalf(65519.996f), 0x7bff);      // stays at the largest half
  EXPECT_EQ(floatToHalf(std::ldexp(1.f, -25)), 0); // tie to even: zero
  EXPECT_EQ(floatToHalf(-std::ldexp(1.5f, -25)), 0x8001);
}

//===--- Tensor -----------------------------------------------------------===//

TEST(Tensor, NumelAndValidate) {
  EXPECT_EQ(*checkedNumel({}), 1);
  EXPECT_EQ(*checkedNumel({2, 0, 5}), 0);
  EXPECT_FALSE(checkedNumel({-1}).ok());
  EXPECT_FALSE(checkedNumel({int64_t(1) << 32, int64_t(1) << 32}).ok());
  EXPECT_FALSE(Tensor::zeros(DType::F64, {int64_t(1) << 61}).ok());

  Tensor t = filled(DType::F32, {2, 3});
  TensorView v = t.view();
  EXPECT_TRUE(validate(v, "q").ok());
  std::vector<int64_t> want = {2, -1};
  EXPECT_TRUE(validate(v, "q", DType::F32, &want).ok());
  want = {3, -1};
  Status s = validate(v, "q", DType::F32, &want);
  EXPECT_NE(s.message().find("q: expected shape [3, -1], got [2, 3]"),
            std::string::npos)
      << s.message();
  EXPECT_FALSE(validate(v, "q", DType::F16).ok());
  TensorView bad = v;
  bad.strides.pop_back();
  EXPECT_FALSE(validate(bad, "q").ok());
  bad = v;
  bad.data = nullptr;
  EXPECT_NE(validate(bad, "k").message().find("null data"), std::string::npos);
  bad.shape = {0, 3};
  EXPECT_TRUE(validate(bad, "k").ok()); // empty views need no data
  bad = v;
  bad.strides = {int64_t(1) << 62, 1};
  EXPECT_FALSE(validate(bad, "k").ok()); // extent overflows
  bad.shape = {2, 2};
  bad.strides = {-(int64_t(1) << 62), int64_t(1) << 62};
  EXPECT_FALSE(validate(bad, "k").ok()); // so does hi - lo
}

/// Empty shapes whose other dimensions multiply past int64: the strides
/// of such a tensor cannot be held, so the shape is refused (as numpy
/// does) instead of computing them with signed overflow (UB: this test
/// fails under -fsanitize=undefined without the checks). The .npy reader
/// gets the same answer (it made such a tensor from a 100-byte file).
TEST(Tensor, EmptyShapesWithHugeDims) {
  const std::vector<int64_t> huge = {0, int64_t(1) << 40, int64_t(1) << 40};
  Expected<int64_t> n = checkedNumel(huge);
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("overflows int64"), std::string::npos);
  EXPECT_FALSE(Tensor::zeros(DType::F32, huge).ok());
  TensorView v{nullptr, DType::F32, huge, {1, 1, 1}};
  EXPECT_FALSE(validate(v, "q").ok());
  // Defined for every shape: saturated, never wrapped.
  EXPECT_EQ(contiguousStrides(huge),
            (std::vector<int64_t>{std::numeric_limits<int64_t>::max(),
                                  int64_t(1) << 40, 1}));
  // Empty shapes whose strides fit are fine, zeros counting as 1.
  EXPECT_EQ(*checkedNumel({0, int64_t(1) << 31, int64_t(1) << 31}), 0);
  Tensor t = Tensor::zeros(DType::F32, {3, 0, int64_t(1) << 40}).value();
  EXPECT_EQ(t.view().strides,
            (std::vector<int64_t>{int64_t(1) << 40, int64_t(1) << 40, 1}));
  // The .npy header of that fuzz finding: a shape of 0 and many big dims.
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': "
                       "(0, 3, 333333, 3333330, 366, 33333, 3, 3333332), }";
  header.resize(117, ' '); // 10 + 118 bytes: a multiple of 64
  header += '\n';
  std::string file = std::string("\x93NUMPY\x01\x00", 8) + char(header.size()) +
                     char(0) + header;
  Expected<Tensor> r = parseNpy(file, "huge.npy");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("huge.npy"), std::string::npos)
      << r.status().message();
}

/// A size beyond the machine's memory is an error before any allocation
/// (it aborted under ASan, and with overcommit the zero fill met the OOM
/// killer); so is one int64 cannot count.
TEST(Tensor, AllocationsBeyondMemoryAreErrors) {
  Expected<Tensor> t = Tensor::zeros(DType::F32, {int64_t(1) << 40}); // 4 TiB
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find(
                "out of memory: a float32 tensor of shape [1099511627776] "
                "needs 4398046511104 bytes, more than this machine's"),
            std::string::npos)
      << t.status().message();
  EXPECT_GT(physicalMemoryBytes(), 0);
  EXPECT_TRUE(checkAllocationSize(1 << 20, "x").ok());
  EXPECT_NE(checkAllocationSize(-1, "the thing").message().find(
                "the thing needs more bytes than int64 can count"),
            std::string::npos);
  // Through convert and makeContiguous too: a broadcast view of 4 TiB.
  float one = 1;
  TensorView broadcast{&one, DType::F32, {int64_t(1) << 40}, {0}};
  EXPECT_FALSE(makeContiguous(broadcast).ok());
}

TEST(Tensor, BLHDViewIsBHLD) {
  Tensor blhd = filled(DType::F32, {2, 5, 3, 4});
  TensorView v = viewBHLDFromBLHD(blhd.view()).value();
  EXPECT_EQ(v.shape, (std::vector<int64_t>{2, 3, 5, 4}));
  EXPECT_FALSE(v.isContiguous());
  Tensor bhld = makeContiguous(v).value();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 3; ++h)
      for (int64_t l = 0; l < 5; ++l)
        for (int64_t d = 0; d < 4; ++d) {
          double want = blhd.getAsDouble(((b * 5 + l) * 3 + h) * 4 + d);
          EXPECT_EQ(loadAsDouble(v, v.offsetOf({b, h, l, d})), want);
          EXPECT_EQ(bhld.getAsDouble(((b * 3 + h) * 5 + l) * 4 + d), want);
        }
  EXPECT_FALSE(viewBHLDFromBLHD(filled(DType::F32, {2, 3}).view()).ok());
}

TEST(Tensor, BoundsChecks) {
  std::vector<float> buf(24);
  TensorView v{buf.data(), DType::F32, {2, 3, 4}, {12, 4, 1}};
  const size_t bytes = buf.size() * 4;
  EXPECT_TRUE(checkBounds(v, buf.data(), bytes).ok());
  EXPECT_FALSE(checkBounds(v, buf.data(), bytes - 1).ok());
  v.data = buf.data() + 1; // shifted by one element: the last one is outside
  EXPECT_FALSE(checkBounds(v, buf.data(), bytes).ok());
  // Reversed rows: start at the last row, step back.
  TensorView r{buf.data() + 20, DType::F32, {6, 4}, {-4, 1}};
  EXPECT_TRUE(checkBounds(r, buf.data(), bytes).ok());
  r.data = buf.data() + 16;
  EXPECT_FALSE(checkBounds(r, buf.data(), bytes).ok());
  // Broadcast (stride 0) reads one row many times.
  TensorView b{buf.data(), DType::F32, {1000, 4}, {0, 1}};
  EXPECT_TRUE(checkBounds(b, buf.data(), 16).ok());
  TensorView huge{buf.data(), DType::F32, {3, 3}, {INT64_MAX / 2, 1}};
  EXPECT_FALSE(checkBounds(huge, buf.data(), bytes).ok());
  TensorView empty{nullptr, DType::F32, {0, 4}, {4, 1}};
  EXPECT_TRUE(checkBounds(empty, nullptr, 0).ok());
}

TEST(Tensor, ConvertAndElementAccess) {
  Tensor f = filled(DType::F32, {3, 4});
  Tensor h = convert(f.view(), DType::F16).value();
  Tensor back = convert(h.view(), DType::F32).value();
  for (int64_t i = 0; i < f.numel(); ++i)
    EXPECT_EQ(back.getAsDouble(i), f.getAsDouble(i)); // k + 0.5 fits a half
  // One rounding from float64, not two.
  Tensor d = Tensor::zeros(DType::F64, {1}).value();
  d.setFromDouble(0, 1.0 + std::ldexp(1, -11) + std::ldexp(1, -40));
  EXPECT_EQ(convert(d.view(), DType::F16)->getAsDouble(0),
            1.0 + std::ldexp(1, -10));

  Tensor i64 = Tensor::zeros(DType::I64, {2}).value();
  i64.setFromDouble(0, 7);
  i64.setFromDouble(1, 1e10);
  Expected<Tensor> narrow = convert(i64.view(), DType::I32);
  ASSERT_FALSE(narrow.ok());
  EXPECT_NE(narrow.status().message().find("element 1"), std::string::npos);
  i64.setFromDouble(1, -3);
  EXPECT_EQ(convert(i64.view(), DType::I32)->getAsDouble(1), -3);
  const int64_t big = (int64_t(1) << 60) + 1; // not exact in double
  std::memcpy(i64.data(), &big, 8);
  int64_t copied;
  std::memcpy(&copied, convert(i64.view(), DType::I64)->data(), 8);
  EXPECT_EQ(copied, big);
  EXPECT_FALSE(convert(f.view(), DType::I32).ok());
  EXPECT_FALSE(convert(i64.view(), DType::Bool).ok());

  // Ints saturate, truncate toward zero, and take NaN as 0.
  Tensor i32 = Tensor::zeros(DType::I32, {4}).value();
  const double in[] = {1e20, -1e20, NAN, -2.9},
               out[] = {2147483647.0, -2147483648.0, 0, -2};
  for (int i = 0; i < 4; ++i) {
    i32.setFromDouble(i, in[i]);
    EXPECT_EQ(i32.getAsDouble(i), out[i]);
  }
  EXPECT_TRUE(std::isnan(i32.getAsDouble(4)));
  i32.setFromDouble(-1, 5); // ignored, not a crash
}

//===--- ThreadPool -------------------------------------------------------===//

TEST(ThreadPool, SumCoversEveryIndexOnce) {
  ThreadPool pool(4);
  EXPECT_EQ(pool.numThreads(), 4);
  const int64_t n = 1000000;
  std::vector<std::atomic<uint8_t>> seen(n);
  std::atomic<int64_t> sum{0};
  pool.parallelFor(n, [&](int64_t b, int64_t e) {
    int64_t local = 0;
    for (int64_t i = b; i < e; ++i) {
      local += i;
      seen[i].fetch_add(1);
    }
    sum += local;
  });
  EXPECT_EQ(sum.load(), n * (n - 1) / 2);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(seen[i].load(), 1) << i;
  bool called = false;
  pool.parallelFor(0, [&](int64_t, int64_t) { called = true; });
  EXPECT_FALSE(called);
  std::atomic<int64_t> small{0};
  pool.parallelFor(
      10,
      [&](int64_t b, int64_t e) {
        EXPECT_TRUE(e - b >= 4 || e == 10);
        small += e - b;
      },
      4);
  EXPECT_EQ(small.load(), 10);
}

TEST(ThreadPool, NestedAndConcurrentCallsDoNotDeadlock) {
  ThreadPool pool(3);
  std::atomic<int64_t> count{0};
  pool.parallelFor(64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      pool.parallelFor(100, [&](int64_t b2, int64_t e2) { count += e2 - b2; });
  });
  EXPECT_EQ(count.load(), 6400);
  // Several threads sharing one pool, each nesting into another pool.
  ThreadPool other(2);
  std::vector<std::thread> callers;
  std::atomic<int64_t> total{0};
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] {
      for (int rep = 0; rep < 50; ++rep)
        pool.parallelFor(1000, [&](int64_t b, int64_t e) {
          other.parallelFor(e - b,
                            [&](int64_t b2, int64_t e2) { total += e2 - b2; });
        });
    });
  for (std::thread &t : callers)
    t.join();
  EXPECT_EQ(total.load(), 4 * 50 * 1000);
}

TEST(ThreadPool, ThreadCountFromEnvironment) {
  {
    ScopedEnv env("ATTNC_NUM_THREADS", "3");
    EXPECT_EQ(ThreadPool::defaultNumThreads(), 3);
    ThreadPool pool(0);
    EXPECT_EQ(pool.numThreads(), 3);
    std::mutex m;
    std::set<std::thread::id> ids;
    pool.parallelFor(100000, [&](int64_t, int64_t) {
      std::lock_guard<std::mutex> lock(m);
      ids.insert(std::this_thread::get_id());
    });
    EXPECT_LE(ids.size(), 3u);
    EXPECT_EQ(ThreadPool(2).numThreads(), 2); // an explicit count wins
  }
  ScopedEnv env("ATTNC_NUM_THREADS", "lots");
  unsigned hw = std::thread::hardware_concurrency();
  EXPECT_EQ(ThreadPool::defaultNumThreads(), hw ? int(hw) : 1);
  ThreadPool one(1);
  int64_t ran = 0; // a one-thread pool runs inline: no data race here
  one.parallelFor(5, [&](int64_t b, int64_t e) { ran += e - b; });
  EXPECT_EQ(ran, 5);
}
