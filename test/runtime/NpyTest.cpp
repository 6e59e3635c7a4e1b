//===- NpyTest.cpp - The .npy reader and writer ---------------------------===//
//
// The .npy files a user can hand the runtime: every dtype and shape round
// trips, the header is byte for byte numpy's, versions 1-3, Fortran order
// and strided writes, and every malformed, truncated or mutated file is an
// error that names the file (never a crash or a read past the data).
// Writes are atomic: a failed write leaves the old file and no temporary.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/Npy.h"
#include "attnc/Runtime/Tensor.h"

#include "RuntimeTestUtil.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <sys/stat.h>
#include <vector>

using namespace attnc::runtime;
using namespace runtime_test;

namespace {
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
