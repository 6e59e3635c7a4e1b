//===- KernelCache.h - Content-addressed cache of compiled kernels -*- C++ -*-//
//
// Compiled kernels (object code, PTX, cubins) are cached under a key that
// hashes everything the result depends on: the spec text, the -D defines,
// the target and its features, the compiler version. Callers pass that
// material to makeKey; the cache only ever sees the 32-hex-digit key, so a
// key is also a safe file name.
//
// Entries live in memory and on disk, one file per key, in ATTNC_CACHE_DIR,
// else $XDG_CACHE_HOME/attnc, else $HOME/.cache/attnc. Files are written
// atomically (temporary + rename), so concurrent stores of one key from
// threads or processes all succeed and a reader sees a whole entry or
// none. Each file carries a header (magic, key, length, checksum); a file
// that fails any check is a miss and is removed, never returned as data.
//
//===----------------------------------------------------------------------===//
#ifndef ATTNC_RUNTIME_KERNELCACHE_H
#define ATTNC_RUNTIME_KERNELCACHE_H

#include "attnc/Runtime/Status.h"

#include <cstddef>
#include <cstdint>
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

class KernelCache {
public:
  /// A cache in \p directory, or in defaultDirectory() if it is empty. The
  /// directory is created on the first store. If no directory can be
  /// found, the cache works in memory only and store() reports why.
  explicit KernelCache(std::string directory = {});
  KernelCache(const KernelCache &) = delete;
  KernelCache &operator=(const KernelCache &) = delete;

  /// ATTNC_CACHE_DIR, else $XDG_CACHE_HOME/attnc (if absolute), else
  /// $HOME/.cache/attnc; an error if none is set.
  static Expected<std::string> defaultDirectory();

  /// The key of \p material: the hex of a 128-bit hash over the parts,
  /// each prefixed by its length so that part boundaries matter.
  static std::string makeKey(const std::vector<std::string> &material);

  /// True if \p key has the form makeKey produces (32 lowercase hex).
  static bool isValidKey(std::string_view key);

  /// The bytes stored under \p key (memory first, then disk), nullopt on a
  /// miss. Errors: a malformed key, or an entry that exists but cannot be
  /// read.
  Expected<std::optional<std::string>> lookup(const std::string &key);

  /// Stores \p bytes under \p key in memory and, atomically, on disk.
  Status store(const std::string &key, std::string_view bytes);

  /// The cache directory; empty if none could be determined.
  const std::string &directory() const { return dir; }

  /// The file that holds the entry for \p key.
  std::string entryPath(const std::string &key) const;

  /// Forgets the in-memory entries; the disk entries stay.
  void clearMemory();

private:
  std::string dir;
  Status dirStatus;
  std::mutex mutex; // guards memory
  std::unordered_map<std::string, std::string> memory;
};

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_KERNELCACHE_H
