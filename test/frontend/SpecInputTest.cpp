//===- SpecInputTest.cpp - Unit tests of spec reading and -D splitting ----===//
//
// readSpecFile (regular files only, never blocking, size-capped),
// normalizeSpecText/addSpecBuffer (BOM, CRLF, CR-only line ends), parseSpec
// on a raw CR-only buffer, and parseDefine/parseParamValue on hostile -D
// arguments.
//
//===----------------------------------------------------------------------===//
#include "attnc/Frontend/Frontend.h"
#include "attnc/Frontend/Sema.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include "../common/TempDir.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace attnc;
namespace fs = std::filesystem;

namespace {

using attnc::test::TempDir;

void writeFile(const fs::path &p, const std::string &text) {
  std::ofstream(p, std::ios::binary) << text;
}

} // namespace

TEST(SpecInput, NormalizesLineEndsAndBom) {
  EXPECT_EQ(normalizeSpecText("a\r\nb\rc\n\r\r\n"), "a\nb\nc\n\n\n");
  EXPECT_EQ(normalizeSpecText("\xEF\xBB\xBF" "x\r"), "x\n");
  // Only a leading BOM is dropped.
  EXPECT_EQ(normalizeSpecText("x\xEF\xBB\xBF"), "x\xEF\xBB\xBF");
  EXPECT_FALSE(needsNormalization("a\nb\n"));
  EXPECT_TRUE(needsNormalization("a\rb"));
}

TEST(SpecInput, ParseSpecLocatesErrorsInCrOnlyBuffer) {
  // The raw buffer goes into the SourceMgr unnormalised: parseSpec copies it.
  llvm::SourceMgr sm;
  unsigned id = sm.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(
          "\xEF\xBB\xBF# c\rattention a {\r  mask = foo\r}\r", "cr.attn"),
      llvm::SMLoc());
  std::string errors;
  llvm::raw_string_ostream os(errors);
  EXPECT_FALSE(parseSpec(sm, id, {}, os));
  EXPECT_EQ(errors, "cr.attn:3:10: error: unknown name 'foo'\n"
                    "  mask = foo\n"
                    "         ^\n");
}

TEST(SpecInput, AddSpecBufferStoresNormalisedText) {
  llvm::SourceMgr sm;
  unsigned id = addSpecBuffer(sm, "a\r\rb", "x.attn");
  EXPECT_EQ(sm.getMemoryBuffer(id)->getBuffer(), "a\n\nb");
  EXPECT_EQ(sm.getMemoryBuffer(id)->getBufferIdentifier(), "x.attn");
}

TEST(SpecInput, ReadsRegularFilesUpToTheCap) {
  TempDir dir;
  writeFile(dir / "ok.attn", "attention a {}\n");
  std::string error;
  auto buffer = readSpecFile(dir / "ok.attn", error);
  ASSERT_TRUE(buffer) << error;
  EXPECT_EQ(buffer->getBuffer(), "attention a {}\n");

  writeFile(dir / "big.attn", std::string(101, ' '));
  EXPECT_FALSE(readSpecFile(dir / "big.attn", error, 100));
  EXPECT_EQ(error, (dir / "big.attn") +
                       ": spec file is larger than 100 bytes");
  EXPECT_TRUE(readSpecFile(dir / "big.attn", error, 101));

  EXPECT_FALSE(readSpecFile(dir / "none.attn", error));
  EXPECT_NE(error.find("No such file or directory"), std::string::npos);
}

TEST(SpecInput, RefusesNonRegularFilesWithoutBlocking) {
  TempDir dir;
  fs::path fifo = dir / "fifo.attn";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string error;
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(readSpecFile(fifo.string(), error));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(error, "cannot read '" + fifo.string() +
                       "': it is a FIFO, not a regular file");

  EXPECT_FALSE(readSpecFile(dir.path, error));
  EXPECT_NE(error.find("it is a directory"), std::string::npos);
  EXPECT_FALSE(readSpecFile("/dev/zero", error));
  EXPECT_NE(error.find("it is a character device"), std::string::npos);
}

TEST(SpecInput, SplitsDefines) {
  std::pair<std::string, std::string> d;
  EXPECT_EQ(parseDefine("w=3", d), "");
  EXPECT_EQ(d, std::make_pair(std::string("w"), std::string("3")));
  EXPECT_EQ(parseDefine("w==3", d), "");
  EXPECT_EQ(d.second, "=3"); // split at the first '='
  EXPECT_EQ(parseDefine("w=", d), "");
  EXPECT_EQ(d.second, "");
  EXPECT_EQ(parseDefine("w", d), "-D w: expected NAME=VALUE");
  EXPECT_EQ(parseDefine("=3", d), "-D =3: expected NAME=VALUE");
  EXPECT_EQ(parseDefine("", d), "-D : expected NAME=VALUE");
  EXPECT_EQ(parseDefine("1w=3", d),
            "-D 1w=3: '1w' is not a param name (letters, digits and '_')");
  EXPECT_NE(parseDefine(std::string("a\0b=1", 5), d), "");
}

TEST(SpecInput, ParamValuesAreStrict) {
  ast::ParamDecl i;
  i.type = ast::Type::Int;
  EXPECT_EQ(parseParamValue("-9223372036854775808", i), "");
  EXPECT_EQ(i.intValue, INT64_MIN);
  EXPECT_NE(parseParamValue("9223372036854775808", i), "");
  EXPECT_NE(parseParamValue(std::string(10000, '9'), i), "");
  EXPECT_NE(parseParamValue("", i), "");
  EXPECT_NE(parseParamValue("1.5", i), "");
  EXPECT_NE(parseParamValue(" 1", i), "");

  ast::ParamDecl f;
  f.type = ast::Type::Float;
  for (const char *bad : {"nan", "inf", "-inf", "1e39", "0x10", "", ".", "e5",
                          "1e", "--1", "1e99999"})
    EXPECT_NE(parseParamValue(bad, f), "") << bad;
  EXPECT_EQ(parseParamValue("-0", f), "");
  EXPECT_TRUE(std::signbit(f.floatValue));
  EXPECT_EQ(parseParamValue("1e-50", f), ""); // underflows to 0 in f32
  EXPECT_TRUE(std::isfinite(f.floatValue));

  ast::ParamDecl b;
  b.type = ast::Type::Bool;
  EXPECT_EQ(parseParamValue("1", b), "");
  EXPECT_TRUE(b.boolValue);
  EXPECT_NE(parseParamValue("yes", b), "");
}
