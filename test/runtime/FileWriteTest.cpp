//===- FileWriteTest.cpp - readFile and the write rule of Npy.h -----------===//
//
// The file helpers against what a user can put at a path: devices, FIFOs,
// symlinks (chains, dangling), hard links, huge sparse files. Checks that
// could hang (a FIFO) run in a child process under alarm(), so a regression
// fails instead of blocking the suite.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/Npy.h"

#include "RuntimeTestUtil.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace attnc::runtime;
using namespace runtime_test;

namespace {
struct stat lstatOf(const std::string &path) {
  struct stat st = {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}
} // namespace

TEST(FileRead, RefusesSpecialLinkedAndOversizedFiles) {
  TempDir dir;
  ASSERT_TRUE(writeFileAtomic(dir / "f", "12345").ok());
  EXPECT_EQ(slurp(dir / "f"), "12345");
  Expected<std::string> big = readFile(dir / "f", nullptr, 4);
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("too large (5 bytes, at most 4"),
            std::string::npos);
  EXPECT_TRUE(readFile(dir / "f", nullptr, 5).ok());
  ASSERT_EQ(::symlink("f", (dir / "l").c_str()), 0);
  EXPECT_TRUE(readFile(dir / "l").ok());
  Expected<std::string> linked = readFile(dir / "l", nullptr, UINT64_MAX, true);
  ASSERT_FALSE(linked.ok());
  EXPECT_NE(linked.status().message().find("is a symbolic link"),
            std::string::npos);
  Expected<std::string> dev = readFile("/dev/zero");
  ASSERT_FALSE(dev.ok());
  EXPECT_EQ(dev.status().message(),
            "/dev/zero: is a device; a regular file is needed");
  // A FIFO with no writer: refused at once (the open does not block).
  ASSERT_EQ(::mkfifo((dir / "p").c_str(), 0600), 0);
  EXPECT_EQ(inChild([&] {
              Expected<std::string> r = readFile(dir / "p");
              return !r.ok() && r.status().message() ==
                                    dir / "p" + ": is a FIFO; a regular file "
                                                "is needed"
                         ? 0
                         : 1;
            }),
            0);
  EXPECT_EQ(inChild([&] { return readNpy(dir / "p").ok() ? 1 : 0; }), 0);
}

TEST(FileWrite, DevicesAreWrittenNeverReplaced) {
  Status full = writeFileAtomic("/dev/full", "bytes");
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.message(), "/dev/full: cannot write: No space left on device");
  EXPECT_TRUE(S_ISCHR(lstatOf("/dev/full").st_mode));
  EXPECT_TRUE(writeFileAtomic("/dev/null", "bytes").ok());
  EXPECT_TRUE(S_ISCHR(lstatOf("/dev/null").st_mode));
}

TEST(FileWrite, FifosNeedAReaderAndGetTheBytes) {
  TempDir dir;
  const std::string fifo = dir / "p";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(inChild([&] {
              Status st = writeFileAtomic(fifo, "x");
              return !st.ok() && st.message() == fifo +
                                     ": cannot write: a FIFO with no reader"
                         ? 0
                         : 1;
            }),
            0);
  // With a reader (opened before the write, non-blocking, then read).
  int rfd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(rfd, 0);
  ASSERT_TRUE(writeFileAtomic(fifo, {"hello ", "fifo"}).ok());
  char buf[32] = {};
  EXPECT_EQ(::read(rfd, buf, sizeof buf), 10);
  EXPECT_EQ(std::string(buf), "hello fifo");
  ::close(rfd);
  EXPECT_TRUE(S_ISFIFO(lstatOf(fifo).st_mode));
}

TEST(FileWrite, LinksStayLinks) {
  TempDir dir;
  // A chain of two symlinks to a regular file.
  ASSERT_TRUE(writeFileAtomic(dir / "target", "old").ok());
  ASSERT_EQ(::symlink("target", (dir / "l1").c_str()), 0);
  ASSERT_EQ(::symlink((dir / "l1").c_str(), (dir / "l2").c_str()), 0);
  ASSERT_TRUE(writeFileAtomic(dir / "l2", "new").ok());
  EXPECT_TRUE(S_ISLNK(lstatOf(dir / "l1").st_mode));
  EXPECT_TRUE(S_ISLNK(lstatOf(dir / "l2").st_mode));
  EXPECT_EQ(slurp(dir / "target"), "new");
  // A dangling one: its target is created.
  ASSERT_EQ(::symlink("made", (dir / "dangling").c_str()), 0);
  ASSERT_TRUE(writeFileAtomic(dir / "dangling", "made").ok());
  EXPECT_TRUE(S_ISLNK(lstatOf(dir / "dangling").st_mode));
  EXPECT_EQ(slurp(dir / "made"), "made");
  // A loop is an error.
  ASSERT_EQ(::symlink("loop2", (dir / "loop1").c_str()), 0);
  ASSERT_EQ(::symlink("loop1", (dir / "loop2").c_str()), 0);
  EXPECT_FALSE(writeFileAtomic(dir / "loop1", "x").ok());
  // A hard link: written in place, both names still one file.
  ASSERT_TRUE(writeFileAtomic(dir / "h1", "old").ok());
  ASSERT_EQ(::link((dir / "h1").c_str(), (dir / "h2").c_str()), 0);
  ASSERT_TRUE(writeFileAtomic(dir / "h1", "brand new").ok());
  EXPECT_EQ(lstatOf(dir / "h1").st_ino, lstatOf(dir / "h2").st_ino);
  EXPECT_EQ(slurp(dir / "h2"), "brand new");
  // WriteTarget::Replace renames over whatever is there (the cache).
  ASSERT_TRUE(writeFileAtomic(dir / "l1", "replaced", 0600,
                              WriteTarget::Replace)
                  .ok());
  EXPECT_TRUE(S_ISREG(lstatOf(dir / "l1").st_mode));
  EXPECT_EQ(slurp(dir / "target"), "new");
}

TEST(FileWrite, ModesAndTwoStepCommit) {
  TempDir dir;
  ASSERT_TRUE(writeFileAtomic(dir / "private", "x", 0600).ok());
  EXPECT_EQ(lstatOf(dir / "private").st_mode & 0777, 0600u);
  // A replaced file keeps its bits (within the mode asked for).
  ASSERT_EQ(::chmod((dir / "private").c_str(), 0640), 0);
  ASSERT_TRUE(writeFileAtomic(dir / "private", "y").ok());
  EXPECT_EQ(lstatOf(dir / "private").st_mode & 0777, 0640u);
  ASSERT_TRUE(createDirectories(dir / "a/b", 0700).ok());
  EXPECT_EQ(lstatOf(dir / "a").st_mode & 0777, 0700u);
  EXPECT_EQ(lstatOf(dir / "a/b").st_mode & 0777, 0700u);
  // prepare() stages; discard() leaves the target and no temporary.
  {
    Expected<PendingWrite> w = PendingWrite::prepare(dir / "private", {"z"});
    ASSERT_TRUE(w.ok());
    EXPECT_FALSE(w->inPlace());
    w->discard();
  }
  EXPECT_EQ(slurp(dir / "private"), "y");
  Expected<PendingWrite> w = PendingWrite::prepare(dir / "private", {"z"});
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(slurp(dir / "private"), "y"); // not yet visible
  ASSERT_TRUE(w->commit().ok());
  EXPECT_EQ(slurp(dir / "private"), "z");
  // A directory is an error.
  EXPECT_EQ(writeFileAtomic(dir / "a", "x").message(),
            dir / "a" + ": cannot write: is a directory");
}
