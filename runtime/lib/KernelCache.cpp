//===- KernelCache.cpp - Content-addressed cache of compiled kernels ------===//
//
// Entry file layout (64-byte header, then the payload):
//   0  "ATTNKC01"              magic and format version
//   8  key                     32 hex digits: a file renamed or copied to
//                              another key's name is caught
//   40 payload length          uint64, little-endian
//   48 MurmurHash3 of payload  h1 then h2, little-endian
// A reader checks all four and the file size. Removing a bad entry can race
// with another process replacing it by a good one; the cost is one extra
// miss, never wrong data.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/KernelCache.h"
#include "attnc/Runtime/Npy.h"

#include <cstdlib>
#include <cstring>
#include <unistd.h>

using namespace attnc::runtime;

namespace {
constexpr std::string_view kEntryMagic = "ATTNKC01";
constexpr size_t kHeaderSize = 64;

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

std::string entryHeader(const std::string &key, std::string_view payload) {
  Hash128 sum = murmurHash3x64_128(payload.data(), payload.size());
  std::string h(kEntryMagic);
  h += key;
  put64(h, payload.size());
  put64(h, sum.h1);
  put64(h, sum.h2);
  return h;
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
  if (dir.empty())
    return std::optional<std::string>();
  const std::string path = entryPath(key);
  bool missing = false;
  Expected<std::string> file = readFile(path, &missing);
  if (!file.ok()) {
    // A missing entry is a miss; an entry we cannot read is an error.
    if (missing)
      return std::optional<std::string>();
    return file.status().withContext("kernel cache");
  }
  const std::string &f = *file;
  const auto *u = reinterpret_cast<const unsigned char *>(f.data());
  bool valid = f.size() >= kHeaderSize &&
               std::string_view(f).substr(0, 8) == kEntryMagic &&
               std::string_view(f).substr(8, 32) == key &&
               load64(u + 40) == f.size() - kHeaderSize;
  if (valid) {
    Hash128 sum =
        murmurHash3x64_128(f.data() + kHeaderSize, f.size() - kHeaderSize);
    valid = sum.h1 == load64(u + 48) && sum.h2 == load64(u + 56);
  }
  if (!valid) {
    ::unlink(path.c_str());
    return std::optional<std::string>();
  }
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
  if (dir.empty())
    return dirStatus.withContext("kernel cache");
  if (Status st = createDirectories(dir); !st.ok())
    return st.withContext("kernel cache");
  std::string header = entryHeader(key, bytes);
  return writeFileAtomic(entryPath(key), {header, bytes})
      .withContext("kernel cache");
}
