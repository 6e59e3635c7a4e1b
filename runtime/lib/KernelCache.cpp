//===- KernelCache.cpp - Content-addressed cache of compiled kernels ------===//
//
// Entry file layout (80-byte header, then the payload):
//   0  "ATTNKC02"              magic and format version ("ATTNKC01" entries,
//                              checksummed with MurmurHash3, are misses)
//   8  key                     32 hex digits: a file renamed or copied to
//                              another key's name is caught
//   40 payload length          uint64, little-endian
//   48 HMAC-SHA256             under the directory's key, over bytes 0..47
//                              and the payload
// A reader checks the file type and size (before reading), all four fields
// and the file size. Removing a bad entry can race with another process
// replacing it by a good one; the cost is one extra miss, never wrong data.
//
// Other files in the directory: `key` (32 random bytes, 0600), `stats`
// (text: `hits N` and `misses N`, read and rewritten under flock) and
// temporaries `.<name>.tmp.<pid>.<n>` of writes in progress.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/KernelCache.h"
#include "attnc/Runtime/Npy.h"
#include "attnc/Runtime/Sha256.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <functional>
#include <set>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>

using namespace attnc::runtime;

namespace {
constexpr std::string_view kEntryMagic = "ATTNKC02";
constexpr size_t kMacOffset = 48;
constexpr size_t kHeaderSize = kMacOffset + 32;
constexpr size_t kKeyBytes = 32;
/// Temporaries older than this belong to no live writer.
constexpr time_t kStaleTempSeconds = 3600;

uint64_t load64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}
void put64(std::string &out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out += char((v >> (8 * i)) & 0xff);
}
uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
uint64_t fmix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

std::string errnoText(int err) {
  return std::error_code(err, std::generic_category()).message();
}

/// The MAC of an entry: HMAC-SHA256 under \p secret over the first
/// kMacOffset bytes of the header and the payload.
Sha256Digest entryMac(const std::string &secret, std::string_view head,
                      std::string_view payload) {
  HmacSha256 mac(secret);
  mac.update(head.substr(0, kMacOffset));
  mac.update(payload);
  return mac.finish();
}

std::string entryHeader(const std::string &secret, const std::string &key,
                        std::string_view payload) {
  std::string h(kEntryMagic);
  h += key;
  put64(h, payload.size());
  Sha256Digest mac = entryMac(secret, h, payload);
  h.append(reinterpret_cast<const char *>(mac.data()), mac.size());
  return h;
}

/// Prints `attnc: warning: TEXT` once per process for each \p tag.
void warnOnce(const std::string &tag, const std::string &text) {
  static std::mutex m;
  static std::set<std::string> *seen = new std::set<std::string>;
  std::lock_guard<std::mutex> lock(m);
  if (seen->insert(tag).second)
    std::fprintf(stderr, "attnc: warning: %s\n", text.c_str());
}

/// Why directory \p dir must not hold code that attnc runs, or success
/// (OpenSSH's StrictModes: ours, and writable by nobody else).
Status checkTrust(const std::string &dir) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0)
    return Status::error("cannot stat: " + errnoText(errno));
  const bool link = S_ISLNK(st.st_mode);
  if (link && ::stat(dir.c_str(), &st) != 0)
    return Status::error("is a symbolic link that does not resolve (" +
                         errnoText(errno) + ")");
  const std::string what = link ? "is a symbolic link to a directory that "
                                : "";
  if (!S_ISDIR(st.st_mode))
    return Status::error(link ? "is a symbolic link to something that is "
                                "not a directory"
                              : "is not a directory");
  if (st.st_uid != ::geteuid())
    return Status::error((link ? what + "is owned" : "is owned") +
                         std::string(" by uid ") + std::to_string(st.st_uid) +
                         ", not by you (uid " + std::to_string(::geteuid()) +
                         ")");
  if (st.st_mode & 022) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", unsigned(st.st_mode & 07777));
    return Status::error((link ? what + "is writable" : "is writable") +
                         std::string(" by group or others (mode ") + mode +
                         "; fix it with chmod go-w)");
  }
  return Status::success();
}

