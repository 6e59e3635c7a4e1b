//===- KernelCacheTest.cpp - Kernel cache trust, limits, stats; SHA-256 ---===//
//
// What makes the disk cache safe to load code from (directory and file
// modes, the StrictModes-style refusal, HMAC-authenticated entries, no
// special or huge files read) and what keeps it tidy (LRU eviction to
// ATTNC_CACHE_MAX, stale temporaries, hit/miss statistics, clear). SHA-256
// and HMAC-SHA256 are checked against FIPS 180-4's and RFC 4231's vectors.
// The basics: keys (MurmurHash3 against SMHasher's value), the directory
// from the environment, store/lookup/persistence with corrupted entries as
// misses, and threads and processes racing on one entry.
// Checks that could hang (a FIFO as an entry) run in a child process under
// alarm(), so a regression fails instead of blocking the suite.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/KernelCache.h"
#include "attnc/Runtime/Npy.h"
#include "attnc/Runtime/Sha256.h"

#include "RuntimeTestUtil.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <new>
#include <set>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace attnc::runtime;
using namespace runtime_test;

//===--- Allocation probe -------------------------------------------------===//
// The largest single operator new request while `gProbe` is set, so a test
// can show that a huge entry is refused before anything is allocated.
namespace {
std::atomic<bool> gProbe{false};
std::atomic<size_t> gLargest{0};
} // namespace

void *operator new(size_t n) {
  if (gProbe.load(std::memory_order_relaxed)) {
    size_t seen = gLargest.load();
    while (n > seen && !gLargest.compare_exchange_weak(seen, n)) {
    }
  }
  if (void *p = std::malloc(n ? n : 1))
    return p;
  throw std::bad_alloc();
}
void operator delete(void *p) noexcept { std::free(p); }
void operator delete(void *p, size_t) noexcept { std::free(p); }

