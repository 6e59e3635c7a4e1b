//===- KernelCache.h - Content-addressed cache of compiled kernels -*- C++ -*-//
//
// Compiled kernels (object code, PTX, cubins) are cached under a key that
// hashes everything the result depends on: the spec text, the -D defines,
// the target and its features, the compiler version. Callers pass that
// material to makeKey; the cache only ever sees the 32-hex-digit key, so a
// key is also a safe file name.
//
// Entries live in memory and on disk, one file per key, in ATTNC_CACHE_DIR,
// else $XDG_CACHE_HOME/attnc, else $HOME/.cache/attnc. An entry is object
// code that attnc loads and runs, so the disk cache trusts only what the
// user wrote (docs/security.md):
//   - the directories attnc creates are 0700, entry files 0600;
//   - a directory that is not owned by the effective user, is writable by
//     group or others, or is not a directory (a symlink counts as what it
//     points to) is refused with one `attnc: warning:` per process and
//     directory, and the cache works in memory only;
//   - every entry carries an HMAC-SHA256 under a 32-byte random key in
//     `<dir>/key` (a regular file owned by the user, mode 0600, else the
//     directory is refused); an entry that fails any check (forged,
//     truncated, another key's, an older format, a symlink, FIFO or other
//     non-regular file, larger than the size limit) is a miss and is
//     removed, never returned as data.
// Files are written atomically (temporary + rename), so concurrent stores of
// one key from threads or processes all succeed and a reader sees a whole
// entry or none.
//
// ATTNC_CACHE_MAX (bytes, with an optional K, M or G suffix; default 1G)
// bounds the entries on disk: after a store that leaves more, the least
// recently used entries (by mtime; a hit touches it) are removed until they
// fit in 90% of the limit. Temporaries (`.*.tmp.*`) older than an hour are
// removed by the same scan. Hits and misses of disk lookups are counted in
// `<dir>/stats` (updated under flock), which `attnc cache stats` reports.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_RUNTIME_KERNELCACHE_H
#define ATTNC_RUNTIME_KERNELCACHE_H

#include "attnc/Runtime/Status.h"

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace attnc::runtime {

/// A 128-bit hash value.
struct Hash128 {
  uint64_t h1 = 0, h2 = 0;

  /// 32 lowercase hex digits, h1 first, most significant digit first.
  std::string hex() const;
  /// Equality of both halves.
  bool operator==(const Hash128 &o) const { return h1 == o.h1 && h2 == o.h2; }
};

/// MurmurHash3_x64_128 (Austin Appleby's reference algorithm) of \p len
/// bytes; reads are little-endian on every host, so results agree across
/// machines.
Hash128 murmurHash3x64_128(const void *data, size_t len, uint32_t seed = 0);

/// What `attnc cache stats` reports.
struct CacheStats {
  uint64_t entries = 0, bytes = 0; // entry files on disk and their size
  uint64_t limit = 0;              // ATTNC_CACHE_MAX
  uint64_t hits = 0, misses = 0;   // disk lookups, from <dir>/stats
};

/// What KernelCache::clear removed.
struct CacheCleared {
  uint64_t entries = 0, bytes = 0, temporaries = 0;
  bool stats = false; // the statistics file
};

class KernelCache {
public:
  /// A cache in \p directory, or in defaultDirectory() if it is empty. The
  /// directory is created (0700) on the first lookup or store. If no directory can be
  /// found, the cache works in memory only and store() reports why.
  explicit KernelCache(std::string directory = {});
  KernelCache(const KernelCache &) = delete;
  KernelCache &operator=(const KernelCache &) = delete;

  /// ATTNC_CACHE_DIR, else $XDG_CACHE_HOME/attnc (if absolute), else
  /// $HOME/.cache/attnc; an error if none is set.
  static Expected<std::string> defaultDirectory();

  /// The default size limit (1 GiB).
  static constexpr uint64_t kDefaultMaxSize = uint64_t(1) << 30;

  /// Parses a size: decimal bytes with an optional K, M or G suffix (powers
  /// of 1024, either case); an error if malformed, zero or over 2^63.
  static Expected<uint64_t> parseSize(std::string_view text);

  /// The key of \p material: the hex of a 128-bit hash over the parts,
  /// each prefixed by its length so that part boundaries matter.
  static std::string makeKey(const std::vector<std::string> &material);

  /// True if \p key has the form makeKey produces (32 lowercase hex).
  static bool isValidKey(std::string_view key);

  /// The bytes stored under \p key (memory first, then disk), nullopt on a
  /// miss. The only error is a malformed key: an entry that cannot be read
  /// or fails a check is a miss.
  Expected<std::optional<std::string>> lookup(const std::string &key);

  /// Stores \p bytes under \p key in memory and, atomically, on disk, then
  /// evicts to the size limit. An error says why the disk copy was not
  /// written (no directory, a refused one, a failed write); the memory copy
  /// is kept anyway. An entry larger than the limit is kept in memory only
  /// (not an error).
  Status store(const std::string &key, std::string_view bytes);

  /// The entries, their size, the limit and the hit/miss counters. An
  /// error if there is no directory or it is refused; a directory that does
  /// not exist yet has no entries.
  Expected<CacheStats> stats();

  /// Removes every entry, the temporaries older than an hour (younger ones
  /// belong to a store in progress) and the statistics; the key stays, so
  /// that processes using the cache now keep agreeing on it. Errors as
  /// stats().
  Expected<CacheCleared> clear();

  /// The cache directory; empty if none could be determined.
  const std::string &directory() const { return dir; }

  /// The size limit of the entries on disk (ATTNC_CACHE_MAX when the cache
  /// was made; an invalid value is warned about and the default used).
  uint64_t maxSize() const { return limit; }

  /// The file that holds the entry for \p key.
  std::string entryPath(const std::string &key) const;

  /// Forgets the in-memory entries; the disk entries stay.
  void clearMemory();

private:
  enum class Disk { Unchecked, Usable, Refused };
  /// Makes the disk cache usable (directory checked, key loaded or
  /// created); \p create also creates a missing directory. An error says
  /// why not; \p refused tells a refusal (warned about) from a missing
  /// directory or a failed creation.
  Status openDisk(bool create, bool &refused);
  Status loadOrCreateKey();
  /// Removes stale temporaries and, over the limit, the least recently
  /// used entries other than \p keep.
  void evict(const std::string &keep);
  void countLookup(bool hit);

  std::string dir;
  Status dirStatus;
  uint64_t limit = kDefaultMaxSize;
  std::mutex diskMutex; // guards disk and hmacKey
  Disk disk = Disk::Unchecked;
  Status refusal;
  std::string hmacKey;
  std::mutex mutex; // guards memory
  std::unordered_map<std::string, std::string> memory;
};

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_KERNELCACHE_H