/// 32 bytes from the kernel's random generator.
Expected<std::string> randomKey() {
  std::string out(kKeyBytes, '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::getrandom(out.data() + got, out.size() - got, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      break;
    got += size_t(n);
  }
  if (got == out.size())
    return out;
  // getrandom missing (old kernel): /dev/urandom, a character device.
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return Status::error("no random source: " + errnoText(errno));
  got = 0;
  while (got < out.size()) {
    ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += size_t(n);
  }
  ::close(fd);
  if (got != out.size())
    return Status::error("cannot read /dev/urandom");
  return out;
}

/// Calls \p fn with the name and lstat of every file in \p dir (not the
/// directory itself; files that vanish meanwhile are skipped).
Status forEachFile(const std::string &dir,
                   const std::function<void(int dirFd, const std::string &,
                                            const struct stat &)> &fn) {
  DIR *d = ::opendir(dir.c_str());
  if (!d)
    return Status::error(dir + ": cannot list: " + errnoText(errno));
  int dfd = ::dirfd(d);
  while (dirent *e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..")
      continue;
    struct stat st;
    if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
      fn(dfd, name, st);
  }
  ::closedir(d);
  return Status::success();
}

/// `<key>.bin`, whatever the file holds.
bool isEntryName(const std::string &name) {
  return name.size() == 36 && name.compare(32, 4, ".bin") == 0 &&
         KernelCache::isValidKey(std::string_view(name).substr(0, 32));
}

/// A temporary of FileWrite.cpp or of the key's creation: `.*.tmp.*`.
bool isTempName(const std::string &name) {
  return name.size() > 1 && name[0] == '.' &&
         name.find(".tmp.", 1) != std::string::npos;
}

bool isStale(const struct stat &st) {
  return st.st_mtime < ::time(nullptr) - kStaleTempSeconds;
}

/// The counters of a stats file (`hits N`, `misses N`); unknown lines and
/// malformed numbers are ignored.
void parseStats(const std::string &text, uint64_t &hits, uint64_t &misses) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos
                                            ? std::string::npos
                                            : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    unsigned long long v = 0;
    char name[16];
    if (std::sscanf(line.c_str(), "%15s %llu", name, &v) != 2)
      continue;
    if (std::string(name) == "hits")
      hits = v;
    else if (std::string(name) == "misses")
      misses = v;
  }
}

/// Opens the stats file (never a link or a special file, never someone
/// else's) under flock \p lockOp; -1 if there is none to use.
int openStats(const std::string &path, int flags, int lockOp) {
  int fd = ::open(path.c_str(),
                  flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY,
                  0600);
  if (fd < 0)
    return -1;
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_uid != ::geteuid() || ::flock(fd, lockOp) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string readSmall(int fd) {
  char buf[256];
  ssize_t n = ::pread(fd, buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, size_t(n)) : std::string();
}

const char *getenvNonEmpty(const char *name) {
  const char *v = std::getenv(name);
  return v && *v ? v : nullptr;
}
} // namespace

std::string Hash128::hex() const {
  static const char digits[] = "0123456789abcdef";
  std::string s(32, '0');
  for (int i = 0; i < 16; ++i) {
    s[15 - i] = digits[(h1 >> (4 * i)) & 15];
    s[31 - i] = digits[(h2 >> (4 * i)) & 15];
  }
  return s;
}