namespace {

mode_t modeOf(const std::string &path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}
void setMtime(const std::string &path, time_t t) {
  struct timespec ts[2] = {{t, 0}, {t, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0);
}

std::string hex(const Sha256Digest &d) { return toHex(d); }
} // namespace

//===--- SHA-256 and HMAC -------------------------------------------------===//

TEST(Sha256, FipsVectors) {
  EXPECT_EQ(hex(sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(hex(sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // One million 'a', fed in uneven pieces: the block buffering agrees.
  Sha256 h;
  std::string a(1000000, 'a');
  for (size_t at = 0, step = 1; at < a.size(); at += step, step = step * 3 % 997 + 1)
    h.update(a.data() + at, std::min(step, a.size() - at));
  EXPECT_EQ(hex(h.finish()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, HmacRfc4231) {
  EXPECT_EQ(hex(hmacSha256(std::string(20, '\x0b'), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(hex(hmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(hex(hmacSha256(std::string(131, '\xaa'),
                           "Test Using Larger Than Block-Size Key - Hash Key "
                           "First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  uint8_t x[3] = {1, 2, 3}, y[3] = {1, 2, 4};
  EXPECT_TRUE(digestsEqual(x, x, 3));
  EXPECT_FALSE(digestsEqual(x, y, 3));
}

//===--- Trust ------------------------------------------------------------===//

TEST(KernelCacheTrust, CreatesPrivateDirectoriesAndFiles) {
  TempDir dir;
  const std::string cacheDir = dir / "a/b/cache";
  KernelCache c(cacheDir);
  const std::string key = KernelCache::makeKey({"modes"});
  ASSERT_TRUE(c.store(key, "object code").ok());
  for (const char *d : {"a", "a/b", "a/b/cache"})
    EXPECT_EQ(modeOf(dir / d), 0700u) << d;
  EXPECT_EQ(modeOf(c.entryPath(key)), 0600u);
  EXPECT_EQ(modeOf(cacheDir + "/key"), 0600u);
  struct stat st;
  ASSERT_EQ(::stat((cacheDir + "/key").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 32);
  // A second cache (another process) reads the same key back.
  KernelCache other(cacheDir);
  EXPECT_EQ(**other.lookup(key), "object code");
}

/// A cache in \p cacheDir must refuse its disk: the one warning names the
/// directory and \p why, nothing is written there, memory still works.
void expectRefused(const std::string &cacheDir, const std::string &why) {
  std::set<std::string> before = TempDir::listDir(cacheDir);
  const std::string key = KernelCache::makeKey({"refused", cacheDir});
  testing::internal::CaptureStderr();
  {
    KernelCache c(cacheDir);
    EXPECT_FALSE(c.lookup(key)->has_value());
    Status st = c.store(key, "code");
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find(why), std::string::npos) << st.message();
    EXPECT_EQ(**c.lookup(key), "code"); // memory only
    EXPECT_FALSE(c.stats().ok());
    EXPECT_FALSE(c.clear().ok());
  }
  KernelCache again(cacheDir);
  EXPECT_FALSE(again.lookup(key)->has_value());
  std::string err = testing::internal::GetCapturedStderr();
  const std::string prefix = "attnc: warning: kernel cache directory " +
                             cacheDir + " is refused: ";
  EXPECT_EQ(err.find(prefix), 0u) << err;
  EXPECT_NE(err.find(why), std::string::npos) << err;
  EXPECT_EQ(err.find("attnc: warning:", 1), std::string::npos) << err; // once
  EXPECT_EQ(TempDir::listDir(cacheDir), before);
}

TEST(KernelCacheTrust, RefusesAWorldWritableDirectory) {
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path.c_str(), 0777), 0);
  expectRefused(dir.path, "writable by group or others (mode 0777");
  TempDir group;
  ASSERT_EQ(::chmod(group.path.c_str(), 0770), 0);
  expectRefused(group.path, "writable by group or others (mode 0770");
}

TEST(KernelCacheTrust, RefusesADirectoryOwnedBySomeoneElse) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "needs root to give a directory to another uid";
  TempDir dir;
  ASSERT_EQ(::chown(dir.path.c_str(), 4242, 4242), 0);
  expectRefused(dir.path, "is owned by uid 4242, not by you (uid 0)");
  // A symlink to it is judged by what it points to.
  TempDir links;
  ASSERT_EQ(::symlink(dir.path.c_str(), (links / "cache").c_str()), 0);
  expectRefused(links / "cache", "symbolic link to a directory that is owned "
                                 "by uid 4242");
}

TEST(KernelCacheTrust, RefusesNonDirectoriesAndBadKeyFiles) {
  TempDir dir;
  writeBytes(dir / "file", "x");
  expectRefused(dir / "file", "is not a directory");
  // Key files: not 0600, not regular, a symlink, the wrong size.
  ASSERT_EQ(::mkdir((dir / "open").c_str(), 0700), 0);
  writeBytes(dir / "open/key", std::string(32, 'k'));
  ASSERT_EQ(::chmod((dir / "open/key").c_str(), 0644), 0);
  expectRefused(dir / "open", "group or others (it must be 0600)");
  ASSERT_EQ(::mkdir((dir / "fifo").c_str(), 0700), 0);
  ASSERT_EQ(::mkfifo((dir / "fifo/key").c_str(), 0600), 0);
  EXPECT_EQ(inChild([&] {
              expectRefused(dir / "fifo", "is not a regular file");
              return testing::Test::HasFailure() ? 1 : 0;
            }),
            0);
  ASSERT_EQ(::mkdir((dir / "link").c_str(), 0700), 0);
  writeBytes(dir / "secret", std::string(32, 's'));
  ASSERT_EQ(::chmod((dir / "secret").c_str(), 0600), 0);
  ASSERT_EQ(::symlink((dir / "secret").c_str(), (dir / "link/key").c_str()), 0);
  expectRefused(dir / "link", "is a symbolic link");
  ASSERT_EQ(::mkdir((dir / "short").c_str(), 0700), 0);
  writeBytes(dir / "short/key", "short");
  ASSERT_EQ(::chmod((dir / "short/key").c_str(), 0600), 0);
  expectRefused(dir / "short", "does not hold 32 bytes");
}

TEST(KernelCacheTrust, ForgedEntriesAreMissesAndRemoved) {
  TempDir dir;
  const std::string key = KernelCache::makeKey({"forged"});
  const std::string payload = "genuine object";
  {
    KernelCache c(dir.path);
    ASSERT_TRUE(c.store(key, payload).ok());
  }
  KernelCache probe(dir.path);
  const std::string path = probe.entryPath(key);
  auto put64 = [](std::string &s, uint64_t v) {
    for (int i = 0; i < 8; ++i)
      s += char((v >> (8 * i)) & 0xff);
  };
  const std::string evil = "evil object calling system()";
  // The old format, checksum recomputed as an attacker would.
  Hash128 sum = murmurHash3x64_128(evil.data(), evil.size());
  std::string old = "ATTNKC01" + key;
  put64(old, evil.size());
  put64(old, sum.h1);
  put64(old, sum.h2);
  // The new layout with an unkeyed hash, and with an HMAC under another key.
  std::string unkeyed = "ATTNKC02" + key;
  put64(unkeyed, evil.size());
  std::string wrongKey = unkeyed;
  put64(unkeyed, sum.h1);
  put64(unkeyed, sum.h2);
  unkeyed += std::string(16, '\0');
  Sha256Digest mac = hmacSha256(std::string(32, '\0'), wrongKey + evil);
  wrongKey.append(reinterpret_cast<const char *>(mac.data()), mac.size());
  for (const std::string &forged : {old + evil, unkeyed + evil, wrongKey + evil}) {
    writeBytes(path, forged);
    KernelCache fresh(dir.path);
    Expected<std::optional<std::string>> r = fresh.lookup(key);
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->has_value());
    EXPECT_FALSE(exists(path));
  }
}

TEST(KernelCacheTrust, SpecialAndHugeEntriesAreMisses) {
  TempDir dir;
  ScopedEnv max("ATTNC_CACHE_MAX", "1M");
  const std::string key = KernelCache::makeKey({"special"});
  const std::string path = KernelCache(dir.path).entryPath(key);
  {
    KernelCache c(dir.path);
    ASSERT_TRUE(c.store(KernelCache::makeKey({"other"}), "x").ok()); // key
  }
  // A FIFO: no hang (the child is killed after 10 s), a miss, removed.
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  EXPECT_EQ(inChild([&] {
              KernelCache c(dir.path);
              Expected<std::optional<std::string>> r = c.lookup(key);
              return r.ok() && !r->has_value() && !exists(path) ? 0 : 1;
            }),
            0);
  // A symlink to a valid entry of another key is not followed.
  ASSERT_EQ(::symlink(KernelCache(dir.path).entryPath(KernelCache::makeKey({"other"})).c_str(),
                      path.c_str()),
            0);
  EXPECT_FALSE(KernelCache(dir.path).lookup(key)->has_value());
  EXPECT_FALSE(exists(path));
  // A 100 GB sparse file: refused by its size before any allocation.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, off_t(100) << 30), 0);
  ::close(fd);
  KernelCache c(dir.path);
  gLargest = 0;
  gProbe = true;
  Expected<std::optional<std::string>> r = c.lookup(key);
  gProbe = false;
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
  EXPECT_LT(gLargest.load(), size_t(1) << 20);
  EXPECT_FALSE(exists(path));
}

//===--- Hygiene ----------------------------------------------------------===//

TEST(KernelCacheHygiene, ParsesSizeLimits) {
  EXPECT_EQ(*KernelCache::parseSize("1024"), 1024u);
  EXPECT_EQ(*KernelCache::parseSize("4K"), 4096u);
  EXPECT_EQ(*KernelCache::parseSize("2m"), 2u << 20);
  EXPECT_EQ(*KernelCache::parseSize("1G"), 1u << 30);
  for (const char *bad : {"", "G", "abc", "1T", "0", "0K", "-1", "1.5G",
                          "1 G", "99999999999999999999", "8589934593G"})
    EXPECT_FALSE(KernelCache::parseSize(bad).ok()) << bad;
  {
    ScopedEnv max("ATTNC_CACHE_MAX", "64K");
    EXPECT_EQ(KernelCache("/nonexistent").maxSize(), 64u << 10);
  }
  ScopedEnv max("ATTNC_CACHE_MAX", "lots");
  testing::internal::CaptureStderr();
  EXPECT_EQ(KernelCache("/nonexistent").maxSize(), KernelCache::kDefaultMaxSize);
  EXPECT_EQ(KernelCache("/nonexistent").maxSize(), KernelCache::kDefaultMaxSize);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "attnc: warning: ATTNC_CACHE_MAX='lots': expected a number "
                 "of bytes with an optional K, M or G suffix, not 'lots'; "
                 "using the default 1G\n");
}

TEST(KernelCacheHygiene, EvictsLeastRecentlyUsed) {
  TempDir dir;
  ScopedEnv max("ATTNC_CACHE_MAX", "10K"); // 10240 bytes
  const std::string payload(2900, 'p');    // 2980 bytes per entry file
  std::string keys[4];
  for (int i = 0; i < 4; ++i)
    keys[i] = KernelCache::makeKey({"lru", std::to_string(i)});
  KernelCache c(dir.path);
  const time_t t0 = ::time(nullptr) - 1000;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.store(keys[i], payload).ok());
    setMtime(c.entryPath(keys[i]), t0 + 10 * i);
  }
  // A hit on the oldest makes it the most recently used.
  c.clearMemory();
  EXPECT_TRUE(c.lookup(keys[0])->has_value());
  // 4 x 2980 > 10240: the least recently used (keys[1]) goes, which brings
  // the total under 90% of the limit.
  ASSERT_TRUE(c.store(keys[3], payload).ok());
  EXPECT_TRUE(exists(c.entryPath(keys[0])));
  EXPECT_FALSE(exists(c.entryPath(keys[1])));
  EXPECT_TRUE(exists(c.entryPath(keys[2])));
  EXPECT_TRUE(exists(c.entryPath(keys[3])));
  // An entry larger than the limit stays in memory only.
  const std::string big = KernelCache::makeKey({"big"});
  ASSERT_TRUE(c.store(big, std::string(20000, 'b')).ok());
  EXPECT_FALSE(exists(c.entryPath(big)));
  EXPECT_EQ((*c.lookup(big))->size(), 20000u);
}

TEST(KernelCacheHygiene, StaleTemporariesAreRemoved) {
  TempDir dir;
  KernelCache c(dir.path);
  ASSERT_TRUE(c.store(KernelCache::makeKey({"a"}), "a").ok());
  writeBytes(dir / ".x.bin.tmp.1.2", "stale");
  writeBytes(dir / ".y.bin.tmp.3.4", "in progress");
  setMtime(dir / ".x.bin.tmp.1.2", ::time(nullptr) - 7200);
  ASSERT_TRUE(c.store(KernelCache::makeKey({"b"}), "b").ok());
  EXPECT_FALSE(exists(dir / ".x.bin.tmp.1.2"));
  EXPECT_TRUE(exists(dir / ".y.bin.tmp.3.4"));
  // clear() removes stale ones too, and leaves a young one alone.
  writeBytes(dir / ".z.tmp.5", "stale");
  setMtime(dir / ".z.tmp.5", ::time(nullptr) - 7200);
  Expected<CacheCleared> cleared = c.clear();
  ASSERT_TRUE(cleared.ok());
  EXPECT_EQ(cleared->temporaries, 1u);
  EXPECT_FALSE(exists(dir / ".z.tmp.5"));
  EXPECT_TRUE(exists(dir / ".y.bin.tmp.3.4"));
}

TEST(KernelCacheHygiene, StatsAndClear) {
  TempDir dir;
  const std::string cacheDir = dir / "cache";
  const std::string a = KernelCache::makeKey({"a"}), b = KernelCache::makeKey({"b"});
  {
    KernelCache fresh(cacheDir);
    Expected<CacheStats> none = fresh.stats(); // no directory yet
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(none->entries, 0u);
    EXPECT_FALSE(exists(cacheDir));
  }
  {
    KernelCache c(cacheDir);
    EXPECT_FALSE(c.lookup(a)->has_value()); // miss
    ASSERT_TRUE(c.store(a, "aaaa").ok());
    ASSERT_TRUE(c.store(b, "bb").ok());
    c.clearMemory();
    EXPECT_TRUE(c.lookup(a)->has_value()); // hit
    EXPECT_TRUE(c.lookup(b)->has_value()); // hit
  }
  KernelCache other(cacheDir); // the counters persist across processes
  Expected<CacheStats> s = other.stats();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->entries, 2u);
  EXPECT_EQ(s->bytes, 2 * 80u + 6);
  EXPECT_EQ(s->limit, KernelCache::kDefaultMaxSize);
  EXPECT_EQ(s->hits, 2u);
  EXPECT_EQ(s->misses, 1u);
  Expected<CacheCleared> cleared = other.clear();
  ASSERT_TRUE(cleared.ok());
  EXPECT_EQ(cleared->entries, 2u);
  EXPECT_EQ(cleared->bytes, 2 * 80u + 6);
  EXPECT_TRUE(cleared->stats);
  EXPECT_EQ(TempDir::listDir(cacheDir), std::set<std::string>{"key"});
  s = other.stats();
  EXPECT_EQ(s->entries + s->hits + s->misses, 0u);
  EXPECT_FALSE(other.lookup(a)->has_value()); // memory cleared too
}

//===--- Keys, store and lookup, concurrency -----------------------------===//

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
