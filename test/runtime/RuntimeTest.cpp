//===- RuntimeTest.cpp - Dtypes, tensors, .npy, thread pool, kernel cache -===//
//
// The runtime sits between user files and generated kernels, so the tests
// lean on what users can get wrong (malformed .npy files, hostile shapes and
// strides) and on what concurrency can get wrong (nested and concurrent
// parallelFor, processes racing on one cache entry). Float conversions are
// checked exhaustively on the 16-bit side and against an independent
// reference written with double arithmetic on the float side. Nothing here
// sleeps or times anything: a deadlock would show as a hung test.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/DType.h"
#include "attnc/Runtime/KernelCache.h"
#include "attnc/Runtime/Npy.h"
#include "attnc/Runtime/Tensor.h"
#include "attnc/Runtime/ThreadPool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <ftw.h>
#include <limits>
#include <random>
#include <set>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace attnc::runtime;

namespace {
/// A fresh directory under /tmp, removed with its contents afterwards.
class TempDir {
public:
  TempDir() {
    char tmpl[] = "/tmp/attnc-rt-XXXXXX";
    path = mkdtemp(tmpl) ? tmpl : "";
    EXPECT_FALSE(path.empty());
  }
  ~TempDir() {
    nftw(
        path.c_str(),
        [](const char *p, const struct stat *, int, struct FTW *) {
          return ::remove(p);
        },
        16, FTW_DEPTH | FTW_PHYS);
  }
  std::string operator/(const std::string &name) const {
    return path + "/" + name;
  }
  /// The names in the directory, hidden ones included.
  std::set<std::string> list(const std::string &sub = "") const {
    std::set<std::string> names;
    if (DIR *d = opendir((path + "/" + sub).c_str())) {
      while (dirent *e = readdir(d))
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
          names.insert(e->d_name);
      closedir(d);
    }
    return names;
  }
  std::string path;
};

void writeBytes(const std::string &path, const std::string &bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}
std::string slurp(const std::string &path) {
  Expected<std::string> s = readFile(path);
  return s.ok() ? *s : "<unreadable>";
}
bool exists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

/// Sets an environment variable for one scope, then restores it.
class ScopedEnv {
public:
  ScopedEnv(const char *name, const char *value) : name(name) {
    if (const char *old = std::getenv(name))
      saved = old;
    value ? setenv(name, value, 1) : unsetenv(name);
  }
  ~ScopedEnv() { saved ? setenv(name, saved->c_str(), 1) : unsetenv(name); }

private:
  const char *name;
  std::optional<std::string> saved;
};

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

Tensor filled(DType t, std::vector<int64_t> shape) {
  Tensor x = Tensor::zeros(t, std::move(shape)).value();
  for (int64_t i = 0; i < x.numel(); ++i)
    x.setFromDouble(i, t == DType::Bool ? (i % 3 == 1)
                                        : (i % 2 ? -1.0 : 1.0) * (i + 0.5));
  return x;
}

/// A .npy file with the given version, header text (a newline is added)
/// and data.
std::string npyFile(const std::string &dict, const std::string &data,
                    int major = 1) {
  std::string h = dict + "\n";
  std::string out("\x93NUMPY", 6);
  out += char(major);
  out += char(0);
  for (int i = 0; i < (major == 1 ? 2 : 4); ++i)
    out += char((h.size() >> (8 * i)) & 0xff);
  return out + h + data;
}
std::string f32Bytes(std::vector<float> v) {
  return std::string(reinterpret_cast<const char *>(v.data()), 4 * v.size());
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

//===--- .npy -------------------------------------------------------------===//

TEST(Npy, RoundTripEveryDTypeAndShape) {
  TempDir dir;
  for (DType t : {DType::F32, DType::F16, DType::F64, DType::I32, DType::I64,
                  DType::Bool})
    for (std::vector<int64_t> shape : std::vector<std::vector<int64_t>>{
             {}, {0}, {7}, {2, 0, 3}, {2, 3, 4}, {1, 1, 1, 5}}) {
      Tensor x = filled(t, shape);
      std::string path = dir / "x.npy";
      ASSERT_TRUE(writeNpy(path, x.view()).ok());
      std::string bytes = slurp(path);
      EXPECT_EQ((bytes.size() - x.nbytes()) % 64, 0u); // aligned data
      Expected<Tensor> y = readNpy(path);
      ASSERT_TRUE(y.ok()) << y.status().message();
      EXPECT_EQ(y->dtype(), t);
      EXPECT_EQ(y->shape(), shape);
      for (int64_t i = 0; i < x.numel(); ++i)
        EXPECT_EQ(y->getAsDouble(i), x.getAsDouble(i));
    }
  EXPECT_EQ(dir.list(), std::set<std::string>{"x.npy"}); // no temporaries
}

TEST(Npy, HeaderMatchesNumpy) {
  // np.save of np.zeros((2, 3), '<f4'): a 118-byte header, data at 128.
  Tensor x = Tensor::zeros(DType::F32, {2, 3}).value();
  std::string bytes = encodeNpy(x.view()).value();
  std::string dict = "{'descr': '<f4', 'fortran_order': False, "
                     "'shape': (2, 3), }";
  std::string want = std::string("\x93NUMPY\x01\x00\x76\x00", 10) + dict +
                     std::string(128 - 11 - dict.size(), ' ') + "\n";
  EXPECT_EQ(bytes.substr(0, 128), want);
  EXPECT_EQ(bytes.size(), 128u + 24u);
  EXPECT_NE(encodeNpy(filled(DType::F32, {4}).view())->find("(4,)"),
            std::string::npos);
}

TEST(Npy, VersionsFortranAndStridedWrite) {
  std::string data = f32Bytes({0, 3, 1, 4, 2, 5}); // column-major 2x3
  for (int major : {1, 2, 3}) {
    std::string f = npyFile("{'shape': (2, 3), 'fortran_order': True, "
                            "\"descr\": '<f4'}",
                            data, major);
    Expected<Tensor> t = parseNpy(f, "f.npy");
    ASSERT_TRUE(t.ok()) << t.status().message();
    EXPECT_EQ(t->shape(), (std::vector<int64_t>{2, 3}));
    for (int i = 0; i < 6; ++i)
      EXPECT_EQ(t->getAsDouble(i), i);
  }
  // Python 2 long suffixes, no trailing comma, extra spaces.
  EXPECT_TRUE(parseNpy(npyFile("{ 'descr' : '<f4' , 'fortran_order' : False"
                               " , 'shape' : ( 2L , 3L ) }",
                               data),
                       "p2.npy")
                  .ok());
  TempDir dir;
  Tensor blhd = filled(DType::F32, {1, 4, 2, 3});
  TensorView v = viewBHLDFromBLHD(blhd.view()).value();
  ASSERT_TRUE(writeNpy(dir / "s.npy", v).ok());
  Tensor back = readNpy(dir / "s.npy").value();
  Tensor want = makeContiguous(v).value();
  ASSERT_EQ(back.shape(), (std::vector<int64_t>{1, 2, 4, 3}));
  for (int64_t i = 0; i < back.numel(); ++i)
    EXPECT_EQ(back.getAsDouble(i), want.getAsDouble(i));
  // Bool bytes other than 0/1 read as true, normalised.
  Tensor b = parseNpy(npyFile("{'descr': '|b1', 'fortran_order': False, "
                              "'shape': (2,), }",
                              std::string("\x00\x07", 2)),
                      "b.npy")
                 .value();
  EXPECT_EQ(static_cast<const uint8_t *>(b.data())[1], 1);
}

TEST(Npy, MalformedFilesAreErrorsThatNameTheFile) {
  // The header dict of a .npy file, from its parts.
  auto dict = [](const std::string &descr, const std::string &shape,
                 const std::string &rest = "") {
    return "{'descr': " + descr +
           ", 'fortran_order': False, 'shape': " + shape + rest + "}";
  };
  const std::string ok = dict("'<f4'", "(2,)"), two = f32Bytes({1, 2});
  std::string bigLen = npyFile(ok, two, 2);
  bigLen[8] = bigLen[9] = bigLen[10] = bigLen[11] = '\xff';
  std::string lying = npyFile(ok, two);
  lying[8] = '\xf0'; // header length past the end of the file
  struct Case {
    std::string bytes, expect;
  } cases[] = {
      {"", "truncated"},
      {"\x93NUMPY\x01", "truncated"},
      {"\x93NUMPX" + npyFile(ok, two).substr(6), "magic"},
      {npyFile(ok, two, 4), "version 4.0"},
      {lying, "truncated"},
      {bigLen, "implausibly large"},
      {npyFile("[1, 2]", two), "expected '{'"},
      {npyFile("{'descr': '<f4', 'shape': (2,)}", two), "lacks the key"},
      {npyFile(dict("'<f4'", "(2,)", ", 'x': 1"), two),
       "unexpected header key"},
      {npyFile(dict("'<f4'", "(2,)", ", 'descr': '<f4'"), two), "duplicate"},
      {npyFile(dict("'<f4'", "(4294967296, 4294967296, 4294967296)"), two),
       "too large"},
      {npyFile(dict("'<f4'", "(99999999999999999999,)"), two), "does not fit"},
      {npyFile(ok, two.substr(0, 7)), "needs 8 data bytes, found 7"},
      {npyFile(ok, two + "x"), "unexpected bytes"},
      {npyFile(dict("'>f4'", "(2,)"), two), "big-endian"},
      {npyFile(dict("'|O'", "(2,)"), two), "object arrays"},
      {npyFile(dict("'|u1'", "(2,)"), two), "unsupported dtype"},
      {npyFile(dict("[('a', '<f4')]", "(2,)"), two), "structured"},
      {npyFile(dict("'<f4'", "(-2,)"), two), "non-negative"},
      {npyFile(dict("'<f4'", "(2)"), two), "trailing comma"},
      {npyFile(ok.substr(0, ok.size() - 1), two), "malformed header"},
      {npyFile("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", two),
       "True or False"},
      {npyFile(ok + " junk", two), "after the header"},
  };
  TempDir dir;
  int n = 0;
  for (const Case &c : cases) {
    std::string path = dir / ("bad" + std::to_string(n++) + ".npy");
    writeBytes(path, c.bytes);
    Expected<Tensor> t = readNpy(path);
    ASSERT_FALSE(t.ok()) << path;
    EXPECT_EQ(t.status().message().rfind(path + ": ", 0), 0u)
        << t.status().message();
    EXPECT_NE(t.status().message().find(c.expect), std::string::npos)
        << "want '" << c.expect << "' in: " << t.status().message();
  }
  EXPECT_NE(readNpy(dir / "missing.npy").status().message().find("missing.npy"),
            std::string::npos);
  EXPECT_NE(readNpy(dir.path).status().message().find("is a directory"),
            std::string::npos);
}

TEST(Npy, EveryTruncationAndMutationIsHandled) {
  std::string good = encodeNpy(filled(DType::F64, {3, 5}).view()).value();
  ASSERT_TRUE(parseNpy(good, "g").ok());
  for (size_t k = 0; k < good.size(); ++k)
    EXPECT_FALSE(parseNpy(good.substr(0, k), "g").ok()) << k;
  // Random byte flips in the preamble and header: whatever they parse to,
  // reading must stay in bounds (the sanitizer build checks that).
  std::mt19937 rng(3);
  for (int i = 0; i < 5000; ++i) {
    std::string m = good;
    for (int j = 0; j < 1 + int(rng() % 3); ++j)
      m[rng() % 128] = char(rng());
    Expected<Tensor> t = parseNpy(m, "m");
    if (t.ok()) {
      EXPECT_LE(t->nbytes(), m.size());
    }
  }
}

TEST(Npy, WritesAreAtomic) {
  TempDir dir;
  Tensor x = filled(DType::F32, {4});
  // A missing directory: an error, and nothing created.
  Status s = writeNpy(dir / "no/such/x.npy", x.view());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no/such/x.npy"), std::string::npos);
  EXPECT_FALSE(exists(dir / "no"));
  // A failing write leaves the existing file as it was.
  std::string path = dir / "out.npy";
  ASSERT_TRUE(writeNpy(path, x.view()).ok());
  const std::string before = slurp(path);
  TensorView bad = x.view();
  bad.data = nullptr;
  EXPECT_FALSE(writeNpy(path, bad).ok());
  EXPECT_FALSE(writeNpy(path, filled(DType::BF16, {4}).view()).ok());
  EXPECT_EQ(slurp(path), before);
  // The rename itself fails (the target is a directory): no temporary left.
  ASSERT_EQ(::mkdir((dir / "sub").c_str(), 0777), 0);
  EXPECT_FALSE(writeNpy(dir / "sub", x.view()).ok());
  EXPECT_EQ(dir.list(), (std::set<std::string>{"out.npy", "sub"}));
  EXPECT_TRUE(dir.list("sub").empty());
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

//===--- KernelCache ------------------------------------------------------===//

TEST(KernelCache, MurmurHash3MatchesReference) {
  // SMHasher's verification value for MurmurHash3_x64_128.
  uint8_t key[256], hashes[256 * 16];
  for (int i = 0; i < 256; ++i) {
    key[i] = uint8_t(i);
    Hash128 h = murmurHash3x64_128(key, size_t(i), uint32_t(256 - i));
    for (int b = 0; b < 8; ++b) {
      hashes[16 * i + b] = uint8_t(h.h1 >> (8 * b));
      hashes[16 * i + 8 + b] = uint8_t(h.h2 >> (8 * b));
    }
  }
  Hash128 final = murmurHash3x64_128(hashes, sizeof hashes, 0);
  EXPECT_EQ(uint32_t(final.h1), 0x6384BA69u);
  EXPECT_EQ(murmurHash3x64_128("", 0).hex(), std::string(32, '0'));
  std::string k = KernelCache::makeKey({"ab", "c"});
  EXPECT_TRUE(KernelCache::isValidKey(k));
  EXPECT_NE(k, KernelCache::makeKey({"a", "bc"}));
  EXPECT_EQ(k, KernelCache::makeKey({"ab", "c"}));
}

TEST(KernelCache, DirectoryFromEnvironment) {
  ScopedEnv a("ATTNC_CACHE_DIR", "/x/cache"), x("XDG_CACHE_HOME", "/xdg"),
      h("HOME", "/home/u");
  EXPECT_EQ(*KernelCache::defaultDirectory(), "/x/cache");
  ScopedEnv a2("ATTNC_CACHE_DIR", nullptr);
  EXPECT_EQ(*KernelCache::defaultDirectory(), "/xdg/attnc");
  ScopedEnv x2("XDG_CACHE_HOME", "relative");
  EXPECT_EQ(*KernelCache::defaultDirectory(), "/home/u/.cache/attnc");
  ScopedEnv h2("HOME", nullptr);
  EXPECT_FALSE(KernelCache::defaultDirectory().ok());
  KernelCache memoryOnly;
  std::string key = KernelCache::makeKey({"m"});
  EXPECT_FALSE(memoryOnly.store(key, "bytes").ok()); // says why
  EXPECT_EQ(**memoryOnly.lookup(key), "bytes");
}

TEST(KernelCache, StoreLookupPersistAndCorruption) {
  TempDir dir;
  const std::string cacheDir = dir / "a/b/cache"; // created on demand
  const std::string key = KernelCache::makeKey({"spec", "-Dwindow=256"});
  const std::string other = KernelCache::makeKey({"other"});
  std::string payload(10000, '\0');
  for (size_t i = 0; i < payload.size(); ++i)
    payload[i] = char(i * 7);
  {
    KernelCache c(cacheDir);
    EXPECT_FALSE(c.lookup(key)->has_value());
    ASSERT_TRUE(c.store(key, payload).ok());
    EXPECT_EQ(**c.lookup(key), payload);
    EXPECT_FALSE(c.lookup("../../etc/passwd").ok());
    EXPECT_FALSE(c.store("ABC", "x").ok());
  }
  KernelCache c2(cacheDir);
  EXPECT_EQ(**c2.lookup(key), payload); // from disk
  const std::string path = c2.entryPath(key);
  const std::string good = slurp(path);
  auto expectMissAndRemoved = [&](const std::string &bytes,
                                  const std::string &at) {
    writeBytes(at, bytes);
    KernelCache fresh(cacheDir);
    Expected<std::optional<std::string>> r =
        fresh.lookup(at == path ? key : other);
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->has_value());
    EXPECT_FALSE(exists(at));
  };
  std::string flipped = good;
  flipped[good.size() - 10] ^= 1;
  expectMissAndRemoved(flipped, path);
  expectMissAndRemoved(good.substr(0, good.size() - 1), path);
  expectMissAndRemoved(good.substr(0, 20), path);
  expectMissAndRemoved("", path);
  expectMissAndRemoved(good, c2.entryPath(other)); // another key's file
  EXPECT_EQ(**c2.lookup(key), payload); // the memory copy is unaffected
}

TEST(KernelCache, ConcurrentThreadsAndProcesses) {
  TempDir dir;
  const std::string key = KernelCache::makeKey({"shared"});
  std::string payload(200000, 'k');
  for (size_t i = 0; i < payload.size(); i += 13)
    payload[i] = char(i);
  // Writers and readers, each with its own cache so that reads hit disk.
  std::mutex m;
  std::vector<std::string> bad;
  auto worker = [&](bool writer) {
    KernelCache c(dir.path);
    for (int i = 0; i < 40; ++i) {
      Status s = writer ? c.store(key, payload) : Status();
      c.clearMemory();
      Expected<std::optional<std::string>> r = c.lookup(key);
      if (!s.ok() || !r.ok() || (r->has_value() && **r != payload)) {
        std::lock_guard<std::mutex> lock(m);
        bad.push_back(s.message() + r.status().message());
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back(worker, t % 2 == 0);
  for (std::thread &t : threads)
    t.join();
  EXPECT_EQ(bad, std::vector<std::string>{});

  // Two processes released together by a pipe (if a fork fails, closing
  // the pipe releases the other child, which then exits).
  int gate[2];
  ASSERT_EQ(pipe(gate), 0);
  pid_t kids[2];
  for (pid_t &kid : kids) {
    kid = fork();
    if (kid == 0) {
      char go;
      close(gate[1]);
      if (read(gate[0], &go, 1) != 1)
        _exit(2);
      KernelCache c2(dir.path);
      for (int i = 0; i < 40; ++i) {
        if (!c2.store(key, payload).ok())
          _exit(3);
        c2.clearMemory();
        Expected<std::optional<std::string>> r = c2.lookup(key);
        if (!r.ok() || !r->has_value() || **r != payload)
          _exit(4);
      }
      _exit(0);
    }
  }
  close(gate[0]);
  EXPECT_EQ(write(gate[1], "go", 2), 2);
  close(gate[1]);
  for (pid_t kid : kids) {
    ASSERT_GT(kid, 0) << "fork failed";
    int status = 0;
    ASSERT_EQ(waitpid(kid, &status, 0), kid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  KernelCache after(dir.path);
  EXPECT_EQ(**after.lookup(key), payload);
  // No temporaries: the entry, the HMAC key and the hit/miss counters.
  EXPECT_EQ(dir.list(), (std::set<std::string>{key + ".bin", "key", "stats"}));
}