Hash128 attnc::runtime::murmurHash3x64_128(const void *data, size_t len,
                                           uint32_t seed) {
  const auto *bytes = static_cast<const unsigned char *>(data);
  const uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
  uint64_t h1 = seed, h2 = seed;
  const size_t nblocks = len / 16;
  for (size_t i = 0; i < nblocks; ++i) {
    uint64_t k1 = load64(bytes + 16 * i), k2 = load64(bytes + 16 * i + 8);
    k1 *= c1;
    k1 = rotl(k1, 31);
    k1 *= c2;
    h1 ^= k1;
    h1 = rotl(h1, 27);
    h1 += h2;
    h1 = h1 * 5 + 0x52dce729;
    k2 *= c2;
    k2 = rotl(k2, 33);
    k2 *= c1;
    h2 ^= k2;
    h2 = rotl(h2, 31);
    h2 += h1;
    h2 = h2 * 5 + 0x38495ab5;
  }
  // The tail: bytes 8..14 go to k2, bytes 0..7 to k1, as the reference's
  // fall-through switch does.
  const unsigned char *tail = bytes + 16 * nblocks;
  const size_t rem = len & 15;
  uint64_t k1 = 0, k2 = 0;
  for (size_t i = rem; i > 8; --i)
    k2 ^= uint64_t(tail[i - 1]) << (8 * (i - 9));
  if (rem > 8) {
    k2 *= c2;
    k2 = rotl(k2, 33);
    k2 *= c1;
    h2 ^= k2;
  }
  for (size_t i = rem < 8 ? rem : 8; i > 0; --i)
    k1 ^= uint64_t(tail[i - 1]) << (8 * (i - 1));
  if (rem > 0) {
    k1 *= c1;
    k1 = rotl(k1, 31);
    k1 *= c2;
    h1 ^= k1;
  }
  h1 ^= uint64_t(len);
  h2 ^= uint64_t(len);
  h1 += h2;
  h2 += h1;
  h1 = fmix(h1);
  h2 = fmix(h2);
  h1 += h2;
  h2 += h1;
  return {h1, h2};
}

KernelCache::KernelCache(std::string directory) {
  if (const char *m = getenvNonEmpty("ATTNC_CACHE_MAX")) {
    Expected<uint64_t> v = parseSize(m);
    if (v.ok())
      limit = *v;
    else
      warnOnce(std::string("ATTNC_CACHE_MAX=") + m,
               std::string("ATTNC_CACHE_MAX='") + m +
                   "': " + v.status().message() + "; using the default 1G");
  }
  if (!directory.empty()) {
    dir = std::move(directory);
    return;
  }
  Expected<std::string> d = defaultDirectory();
  if (d.ok())
    dir = *d;
  else
    dirStatus = d.status();
}

Expected<uint64_t> KernelCache::parseSize(std::string_view text) {
  const std::string shown = "'" + std::string(text) + "'";
  size_t digits = 0;
  uint64_t v = 0;
  for (; digits < text.size() && text[digits] >= '0' && text[digits] <= '9';
       ++digits) {
    if (v > (UINT64_MAX - 9) / 10)
      return Status::error(shown + " is too large");
    v = v * 10 + uint64_t(text[digits] - '0');
  }
  std::string_view suffix = text.substr(digits);
  int shift = 0;
  if (suffix == "K" || suffix == "k")
    shift = 10;
  else if (suffix == "M" || suffix == "m")
    shift = 20;
  else if (suffix == "G" || suffix == "g")
    shift = 30;
  else if (!suffix.empty())
    digits = 0;
  if (digits == 0)
    return Status::error("expected a number of bytes with an optional K, M "
                         "or G suffix, not " + shown);
  if (v == 0)
    return Status::error("the size limit must be positive, not " + shown);
  if (v > (uint64_t(1) << (63 - shift)))
    return Status::error(shown + " is too large");
  return v << shift;
}

Expected<std::string> KernelCache::defaultDirectory() {
  if (const char *d = getenvNonEmpty("ATTNC_CACHE_DIR"))
    return std::string(d);
  // The XDG spec says relative values are invalid and must be ignored.
  if (const char *x = getenvNonEmpty("XDG_CACHE_HOME"); x && x[0] == '/')
    return std::string(x) + "/attnc";
  if (const char *h = getenvNonEmpty("HOME"))
    return std::string(h) + "/.cache/attnc";
  return Status::error("no kernel cache directory: set ATTNC_CACHE_DIR, "
                       "XDG_CACHE_HOME or HOME");
}

