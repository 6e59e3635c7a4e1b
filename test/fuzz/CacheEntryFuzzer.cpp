//===- CacheEntryFuzzer.cpp - libFuzzer target for kernel cache entries ---===//
//
// The kernel cache reads entry files that anyone with write access to the
// cache directory may have changed. Through the public API only
// (store/lookup/entryPath, so that it holds for any entry format), in a
// private temporary cache directory, the first byte picks one of:
//   0 (even): the other bytes are written as the entry file of a key, which
//     a fresh cache then looks up;
//   1 (odd): the next byte gives a payload length; that many bytes are
//     stored under the key, then the entry file is edited by the rest:
//     (offset high, offset low, xor) triples, and a last single byte
//     truncating the file to that fraction of its size. A fresh cache looks
//     the key up: it must return the stored payload if the file is
//     unchanged, and a changed file must never yield other bytes than the
//     payload (a miss or an error is fine).
// Either way the cache must then still work: a store of new bytes under the
// key and a lookup from another fresh cache give them back. Any crash,
// sanitizer report or hang fails.
//
//===----------------------------------------------------------------------===//
#include "attnc/Runtime/KernelCache.h"
#include "attnc/Runtime/Npy.h"

#include "../common/TempDir.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <string>
#include <unistd.h>

using namespace attnc::runtime;

[[noreturn]] static void finding(const char *what) {
  std::fprintf(stderr, "cache entry fuzzer: %s\n", what);
  std::abort();
}

/// The private cache directory of this process, removed at exit.
static const std::string &cacheDir() {
  static const attnc::test::TempDir dir("attnc-fuzz-cache");
  return dir.path;
}

/// Replaces the file at `path` by `bytes` in place (owner-only mode if it
/// is created), as an attacker with write access would.
static void overwrite(const std::string &path, const std::string &bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    finding("cannot write the entry file");
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0)
      finding("cannot write the entry file");
    done += size_t(n);
  }
  ::close(fd);
}

/// Stores a payload, edits its file by `edits` and checks the lookup.
static void corruptStoredEntry(const std::string &key, const uint8_t *data,
                               size_t size) {
  size_t len = size > 0 ? data[0] : 0;
  if (len > size - (size > 0))
    len = size - (size > 0);
  std::string payload(reinterpret_cast<const char *>(data) + (size > 0), len);
  const uint8_t *edits = data + (size > 0) + len;
  size_t numEdits = size - (size > 0) - len;
  {
    KernelCache writer(cacheDir());
    if (!writer.store(key, payload).ok())
      finding("a store into a fresh private directory failed");
  }
  KernelCache probe(cacheDir());
  Expected<std::string> file = readFile(probe.entryPath(key));
  if (!file.ok())
    finding("the stored entry file cannot be read");
  std::string bytes = *file;
  for (size_t i = 0; i + 3 <= numEdits && !bytes.empty(); i += 3) {
    size_t at = ((size_t(edits[i]) << 8) | edits[i + 1]) % bytes.size();
    bytes[at] = char(bytes[at] ^ edits[i + 2]);
  }
  if (numEdits % 3 == 1)
    bytes.resize(bytes.size() * edits[numEdits - 1] / 256);
  bool changed = bytes != *file;
  if (changed)
    overwrite(probe.entryPath(key), bytes);
  Expected<std::optional<std::string>> got = probe.lookup(key);
  if (!changed && !(got.ok() && *got && **got == payload))
    finding("an intact entry is not found");
  if (got.ok() && *got && **got != payload)
    finding("a changed entry yields other bytes than were stored");
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string key = KernelCache::makeKey({"fuzz", "entry"});
  const std::string path = KernelCache(cacheDir()).entryPath(key);
  ::unlink(path.c_str());
  if (size == 0 || data[0] % 2 == 0) {
    std::string bytes(reinterpret_cast<const char *>(data) + (size > 0),
                      size - (size > 0));
    overwrite(path, bytes);
    KernelCache reader(cacheDir());
    (void)reader.lookup(key);
  } else {
    corruptStoredEntry(key, data + 1, size - 1);
  }
  // A bad entry must not stop the cache from working.
  const std::string fresh = "fresh payload";
  if (!KernelCache(cacheDir()).store(key, fresh).ok())
    finding("a store over a bad entry failed");
  Expected<std::optional<std::string>> got = KernelCache(cacheDir()).lookup(key);
  if (!got.ok() || !*got || **got != fresh)
    finding("a store over a bad entry is not found");
  ::unlink(path.c_str());
  return 0;
}