std::string KernelCache::makeKey(const std::vector<std::string> &material) {
  std::string buf;
  put64(buf, material.size());
  for (const std::string &part : material) {
    put64(buf, part.size());
    buf += part;
  }
  return murmurHash3x64_128(buf.data(), buf.size()).hex();
}

bool KernelCache::isValidKey(std::string_view key) {
  if (key.size() != 32)
    return false;
  for (char c : key)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  return true;
}

std::string KernelCache::entryPath(const std::string &key) const {
  return dir + "/" + key + ".bin";
}

void KernelCache::clearMemory() {
  std::lock_guard<std::mutex> lock(mutex);
  memory.clear();
}

namespace {
/// Reads the key file \p path into \p out, refusing one that is not a
/// regular file owned by us with mode 0600 (or stricter) and 32 bytes;
/// \p absent tells that there is none.
Status readKeyFile(const std::string &path, std::string &out, bool &absent) {
  absent = false;
  int fd = ::open(path.c_str(),
                  O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    absent = errno == ENOENT;
    if (errno == ELOOP)
      return Status::error("its key file " + path + " is a symbolic link");
    return Status::error("cannot open its key file " + path + ": " +
                         errnoText(errno));
  }
  struct stat st;
  std::string key(kKeyBytes, '\0');
  std::string why;
  if (::fstat(fd, &st) != 0)
    why = "cannot be examined: " + errnoText(errno);
  else if (!S_ISREG(st.st_mode))
    why = "is not a regular file";
  else if (st.st_uid != ::geteuid())
    why = "is owned by uid " + std::to_string(st.st_uid) +
          ", not by you (uid " + std::to_string(::geteuid()) + ")";
  else if (st.st_mode & 077)
    why = "is readable or writable by group or others (it must be 0600)";
  else if (uint64_t(st.st_size) != kKeyBytes ||
           ::pread(fd, key.data(), kKeyBytes, 0) != ssize_t(kKeyBytes))
    why = "does not hold " + std::to_string(kKeyBytes) + " bytes";
  ::close(fd);
  if (!why.empty())
    return Status::error("its key file " + path + " " + why);
  out = std::move(key);
  return Status::success();
}

/// Why \p dir (which exists) must not be used, or success: its trust and
/// its key file's, if there is one.
Status checkExistingCache(const std::string &dir) {
  Status trust = checkTrust(dir);
  std::string key;
  bool absent = false;
  if (trust.ok())
    if (Status k = readKeyFile(dir + "/key", key, absent); !k.ok() && !absent)
      trust = k;
  if (trust.ok())
    return trust;
  return Status::error("kernel cache directory " + dir +
                       " is refused: " + trust.message());
}
} // namespace

Status KernelCache::loadOrCreateKey() {
  const std::string path = dir + "/key";
  for (int attempt = 0; attempt < 3; ++attempt) {
    bool absent = false;
    Status read = readKeyFile(path, hmacKey, absent);
    if (read.ok() || !absent)
      return read;
    // No key yet: write a complete one under a private name, then link it
    // in place, which fails if another process got there first (then its
    // key is read on the next attempt).
    Expected<std::string> fresh = randomKey();
    if (!fresh.ok())
      return fresh.status();
    // Unique among the threads and processes of this host.
    static std::atomic<uint64_t> counter{0};
    std::string tmp = dir + "/.key.tmp." + std::to_string(::getpid()) + "." +
                      std::to_string(counter.fetch_add(1));
    int wfd = ::open(tmp.c_str(),
                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     0600);
    if (wfd < 0)
      return Status::error("cannot create its key file: " + errnoText(errno));
    bool written = ::write(wfd, fresh->data(), kKeyBytes) == ssize_t(kKeyBytes) &&
                   ::fsync(wfd) == 0;
    written = ::close(wfd) == 0 && written;
    int linked = written ? ::link(tmp.c_str(), path.c_str()) : -1;
    int err = errno;
    ::unlink(tmp.c_str());
    if (linked == 0) {
      hmacKey = std::move(*fresh);
      return Status::success();
    }
    if (!written || err != EEXIST)
      return Status::error("cannot create its key file " + path + ": " +
                           errnoText(written ? err : EIO));
  }
  return Status::error("its key file " + path + " keeps disappearing");
}

Status KernelCache::openDisk(bool create, bool &refused) {
  refused = false;
  std::lock_guard<std::mutex> lock(diskMutex);
  if (disk == Disk::Usable)
    return Status::success();
  if (disk == Disk::Refused) {
    refused = true;
    return refusal;
  }
  if (dir.empty())
    return dirStatus;
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT || !create)
      return Status::error(dir + ": " + errnoText(errno));
    if (Status c = createDirectories(dir, 0700); !c.ok())
      return c;
  }
  Status trust = checkTrust(dir);
  if (trust.ok())
    trust = loadOrCreateKey();
  if (!trust.ok()) {
    disk = Disk::Refused;
    refusal = Status::error("kernel cache directory " + dir +
                            " is refused: " + trust.message());
    warnOnce("dir:" + dir, refusal.message() +
                               "; compiled kernels are cached in memory only");
    refused = true;
    return refusal;
  }
  disk = Disk::Usable;
  return Status::success();
}

void KernelCache::countLookup(bool hit) {
  int fd = openStats(dir + "/stats", O_RDWR | O_CREAT, LOCK_EX);
  if (fd < 0)
    return; // the counters are advisory
  uint64_t hits = 0, misses = 0;
  parseStats(readSmall(fd), hits, misses);
  ++(hit ? hits : misses);
  std::string text = "hits " + std::to_string(hits) + "\nmisses " +
                     std::to_string(misses) + "\n";
  if (::pwrite(fd, text.data(), text.size(), 0) == ssize_t(text.size()))
    (void)::ftruncate(fd, off_t(text.size()));
  ::close(fd);
}

Expected<std::optional<std::string>>
KernelCache::lookup(const std::string &key) {
  if (!isValidKey(key))
    return Status::error("kernel cache: malformed key '" + key + "'");
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = memory.find(key);
    if (it != memory.end())
      return std::optional<std::string>(it->second);
  }
  bool refused = false;
  if (!openDisk(/*create=*/true, refused).ok())
    return std::optional<std::string>();
  const std::string path = entryPath(key);
  bool missing = false;
  // The cap and O_NOFOLLOW come before any allocation or read.
  Expected<std::string> file = readFile(path, &missing, limit, true);
  if (!file.ok()) {
    // Absent, unreadable, a link, a FIFO or device, or over the limit: a
    // miss. What can never become a valid entry is removed.
    struct stat st;
    if (!missing && ::lstat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode) &&
        (!S_ISREG(st.st_mode) || uint64_t(st.st_size) > limit))
      ::unlink(path.c_str());
    countLookup(false);
    return std::optional<std::string>();
  }
  const std::string &f = *file;
  const auto *u = reinterpret_cast<const unsigned char *>(f.data());
  bool valid = f.size() >= kHeaderSize &&
               std::string_view(f).substr(0, 8) == kEntryMagic &&
               std::string_view(f).substr(8, 32) == key &&
               load64(u + 40) == f.size() - kHeaderSize;
  if (valid) {
    Sha256Digest mac = entryMac(hmacKey, f, std::string_view(f).substr(kHeaderSize));
    valid = digestsEqual(mac.data(), u + kMacOffset, mac.size());
  }
  if (!valid) {
    ::unlink(path.c_str());
    countLookup(false);
    return std::optional<std::string>();
  }
  // A hit is a use: its mtime is the LRU clock of evict().
  ::utimensat(AT_FDCWD, path.c_str(), nullptr, AT_SYMLINK_NOFOLLOW);
  countLookup(true);
  std::string payload = f.substr(kHeaderSize);
  std::lock_guard<std::mutex> lock(mutex);
  memory[key] = payload;
  return std::optional<std::string>(std::move(payload));
}

Status KernelCache::store(const std::string &key, std::string_view bytes) {
  if (!isValidKey(key))
    return Status::error("kernel cache: malformed key '" + key + "'");
  {
    std::lock_guard<std::mutex> lock(mutex);
    memory[key] = std::string(bytes);
  }
  bool refused = false;
  if (Status st = openDisk(/*create=*/true, refused); !st.ok())
    return refused ? st : st.withContext("kernel cache");
  if (bytes.size() > limit || kHeaderSize + bytes.size() > limit)
    return Status::success(); // too large for the disk cache
  std::string header = entryHeader(hmacKey, key, bytes);
  Status written = writeFileAtomic(entryPath(key), {header, bytes}, 0600,
                                   WriteTarget::Replace);
  if (!written.ok())
    return written.withContext("kernel cache");
  evict(key);
  return Status::success();
}

void KernelCache::evict(const std::string &keep) {
  struct Entry {
    struct timespec mtime;
    uint64_t size;
    std::string name;
  };
  std::vector<Entry> entries;
  uint64_t total = 0;
  (void)forEachFile(dir, [&](int dfd, const std::string &name,
                             const struct stat &st) {
    if (isTempName(name) && S_ISREG(st.st_mode) && isStale(st)) {
      ::unlinkat(dfd, name.c_str(), 0);
    } else if (isEntryName(name) && S_ISREG(st.st_mode)) {
      entries.push_back({st.st_mtim, uint64_t(st.st_size), name});
      total += uint64_t(st.st_size);
    }
  });
  if (total <= limit)
    return;
  std::sort(entries.begin(), entries.end(), [](const Entry &a, const Entry &b) {
    if (a.mtime.tv_sec != b.mtime.tv_sec)
      return a.mtime.tv_sec < b.mtime.tv_sec;
    if (a.mtime.tv_nsec != b.mtime.tv_nsec)
      return a.mtime.tv_nsec < b.mtime.tv_nsec;
    return a.name < b.name;
  });
  const uint64_t target = limit - limit / 10;
  const std::string kept = keep + ".bin";
  for (const Entry &e : entries) {
    if (total <= target)
      break;
    if (e.name == kept)
      continue;
    // Another process may have removed or replaced it meanwhile; either
    // way its bytes are no longer counted here.
    ::unlink((dir + "/" + e.name).c_str());
    total -= e.size;
  }
}

Expected<CacheStats> KernelCache::stats() {
  if (dir.empty())
    return dirStatus;
  CacheStats s;
  s.limit = limit;
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0 && errno == ENOENT)
    return s;
  if (Status refused = checkExistingCache(dir); !refused.ok())
    return refused;
  Status listed = forEachFile(
      dir, [&](int, const std::string &name, const struct stat &fst) {
        if (isEntryName(name) && S_ISREG(fst.st_mode)) {
          ++s.entries;
          s.bytes += uint64_t(fst.st_size);
        }
      });
  if (!listed.ok())
    return listed;
  int fd = openStats(dir + "/stats", O_RDONLY, LOCK_SH);
  if (fd >= 0) {
    parseStats(readSmall(fd), s.hits, s.misses);
    ::close(fd);
  }
  return s;
}

Expected<CacheCleared> KernelCache::clear() {
  if (dir.empty())
    return dirStatus;
  clearMemory();
  CacheCleared c;
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0 && errno == ENOENT)
    return c;
  if (Status refused = checkExistingCache(dir); !refused.ok())
    return refused;
  Status listed = forEachFile(
      dir, [&](int dfd, const std::string &name, const struct stat &fst) {
        if (S_ISDIR(fst.st_mode))
          return;
        if (isEntryName(name) && ::unlinkat(dfd, name.c_str(), 0) == 0) {
          ++c.entries;
          c.bytes += S_ISREG(fst.st_mode) ? uint64_t(fst.st_size) : 0;
        } else if (isTempName(name) && isStale(fst) &&
                   ::unlinkat(dfd, name.c_str(), 0) == 0) {
          ++c.temporaries;
        } else if (name == "stats" && ::unlinkat(dfd, name.c_str(), 0) == 0) {
          c.stats = true;
        }
      });
  if (!listed.ok())
    return listed;
  return c;
}
